// One chat turn, the only place it is written: messages + tools + template kwargs -> prompt text
// (the checkpoint's own template) -> ids -> generation (constraints, stop ids, stop strings) on a
// GenerationBackend -> streamed text split into content, reasoning and tool calls -> the
// assistant message and the token usage. Plain completions (a prompt text or ids, no parsing)
// take the same path. Callers: `kexa chat` and `kexa run`'s chat mode (cli/), the server's
// /v1/chat/completions and /v1/completions, RAG answers (rag/answer) and text-to-SQL
// (sql/generate), the last two through a ChatFunction so that they include nothing of model/.
//
//   LocalGeneration local(engine.model(), 4096);
//   TurnRequest req;  req.messages = {{{"role", "user"}, {"content", "Hi"}}};
//   TurnResult r = run_chat_turn(engine, local, req, {.on_delta = print});
//   r.content, r.reasoning, r.tool_calls, r.finish, r.prompt_tokens, r.completion_tokens
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/output_parser.h"
#include "runtime/job.h"
#include "util/rgb_image.h"

namespace kexa {

class Engine;
class Tokenizer;
class TokenTexts;

struct TurnRequest {
  // Chat: rendered with the checkpoint's template (messages as chat templates expect them:
  // content as a string). Used when `messages` is an array.
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;  // null: none
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // enable_thinking, ...
  bool add_generation_prompt = true;
  // Completion (when `messages` is not an array): prompt_text encoded with the tokenizer's
  // special tokens (BOS) added, or prompt_ids as given.
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  // Pictures for a vision-language checkpoint, in the order their content parts appear in
  // `messages` (each part rendered by the template as its image placeholder). A checkpoint
  // without a vision tower refuses a request that carries any. With one, prepare_turn expands
  // each placeholder token into one position per row of the tower's output and hands the rows
  // to the forward pass as those positions' inputs (Job::embeddings); they count as prompt tokens.
  std::vector<RgbImage> images;
  // Split the output into content, reasoning and tool calls (default for chat), or keep it as
  // plain text (completions; grammar-constrained SQL).
  std::optional<bool> parse_output;

  SamplingParams sampling;  // default greedy
  std::optional<int64_t> max_tokens;  // default: whatever room the context leaves
  std::vector<std::string> stop;  // stop strings: the text ends before the first match
  int top_logprobs = -1;          // >= 0: logprobs of each token (+ alternatives, <= 20)
  // Constrained decoding: called once with the prepared prompt; may return null. May throw
  // (e.g. when max_tokens is too small for the constraint), before anything is generated.
  std::function<std::shared_ptr<TokenFilter>(const struct PreparedTurn&)> make_filter;
};

// A request turned into ids, validated against the context, ready to run.
struct PreparedTurn {
  std::string prompt_text;  // rendered chat prompt or the completion prompt (empty for ids)
  bool chat = false;
  bool parse_output = false;
  bool reasoning_open = false;  // the prompt itself opened a reasoning block
  std::vector<std::string> stop;
  Job job;
};

struct TurnDelta {
  std::string content;
  std::string reasoning;
  std::vector<chat::ToolCall> tool_calls;
  std::vector<chat::ParseError> errors;  // tool calls that did not parse (their text is content)
  std::vector<TokenLogprob> logprobs;
  bool empty() const {
    return content.empty() && reasoning.empty() && tool_calls.empty() && errors.empty() && logprobs.empty();
  }
};

struct TurnCallbacks {
  // Each piece of output as it becomes final; false stops generation (finish Callback).
  std::function<bool(const TurnDelta&)> on_delta;
  // Called about every 250 ms while no token arrives; false stops generation.
  std::function<bool()> on_wait;
  std::function<void()> on_first_token;  // once, when the first token arrives
};

struct TurnResult {
  std::string prompt_text;
  std::string content;
  std::string reasoning;
  std::vector<chat::ToolCall> tool_calls;
  std::vector<chat::ParseError> errors;
  std::vector<TokenLogprob> logprobs;
  StopReason finish = StopReason::MaxTokens;
  std::string error;  // finish == Error
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // generated tokens, the final stop id not counted
  // {"role": "assistant", "content", "reasoning_content"?, "tool_calls"?} as chat templates and
  // the OpenAI API expect (tool call arguments as a JSON string; content null when only calls).
  nlohmann::ordered_json assistant_message() const;
};

// A turn's generated tokens -> text -> stop strings -> content / reasoning / tool calls,
// incrementally (what run_turn does with a job's events; `kexa run` prints a turn's output
// through it too). `result` (its completion_tokens) must outlive it.
class TurnOutput {
 public:
  TurnOutput(const Tokenizer& tokenizer, const PreparedTurn& turn, TurnResult& result);
  ~TurnOutput();
  // The tokens of one event (stop ids left out): the text they complete.
  TurnDelta feed(const JobEvent& ev);
  // The text held back until the end (an unfinished character, a possible stop string prefix).
  TurnDelta finish();
  bool stopped_by_string() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Renders / encodes / validates, and encodes the images (on the engine's vision tower). Throws
// kexa::Error naming the problem: no chat template, the template raised, an empty prompt, a prompt
// that does not fit `context` (the message says how many tokens each is, image tokens included),
// images for a model without a vision tower, placeholders and images that do not pair up.
PreparedTurn prepare_turn(const Engine& engine, const TurnRequest& request, int64_t context);
// Runs a prepared turn to its end. Generation errors do not throw: they end the turn with finish
// Error and the message in `error` (the text produced until then is kept). Throws
// GenerationBackend::Busy when the backend's queue is full.
TurnResult run_turn(const Engine& engine, PreparedTurn& turn, GenerationBackend& backend,
                    const TurnCallbacks& callbacks = {});
// prepare_turn + run_turn.
TurnResult run_chat_turn(const Engine& engine, GenerationBackend& backend, const TurnRequest& request,
                         const TurnCallbacks& callbacks = {});

// What rag/ and sql/ receive to generate with: a turn on whatever backend the caller chose
// (a LocalGeneration on the command line, the Scheduler in the server), and the tokenizer (for
// vocabulary-aware filters and for neutralising special-token text in quoted documents).
struct ChatFunction {
  std::function<TurnResult(const TurnRequest&, const TurnCallbacks&)> turn;
  const Tokenizer* tokenizer = nullptr;
  std::vector<int32_t> stop_ids;  // the ids that end a reply (Engine::stop_ids)
  // The decoded vocabulary (built on first use), for text constraints (runtime/text_constraint.h).
  std::function<const TokenTexts&()> token_texts;
};
ChatFunction chat_function(const Engine& engine, GenerationBackend& backend);

}  // namespace kexa
