#include "chat/output_parser.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "chat/jinja/value.h"

namespace kexa::chat {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Length of the longest proper prefix of `tag` that `s` ends with.
size_t partial_suffix(std::string_view s, std::string_view tag) {
  size_t best = 0;
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k) {
    if (s.substr(s.size() - k) == tag.substr(0, k)) {
      best = k;
      break;
    }
  }
  return best;
}

std::string_view rtrim_ws(std::string_view s) {
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

void ParseDelta::append(const ParseDelta& d) {
  content += d.content;
  reasoning += d.reasoning;
  tool_calls.insert(tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  errors.insert(errors.end(), d.errors.begin(), d.errors.end());
}

OutputParser::OutputParser(bool reasoning_open, ParserTags tags, uint64_t id_seed)
    : tags_(std::move(tags)),
      state_(reasoning_open ? State::Reasoning : State::Content),
      skip_leading_ws_(reasoning_open),
      rng_(id_seed ? id_seed : std::random_device{}()) {}

OutputParser OutputParser::for_prompt(std::string_view prompt, uint64_t id_seed) {
  std::string_view end = rtrim_ws(prompt);
  auto ends_with = [&](std::string_view s) { return end.size() >= s.size() && end.substr(end.size() - s.size()) == s; };
  ParserTags deep = ParserTags::exaone_deep();
  if (ends_with(deep.reasoning_open)) return OutputParser(true, deep, id_seed);
  ParserTags e4 = ParserTags::exaone4();
  if (ends_with(e4.reasoning_open)) return OutputParser(true, e4, id_seed);
  // An EXAONE Deep conversation that did not open the block itself (no generation prompt).
  if (prompt.find(deep.reasoning_open) != std::string_view::npos &&
      prompt.find(e4.reasoning_open) == std::string_view::npos)
    return OutputParser(false, deep, id_seed);
  return OutputParser(false, e4, id_seed);
}

std::string OutputParser::new_id() {
  static const char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id.push_back(kAlnum[rng_() % (sizeof(kAlnum) - 1)]);
  return id;
}

ParseDelta OutputParser::push(std::string_view text) {
  buf_.append(text);
  ParseDelta d;
  process(d, false);
  return d;
}

ParseDelta OutputParser::finish() {
  ParseDelta d;
  process(d, true);
  if (state_ == State::ToolCall) {
    std::string raw = tags_.tool_open + buf_;
    d.errors.push_back({"unterminated " + tags_.tool_open + " at end of output", raw});
    d.content += held_ws_ + raw;
    held_ws_.clear();
    buf_.clear();
    state_ = State::Content;
  }
  held_ws_.clear();  // trailing whitespace at the end of the output is dropped
  return d;
}

// Emits `s` into `out`, dropping whitespace right after a reasoning tag and holding back trailing
// whitespace, which is dropped when a tag follows (the templates strip both sides of a block).
void OutputParser::emit_text(std::string& out, std::string_view s, bool before_tag, bool final) {
  if (skip_leading_ws_) {
    while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
    if (s.empty() && !before_tag) return;
    skip_leading_ws_ = false;
  }
  if (s.empty() && !before_tag) return;
  std::string_view body = rtrim_ws(s);
  if (body.empty()) {
    if (before_tag || final) {
      held_ws_.clear();
    } else {
      held_ws_.append(s);
    }
    return;
  }
  out += held_ws_;
  held_ws_.clear();
  out.append(body);
  if (!before_tag && !final) held_ws_.assign(s.substr(body.size()));
}

void OutputParser::finish_tool_call(ParseDelta& d, std::string_view body) {
  std::string raw = tags_.tool_open + std::string(body) + tags_.tool_close;
  auto report = [&](std::string msg) {
    d.errors.push_back({std::move(msg), raw});
    d.content += raw;
  };
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    report(std::string("invalid JSON in tool call: ") + e.what());
    return;
  }
  if (!j.is_object()) return report("tool call is not a JSON object");
  const nlohmann::ordered_json* fn = &j;
  if (j.contains("function") && j["function"].is_object()) fn = &j["function"];
  if (!fn->contains("name") || !(*fn)["name"].is_string()) return report("tool call has no \"name\" string");
  ToolCall call;
  call.name = (*fn)["name"].get<std::string>();
  const char* key = fn->contains("arguments") ? "arguments" : fn->contains("parameters") ? "parameters" : nullptr;
  if (!key) {
    call.arguments = "{}";
  } else if ((*fn)[key].is_string()) {
    call.arguments = (*fn)[key].get<std::string>();
  } else {
    call.arguments = jinja::to_json(jinja::from_json((*fn)[key]), jinja::JsonOptions{});
  }
  call.id = (j.contains("id") && j["id"].is_string()) ? j["id"].get<std::string>() : new_id();
  d.tool_calls.push_back(std::move(call));
}

void OutputParser::process(ParseDelta& d, bool final) {
  while (true) {
    if (state_ == State::ToolCall) {
      size_t p = buf_.find(tags_.tool_close);
      if (p == std::string::npos) return;  // keep accumulating; finish() reports an unterminated call
      std::string body = buf_.substr(0, p);
      buf_.erase(0, p + tags_.tool_close.size());
      state_ = State::Content;
      finish_tool_call(d, body);
      continue;
    }
    bool reasoning = state_ == State::Reasoning;
    std::string& out = reasoning ? d.reasoning : d.content;
    const std::string& tag_a = reasoning ? tags_.reasoning_close : tags_.reasoning_open;
    size_t pa = buf_.find(tag_a);
    size_t pb = buf_.find(tags_.tool_open);
    if (reasoning) pb = std::string::npos;  // a tool call inside reasoning is part of the thoughts
    size_t p = std::min(pa, pb);
    if (p != std::string::npos) {
      emit_text(out, std::string_view(buf_).substr(0, p), true, final);
      if (p == pb) {
        buf_.erase(0, p + tags_.tool_open.size());
        state_ = State::ToolCall;
      } else {
        buf_.erase(0, p + tag_a.size());
        state_ = reasoning ? State::Content : State::Reasoning;
        skip_leading_ws_ = true;
      }
      continue;
    }
    size_t keep = 0;
    if (!final) {
      keep = partial_suffix(buf_, tag_a);
      if (!reasoning) keep = std::max(keep, partial_suffix(buf_, tags_.tool_open));
    }
    emit_text(out, std::string_view(buf_).substr(0, buf_.size() - keep), false, final);
    buf_.erase(0, buf_.size() - keep);
    return;
  }
}

}  // namespace kexa::chat
