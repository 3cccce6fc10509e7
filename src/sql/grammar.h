// The SQL generation grammar: which statements the text-to-SQL generator may write, and a token
// filter that keeps a model's output inside them.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "sql/sql.h"

namespace kexa {
class Tokenizer;
class TokenFilter;
}  // namespace kexa

namespace kexa::sql {

// A recognizer for the SQL the generator may write: one SELECT (or WITH ... SELECT) statement,
// optionally followed by ';', over the given tables and their columns only (case-insensitive,
// optionally "double-quoted"; table aliases T1..T9 or any short identifier after AS). It covers
// the Spider/BIRD query forms: DISTINCT, aggregates, arithmetic, CASE-free expressions with
// comparison/LIKE/IN/BETWEEN/IS NULL, scalar and IN subqueries, JOIN ... ON, GROUP BY, HAVING,
// ORDER BY, LIMIT/OFFSET, UNION/INTERSECT/EXCEPT. Every repetition is bounded and literals are
// short, and optional parts (another item, join, condition, clause, subquery) may only start in
// the first 240 bytes, so every accepted prefix completes within a bounded length: a model that
// can only pick allowed tokens always ends. valid_prefix() admits no dead end: a prefix is valid
// only if some continuation completes it (a half-typed name is checked against every way of
// finishing it; a reference made before FROM must leave some FROM clause of at most four tables
// that resolves every reference exactly once). It is deliberately narrower than SQL: it is a
// generation grammar, not a validator (the database validates; the executor enforces read-only).
class SqlGrammar {
 public:
  explicit SqlGrammar(const Schema& schema);
  // True when `text` can be extended to a statement the grammar accepts.
  bool valid_prefix(std::string_view text) const;
  // True when `text` is a whole statement (trailing ';' and white space allowed).
  bool complete(std::string_view text) const;

  struct Names;  // lower-cased table / column names

 private:
  std::shared_ptr<const Names> names_;
};

// True when the grammar reads `name` written without quotes as that name: letters, digits and
// '_' (not first a digit), at most 64 bytes, and no SQL keyword. Every other name must be
// written "double-quoted".
bool plain_identifier(std::string_view name);

// A token filter over `tokenizer`'s vocabulary that keeps the output a valid_prefix of `grammar`
// and admits the stop ids only once the output is complete. Computing the allowed set walks a
// trie of token texts and prunes every branch whose prefix is already invalid.
std::unique_ptr<TokenFilter> make_sql_filter(const SqlGrammar& grammar, const Tokenizer& tokenizer,
                                             const std::vector<int32_t>& stop_ids);

}  // namespace kexa::sql
