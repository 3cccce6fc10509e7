// Constrained decoding that forces a tool call (tool_choice "required" or a named function) in
// the EXAONE 4.0 / K-EXAONE format:
//   [thoughts ... </think>]  (only when the prompt opened a reasoning block)
//   <tool_call>{"name": "NAME", "arguments": ARGS}</tool_call>  [\n<tool_call>...</tool_call>]*
// NAME is one of the allowed functions and ARGS a JSON value valid for that function's
// `parameters` schema (checked by JsonConstraint), so the output always parses as a call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/json_constraint.h"

namespace kexa::server {

class ToolCallConstraint : public TextConstraint {
 public:
  struct Function {
    std::string name;
    nlohmann::json parameters;  // JSON Schema of the arguments; null = any object
  };
  // multiple: more than one call may follow the first ("required"); a named function gets one.
  // Throws kexa::Error naming the function whose parameters schema is not supported.
  ToolCallConstraint(const std::vector<Function>& functions, bool multiple, bool reasoning_open);
  ~ToolCallConstraint() override;
  ToolCallConstraint(const ToolCallConstraint& other);
  ToolCallConstraint& operator=(const ToolCallConstraint&) = delete;

  // Same contract as JsonConstraint: `text` keeps the output a valid prefix and the shortest
  // completion then fits in `budget` characters.
  bool accepts(std::string_view text, size_t budget = SIZE_MAX) const override;
  void advance(std::string_view text) override;
  // At least one whole call has been written (the reply may end here).
  bool complete() const override;
  size_t min_completion() const;
  bool in_reasoning() const;
  // Special tokens are markup: only the end of the reasoning block may be one.
  bool accepts_special(std::string_view text) const override { return in_reasoning() && text == "</think>"; }

 private:
  bool feed(char c);

  struct Alternative {
    std::string literal;  // "NAME", "arguments":   (the name JSON-quoted)
    std::shared_ptr<const JsonConstraint> arguments;
    size_t min_arguments = 0;
  };
  enum class Phase { Reasoning, Lead, Open, Name, Arguments, Close, After };

  std::shared_ptr<const std::vector<Alternative>> alternatives_;
  bool multiple_ = false;
  Phase phase_ = Phase::Lead;
  std::string tail_;       // Reasoning: the last characters, to see "</think>"
  size_t progress_ = 0;    // Open/Close: characters of the literal matched; Lead: blanks
  std::string name_;       // Name: characters matched so far
  size_t chosen_ = 0;      // Arguments: which alternative
  std::unique_ptr<JsonConstraint> args_;
};

}  // namespace kexa::server
