#include "server/server.h"


#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "chat/output_parser.h"
#include "chat/template.h"
#include "model/model.h"
#include "rag/answer.h"
#include "server/json_constraint.h"
#include "server/knowledge.h"
#include "sql/generate.h"
#include "sql/sql.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/tool_constraint.h"
#include "server/web_assets.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa::server {

namespace {

using json = nlohmann::ordered_json;

// A request the client got wrong: answered 400 naming the field.
struct BadRequest {
  std::string message;
  std::string param;
  int status = 400;
  std::string type = "invalid_request_error";
};

json error_body(const std::string& message, const std::string& type, const std::string& param) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  return json{{"error", e}};
}

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += hex[rng() % 16];
  return id;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- typed field access with errors that name the field ------------------------------------------

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return (it == body.end() || it->is_null()) ? nullptr : &*it;
}

std::optional<double> number_field(const json& body, const char* name, double lo, double hi) {
  const json* v = field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) throw BadRequest{concat("'", name, "' must be a number"), name};
  double d = v->get<double>();
  if (!(d >= lo && d <= hi)) throw BadRequest{concat("'", name, "' must be between ", lo, " and ", hi), name};
  return d;
}

std::optional<int64_t> int_field(const json& body, const char* name, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) throw BadRequest{concat("'", name, "' must be an integer"), name};
  int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) throw BadRequest{concat("'", name, "' must be between ", lo, " and ", hi), name};
  return i;
}

bool bool_field(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) throw BadRequest{concat("'", name, "' must be a boolean"), name};
  return v->get<bool>();
}

std::vector<std::string> stop_strings(const json& body) {
  const json* v = field(body, "stop");
  if (v == nullptr) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const auto& s : *v) {
      if (!s.is_string()) throw BadRequest{"'stop' must be a string or an array of strings", "stop"};
      out.push_back(s.get<std::string>());
    }
  } else {
    throw BadRequest{"'stop' must be a string or an array of strings", "stop"};
  }
  if (out.size() > 16) throw BadRequest{"'stop' may hold at most 16 strings", "stop"};
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

// Holds back text that might be the start of a stop string; reports a match.
class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Returns the text that is safe to emit now.
  std::string push(const std::string& text) {
    if (stopped_) return {};
    held_ += text;
    size_t cut = std::string::npos;
    for (const std::string& s : stops_) {
      size_t p = held_.find(s);
      if (p != std::string::npos) cut = std::min(cut, p);
    }
    if (cut != std::string::npos) {
      stopped_ = true;
      std::string out = held_.substr(0, cut);
      held_.clear();
      return out;
    }
    size_t keep = 0;
    for (const std::string& s : stops_) {
      for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
      }
    }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string finish() {
    std::string out = stopped_ ? std::string() : held_;
    held_.clear();
    return out;
  }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

// Every token's text and whether it is special, decoded once: constrained decoding asks about
// most of the vocabulary at a step when the model's favourites are not allowed.
struct TokenTable {
  std::vector<std::string> text;
  std::vector<char> special;
  explicit TokenTable(const Tokenizer& tok) {
    int32_t n = tok.vocab_size();
    text.resize(static_cast<size_t>(n));
    special.resize(static_cast<size_t>(n));
    for (int32_t id = 0; id < n; ++id) {
      text[static_cast<size_t>(id)] = tok.decode(std::span<const int32_t>(&id, 1));
      special[static_cast<size_t>(id)] = tok.is_special(id) ? 1 : 0;
    }
  }
  bool is_special(int32_t id) const { return id < 0 || static_cast<size_t>(id) >= special.size() || special[static_cast<size_t>(id)] != 0; }
  const std::string& decode(int32_t id) const {
    static const std::string none;
    return id < 0 || static_cast<size_t>(id) >= text.size() ? none : text[static_cast<size_t>(id)];
  }
};

struct ServerState {
  ServerOptions options;
  std::string model_name;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::shared_ptr<const TokenTable> tokens;
  std::optional<chat::ChatTemplate> chat_template;
  std::string template_error;
  std::unique_ptr<Scheduler> scheduler;
  Metrics metrics;
  std::vector<int32_t> stop_ids;
  std::unique_ptr<Documents> documents;  // --rag-store
  std::unique_ptr<sql::Executor> database;  // --sql-db
  std::mutex database_mu;
};

// Everything a generation request turns into before it reaches the scheduler.
struct Generation {
  Job job;
  std::vector<std::string> stops;
  bool stream = false;
  bool include_usage = false;
  bool chat = false;
  bool reasoning_open = false;  // the rendered prompt already opened a reasoning block
  int top_logprobs = -1;
  std::shared_ptr<JsonConstraint> constraint;
};

SamplingParams sampling_from(const json& body) {
  SamplingParams p;
  p.temperature = number_field(body, "temperature", 0, 2).value_or(1.0);
  p.top_p = number_field(body, "top_p", 0, 1).value_or(1.0);
  if (p.top_p == 0) p.top_p = 1e-9;  // "only the most likely token"
  p.top_k = int_field(body, "top_k", 0, 1 << 20).value_or(0);
  p.min_p = number_field(body, "min_p", 0, 1).value_or(0.0);
  p.presence_penalty = number_field(body, "presence_penalty", -2, 2).value_or(0.0);
  p.frequency_penalty = number_field(body, "frequency_penalty", -2, 2).value_or(0.0);
  p.repeat_penalty = number_field(body, "repetition_penalty", 0.01, 10).value_or(1.0);
  if (auto seed = int_field(body, "seed", INT64_MIN, INT64_MAX)) {
    p.seed = static_cast<uint64_t>(*seed);
  } else {
    p.seed = std::random_device{}();
  }
  return p;
}

void common_generation_fields(ServerState& st, const json& body, Generation& g, int64_t prompt_len) {
  g.job.sampling = sampling_from(body);
  int64_t room = st.options.context - prompt_len;
  std::optional<int64_t> max_tokens = int_field(body, "max_completion_tokens", 1, 1 << 30);
  if (!max_tokens) max_tokens = int_field(body, "max_tokens", 1, 1 << 30);
  g.job.max_tokens = std::min<int64_t>(max_tokens.value_or(room), std::max<int64_t>(room, 1));
  g.stops = stop_strings(body);
  g.stream = bool_field(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw BadRequest{"'stream_options' must be an object", "stream_options"};
    g.include_usage = bool_field(*so, "include_usage", false);
  }
  g.job.stop_ids = st.stop_ids;
  if (const json* n = field(body, "n"); n != nullptr && (!n->is_number_integer() || n->get<int64_t>() != 1)) {
    throw BadRequest{"only n = 1 is supported", "n"};
  }
}

