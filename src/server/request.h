// OpenAI-style request bodies read and validated: typed fields whose errors name the field, chat
// messages normalised to what chat templates expect, tools and tool_choice, response_format, and
// a whole /v1/chat/completions or /v1/completions body turned into a TurnRequest. Nothing here
// needs the model: what depends on it (rendering, the prompt's length, the token filters) happens
// when the turn is prepared (server/generation.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/sampler.h"
#include "runtime/turn.h"
#include "server/json_constraint.h"
#include "server/tool_constraint.h"

namespace kexa::server {

using json = nlohmann::ordered_json;

// A request the client got wrong (or one the server cannot take now): answered with `status` and
// an OpenAI error body naming the field.
struct BadRequest {
  std::string message;
  std::string param;
  int status = 400;
  std::string type = "invalid_request_error";
};

// The body as a JSON object, or BadRequest.
json parse_body(const std::string& body);

// --- typed fields (absent and null are the same) -------------------------------------------------
const json* field(const json& body, const char* name);
std::optional<double> number_field(const json& body, const char* name, double lo, double hi);
std::optional<int64_t> int_field(const json& body, const char* name, int64_t lo, int64_t hi);
bool bool_field(const json& body, const char* name, bool fallback);
// A non-empty string of at most max_bytes.
std::string required_string(const json& body, const char* name, size_t max_bytes);

// temperature, top_p, top_k, min_p, penalties, seed (random when absent). Default temperature 1.
SamplingParams sampling_from(const json& body);
// 'stop': a string or up to 16 strings; empty strings dropped.
std::vector<std::string> stop_strings(const json& body);

// --- chat ------------------------------------------------------------------------------------------
// An OpenAI image content part ({"type": "image_url", "image_url": {"url": ...}}) of a message:
// its URL (data: or http(s)) and the field an error about it names ("messages[1].content[0]").
struct ImagePart {
  std::string url;
  std::string param;
};

// Validated messages in the shape chat templates expect (content as a string, "developer" as
// "system", tool call arguments as objects). A message with image parts keeps its content as an
// array of {"type": "text", "text"} and {"type": "image"} parts (the part the EXAONE 4.5 template
// renders as its image placeholder); their URLs are appended to `images` in order. With `images`
// null, image parts are refused.
json normalize_messages(const json& body, std::vector<ImagePart>* images = nullptr);

// tool_choice: "none" drops the tools from the prompt, "auto" (the default) lets the model
// choose, "required" and {"type": "function", "function": {"name": ...}} force a call by
// constrained decoding.
struct ToolChoice {
  enum class Mode { None, Auto, Required, Named } mode = Mode::Auto;
  std::string name;
  bool forced() const { return mode == Mode::Required || mode == Mode::Named; }
};
// 'tools' checked; null when absent or empty.
const json* validated_tools(const json& body);
ToolChoice tool_choice_of(const json& body);
// The tools the prompt declares (null when none, or tool_choice "none").
json tools_of(const json& body);
json template_kwargs(const json& body);

// --- a generation request ------------------------------------------------------------------------
struct GenerationRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  std::string prompt_param;  // the field a prompt error names: "messages" or "prompt"
  TurnRequest turn;          // make_filter is left to the caller (it needs the vocabulary)
  // The image parts of the messages, in order; turn.images holds their pictures once decoded
  // (server/images.h).
  std::vector<ImagePart> image_parts;
  // response_format json_object / json_schema: the constraint the output must follow.
  std::shared_ptr<JsonConstraint> response_format;
  // A forced tool call: the functions it may call; `multiple` for "required".
  std::vector<ToolCallConstraint::Function> forced_calls;
  bool multiple_calls = false;
  std::string max_tokens_param = "max_tokens";  // the field that set max_tokens
  // logit_bias: (token id, bias) pairs, ids not yet checked against the vocabulary.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // n: choices generated from the one prompt; choice i samples with seed + i.
  int n = 1;
};
// The most choices one request may ask for.
constexpr int kMaxChoices = 8;
// OpenAI's logit_bias: an object whose keys are token ids (decimal strings) and whose values are
// numbers in [-100, 100]. BadRequest naming "logit_bias" otherwise.
std::vector<std::pair<int32_t, float>> logit_bias_of(const json& body);
// A /v1/chat/completions (chat) or /v1/completions body, validated. Chat bodies need a model with
// a chat template (the caller checks).
GenerationRequest parse_generation(const json& body, bool chat);

}  // namespace kexa::server
