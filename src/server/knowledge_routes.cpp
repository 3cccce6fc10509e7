#include "server/knowledge_routes.h"

#include <httplib.h>

#include <algorithm>
#include <optional>
#include <string>

#include "rag/answer.h"
#include "runtime/engine.h"
#include "server/generation.h"
#include "sql/generate.h"
#include "sql/sql.h"
#include "util/base64.h"
#include "util/error.h"

namespace kexa::server {

namespace {

Documents& documents_or_404(ServerState& st) {
  if (!st.documents) {
    throw BadRequest{"this server has no document store (start kexa serve with --rag-store FILE)", "", 404, "not_found_error"};
  }
  return *st.documents;
}

sql::Executor& database_or_404(ServerState& st) {
  if (!st.database) {
    throw BadRequest{"this server has no database (start kexa serve with --sql-db sqlite:PATH)", "", 404, "not_found_error"};
  }
  return *st.database;
}

// The grounded answer's stop reason in the words of finish_reason ("abstained" stays).
std::string answer_stop_reason(const std::string& name) {
  if (name == "eos" || name == "stop_string" || name == "stopped") return "stop";
  if (name == "max_tokens" || name == "context_full") return "length";
  return name;
}

// What /v1/rag/query reads besides the question: retrieval, the citation requirement and the
// generation fields of a chat request (greedy and 512 tokens unless the body says otherwise).
rag::AnswerOptions answer_options(ServerState& st, const json& body) {
  rag::AnswerOptions opt;
  opt.k = static_cast<size_t>(int_field(body, "k", 1, 20).value_or(5));
  opt.min_score = number_field(body, "min_score", 0, 1e6).value_or(rag::AnswerOptions{}.min_score);
  opt.max_source_chars = static_cast<size_t>(int_field(body, "max_source_chars", 100, 20000).value_or(2400));
  opt.require_citation = bool_field(body, "require_citation", false);
  opt.enable_thinking = bool_field(body, "enable_thinking", false);
  if (opt.require_citation && opt.enable_thinking) {
    throw BadRequest{"require_citation works with enable_thinking false", "require_citation"};
  }
  json gen = json::object();
  for (const char* key : {"temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty",
                          "repetition_penalty"}) {
    if (body.contains(key)) gen[key] = body[key];
  }
  if (!gen.contains("temperature")) gen["temperature"] = 0;
  opt.sampling = sampling_from(gen);
  std::optional<int64_t> max_tokens = int_field(body, "max_completion_tokens", 1, 1 << 30);
  if (!max_tokens) max_tokens = int_field(body, "max_tokens", 1, 1 << 30);
  opt.max_tokens = max_tokens.value_or(512);
  opt.stop = stop_strings(body);
  opt.context = st.options.context;
  return opt;
}

// POST /v1/rag/query: retrieve, answer from the numbered sources, map [n] back to source spans.
json rag_query(ServerState& st, const json& body) {
  Documents& docs = documents_or_404(st);
  std::string question;
  if (field(body, "question") != nullptr) question = required_string(body, "question", 4000);
  else if (field(body, "query") != nullptr) question = required_string(body, "query", 4000);
  else throw BadRequest{"'question' must be a non-empty string", "question"};
  rag::AnswerOptions opt = answer_options(st, body);
  rag::Retriever retrieve = [&docs](std::string_view query, size_t k) { return docs.search(query, k); };
  rag::AnswerResult r;
  try {
    r = rag::answer(retrieve, chat_function(*st.engine, *st.scheduler), opt, question);
  } catch (const Error& e) {  // the prompt does not fit the context, generation failed
    throw BadRequest{e.what(), "messages"};
  }
  r.stop_reason = answer_stop_reason(r.stop_reason);
  json out = json::parse(r.to_json().dump());
  out["object"] = "rag.answer";
  out["model"] = st.model_name;
  return out;
}

// POST /v1/sql/query: {"question"} runs text-to-SQL with the model; {"sql"} runs one statement
// through the same read-only executor (no model).
json sql_query(ServerState& st, const json& body) {
  sql::Executor& db = database_or_404(st);
  size_t max_rows = static_cast<size_t>(int_field(body, "max_rows", 1, 10000).value_or(200));
  if (field(body, "sql") != nullptr) {
    std::string statement = required_string(body, "sql", 20000);
    sql::Limits limits;
    limits.max_rows = max_rows;
    std::lock_guard<std::mutex> lk(st.database_mu);
    try {
      sql::Result r = db.execute(statement, limits);
      return json{{"object", "sql.result"}, {"sql", statement}, {"executed", true},
                  {"result", json::parse(r.to_json().dump())}};
    } catch (const sql::Refused& e) {
      throw BadRequest{e.what(), "sql", 400, "sql_refused"};
    } catch (const Error& e) {
      throw BadRequest{e.what(), "sql", 400, "sql_error"};
    }
  }
  std::string question = required_string(body, "question", 4000);
  if (!st.engine->has_chat_template()) {
    throw BadRequest{"this model has no chat template (" + st.engine->chat_template_error() + ")", "question"};
  }
  sql::AskOptions opt;
  opt.answer = bool_field(body, "answer", true);
  opt.max_retries = static_cast<int>(int_field(body, "max_retries", 0, 5).value_or(2));
  opt.limits.max_rows = max_rows;
  opt.max_sql_tokens = int_field(body, "max_sql_tokens", 8, 1024).value_or(256);
  opt.max_answer_tokens = int_field(body, "max_tokens", 1, 4096).value_or(256);
  opt.context = st.options.context;
  if (field(body, "temperature") != nullptr || field(body, "seed") != nullptr) opt.sampling = sampling_from(body);
  sql::AskResult r;
  {
    // The executor is one connection; the generations are ordinary jobs beside the chats.
    std::lock_guard<std::mutex> lk(st.database_mu);
    try {
      r = sql::ask(db, chat_function(*st.engine, *st.scheduler), opt, question);
    } catch (const Error& e) {
      throw BadRequest{e.what(), "question"};
    }
  }
  json out = json::parse(r.to_json().dump());
  out["object"] = "sql.answer";
  out["model"] = st.model_name;
  return out;
}

// --- server-side tools for /v1/chat/completions ------------------------------------------------------

constexpr int kMaxToolRounds = 3;

bool is_server_tool(const std::string& name) {
  return name == "kexa_rag_search" || name == "kexa_sql_query" || name == kWebSearchTool;
}

json server_tool_declaration(const std::string& name) {
  if (name == kWebSearchTool) return web_tool_declaration();
  if (name == "kexa_rag_search") {
    return json::parse(R"J({"type": "function", "function": {"name": "kexa_rag_search",
      "description": "Search the document store; returns numbered passages with their source file and span.",
      "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"},
        "k": {"type": "integer", "description": "how many passages (1-10)"}}, "required": ["query"]}}})J");
  }
  return json::parse(R"({"type": "function", "function": {"name": "kexa_sql_query",
    "description": "Answer a question from the SQL database: writes one read-only SELECT, runs it and returns the SQL and the rows.",
    "parameters": {"type": "object", "properties": {"question": {"type": "string", "description": "the question, in words"}},
      "required": ["question"]}}})");
}