std::string content_text(const json& content, size_t index) {
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string out;
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
        throw BadRequest{concat("messages[", index, "].content parts must be objects with a 'type'"),
                         concat("messages[", index, "].content")};
      }
      if (part["type"] == "text") {
        if (!part.contains("text") || !part["text"].is_string()) {
          throw BadRequest{concat("messages[", index, "].content text part needs a string 'text'"),
                           concat("messages[", index, "].content")};
        }
        out += part["text"].get<std::string>();
      } else {
        throw BadRequest{concat("messages[", index, "].content part type '", part["type"].get<std::string>(),
                                "' is not supported by a text model"),
                         concat("messages[", index, "].content")};
      }
    }
    return out;
  }
  throw BadRequest{concat("messages[", index, "].content must be a string, an array of parts or null"),
                   concat("messages[", index, "].content")};
}

// Validated messages in the shape chat templates expect (content as a string).
json normalize_messages(const json& body) {
  const json* msgs = field(body, "messages");
  if (msgs == nullptr || !msgs->is_array() || msgs->empty()) {
    throw BadRequest{"'messages' must be a non-empty array", "messages"};
  }
  json out = json::array();
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    if (!m.is_object()) throw BadRequest{concat("messages[", i, "] must be an object"), concat("messages[", i, "]")};
    if (!m.contains("role") || !m["role"].is_string()) {
      throw BadRequest{concat("messages[", i, "].role must be a string"), concat("messages[", i, "].role")};
    }
    std::string role = m["role"];
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      throw BadRequest{concat("messages[", i, "].role '", role, "' is not one of system, user, assistant, tool"),
                       concat("messages[", i, "].role")};
    }
    json n = m;
    n["role"] = role;
    n["content"] = content_text(m.contains("content") ? m["content"] : json(), i);
    if (n.contains("tool_calls")) {
      if (!n["tool_calls"].is_array()) {
        throw BadRequest{concat("messages[", i, "].tool_calls must be an array"), concat("messages[", i, "].tool_calls")};
      }
      // Templates expect arguments as objects; the OpenAI wire format sends a JSON string.
      for (auto& call : n["tool_calls"]) {
        if (call.is_object() && call.contains("function") && call["function"].is_object()) {
          auto& fn = call["function"];
          if (fn.contains("arguments") && fn["arguments"].is_string()) {
            json parsed = json::parse(fn["arguments"].get<std::string>(), nullptr, false);
            if (!parsed.is_discarded()) fn["arguments"] = parsed;
          }
        }
      }
    }
    out.push_back(std::move(n));
  }
  return out;
}

// tool_choice: "none" drops the tools from the prompt, "auto" (the default) lets the model
// choose, "required" and {"type": "function", "function": {"name": ...}} force a call by
// constrained decoding.
struct ToolChoice {
  enum class Mode { None, Auto, Required, Named } mode = Mode::Auto;
  std::string name;
  bool forced() const { return mode == Mode::Required || mode == Mode::Named; }
};

const json* validated_tools(const json& body) {
  const json* tools = field(body, "tools");
  if (tools == nullptr) return nullptr;
  if (!tools->is_array()) throw BadRequest{"'tools' must be an array", "tools"};
  for (size_t i = 0; i < tools->size(); ++i) {
    const json& t = (*tools)[i];
    if (!t.is_object() || !t.contains("function") || !t["function"].is_object() ||
        !t["function"].contains("name") || !t["function"]["name"].is_string()) {
      throw BadRequest{concat("tools[", i, "] must be {\"type\": \"function\", \"function\": {\"name\": ...}}"),
                       concat("tools[", i, "]")};
    }
    if (t.contains("type") && t["type"] != "function") {
      throw BadRequest{concat("tools[", i, "].type must be \"function\""), concat("tools[", i, "].type")};
    }
    const json& fn = t["function"];
    if (fn.contains("parameters") && !fn["parameters"].is_null() && !fn["parameters"].is_object()) {
      throw BadRequest{concat("tools[", i, "].function.parameters must be a JSON Schema object"),
                       concat("tools[", i, "].function.parameters")};
    }
  }
  return tools->empty() ? nullptr : tools;
}

ToolChoice tool_choice_of(const json& body) {
  const json* tools = validated_tools(body);
  const json* v = field(body, "tool_choice");
  ToolChoice tc;
  if (v == nullptr) return tc;
  if (v->is_string()) {
    std::string s = *v;
    if (s == "none") tc.mode = ToolChoice::Mode::None;
    else if (s == "auto") tc.mode = ToolChoice::Mode::Auto;
    else if (s == "required") tc.mode = ToolChoice::Mode::Required;
    else throw BadRequest{concat("'tool_choice' must be \"none\", \"auto\", \"required\" or a function, not \"", s, "\""), "tool_choice"};
  } else if (v->is_object()) {
    if (!v->contains("type") || (*v)["type"] != "function") {
      throw BadRequest{"tool_choice.type must be \"function\"", "tool_choice.type"};
    }
    if (!v->contains("function") || !(*v)["function"].is_object() || !(*v)["function"].contains("name") ||
        !(*v)["function"]["name"].is_string()) {
      throw BadRequest{"tool_choice.function.name must be a string", "tool_choice.function.name"};
    }
    tc.mode = ToolChoice::Mode::Named;
    tc.name = (*v)["function"]["name"];
  } else {
    throw BadRequest{"'tool_choice' must be a string or an object", "tool_choice"};
  }
  if (tc.forced() && tools == nullptr) {
    throw BadRequest{"'tool_choice' forces a tool call but no 'tools' are given", "tool_choice"};
  }
  if (tc.mode == ToolChoice::Mode::Named) {
    bool found = std::any_of(tools->begin(), tools->end(), [&](const json& t) { return t["function"]["name"] == tc.name; });
    if (!found) {
      throw BadRequest{concat("tool_choice.function.name '", tc.name, "' is not one of the functions in 'tools'"),
                       "tool_choice.function.name"};
    }
  }
  return tc;
}

