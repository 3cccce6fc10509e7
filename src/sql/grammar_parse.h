// Internals of SqlGrammar (src/sql only): the lexer and the recursive-descent recognizer that
// runs over its lexemes. grammar_parser.cpp holds the statement syntax, grammar_scope.cpp the
// FROM clause and the resolution of column references against it, grammar.cpp the entry points.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "sql/grammar.h"

namespace kexa::sql {

struct SqlGrammar::Names {
  struct T {
    std::string name;                  // lower case
    std::vector<std::string> columns;  // lower case
  };
  std::vector<T> tables;
};

namespace detail {

// Bounds that make every accepted prefix complete within a bounded length (see SqlGrammar); the
// lexer's own bounds on each token are in grammar.cpp.
constexpr int kMaxItems = 5;
constexpr int kMaxJoins = 3;
constexpr int kMaxConds = 3;
constexpr int kMaxBinops = 2;
constexpr int kMaxOrder = 2;
constexpr int kMaxGroup = 2;
constexpr int kMaxInList = 5;
constexpr int kMaxCtes = 2;
constexpr int kMaxDepth = 2;  // subquery nesting (the statement itself is depth 0)
// Optional parts (another item, join, condition, clause, subquery, set operation) may only start
// before this byte offset; past it the statement can only be finished. Keeps the longest
// statement short enough that a model picking allowed tokens at random ends within a few
// hundred tokens, while 97% of Spider's gold queries are shorter than 261 bytes.
constexpr size_t kSoftBytes = 240;

std::string lower(std::string_view s);

inline bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

inline bool ident_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

enum class Kind { Word, QIdent, Number, String, Punct };

struct Lex {
  Kind kind;
  std::string text;   // words lower-cased; quoted identifiers and strings: their content
  bool open = false;  // the text ends inside (or right at the end of) this lexeme
  size_t at = 0;      // byte offset of its start in the text
};

// Splits `s` into lexemes; false when it holds something the grammar never writes (comments,
// characters outside SQL, over-long literals, long runs of white space).
bool lex(std::string_view s, std::vector<Lex>& out);

struct PrefixOk {};  // thrown when a parse reaches the end of a prefix: a completion exists

struct TableRef {
  const SqlGrammar::Names::T* table;
  std::string alias;  // lower case; empty = referred to by its name
  // What a qualifier must say to mean this table.
  const std::string& name() const { return alias.empty() ? table->name : alias; }
};

struct ColRef {
  std::string qual, col;
};

// One SELECT core: its FROM scope and the column references made before FROM was read.
struct Core {
  std::vector<TableRef> scope;
  bool from_done = false;
  std::vector<ColRef> pending;
  int items = 0;  // result columns
  int max_items = kMaxItems;  // 1 for scalar and IN subqueries
  int min_items = 1;          // the second core of a set operation: as many as the first
};

// Recognizes one statement over `lx`. With `prefix`, running into the end of the lexemes where
// the statement could go on throws PrefixOk (the caller counts that as a valid prefix);
// statement() returning false means no statement, complete or not, reads this way.
class Parser {
 public:
  Parser(const SqlGrammar::Names& names, const std::vector<Lex>& lx, bool prefix, size_t text_size);

  bool statement();

 private:
  struct Mark {
    size_t pos;
    size_t pending;
  };

  // Lexemes (grammar_parser.cpp).
  bool at_end() const { return pos_ >= lx_.size(); }
  // Whether an optional part may start here (see kSoftBytes).
  bool room() const { return (pos_ < lx_.size() ? lx_[pos_].at : text_size_) < kSoftBytes; }
  const Lex* peek();
  bool last_open(const Lex* l) const { return l->open && l == &lx_.back(); }
  bool kw(std::string_view k);
  bool punct(std::string_view p);
  template <class Get>
  int name_of(size_t count, Get get);
  Mark mark() const { return {pos_, pending_ ? pending_->size() : 0}; }
  void reset(const Mark& m) {
    pos_ = m.pos;
    if (pending_) pending_->resize(m.pending);
  }
  // Table aliases: t1 .. t9 (the Spider/BIRD convention) or a short word a model would pick.
  static bool alias_name(const std::string& s) { return s.size() == 2 && s[0] == 't' && s[1] >= '1' && s[1] <= '9'; }
  bool alias();
  bool number();
  bool string_lit();
  bool literal();
  bool peek_kw_select();

