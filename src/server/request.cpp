#include "server/request.h"

#include <algorithm>
#include <climits>
#include <random>
#include <string>

#include "util/error.h"

namespace kexa::server {

json parse_body(const std::string& text) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) throw BadRequest{"the body is not a JSON object", ""};
  return body;
}

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


namespace {

// The message's content as a string, or (when it holds image parts and `images` takes them) as
// the parts chat templates expect.
json message_content(const json& content, size_t index, const std::string& role, std::vector<ImagePart>* images) {
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    throw BadRequest{concat("messages[", index, "].content must be a string, an array of parts or null"),
                     concat("messages[", index, "].content")};
  }
  std::string text;
  json parts = json::array();
  bool has_image = false;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string param = concat("messages[", index, "].content[", j, "]");
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      throw BadRequest{concat("messages[", index, "].content parts must be objects with a 'type'"),
                       concat("messages[", index, "].content")};
    }
    const std::string type = part["type"];
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string()) {
        throw BadRequest{concat("messages[", index, "].content text part needs a string 'text'"),
                         concat("messages[", index, "].content")};
      }
      text += part["text"].get<std::string>();
      parts.push_back({{"type", "text"}, {"text", part["text"]}});
    } else if (type == "image_url" && images != nullptr) {
      // Chat templates place pictures in user turns only (as OpenAI accepts them).
      if (role != "user") throw BadRequest{concat(param, ": image parts belong in user messages, not ", role), param};
      // {"image_url": {"url": ..., "detail"?}}; a bare string is accepted too.
      const json* u = part.contains("image_url") ? &part["image_url"] : nullptr;
      if (u != nullptr && u->is_object() && u->contains("url")) u = &(*u)["url"];
      if (u == nullptr || !u->is_string() || u->get<std::string>().empty()) {
        throw BadRequest{concat(param, " needs image_url.url: a data: URL or an http(s) URL"), param + ".image_url.url"};
      }
      images->push_back({u->get<std::string>(), param + ".image_url.url"});
      parts.push_back({{"type", "image"}});
      has_image = true;
    } else {
      throw BadRequest{concat("messages[", index, "].content part type '", type, "' is not supported",
                              images != nullptr ? " (text and image_url are)" : " by a text model"),
                       concat("messages[", index, "].content")};
    }
  }
  if (has_image) return parts;
  return text;
}

}  // namespace

// Validated messages in the shape chat templates expect (content as a string).
json normalize_messages(const json& body, std::vector<ImagePart>* images) {
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
    n["content"] = message_content(m.contains("content") ? m["content"] : json(), i, role, images);
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


std::string required_string(const json& body, const char* name, size_t max_bytes) {
  const json* v = field(body, name);
  if (v == nullptr || !v->is_string() || v->get<std::string>().empty()) {
    throw BadRequest{concat("'", name, "' must be a non-empty string"), name};
  }
  if (v->get<std::string>().size() > max_bytes) throw BadRequest{concat("'", name, "' is longer than ", max_bytes, " bytes"), name};
  return v->get<std::string>();
}

std::vector<std::pair<int32_t, float>> logit_bias_of(const json& body) {
  const json* v = field(body, "logit_bias");
  if (v == nullptr) return {};
  if (!v->is_object()) throw BadRequest{"'logit_bias' must be an object mapping token ids to numbers", "logit_bias"};
  std::vector<std::pair<int32_t, float>> out;
  for (const auto& [key, value] : v->items()) {
    const bool digits = !key.empty() && key.size() <= 10 &&
                        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoll(key) > INT32_MAX) {
      throw BadRequest{concat("logit_bias: key '", key, "' is not a token id (a non-negative integer)"), "logit_bias"};
    }
    if (!value.is_number()) throw BadRequest{concat("logit_bias: the bias of token ", key, " must be a number"), "logit_bias"};
    const double bias = value.get<double>();
    if (!(bias >= -100 && bias <= 100)) {
      throw BadRequest{concat("logit_bias: the bias of token ", key, " must be between -100 and 100"), "logit_bias"};
    }
    out.emplace_back(static_cast<int32_t>(std::stoll(key)), static_cast<float>(bias));
  }
  return out;
}