json tools_of(const json& body) {
  const json* tools = validated_tools(body);
  if (tools == nullptr || tool_choice_of(body).mode == ToolChoice::Mode::None) return json();
  return *tools;
}

json template_kwargs(const json& body) {
  json kwargs = json::object();
  if (const json* k = field(body, "chat_template_kwargs")) {
    if (!k->is_object()) throw BadRequest{"'chat_template_kwargs' must be an object", "chat_template_kwargs"};
    kwargs = *k;
  }
  return kwargs;
}

std::string render_prompt(ServerState& st, const json& body, bool add_generation_prompt) {
  if (!st.chat_template) {
    throw BadRequest{"this model has no chat template (" + st.template_error + "); use /v1/completions", "messages"};
  }
  json messages = normalize_messages(body);
  json tools = tools_of(body);
  try {
    return st.chat_template->render(messages, tools, add_generation_prompt, template_kwargs(body));
  } catch (const Error& e) {
    throw BadRequest{concat("the chat template failed: ", e.what()), "messages"};
  }
}

void apply_response_format(ServerState& st, const json& body, Generation& g) {
  const json* rf = field(body, "response_format");
  if (rf == nullptr) return;
  if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string()) {
    throw BadRequest{"'response_format' must be an object with a 'type'", "response_format"};
  }
  std::string type = (*rf)["type"];
  nlohmann::json schema;
  if (type == "text") return;
  if (type == "json_object") {
    schema = nlohmann::json::object();
  } else if (type == "json_schema") {
    if (!rf->contains("json_schema") || !(*rf)["json_schema"].is_object() ||
        !(*rf)["json_schema"].contains("schema")) {
      throw BadRequest{"response_format.json_schema.schema is required", "response_format.json_schema"};
    }
    schema = nlohmann::json::parse((*rf)["json_schema"]["schema"].dump());
  } else {
    throw BadRequest{"response_format.type must be text, json_object or json_schema", "response_format.type"};
  }
  try {
    g.constraint = std::make_shared<JsonConstraint>(schema, type == "json_object");
  } catch (const Error& e) {
    throw BadRequest{concat("unsupported JSON schema: ", e.what()), "response_format.json_schema"};
  }
  auto constraint = g.constraint;
  std::shared_ptr<const TokenTable> tok = st.tokens;
  std::vector<int32_t> stops = g.job.stop_ids;
  g.job.allow = [constraint, tok, stops](int32_t token, int64_t remaining) {
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) return constraint->complete();
    if (tok->is_special(token)) return false;
    return constraint->accepts(tok->decode(token),
                               static_cast<size_t>(std::max<int64_t>(remaining, 0)));
  };
  g.job.on_accept = [constraint, tok, stops](int32_t token) {
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) return;
    constraint->advance(tok->decode(token));
  };
}

void apply_tool_choice(ServerState& st, const json& body, Generation& g, const std::string& prompt_text) {
  ToolChoice tc = tool_choice_of(body);
  if (!tc.forced()) return;
  if (g.constraint) {
    throw BadRequest{"'response_format' cannot be combined with a tool_choice that forces a call", "response_format"};
  }
  const json& tools = body["tools"];
  std::vector<ToolCallConstraint::Function> functions;
  std::vector<size_t> index;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& fn = tools[i]["function"];
    if (tc.mode == ToolChoice::Mode::Named && fn["name"] != tc.name) continue;
    nlohmann::json params = fn.contains("parameters") ? nlohmann::json::parse(fn["parameters"].dump()) : nlohmann::json();
    try {  // one by one, so an unsupported schema is reported with its index
      ToolCallConstraint probe({{fn["name"], params}}, false, false);
    } catch (const Error& e) {
      throw BadRequest{concat("cannot force a call: ", e.what()), concat("tools[", i, "].function.parameters")};
    }
    functions.push_back({fn["name"], std::move(params)});
  }
  bool reasoning_open = chat::OutputParser::for_prompt(prompt_text).in_reasoning();
  auto constraint = std::make_shared<ToolCallConstraint>(functions, tc.mode == ToolChoice::Mode::Required, reasoning_open);
  if (static_cast<size_t>(g.job.max_tokens) < constraint->min_completion()) {
    throw BadRequest{concat("max_tokens is ", g.job.max_tokens, " but a forced tool call may need ",
                            constraint->min_completion(), " tokens"),
                     field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens"};
  }
  std::shared_ptr<const TokenTable> tok = st.tokens;
  std::vector<int32_t> stops = g.job.stop_ids;
  g.job.allow = [constraint, tok, stops](int32_t token, int64_t remaining) {
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) return constraint->complete();
    const std::string& text = tok->decode(token);
    // Special tokens are markup: only the end of the reasoning block may be one.
    if (tok->is_special(token) && !(constraint->in_reasoning() && text == "</think>")) return false;
    return constraint->accepts(text, static_cast<size_t>(std::max<int64_t>(remaining, 0)));
  };
  g.job.on_accept = [constraint, tok, stops](int32_t token) {
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) return;
    constraint->advance(tok->decode(token));
  };
}

// --- running a generation and shaping its output ---------------------------------------------------

const char* finish_name(FinishReason r, bool tool_calls) {
  if (tool_calls && r == FinishReason::Stop) return "tool_calls";
  return r == FinishReason::Length ? "length" : "stop";
}