  // Statement syntax (grammar_parser.cpp).
  bool cte();
  bool setop();
  bool select_core(Core& core, int depth);
  bool select_items(Core& core, int depth, std::vector<std::string>& cols);
  bool where_group(Core& core, int depth);
  bool order_limit(Core& core);
  bool order_limit_impl();
  bool cond(int depth, bool agg, int nest);
  bool pred(int depth, bool agg, int nest);
  bool in_operand(int depth);
  bool subquery(int depth);
  bool expr(int depth, bool agg, bool strings = true);
  bool unary(int depth, bool agg, bool strings);
  bool aggregate(int depth);

  // FROM scope and column references (grammar_scope.cpp).
  bool from_clause(Core& core);
  bool table_ref(Core& core, int joins_left);
  bool join_cond(Core& core);
  bool feasible(const Core& core, int joins_left) const;
  bool can_finish(std::vector<TableRef>& scope, const std::vector<ColRef>& pending, int k) const;
  bool joinable(Core& core, int joins_left) const;
  bool some_alias_feasible(Core& core, int joins_left, bool bare_ok) const;
  int unresolved(const Core& core) const;
  static int resolve(const Core& core, const ColRef& r) { return resolve_in(core.scope, r); }
  static int resolve_in(const std::vector<TableRef>& scope, const ColRef& r);
  bool colref(Core& core);
  std::vector<std::string> qualified_columns(const Core& core, const std::string& qual,
                                             const std::vector<std::string>& known) const;
  void succeed_if_column_follows(Core& core, const std::string& qual, const std::vector<std::string>& qcols);
  bool accept_ref(Core& core, const ColRef& r);

  const std::vector<Lex>& lx_;
  bool prefix_;
  size_t text_size_;
  size_t pos_ = 0;
  std::vector<const SqlGrammar::Names::T*> tables_;
  std::deque<SqlGrammar::Names::T> ctes_;
  std::vector<ColRef>* pending_ = nullptr;
  Core* core_ = nullptr;
  std::vector<std::string> core_columns_;
};

// A name (word or quoted identifier) among `count` candidates, get(i) giving the i-th; returns
// its index or -1. Defined here because both halves of the parser call it.
template <class Get>
int Parser::name_of(size_t count, Get get) {
  const Lex* l = peek();
  if (!l || (l->kind != Kind::Word && l->kind != Kind::QIdent)) return -1;
  if (last_open(l) && prefix_) {
    // A longer name may still be typed: a valid prefix. A name typed in full is taken as it is
    // below, so the checks that follow it (scope, ambiguity) apply right away.
    for (size_t i = 0; i < count; ++i) {
      const std::string& c = get(i);
      // A bare word can only grow into a name that may be written bare.
      const bool longer = l->kind == Kind::QIdent ? c.size() >= l->text.size() : c.size() > l->text.size();
      if (longer && starts_with(c, l->text) &&
          (l->kind == Kind::QIdent || plain_identifier(c)))
        throw PrefixOk{};
    }
    if (l->kind == Kind::QIdent) return -1;  // the closing quote is still to come
  }
  if (l->open && l->kind == Kind::QIdent) return -1;  // unterminated: cannot be complete
  for (size_t i = 0; i < count; ++i) {
    if (get(i) != l->text) continue;
    if (l->kind == Kind::Word && !plain_identifier(l->text)) return -1;  // must be quoted
    ++pos_;
    return static_cast<int>(i);
  }
  return -1;
}

}  // namespace detail
}  // namespace kexa::sql