json run_server_tool(ServerState& st, const chat::ToolCall& call) {
  json args = json::parse(call.arguments, nullptr, false);
  if (args.is_discarded() || !args.is_object()) return json{{"error", "arguments are not a JSON object"}};
  try {
    if (call.name == kWebSearchTool) return run_web_tool(st, args);
    if (call.name == "kexa_rag_search") {
      if (!args.contains("query") || !args["query"].is_string()) return json{{"error", "'query' must be a string"}};
      size_t k = args.contains("k") && args["k"].is_number_integer() ? static_cast<size_t>(std::clamp<int64_t>(args["k"].get<int64_t>(), 1, 10)) : 5;
      std::vector<rag::Hit> hits = documents_or_404(st).search(args["query"].get<std::string>(), k);
      json passages = json::array();
      for (size_t i = 0; i < hits.size(); ++i) passages.push_back(json::parse(Documents::hit_json(hits[i], static_cast<int>(i + 1)).dump()));
      return json{{"passages", passages}};
    }
    if (!args.contains("question") || !args["question"].is_string()) return json{{"error", "'question' must be a string"}};
    json out = sql_query(st, json{{"question", args["question"]}, {"answer", false}, {"max_rows", 50}});
    out.erase("object");
    out.erase("model");
    return out;
  } catch (const BadRequest& e) {
    return json{{"error", e.message}};
  } catch (const Error& e) {
    return json{{"error", e.what()}};
  }
}