json logprob_json(const Tokenizer& tok, const TokenLogprob& lp) {
  auto entry = [&](int32_t id, float logprob) {
    std::string text = tok.decode(std::span<const int32_t>(&id, 1));
    json bytes = json::array();
    for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
    return json{{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
  };
  json j = entry(lp.token, lp.logprob);
  json top = json::array();
  for (const auto& [id, l] : lp.top) top.push_back(entry(id, l));
  j["top_logprobs"] = top;
  return j;
}

json tool_calls_json(const std::vector<chat::ToolCall>& calls, bool with_index) {
  json arr = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id}, {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = i;
    arr.push_back(c);
  }
  return arr;
}

class Run {
 public:
  Run(ServerState& st, const Generation& g, const std::string& rendered_prompt)
      : chat_(g.chat), decoder_(*st.tokenizer), stop_(g.stops),
        parser_(chat::OutputParser::for_prompt(rendered_prompt)) {}

  // Output pieces, produced as tokens arrive.
  struct Piece {
    std::string content;
    std::string reasoning;
    std::vector<chat::ToolCall> tool_calls;
    std::vector<TokenLogprob> logprobs;
  };

  // Feeds new tokens; returns what became visible.
  Piece feed(const JobHandle::Event& ev) {
    Piece p;
    std::string text;
    for (int32_t t : ev.tokens) {
      text += decoder_.push(t);
      ++completion_tokens_;
    }
    p.logprobs = ev.logprobs;
    absorb(stop_.push(text), p);
    if (stop_.stopped()) stopped_by_string_ = true;
    return p;
  }
  Piece finish() {
    Piece p;
    std::string tail = stop_.push(decoder_.finish());
    tail += stop_.finish();
    absorb(tail, p);
    chat::ParseDelta d = chat_ ? parser_.finish() : chat::ParseDelta{};
    merge(d, p);
    return p;
  }
  int64_t completion_tokens() const { return completion_tokens_; }
  bool stopped_by_string() const { return stopped_by_string_; }
  const std::vector<chat::ToolCall>& all_tool_calls() const { return calls_; }

 private:
  void absorb(const std::string& text, Piece& p) {
    if (text.empty()) return;
    if (!chat_) {
      p.content += text;
      return;
    }
    merge(parser_.push(text), p);
  }
  void merge(const chat::ParseDelta& d, Piece& p) {
    p.content += d.content;
    p.reasoning += d.reasoning;
    for (const chat::ToolCall& c : d.tool_calls) {
      chat::ToolCall call = c;
      if (call.id.empty()) call.id = random_id("call_");
      calls_.push_back(call);
      p.tool_calls.push_back(call);
    }
  }

  bool chat_;
  StreamDecoder decoder_;
  StopFilter stop_;
  chat::OutputParser parser_;
  std::vector<chat::ToolCall> calls_;
  int64_t completion_tokens_ = 0;
  bool stopped_by_string_ = false;
};

std::shared_ptr<JobHandle> submit_or_throw(ServerState& st, Generation& g) {
  std::shared_ptr<JobHandle> h;
  try {
    h = st.scheduler->submit(g.job);
  } catch (const Error& e) {
    throw BadRequest{e.what(), "messages"};
  }
  if (!h) throw BadRequest{"the server is busy: request queue is full, retry later", "", 429, "rate_limit_error"};
  return h;
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

bool expand_server_tools(ServerState& st, json& body);
void chat_with_server_tools(ServerState& st, json body, httplib::Response& res, double started);

void handle_generation(ServerState& st, const httplib::Request& req, httplib::Response& res, bool chat,
                       const std::string& endpoint) {
  double started = now_seconds();
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) throw BadRequest{"the body is not a JSON object", ""};
  if (chat && expand_server_tools(st, body)) {
    chat_with_server_tools(st, std::move(body), res, started);
    return;
  }
  Generation g;
  g.chat = chat;
  std::string prompt_text;
  std::vector<int32_t> prompt;
  if (chat) {
    prompt_text = render_prompt(st, body, true);
    prompt = st.tokenizer->encode(prompt_text, /*add_special_tokens=*/false, /*parse_special=*/true);
    if (bool_field(body, "logprobs", false)) {
      g.top_logprobs = static_cast<int>(int_field(body, "top_logprobs", 0, 20).value_or(0));
    }
  } else {
    const json* p = field(body, "prompt");
    if (p == nullptr) throw BadRequest{"'prompt' is required", "prompt"};
    if (p->is_string()) {
      prompt_text = p->get<std::string>();
      prompt = st.tokenizer->encode(prompt_text, true, true);
    } else if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_number_integer(); })) {
      for (const auto& x : *p) prompt.push_back(x.get<int32_t>());
    } else {
      throw BadRequest{"'prompt' must be a string or an array of token ids", "prompt"};
    }
    if (const json* lp = field(body, "logprobs")) {
      if (!lp->is_number_integer()) throw BadRequest{"'logprobs' must be an integer", "logprobs"};
      g.top_logprobs = static_cast<int>(std::clamp<int64_t>(lp->get<int64_t>(), 0, 20));
    }
  }
  if (prompt.empty()) throw BadRequest{"the prompt is empty", chat ? "messages" : "prompt"};
  if (static_cast<int64_t>(prompt.size()) >= st.options.context) {
    throw BadRequest{concat("the prompt is ", prompt.size(), " tokens; this server's context is ",
                            st.options.context, " tokens"),
                     chat ? "messages" : "prompt", 400, "invalid_request_error"};
  }
  g.job.prompt = prompt;
  g.job.top_logprobs = g.top_logprobs;
  common_generation_fields(st, body, g, static_cast<int64_t>(prompt.size()));
  apply_response_format(st, body, g);
  if (chat) apply_tool_choice(st, body, g, prompt_text);
  std::shared_ptr<JobHandle> handle = submit_or_throw(st, g);
  auto run = std::make_shared<Run>(st, g, prompt_text);
  const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = unix_time();
  const std::string model = st.model_name;
  const int64_t prompt_tokens = static_cast<int64_t>(prompt.size());
  Metrics* metrics = &st.metrics;

  auto usage = [prompt_tokens](int64_t completion) {
    return json{{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion},
                {"total_tokens", prompt_tokens + completion}};
  };

  if (!g.stream) {
    std::string content, reasoning;
    std::vector<TokenLogprob> logprobs;
    FinishReason finish = FinishReason::None;
    std::string error;
    bool ttft_seen = false;
    for (;;) {
      JobHandle::Event ev = handle->wait();
      if (!ev.tokens.empty() && !ttft_seen) {
        metrics->time_to_first_token.observe(now_seconds() - started);
        ttft_seen = true;
      }
      Run::Piece p = run->feed(ev);
      content += p.content;
      reasoning += p.reasoning;
      logprobs.insert(logprobs.end(), p.logprobs.begin(), p.logprobs.end());
      if (run->stopped_by_string()) {
        handle->cancel();
        finish = FinishReason::Stop;
        break;
      }
      if (ev.finish != FinishReason::None) {
        finish = ev.finish;
        error = ev.error;
        break;
      }
    }
    if (finish == FinishReason::Error) throw BadRequest{"generation failed: " + error, "", 500, "server_error"};
    Run::Piece tail = run->finish();
    content += tail.content;
    reasoning += tail.reasoning;
    const auto& calls = run->all_tool_calls();
    json choice;
    if (chat) {
      json message = {{"role", "assistant"}, {"content", content}};
      if (!reasoning.empty()) message["reasoning_content"] = reasoning;
      if (!calls.empty()) {
        message["tool_calls"] = tool_calls_json(calls, false);
        if (content.empty()) message["content"] = nullptr;
      }
      choice = {{"index", 0}, {"message", message}, {"logprobs", nullptr},
                {"finish_reason", finish_name(finish, !calls.empty())}};
      if (g.top_logprobs >= 0) {
        json lps = json::array();
        for (const auto& lp : logprobs) lps.push_back(logprob_json(*st.tokenizer, lp));
        choice["logprobs"] = {{"content", lps}};
      }
    } else {
      choice = {{"index", 0}, {"text", content}, {"logprobs", nullptr},
                {"finish_reason", finish_name(finish, false)}};
      if (g.top_logprobs >= 0) {
        json tokens = json::array(), values = json::array();
        for (const auto& lp : logprobs) {
          tokens.push_back(st.tokenizer->decode(std::span<const int32_t>(&lp.token, 1)));
          values.push_back(lp.logprob);
        }
        choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", values}};
      }
    }
    metrics->add_tokens(prompt_tokens, run->completion_tokens());
    metrics->request_duration.observe(now_seconds() - started);
    send_json(res, 200, json{{"id", id}, {"object", chat ? "chat.completion" : "text_completion"},
                             {"created", created}, {"model", model}, {"choices", json::array({choice})},
                             {"usage", usage(run->completion_tokens())}});
    return;
  }

  // Streaming: server-sent events until [DONE]. The provider runs on this connection's thread.
  auto state = std::make_shared<std::pair<bool, bool>>(false, false);  // (role sent, done)
  bool include_usage = g.include_usage;
  bool want_logprobs = g.top_logprobs >= 0;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [=, &st](size_t, httplib::DataSink& sink) mutable {
        auto send = [&](const json& chunk) {
          std::string line = "data: " + chunk.dump() + "\n\n";
          return sink.write(line.data(), line.size());
        };
        auto chunk_of = [&](json delta, const json& finish_reason, const json& lps) {
          json choice = chat ? json{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", lps},
                                    {"finish_reason", finish_reason}}
                             : json{{"index", 0}, {"text", delta.value("content", "")}, {"logprobs", lps},
                                    {"finish_reason", finish_reason}};
          return json{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created}, {"model", model}, {"choices", json::array({choice})}};
        };
        auto emit = [&](const Run::Piece& p) {
          json lps = nullptr;
          if (want_logprobs && !p.logprobs.empty()) {
            json arr = json::array();
            for (const auto& lp : p.logprobs) arr.push_back(logprob_json(*st.tokenizer, lp));
            lps = json{{"content", arr}};
          }
          if (!p.reasoning.empty() && !send(chunk_of(json{{"reasoning_content", p.reasoning}}, nullptr, nullptr))) return false;
          if ((!p.content.empty() || !lps.is_null()) && !send(chunk_of(json{{"content", p.content}}, nullptr, lps))) return false;
          if (!p.tool_calls.empty()) {
            json calls = tool_calls_json(p.tool_calls, true);
            size_t base = run->all_tool_calls().size() - p.tool_calls.size();
            for (size_t i = 0; i < calls.size(); ++i) calls[i]["index"] = base + i;
            if (!send(chunk_of(json{{"tool_calls", calls}}, nullptr, nullptr))) return false;
          }
          return true;
        };
        if (!state->first) {
          state->first = true;
          if (chat && !send(chunk_of(json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr))) {
            handle->cancel();
            return false;
          }
        }
        JobHandle::Event ev = handle->wait(250);
        if (ev.tokens.empty() && ev.finish == FinishReason::None) {
          if (!sink.is_writable()) {  // the client went away while we waited
            handle->cancel();
            return false;
          }
          return true;
        }
        if (!ev.tokens.empty() && run->completion_tokens() == 0) {
          metrics->time_to_first_token.observe(now_seconds() - started);
        }
        Run::Piece p = run->feed(ev);
        if (!emit(p)) {
          handle->cancel();
          return false;
        }
        FinishReason finish = ev.finish;
        if (run->stopped_by_string()) {
          handle->cancel();
          finish = FinishReason::Stop;
        }
        if (finish == FinishReason::None) return true;
        if (finish == FinishReason::Error) {
          json err = error_body("generation failed: " + ev.error, "server_error", "");
          send(err);
        } else {
          if (!emit(run->finish())) return false;
          send(chunk_of(json::object(), finish_name(finish, !run->all_tool_calls().empty()), nullptr));
          if (include_usage) {
            send(json{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created}, {"model", model}, {"choices", json::array()},
                      {"usage", usage(run->completion_tokens())}});
          }
        }
        const char* done = "data: [DONE]\n\n";
        sink.write(done, std::strlen(done));
        metrics->add_tokens(prompt_tokens, run->completion_tokens());
        metrics->request_duration.observe(now_seconds() - started);
        sink.done();
        return true;
      },
      [handle](bool) { handle->cancel(); });
  res.status = 200;
  (void)endpoint;
}

