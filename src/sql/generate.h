// Text-to-SQL with a model: introspect and link the schema, prompt with the linked tables
// (CREATE TABLE text + sample values) through the model's chat template, generate ONE SELECT/WITH
// statement under a grammar that knows the linked tables and columns (so even a small model
// writes SQL that parses), validate it with the database (prepare), retry with the database's
// error message (bounded), run it read-only through the safe executor with row/time caps, and
// answer in natural language from the rows.
//
//   auto db = sql::open_database("sqlite:flight_2.sqlite");   // or postgresql://...
//   sql::AskResult r = sql::ask(*db, chat, {}, "How many airlines?");
//   r.sql, r.result.rows, r.answer
//
// `chat` (runtime/turn.h) runs each generation: on a LocalGeneration for `kexa sql`, on the
// server's scheduler for /v1/sql/query (an ordinary job beside the chats); sql/ never sees the
// model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"
#include "runtime/turn.h"
#include "sql/grammar.h"
#include "sql/sql.h"

namespace kexa::sql {

struct AskOptions {
  int max_retries = 2;           // further attempts after a statement the database rejects
  bool constrain = true;         // generate under SqlGrammar (false: free text, first statement taken)
  bool answer = true;            // generate the natural-language answer from the rows
  int64_t max_sql_tokens = 256;
  int64_t max_answer_tokens = 256;
  int64_t context = 8192;  // for the caller's backend; ask() does not read it
  size_t samples_per_column = 3;
  // Tokens the schema text may take in the SQL prompt; 0: what `context` leaves after the rest of
  // the prompt, max_sql_tokens per attempt and room for each retry's error. A schema that fits
  // is shown whole, its tables ordered by relevance (the linker's selection first); one that does
  // not is cut to the linker's selection (prompt_tables below).
  int64_t schema_budget_tokens = 0;
  size_t max_rows_in_prompt = 20;  // rows shown to the model for the answer
  Limits limits;                   // executor caps
  LinkOptions link;
  SamplingParams sampling;  // default greedy
  // Streaming of the natural-language answer; false stops it.
  std::function<bool(std::string_view delta)> on_answer_delta;
};

struct Attempt {
  std::string sql;
  std::string error;  // the database's or the executor's message; empty when it ran
};

struct AskResult {
  std::vector<std::string> linked_tables;  // the linker's selection, most relevant first
  std::vector<std::string> prompt_tables;  // the tables the prompt and the grammar hold, in order
  std::string schema_text;        // the CREATE TABLE text the model saw
  std::vector<Attempt> attempts;  // every generated statement, in order
  std::string sql;                // the statement that ran (empty when none did)
  bool executed = false;
  Result result;
  std::string answer;  // natural-language answer (empty when !executed or !options.answer)
  std::string error;   // why nothing ran, when !executed
  nlohmann::json to_json() const;
};

// Throws kexa::Error only for problems outside the loop (schema introspection, a prompt that does
// not fit the context); a statement the database refuses is recorded in attempts.
// Every statement goes through `db` (its validate() and execute(): read-only enforcement stays
// in the executor).
AskResult ask(Executor& db, const ChatFunction& chat, const AskOptions& options, std::string_view question);

// The pieces, for tests and for the server.
// CREATE TABLE statements (with key clauses) for `tables`, each column followed by a comment
// holding its sample values.
std::string schema_prompt_text(const Schema& schema, const std::vector<std::string>& tables);
// Messages for the SQL turn; `previous` holds earlier failed attempts whose errors are shown.
nlohmann::ordered_json sql_messages(std::string_view dialect, std::string_view schema_text,
                                    std::string_view question, const std::vector<Attempt>& previous);
// Every table of `schema` by relevance: the linker's selection in its order, then the others by
// score (schema order among equals).
std::vector<std::string> ranked_tables(const Schema& schema, const LinkResult& link);
// The tables of the SQL prompt: ranked_tables() when the schema text of all of them takes at most
// `budget_tokens` (counted with `tokenizer`; without one, a token per 3 bytes), else the linker's
// selection (every table when it selected none).
std::vector<std::string> prompt_tables(const Schema& schema, const LinkResult& link, int64_t budget_tokens,
                                       const Tokenizer* tokenizer);
// The first statement of free text: strips a ``` fence and anything after the first ';'.
std::string extract_sql(std::string_view generated);

}  // namespace kexa::sql