namespace {

// The prompt: messages (chat) or 'prompt', a string or token ids (completions); and logprobs,
// which the two endpoints spell differently.
void read_prompt(const json& body, GenerationRequest& g) {
  TurnRequest& t = g.turn;
  if (g.chat) {
    t.messages = normalize_messages(body, &g.image_parts);
    t.tools = tools_of(body);
    t.kwargs = template_kwargs(body);
    if (bool_field(body, "logprobs", false)) {
      t.top_logprobs = static_cast<int>(int_field(body, "top_logprobs", 0, 20).value_or(0));
    }
    return;
  }
  const json* p = field(body, "prompt");
  if (p == nullptr) throw BadRequest{"'prompt' is required", "prompt"};
  if (p->is_string()) {
    t.prompt_text = p->get<std::string>();
  } else if (p->is_array() && !p->empty() &&
             std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_number_integer(); })) {
    for (const auto& x : *p) t.prompt_ids.push_back(x.get<int32_t>());
  } else {
    throw BadRequest{"'prompt' must be a string or an array of token ids", "prompt"};
  }
  if (const json* lp = field(body, "logprobs")) {
    if (!lp->is_number_integer()) throw BadRequest{"'logprobs' must be an integer", "logprobs"};
    t.top_logprobs = static_cast<int>(std::clamp<int64_t>(lp->get<int64_t>(), 0, 20));
  }
}

void read_common_fields(const json& body, GenerationRequest& g) {
  g.turn.sampling = sampling_from(body);
  std::optional<int64_t> max_tokens = int_field(body, "max_completion_tokens", 1, 1 << 30);
  if (max_tokens) g.max_tokens_param = "max_completion_tokens";
  else max_tokens = int_field(body, "max_tokens", 1, 1 << 30);
  g.turn.max_tokens = max_tokens;
  g.turn.stop = stop_strings(body);
  g.stream = bool_field(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw BadRequest{"'stream_options' must be an object", "stream_options"};
    g.include_usage = bool_field(*so, "include_usage", false);
  }
  g.n = static_cast<int>(int_field(body, "n", 1, kMaxChoices).value_or(1));
  g.logit_bias = logit_bias_of(body);
}

void read_response_format(const json& body, GenerationRequest& g) {
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
    g.response_format = std::make_shared<JsonConstraint>(schema, type == "json_object");
  } catch (const Error& e) {
    throw BadRequest{concat("unsupported JSON schema: ", e.what()), "response_format.json_schema"};
  }
}

void read_forced_call(const json& body, GenerationRequest& g) {
  ToolChoice tc = tool_choice_of(body);
  if (!tc.forced()) return;
  if (g.response_format) {
    throw BadRequest{"'response_format' cannot be combined with a tool_choice that forces a call", "response_format"};
  }
  const json& tools = body["tools"];
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& fn = tools[i]["function"];
    if (tc.mode == ToolChoice::Mode::Named && fn["name"] != tc.name) continue;
    nlohmann::json params = fn.contains("parameters") ? nlohmann::json::parse(fn["parameters"].dump()) : nlohmann::json();
    try {  // one by one, so an unsupported schema is reported with its index
      ToolCallConstraint probe({{fn["name"], params}}, false, false);
    } catch (const Error& e) {
      throw BadRequest{concat("cannot force a call: ", e.what()), concat("tools[", i, "].function.parameters")};
    }
    g.forced_calls.push_back({fn["name"], std::move(params)});
  }
  g.multiple_calls = tc.mode == ToolChoice::Mode::Required;
}

}  // namespace

GenerationRequest parse_generation(const json& body, bool chat) {
  GenerationRequest g;
  g.chat = chat;
  g.prompt_param = chat ? "messages" : "prompt";
  read_prompt(body, g);
  read_common_fields(body, g);
  read_response_format(body, g);
  if (chat) read_forced_call(body, g);
  return g;
}

}  // namespace kexa::server
