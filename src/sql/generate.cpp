#include "sql/generate.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "runtime/generator.h"
#include "sql/grammar_filter.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa::sql {

// ---------------------------------------------------------------------------------------------
// Prompts

namespace {

using ojson = nlohmann::ordered_json;

std::string quote_ident(const std::string& name) {
  if (plain_identifier(name)) return name;
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string sample_text(const std::string& v) {
  std::string s = v.size() > 40 ? v.substr(0, 40) + "..." : v;
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string cell_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string schema_prompt_text(const Schema& schema, const std::vector<std::string>& tables) {
  std::string out;
  for (const std::string& name : tables) {
    int ti = schema.find(name);
    if (ti < 0) continue;
    const Table& t = schema.tables[static_cast<size_t>(ti)];
    // (definition, comment) per line; commas go between definitions, before the comment.
    std::vector<std::pair<std::string, std::string>> lines;
    std::vector<std::string> pk;
    for (const Column& c : t.columns) {
      if (c.primary_key) pk.push_back(quote_ident(c.name));
      std::string comment;
      for (size_t k = 0; k < c.samples.size(); ++k)
        comment += (k ? ", '" : " -- e.g. '") + sample_text(c.samples[k]) + "'";
      lines.push_back({quote_ident(c.name) + (c.type.empty() ? "" : " " + c.type), comment});
    }
    if (!pk.empty()) {
      std::string def = "PRIMARY KEY (";
      for (size_t i = 0; i < pk.size(); ++i) def += (i ? ", " : "") + pk[i];
      lines.push_back({def + ")", ""});
    }
    for (const ForeignKey& f : t.foreign_keys)
      lines.push_back({"FOREIGN KEY (" + quote_ident(f.column) + ") REFERENCES " + quote_ident(f.ref_table) +
                           "(" + quote_ident(f.ref_column) + ")",
                       ""});
    out += "CREATE TABLE " + quote_ident(t.name) + " (\n";
    for (size_t i = 0; i < lines.size(); ++i)
      out += "  " + lines[i].first + (i + 1 < lines.size() ? "," : "") + lines[i].second + "\n";
    out += ");\n\n";
  }
  return out;
}

nlohmann::ordered_json sql_messages(std::string_view dialect, std::string_view schema_text,
                                    std::string_view question, const std::vector<Attempt>& previous) {
  std::string sys = "You translate questions into one " + std::string(dialect == "postgresql" ? "PostgreSQL" : "SQLite") +
                    " query. Write only the SQL: one SELECT statement (WITH is allowed), no explanation, "
                    "no code fence. Use only the tables and columns of the schema. The database is "
                    "read-only.";
  std::string user = "Schema:\n" + std::string(schema_text) + "Question: " + std::string(question);
  ojson msgs = ojson::array();
  msgs.push_back({{"role", "system"}, {"content", sys}});
  msgs.push_back({{"role", "user"}, {"content", user}});
  for (const Attempt& a : previous) {
    msgs.push_back({{"role", "assistant"}, {"content", a.sql}});
    msgs.push_back({{"role", "user"},
                    {"content", "The database rejected that query: " + a.error +
                                    "\nWrite a corrected query (only the SQL)."}});
  }
  return msgs;
}

std::string extract_sql(std::string_view generated) {
  std::string s(generated);
  size_t fence = s.find("```");
  if (fence != std::string::npos) {
    size_t start = s.find('\n', fence);
    size_t end = start == std::string::npos ? std::string::npos : s.find("```", start);
    s = start == std::string::npos ? "" : s.substr(start + 1, end == std::string::npos ? std::string::npos : end - start - 1);
  }
  // Only the first statement: the executor would refuse a second one anyway.
  bool in_str = false;
  char q = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_str) {
      if (c == q) in_str = false;
    } else if (c == '\'' || c == '"' || c == '`') {
      in_str = true;
      q = c;
    } else if (c == ';') {
      s.resize(i);
      break;
    }
  }
  return trim(s);
}

// ---------------------------------------------------------------------------------------------
// The loop

std::vector<std::string> ranked_tables(const Schema& schema, const LinkResult& link) {
  std::vector<std::string> out = link.tables;
  std::vector<size_t> rest;
  for (size_t t = 0; t < schema.tables.size(); ++t)
    if (std::find(out.begin(), out.end(), schema.tables[t].name) == out.end()) rest.push_back(t);
  auto score = [&](size_t t) { return t < link.scores.size() ? link.scores[t] : 0.0; };
  std::stable_sort(rest.begin(), rest.end(), [&](size_t a, size_t b) { return score(a) > score(b); });
  for (size_t t : rest) out.push_back(schema.tables[t].name);
  return out;
}

std::vector<std::string> prompt_tables(const Schema& schema, const LinkResult& link, int64_t budget_tokens,
                                       const Tokenizer* tokenizer) {
  std::vector<std::string> all = ranked_tables(schema, link);
  const std::string text = schema_prompt_text(schema, all);
  const int64_t tokens = tokenizer ? static_cast<int64_t>(tokenizer->encode(text, false).size())
                                   : static_cast<int64_t>(text.size() / 3);
  if (tokens <= budget_tokens || link.tables.empty()) return all;
  return link.tables;
}

nlohmann::json AskResult::to_json() const {
  nlohmann::json att = nlohmann::json::array();
  for (const Attempt& a : attempts) att.push_back({{"sql", a.sql}, {"error", a.error}});
  nlohmann::json j = {{"linked_tables", linked_tables}, {"prompt_tables", prompt_tables}, {"attempts", att}, {"sql", sql},
                      {"executed", executed},           {"answer", answer}};
  if (executed) j["result"] = result.to_json();
  if (!error.empty()) j["error"] = error;
  return j;
}

namespace {

// One generation of the text-to-SQL loop through the caller's chat turn: the reply text with
// reasoning removed, also when generation failed (then `error` says why).
struct Reply {
  std::string text;
  std::string error;
};

Reply run_turn(const ChatFunction& chat, const AskOptions& opt, const ojson& msgs, int64_t max_tokens,
               const std::function<std::shared_ptr<TokenFilter>()>& make_filter,
               const std::function<bool(std::string_view)>& on_delta) {
  TurnRequest req;
  req.messages = msgs;
  req.kwargs = ojson{{"enable_thinking", false}};
  req.sampling = opt.sampling;
  req.max_tokens = max_tokens;
  // Under the grammar the reply is the SQL itself (no tags to parse); otherwise it may open with
  // reasoning.
  req.parse_output = !make_filter;
  if (make_filter) req.make_filter = [&](const PreparedTurn&) { return make_filter(); };
  TurnCallbacks callbacks;
  if (on_delta) callbacks.on_delta = [&](const TurnDelta& d) { return d.content.empty() || on_delta(d.content); };
  TurnResult t = chat.turn(req, callbacks);
  return Reply{trim(t.content), t.finish == StopReason::Error ? t.error : std::string()};
}

std::string rows_text(const Result& r, size_t max_rows) {
  std::string s;
  for (size_t i = 0; i < r.columns.size(); ++i) s += (i ? " | " : "") + r.columns[i];
  s += "\n";
  for (size_t k = 0; k < r.rows.size() && k < max_rows; ++k) {
    for (size_t i = 0; i < r.rows[k].size(); ++i) s += (i ? " | " : "") + sample_text(cell_text(r.rows[k][i]));
    s += "\n";
  }
  if (r.rows.size() > max_rows) s += "(" + std::to_string(r.rows.size() - max_rows) + " more rows)\n";
  if (r.truncated) s += "(the result was cut at the row limit)\n";
  if (r.rows.empty()) s += "(no rows)\n";
  return s;
}

}  // namespace

AskResult ask(Executor& db, const ChatFunction& chat, const AskOptions& options, std::string_view question) {
  AskResult r;
  Schema schema = db.schema(options.samples_per_column);
  if (schema.tables.empty()) fail("sql: the database has no tables to query");
  add_question_values(db, schema, std::string(question));
  LinkResult link = link_schema(schema, std::string(question), options.link);
  r.linked_tables = link.tables;
  if (r.linked_tables.empty())
    for (const Table& t : schema.tables) r.linked_tables.push_back(t.name);
  int64_t budget = options.schema_budget_tokens;
  if (budget <= 0) {
    // What the context leaves once the rest of the prompt, the statement and the retries (each
    // shows a failed statement and its error) have their room.
    std::string rest;
    for (const auto& m : sql_messages(db.dialect(), "", question, {})) rest += m.value("content", "") + "\n";
    const int64_t rest_tokens = chat.tokenizer ? static_cast<int64_t>(chat.tokenizer->encode(rest, false).size())
                                               : static_cast<int64_t>(rest.size() / 3);
    const int64_t retries = std::max(0, options.max_retries);
    budget = options.context - rest_tokens - 32 - options.max_sql_tokens * (1 + retries) - 64 * retries;
  }
  r.prompt_tables = prompt_tables(schema, link, budget, chat.tokenizer);
  r.schema_text = schema_prompt_text(schema, r.prompt_tables);
  Schema shown;
  for (const std::string& name : r.prompt_tables) shown.tables.push_back(schema.tables[static_cast<size_t>(schema.find(name))]);
  SqlGrammar grammar(shown);

  const std::set<int32_t> stops(chat.stop_ids.begin(), chat.stop_ids.end());
  std::shared_ptr<const VocabTrie> trie;  // built once, on the first constrained attempt
  std::function<std::shared_ptr<TokenFilter>()> make;
  if (options.constrain)
    make = [&]() -> std::shared_ptr<TokenFilter> {
      if (!trie) trie = std::make_shared<VocabTrie>(*chat.tokenizer, stops);
      return std::make_shared<SqlFilter>(grammar, trie, stops);
    };

  const std::string dialect = db.dialect();
  for (int attempt = 0; attempt <= options.max_retries; ++attempt) {
    ojson msgs = sql_messages(dialect, r.schema_text, question, r.attempts);
    Reply reply;
    Attempt a;
    try {
      reply = run_turn(chat, options, msgs, options.max_sql_tokens, make, {});
      if (!reply.error.empty()) fail(reply.error);
      a.sql = options.constrain ? reply.text : extract_sql(reply.text);
      while (!a.sql.empty() && (a.sql.back() == ';' || std::isspace(static_cast<unsigned char>(a.sql.back()))))
        a.sql.pop_back();
      if (a.sql.empty()) fail("the model wrote no SQL");
      if (options.constrain && !grammar.complete(a.sql))
        fail("the model did not finish the statement within ", options.max_sql_tokens, " tokens");
      db.validate(a.sql);
      r.result = db.execute(a.sql, options.limits);
      r.executed = true;
      r.sql = a.sql;
    } catch (const std::exception& e) {
      a.error = e.what();
      if (a.sql.empty()) a.sql = reply.text;
    }
    r.attempts.push_back(a);
    if (r.executed) break;
  }
  if (!r.executed) {
    r.error = "no statement ran after " + std::to_string(r.attempts.size()) + " attempts: " + r.attempts.back().error;
    return r;
  }
  if (options.answer) {
    ojson msgs = ojson::array();
    msgs.push_back({{"role", "system"},
                    {"content", "You answer the user's question from the result of a database query. "
                                "Use only the rows shown; say so when they do not answer it. Be brief "
                                "and answer in the language of the question."}});
    msgs.push_back({{"role", "user"},
                    {"content", "Question: " + std::string(question) + "\n\nSQL:\n" + r.sql +
                                    "\n\nResult rows:\n" + rows_text(r.result, options.max_rows_in_prompt)}});
    Reply reply = run_turn(chat, options, msgs, options.max_answer_tokens, {}, options.on_answer_delta);
    if (!reply.error.empty()) fail("sql: generating the answer failed: ", reply.error);
    r.answer = reply.text;
  }
  return r;
}

}  // namespace kexa::sql