// What the model reads back from a server tool: the client gets the whole result (kexa_tool_calls),
// the conversation only what answers the question, so that it still fits the context.
json tool_result_for_model(const std::string& name, const json& result) {
  if (name == kWebSearchTool) return web_tool_result_for_model(result);
  if (result.contains("error") && !result.contains("attempts")) return result;
  json out = json::object();
  if (name == "kexa_rag_search") {
    json passages = json::array();
    for (const json& p : result.value("passages", json::array())) {
      passages.push_back({{"number", p.value("number", 0)}, {"source", p.value("name", "")}, {"text", p.value("text", "")}});
    }
    out["passages"] = passages;
    return out;
  }
  out["sql"] = result.value("sql", "");
  out["executed"] = result.value("executed", false);
  if (result.contains("result")) {
    const json& r = result["result"];
    out["columns"] = r.value("columns", json::array());
    json rows = r.value("rows", json::array());
    if (rows.size() > 20) rows.erase(rows.begin() + 20, rows.end());
    out["rows"] = rows;
    if (r.value("rows", json::array()).size() > 20 || r.value("truncated", false)) out["truncated"] = true;
  }
  if (result.contains("error")) out["error"] = result["error"];
  return out;
}


// One generation of the tool loop, validated as /v1/chat/completions validates a request.
TurnResult run_tool_round(ServerState& st, const json& body, int round) {
  GenerationRequest g;
  PreparedTurn turn;
  try {
    require_chat_template(st, "messages");
    g = parse_generation(body, true);
    turn = prepare_generation(st, g);
  } catch (const BadRequest& e) {
    if (round == 0) throw;
    throw BadRequest{concat("after running the server tools: ", e.message), e.param, e.status, e.type};
  }
  if (g.stream) throw BadRequest{"server tools (kexa_*) are not available with stream: true", "stream"};
  if (g.n > 1) throw BadRequest{"server tools (kexa_*) are not available with n > 1", "n"};
  return run_generation(st, turn);
}

// Runs the reply's calls and appends the reply and their results to the conversation.
void run_server_tools(ServerState& st, const TurnResult& reply, json& body, json& executed) {
  body["messages"].push_back(
      {{"role", "assistant"}, {"content", reply.content}, {"tool_calls", tool_calls_json(reply.tool_calls, false)}});
  for (const chat::ToolCall& call : reply.tool_calls) {
    json result = run_server_tool(st, call);
    executed.push_back({{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}, {"result", result}});
    body["messages"].push_back(
        {{"role", "tool"}, {"tool_call_id", call.id}, {"content", tool_result_for_model(call.name, result).dump()}});
  }
}

// Reads a document upload: JSON {"name", "content"} (UTF-8 text) or {"name", "content_base64"}.
json upload_document(ServerState& st, const json& body) {
  Documents& docs = documents_or_404(st);
  std::string name = required_string(body, "name", 200);
  try {
    Documents::check_name(name);
  } catch (const Error& e) {
    throw BadRequest{e.what(), "name"};
  }
  std::string content;
  if (const json* c = field(body, "content")) {
    if (!c->is_string()) throw BadRequest{"'content' must be a string", "content"};
    content = c->get<std::string>();
  } else if (const json* b = field(body, "content_base64")) {
    if (!b->is_string()) throw BadRequest{"'content_base64' must be a string", "content_base64"};
    std::optional<std::string> decoded = decode_base64(b->get<std::string>());
    if (!decoded) throw BadRequest{"'content_base64' is not base64", "content_base64"};
    content = std::move(*decoded);
  } else {
    throw BadRequest{"'content' (text) or 'content_base64' is required", "content"};
  }
  if (content.empty()) throw BadRequest{"the document is empty", "content"};
  if (content.size() > docs.max_document_bytes()) {
    throw BadRequest{concat("the document has ", content.size(), " bytes; this server accepts at most ",
                            docs.max_document_bytes(), " (--max-document)"), "content", 413};
  }
  try {
    return json::parse(docs.upload(name, content).dump());
  } catch (const Error& e) {
    throw BadRequest{concat("cannot ingest ", name, ": ", e.what()), "content"};
  }
}

}  // namespace