// Wraps a handler: JSON errors in OpenAI's shape and request counting.
httplib::Server::Handler guarded(ServerState& st, std::string endpoint,
                                 std::function<void(const httplib::Request&, httplib::Response&)> fn) {
  return [&st, endpoint, fn](const httplib::Request& req, httplib::Response& res) {
    try {
      fn(req, res);
    } catch (const BadRequest& e) {
      send_json(res, e.status, error_body(e.message, e.type, e.param));
    } catch (const Error& e) {
      send_json(res, 400, error_body(e.what(), "invalid_request_error", ""));
    } catch (const std::exception& e) {
      send_json(res, 500, error_body(std::string("internal error: ") + e.what(), "server_error", ""));
    }
    st.metrics.count_request(endpoint, res.status);
  };
}

json parse_body(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) throw BadRequest{"the body is not a JSON object", ""};
  return body;
}

// --- synchronous generation: grounded answers and server-side tool loops ---------------------------

struct Completed {
  std::string content, reasoning;
  std::vector<chat::ToolCall> calls;
  FinishReason finish = FinishReason::None;
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// Renders a chat body into a generation (the same validation as /v1/chat/completions).
Generation prepare_chat(ServerState& st, const json& body, std::string& prompt_text) {
  Generation g;
  g.chat = true;
  prompt_text = render_prompt(st, body, true);
  std::vector<int32_t> prompt = st.tokenizer->encode(prompt_text, /*add_special_tokens=*/false, /*parse_special=*/true);
  if (prompt.empty()) throw BadRequest{"the prompt is empty", "messages"};
  if (static_cast<int64_t>(prompt.size()) >= st.options.context) {
    throw BadRequest{concat("the prompt is ", prompt.size(), " tokens; this server's context is ",
                            st.options.context, " tokens"), "messages"};
  }
  g.job.prompt = std::move(prompt);
  common_generation_fields(st, body, g, static_cast<int64_t>(g.job.prompt.size()));
  apply_response_format(st, body, g);
  apply_tool_choice(st, body, g, prompt_text);
  return g;
}

Completed run_sync(ServerState& st, Generation& g, const std::string& prompt_text) {
  std::shared_ptr<JobHandle> handle = submit_or_throw(st, g);
  Run run(st, g, prompt_text);
  Completed out;
  out.prompt_tokens = static_cast<int64_t>(g.job.prompt.size());
  for (;;) {
    JobHandle::Event ev = handle->wait();
    Run::Piece p = run.feed(ev);
    out.content += p.content;
    out.reasoning += p.reasoning;
    if (run.stopped_by_string()) {
      handle->cancel();
      out.finish = FinishReason::Stop;
      break;
    }
    if (ev.finish == FinishReason::Error) throw BadRequest{"generation failed: " + ev.error, "", 500, "server_error"};
    if (ev.finish != FinishReason::None) {
      out.finish = ev.finish;
      break;
    }
  }
  Run::Piece tail = run.finish();
  out.content += tail.content;
  out.reasoning += tail.reasoning;
  out.calls = run.all_tool_calls();
  out.completion_tokens = run.completion_tokens();
  return out;
}

std::string required_string(const json& body, const char* name, size_t max_bytes) {
  const json* v = field(body, name);
  if (v == nullptr || !v->is_string() || v->get<std::string>().empty()) {
    throw BadRequest{concat("'", name, "' must be a non-empty string"), name};
  }
  if (v->get<std::string>().size() > max_bytes) throw BadRequest{concat("'", name, "' is longer than ", max_bytes, " bytes"), name};
  return v->get<std::string>();
}

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

// POST /v1/rag/query: retrieve, answer from the numbered sources, map [n] back to source spans.
json rag_query(ServerState& st, const json& body) {
  Documents& docs = documents_or_404(st);
  std::string question;
  if (field(body, "question") != nullptr) question = required_string(body, "question", 4000);
  else if (field(body, "query") != nullptr) question = required_string(body, "query", 4000);
  else throw BadRequest{"'question' must be a non-empty string", "question"};
  size_t k = static_cast<size_t>(int_field(body, "k", 1, 20).value_or(5));
  double min_score = number_field(body, "min_score", 0, 1e6).value_or(rag::AnswerOptions{}.min_score);
  size_t max_source_chars = static_cast<size_t>(int_field(body, "max_source_chars", 100, 20000).value_or(2400));
  bool require_citation = bool_field(body, "require_citation", false);
  bool thinking = bool_field(body, "enable_thinking", false);
  if (require_citation && thinking) {
    throw BadRequest{"require_citation works with enable_thinking false", "require_citation"};
  }
  rag::AnswerResult r;
  r.sources = docs.search(question, k);
  if (rag::should_abstain(r.sources, min_score)) {
    r.abstained = true;
    r.answer = std::string(rag::kAbstainAnswer);
    r.stop_reason = "abstained";
  } else {
    json gen = json::object();
    for (const char* key : {"temperature", "top_p", "top_k", "min_p", "seed", "max_tokens", "max_completion_tokens",
                            "presence_penalty", "frequency_penalty", "repetition_penalty", "stop"}) {
      if (body.contains(key)) gen[key] = body[key];
    }
    if (!gen.contains("max_tokens") && !gen.contains("max_completion_tokens")) gen["max_tokens"] = 512;
    if (!gen.contains("temperature")) gen["temperature"] = 0;
    gen["messages"] = json::parse(rag::build_messages(question, r.sources, max_source_chars).dump());
    gen["chat_template_kwargs"] = {{"enable_thinking", thinking}};
    std::string prompt_text;
    Generation g = prepare_chat(st, gen, prompt_text);
    if (require_citation) {
      auto cite = std::make_shared<CitationRequirement>(static_cast<int>(r.sources.size()));
      std::shared_ptr<const TokenTable> tok = st.tokens;
      std::vector<int32_t> stops = g.job.stop_ids;
      g.job.allow = [cite, tok, stops](int32_t token, int64_t remaining) {
        if (std::find(stops.begin(), stops.end(), token) != stops.end()) return cite->complete();
        if (tok->is_special(token)) return false;
        return cite->accepts(tok->decode(token),
                             static_cast<size_t>(std::max<int64_t>(remaining, 0)));
      };
      g.job.on_accept = [cite, tok, stops](int32_t token) {
        if (std::find(stops.begin(), stops.end(), token) == stops.end()) {
          cite->advance(tok->decode(token));
        }
      };
    }
    Completed c = run_sync(st, g, prompt_text);
    std::string cleaned;
    rag::resolve_citations(c.content, r.sources, r.citations, r.dropped_citations, cleaned);
    r.answer = cleaned;
    r.reasoning = c.reasoning;
    r.prompt_tokens = c.prompt_tokens;
    r.completion_tokens = c.completion_tokens;
    r.stop_reason = finish_name(c.finish, false);
  }
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
  if (!st.chat_template) throw BadRequest{"this model has no chat template (" + st.template_error + ")", "question"};
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
    std::lock_guard<std::mutex> lk(st.database_mu);
    auto model_lock = st.scheduler->pause_model();  // ask() generates on the model itself
    try {
      r = sql::ask(db, *st.model, *st.tokenizer, *st.chat_template, opt, question);
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

bool is_server_tool(const std::string& name) { return name == "kexa_rag_search" || name == "kexa_sql_query"; }

json server_tool_declaration(const std::string& name) {
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

// Fills in the declarations of server tools named in `tools` (a client may send only the name).
// Returns false when the request names none.
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
    if (name == "kexa_sql_query" && !st.database) {
      throw BadRequest{"tool kexa_sql_query needs a database (kexa serve --sql-db sqlite:PATH)", concat("tools[", i, "]")};
    }
    out.push_back(server_tool_declaration(name));
    any = true;
  }
  body["tools"] = out;
  return any;
}

json run_server_tool(ServerState& st, const chat::ToolCall& call) {
  json args = json::parse(call.arguments, nullptr, false);
  if (args.is_discarded() || !args.is_object()) return json{{"error", "arguments are not a JSON object"}};
  try {
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

// Non-streaming chat whose tools include server tools: calls to them are run here and their
// results fed back (at most kMaxToolRounds rounds); calls to the client's own tools end the loop
// and are returned as usual.
void chat_with_server_tools(ServerState& st, json body, httplib::Response& res, double started) {
  json executed = json::array();
  int64_t prompt_total = 0, completion_total = 0;
  Completed c;
  for (int round = 0;; ++round) {
    bool last = round == kMaxToolRounds;
    json b = body;
    if (round > 0) b["tool_choice"] = last ? "none" : "auto";
    std::string prompt_text;
    Generation g;
    try {
      g = prepare_chat(st, b, prompt_text);
    } catch (const BadRequest& e) {
      if (round == 0) throw;
      throw BadRequest{concat("after running the server tools: ", e.message), e.param, e.status, e.type};
    }
    if (g.stream) throw BadRequest{"server tools (kexa_*) are not available with stream: true", "stream"};
    c = run_sync(st, g, prompt_text);
    prompt_total += c.prompt_tokens;
    completion_total += c.completion_tokens;
    bool all_server = !c.calls.empty() &&
                      std::all_of(c.calls.begin(), c.calls.end(), [](const chat::ToolCall& t) { return is_server_tool(t.name); });
    if (!all_server || last) break;
    body["messages"].push_back({{"role", "assistant"}, {"content", c.content}, {"tool_calls", tool_calls_json(c.calls, false)}});
    for (const chat::ToolCall& call : c.calls) {
      json result = run_server_tool(st, call);
      executed.push_back({{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}, {"result", result}});
      body["messages"].push_back({{"role", "tool"}, {"tool_call_id", call.id}, {"content", tool_result_for_model(call.name, result).dump()}});
    }
  }
  json message = {{"role", "assistant"}, {"content", c.content}};
  if (!c.reasoning.empty()) message["reasoning_content"] = c.reasoning;
  if (!c.calls.empty()) {
    message["tool_calls"] = tool_calls_json(c.calls, false);
    if (c.content.empty()) message["content"] = nullptr;
  }
  json choice = {{"index", 0}, {"message", message}, {"logprobs", nullptr},
                 {"finish_reason", finish_name(c.finish, !c.calls.empty())}};
  st.metrics.add_tokens(prompt_total, completion_total);
  st.metrics.request_duration.observe(now_seconds() - started);
  send_json(res, 200, json{{"id", random_id("chatcmpl-")}, {"object", "chat.completion"}, {"created", unix_time()},
                           {"model", st.model_name}, {"choices", json::array({choice})},
                           {"usage", {{"prompt_tokens", prompt_total}, {"completion_tokens", completion_total},
                                      {"total_tokens", prompt_total + completion_total}}},
                           {"kexa_tool_calls", executed}});
}

// Reads a document upload: JSON {"name", "content"} (UTF-8 text) or {"name", "content_base64"}.
std::string decode_base64(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int v = val(c);
    if (v < 0) throw BadRequest{"'content_base64' is not base64", "content_base64"};
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

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
    content = decode_base64(b->get<std::string>());
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

void install_routes(httplib::Server& svr, ServerState& st) {
  svr.Post("/v1/chat/completions", guarded(st, "/v1/chat/completions", [&st](const auto& req, auto& res) {
             handle_generation(st, req, res, true, "/v1/chat/completions");
           }));
  svr.Post("/v1/completions", guarded(st, "/v1/completions", [&st](const auto& req, auto& res) {
             handle_generation(st, req, res, false, "/v1/completions");
           }));
  svr.Get("/v1/models", guarded(st, "/v1/models", [&st](const auto&, auto& res) {
            json m = {{"id", st.model_name}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "kexa"},
                      {"meta", {{"context", st.options.context}, {"vocab_size", st.model->config().vocab_size},
                                {"architecture", st.model->config().model_type}}}};
            send_json(res, 200, json{{"object", "list"}, {"data", json::array({m})}});
          }));
  svr.Post("/tokenize", guarded(st, "/tokenize", [&st](const auto& req, auto& res) {
             json body = parse_body(req);
             const json* text = field(body, "content");
             if (text == nullptr) text = field(body, "text");
             if (text == nullptr || !text->is_string()) throw BadRequest{"'content' must be a string", "content"};
             bool add_special = bool_field(body, "add_special", false);
             bool parse_special = bool_field(body, "parse_special", true);
             auto ids = st.tokenizer->encode(text->get<std::string>(), add_special, parse_special);
             json out = {{"tokens", ids}, {"count", ids.size()}};
             if (bool_field(body, "with_pieces", false)) {
               json pieces = json::array();
               for (int32_t id : ids) pieces.push_back({{"id", id}, {"piece", st.tokenizer->decode(std::span<const int32_t>(&id, 1))}});
               out["tokens"] = pieces;
             }
             send_json(res, 200, out);
           }));
  svr.Post("/detokenize", guarded(st, "/detokenize", [&st](const auto& req, auto& res) {
             json body = parse_body(req);
             const json* tokens = field(body, "tokens");
             if (tokens == nullptr || !tokens->is_array()) throw BadRequest{"'tokens' must be an array of ids", "tokens"};
             std::vector<int32_t> ids;
             for (const auto& t : *tokens) {
               if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= st.tokenizer->vocab_size()) {
                 throw BadRequest{"'tokens' must hold ids inside the vocabulary", "tokens"};
               }
               ids.push_back(t.get<int32_t>());
             }
             send_json(res, 200, json{{"content", st.tokenizer->decode(ids)}});
           }));
  svr.Post("/apply-template", guarded(st, "/apply-template", [&st](const auto& req, auto& res) {
             json body = parse_body(req);
             bool agp = bool_field(body, "add_generation_prompt", true);
             send_json(res, 200, json{{"prompt", render_prompt(st, body, agp)}});
           }));
  svr.Post("/v1/rag/query", guarded(st, "/v1/rag/query", [&st](const auto& req, auto& res) {
             send_json(res, 200, rag_query(st, parse_body(req)));
           }));
  svr.Post("/v1/rag/documents", guarded(st, "/v1/rag/documents", [&st](const auto& req, auto& res) {
             send_json(res, 200, upload_document(st, parse_body(req)));
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
             send_json(res, 200, sql_query(st, parse_body(req)));
           }));
  svr.Get("/v1/kexa/features", guarded(st, "/v1/kexa/features", [&st](const auto&, auto& res) {
            send_json(res, 200, json{{"rag", st.documents != nullptr}, {"sql", st.database != nullptr},
                                     {"max_document_bytes", st.options.max_document},
                                     {"database", st.database ? st.database->dialect() : ""}});
          }));
  svr.Get("/health", guarded(st, "/health", [](const auto&, auto& res) {
            send_json(res, 200, json{{"status", "ok"}});
          }));
  svr.Get("/metrics", [&st](const httplib::Request&, httplib::Response& res) {
    SchedulerStats s = st.scheduler->stats();
    std::vector<std::pair<std::string, double>> gauges = {
        {"kexa_sequences_active", static_cast<double>(s.active)},
        {"kexa_sequences_queued", static_cast<double>(s.queued)},
        {"kexa_slots_total", static_cast<double>(s.slots)},
        {"kexa_kv_cache_used_bytes", static_cast<double>(s.kv_bytes_used)},
        {"kexa_kv_cache_total_bytes", static_cast<double>(s.kv_bytes_total)},
        {"kexa_kv_cache_usage_ratio", s.kv_bytes_total > 0 ? static_cast<double>(s.kv_bytes_used) / static_cast<double>(s.kv_bytes_total) : 0.0},
        {"kexa_batch_steps_total", static_cast<double>(s.steps)},
    };
    res.set_content(st.metrics.render(gauges), "text/plain; version=0.0.4");
  });
  for (const WebAsset& asset : web_assets()) {
    std::string path = asset.path;
    svr.Get(path, [asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(asset.data, asset.size), asset.content_type);
    });
  }
}

}  // namespace

int serve(const ServerOptions& options) {
  // Signals go to one waiting thread, which stops the server: no handler, no global state.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto st = std::make_unique<ServerState>();
  st->options = options;
  st->model_name = options.model_name.empty()
                       ? std::filesystem::path(options.model_path).filename().string()
                       : options.model_name;
  st->model = Model::load(options.model_path, LoadOptions{options.threads});
  st->tokenizer = Tokenizer::load(options.model_path, st->model->config().model_type);
  st->tokens = std::make_shared<const TokenTable>(*st->tokenizer);
  try {
    st->chat_template.emplace(chat::ChatTemplate::load(options.model_path));
  } catch (const Error& e) {
    st->template_error = e.what();
    std::fprintf(stderr, "kexa serve: no chat template (%s); /v1/chat/completions is disabled\n", e.what());
  }
  for (int32_t id : st->tokenizer->eos_ids()) st->stop_ids.push_back(id);
  for (int64_t id : st->model->config().eos_token_ids) {
    if (std::find(st->stop_ids.begin(), st->stop_ids.end(), id) == st->stop_ids.end()) {
      st->stop_ids.push_back(static_cast<int32_t>(id));
    }
  }
  if (!options.rag_store.empty()) {
    st->documents = std::make_unique<Documents>(options.rag_store, options.rag_uploads, options.max_document);
    std::fprintf(stderr, "kexa serve: document store %s (uploads in %s)\n", options.rag_store.c_str(),
                 st->documents->uploads_dir().c_str());
  }
  if (!options.sql_db.empty()) {
    st->database = sql::open_database(options.sql_db);
    std::fprintf(stderr, "kexa serve: database %s (%s, read-only)\n", options.sql_db.c_str(), st->database->dialect().c_str());
  }
  st->scheduler = std::make_unique<Scheduler>(*st->model, options.parallel, options.context, options.queue);
  Metrics* metrics = &st->metrics;
  st->scheduler->on_step = [metrics](double seconds, int) { metrics->token_latency.observe(seconds); };

  httplib::Server svr;
  int http_threads = options.http_threads;
  svr.new_task_queue = [http_threads] { return new httplib::ThreadPool(static_cast<size_t>(http_threads)); };
  svr.set_payload_max_length(options.max_body);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  std::string api_key = options.api_key;
  svr.set_pre_routing_handler([api_key, &st](const httplib::Request& req, httplib::Response& res) {
    if (!api_key.empty() && req.path.rfind("/v1/", 0) == 0 &&
        req.get_header_value("Authorization") != "Bearer " + api_key) {
      send_json(res, 401, error_body("missing or invalid API key (Authorization: Bearer KEY)",
                                     "authentication_error", ""));
      st->metrics.count_request(req.path, 401);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = res.status == 413 ? "request body too large" : concat("no route for ", req.method, " ", req.path);
    send_json(res, res.status, error_body(msg, "invalid_request_error", ""));
  });
  install_routes(svr, *st);

  int port = options.port;
  if (port == 0) {
    port = svr.bind_to_any_port(options.host);
  } else if (!svr.bind_to_port(options.host, port)) {
    fail("cannot listen on ", options.host, ":", port);
  }
  if (port < 0) fail("cannot listen on ", options.host);
  std::fprintf(stderr, "kexa serve: %s (%s) on %d slots x %lld tokens\n", st->model_name.c_str(),
               st->model->config().model_type.c_str(), options.parallel,
               static_cast<long long>(options.context));
  std::fprintf(stderr, "kexa serve: listening on http://%s:%d\n", options.host.c_str(), port);
  std::fflush(stderr);

  std::thread signal_waiter([&svr, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    svr.stop();
  });
  bool ok = svr.listen_after_bind();
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  st->scheduler.reset();
  return ok ? 0 : 1;
}

}  // namespace kexa::server

