// Incremental parser of generated text into content, reasoning and tool calls, for the EXAONE
// formats: 4.0 and K-EXAONE (<think>…</think>, <tool_call>{json}</tool_call>) and EXAONE Deep
// (<thought>…</thought>). Text arrives in arbitrary chunks (a tag may be split anywhere); the
// concatenation of all deltas is the same for every chunking.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace kexa::chat {

struct ToolCall {
  std::string id;         // "call_" + random letters (seeded by the parser's id_seed)
  std::string name;
  std::string arguments;  // JSON text as Python's json.dumps writes it (OpenAI "arguments")
};

struct ParseError {
  std::string message;  // what was wrong (invalid JSON, missing name, unterminated tag)
  std::string raw;      // the text of the failed call, tags included; it is also put in content
};

struct ParseDelta {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
  std::vector<ParseError> errors;

  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty() && errors.empty(); }
  void append(const ParseDelta& d);
};

struct ParserTags {
  std::string reasoning_open = "<think>";
  std::string reasoning_close = "</think>";
  std::string tool_open = "<tool_call>";
  std::string tool_close = "</tool_call>";

  static ParserTags exaone4() { return {}; }  // also K-EXAONE
  static ParserTags exaone_deep() { return {"<thought>", "</thought>", "<tool_call>", "</tool_call>"}; }
};

class OutputParser {
 public:
  // reasoning_open: the prompt already opened the reasoning block (it ended with "<think>\n"), so
  // the output starts inside it. id_seed 0 = random tool-call ids.
  explicit OutputParser(bool reasoning_open = false, ParserTags tags = {}, uint64_t id_seed = 0);

  // Chooses tags and the starting state from the end of the rendered prompt: "<thought>" (EXAONE
  // Deep) or "<think>" (4.0, K-EXAONE) followed only by whitespace means reasoning starts open.
  static OutputParser for_prompt(std::string_view rendered_prompt, uint64_t id_seed = 0);

  // Feeds generated text; returns what became final. Text that may still turn out to be part of a
  // tag is held back until the next push or finish.
  ParseDelta push(std::string_view text);
  // End of generation: flushes what is held back; an unterminated tool call becomes an error.
  ParseDelta finish();

  bool in_reasoning() const { return state_ == State::Reasoning; }

 private:
  enum class State { Content, Reasoning, ToolCall };

  void process(ParseDelta& d, bool final);
  void emit_text(std::string& out, std::string_view s, bool before_tag, bool final);
  void finish_tool_call(ParseDelta& d, std::string_view body);
  std::string new_id();

  ParserTags tags_;
  State state_;
  std::string buf_;        // unprocessed input
  std::string held_ws_;    // trailing whitespace not yet emitted (dropped before a tag)
  bool skip_leading_ws_;   // right after an opening/closing reasoning tag
  std::mt19937_64 rng_;
};

}  // namespace kexa::chat