bool expand_server_tools(ServerState& st, json& body) {
  const json* tools = validated_tools(body);
  if (tools == nullptr) return false;
  bool any = false;
  json out = json::array();
  for (size_t i = 0; i < tools->size(); ++i) {
    std::string name = (*tools)[i]["function"]["name"];
    if (!is_server_tool(name)) {
      out.push_back((*tools)[i]);
      continue;
    }
    if (name == "kexa_rag_search" && !st.documents) {
      throw BadRequest{"tool kexa_rag_search needs a document store (kexa serve --rag-store FILE)", concat("tools[", i, "]")};
    }
    if (name == kWebSearchTool && !st.web) {
      throw BadRequest{"tool kexa_web_search needs web access (kexa serve --web-search SPEC)", concat("tools[", i, "]")};
    }
    if (name == "kexa_sql_query" && !st.database) {
      throw BadRequest{"tool kexa_sql_query needs a database (kexa serve --sql-db sqlite:PATH)", concat("tools[", i, "]")};
    }
    out.push_back(server_tool_declaration(name));
    any = true;
  }
  body["tools"] = out;
  return any;
}

void chat_with_server_tools(ServerState& st, json body, httplib::Response& res, double started) {
  json executed = json::array();
  int64_t prompt_total = 0, completion_total = 0;
  TurnResult reply;
  for (int round = 0;; ++round) {
    bool last = round == kMaxToolRounds;
    json b = body;
    if (round > 0) b["tool_choice"] = last ? "none" : "auto";
    reply = run_tool_round(st, b, round);
    prompt_total += reply.prompt_tokens;
    completion_total += reply.completion_tokens;
    bool all_server = !reply.tool_calls.empty() &&
                      std::all_of(reply.tool_calls.begin(), reply.tool_calls.end(),
                                  [](const chat::ToolCall& t) { return is_server_tool(t.name); });
    if (!all_server || last) break;
    run_server_tools(st, reply, body, executed);
  }
  json choice = {{"index", 0}, {"message", reply.assistant_message()}, {"logprobs", nullptr},
                 {"finish_reason", finish_name(reply.finish, !reply.tool_calls.empty())}};
  st.metrics.add_tokens(prompt_total, completion_total);
  st.metrics.request_duration.observe(now_seconds() - started);
  send_json(res, 200, json{{"id", random_id("chatcmpl-")}, {"object", "chat.completion"}, {"created", unix_time()},
                           {"model", st.model_name}, {"choices", json::array({choice})},
                           {"usage", {{"prompt_tokens", prompt_total}, {"completion_tokens", completion_total},
                                      {"total_tokens", prompt_total + completion_total}}},
                           {"kexa_tool_calls", executed}});
}

void install_knowledge_routes(httplib::Server& svr, ServerState& st) {
  svr.Post("/v1/rag/query", guarded(st, "/v1/rag/query", [&st](const auto& req, auto& res) {
             send_json(res, 200, rag_query(st, parse_body(req.body)));
           }));
  svr.Post("/v1/rag/documents", guarded(st, "/v1/rag/documents", [&st](const auto& req, auto& res) {
             send_json(res, 200, upload_document(st, parse_body(req.body)));
           }));
  svr.Get("/v1/rag/documents", guarded(st, "/v1/rag/documents", [&st](const auto&, auto& res) {
            send_json(res, 200, json::parse(documents_or_404(st).list().dump()));
          }));
  svr.Delete(R"(/v1/rag/documents/([^/]+))", guarded(st, "/v1/rag/documents", [&st](const auto& req, auto& res) {
               std::string name = httplib::detail::decode_url(req.matches[1].str(), false);
               bool removed = false;
               try {
                 removed = documents_or_404(st).remove(name);
               } catch (const Error& e) {
                 throw BadRequest{e.what(), "name"};
               }
               if (!removed) throw BadRequest{concat("no uploaded document named '", name, "'"), "name", 404, "not_found_error"};
               send_json(res, 200, json{{"deleted", name}});
             }));
  svr.Post("/v1/sql/query", guarded(st, "/v1/sql/query", [&st](const auto& req, auto& res) {
             send_json(res, 200, sql_query(st, parse_body(req.body)));
           }));
  svr.Get("/v1/kexa/features", guarded(st, "/v1/kexa/features", [&st](const auto&, auto& res) {
            send_json(res, 200, json{{"rag", st.documents != nullptr}, {"sql", st.database != nullptr}, {"web", st.web != nullptr},
                                     {"max_document_bytes", st.options.max_document},
                                     {"database", st.database ? st.database->dialect() : ""}});
          }));
}

}  // namespace kexa::server
