// A checkpoint's own chat template, found where transformers / llama.cpp look for it and rendered
// byte-for-byte as transformers' apply_chat_template(tokenize=False) renders it.
#pragma once

#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kexa::jinja {
class Template;
}
namespace kexa::gguf {
class File;
}

namespace kexa::chat {

class ChatTemplate {
 public:
  // `path` may be:
  //  - a model / tokenizer folder: chat_template.jinja (preferred, as in transformers), else
  //    chat_template.json, else the `chat_template` of tokenizer_config.json (a string or a list
  //    of {"name", "template"}); special tokens from tokenizer_config.json and
  //    special_tokens_map.json;
  //  - a tokenizer_config.json file;
  //  - a .gguf file: `tokenizer.chat_template` (+ `tokenizer.chat_template.NAME`), BOS/EOS text
  //    from tokenizer.ggml.tokens;
  //  - a .jinja (or any other text) file holding the template source.
  // Throws kexa::Error naming the file when no template can be found or it does not parse.
  static ChatTemplate load(const std::string& path);
  // From an already opened GGUF file (as load() reads a .gguf).
  static ChatTemplate from_gguf(const gguf::File& file);
  // A template given as source, with optional special tokens ({"bos_token": "...", ...}).
  static ChatTemplate from_source(const std::string& source,
                                  const nlohmann::ordered_json& special_tokens = nlohmann::ordered_json::object());

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // messages: [{"role", "content" (string or list of parts), "tool_calls", "reasoning_content"...}]
  // tools: a list of tool schemas, or null for none (transformers passes None then).
  // kwargs: extra template variables (enable_thinking, skip_think, ...); they override the
  // special tokens. Use ordered_json so object keys keep their order in `tojson` output.
  // template_name: pick one of several named templates; empty = "tool_use" when tools are given
  // and such a template exists, else "default".
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     bool add_generation_prompt,
                     const nlohmann::ordered_json& kwargs = nlohmann::ordered_json::object(),
                     const std::string& template_name = {}) const;
  // Convenience for callers holding plain nlohmann::json (keys already sorted by nlohmann).
  std::string render(const nlohmann::json& messages, const nlohmann::json& tools, bool add_generation_prompt,
                     const nlohmann::json& kwargs) const;

  // Source of the template that `template_name` selects (see render).
  const std::string& source(const std::string& template_name = {}, bool has_tools = false) const;
  std::vector<std::string> names() const;
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }
  const std::string& origin() const { return origin_; }

  // Fixes the time strftime_now sees (tests).
  void set_fixed_time(std::time_t t);

 private:
  ChatTemplate() = default;
  void add(const std::string& name, const std::string& source);
  const jinja::Template& pick(const std::string& template_name, bool has_tools, std::string* picked) const;

  std::map<std::string, std::pair<std::string, std::shared_ptr<jinja::Template>>> templates_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
  std::string origin_;
};

}  // namespace kexa::chat
