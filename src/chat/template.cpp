#include "chat/template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/jinja/jinja.h"
#include "chat/jinja/value.h"
#include "formats/gguf.h"
#include "util/error.h"

namespace kexa::chat {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("cannot read ", p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ojson read_json(const fs::path& p) {
  try {
    return ojson::parse(read_text(p));
  } catch (const nlohmann::json::exception& e) {
    fail(p.string(), ": invalid JSON: ", e.what());
  }
}

// transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order.
const char* const kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                    "pad_token", "cls_token", "mask_token", "additional_special_tokens"};

// A special token is a string or an AddedToken dict {"content": ...}.
std::optional<ojson> token_text(const ojson& v) {
  if (v.is_string()) return v;
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"];
  return std::nullopt;
}

void merge_special_tokens(ojson& into, const ojson& cfg) {
  if (!cfg.is_object()) return;
  for (const char* key : kSpecialKeys) {
    if (!cfg.contains(key)) continue;
    const ojson& v = cfg[key];
    if (std::string(key) == "additional_special_tokens") {
      if (!v.is_array()) continue;
      ojson list = ojson::array();
      for (const auto& t : v)
        if (auto s = token_text(t)) list.push_back(*s);
      into[key] = list;
    } else if (auto s = token_text(v)) {
      into[key] = *s;
    } else if (v.is_null()) {
      into.erase(key);
    }
  }
}

// transformers drops unset / empty special tokens from special_tokens_map.
ojson ordered_special(const ojson& m) {
  ojson out = ojson::object();
  for (const char* key : kSpecialKeys) {
    if (!m.contains(key)) continue;
    const ojson& v = m[key];
    if ((v.is_string() && v.get<std::string>().empty()) || (v.is_array() && v.empty())) continue;
    out[key] = v;
  }
  return out;
}

}  // namespace

ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

void ChatTemplate::add(const std::string& name, const std::string& source) {
  try {
    templates_[name] = {source, std::make_shared<jinja::Template>(source)};
  } catch (const Error& e) {
    fail(origin_, (name == "default" ? std::string() : " (template '" + name + "')"), ": ", e.what());
  }
}

void ChatTemplate::set_fixed_time(std::time_t t) {
  for (auto& [name, entry] : templates_) entry.second->set_fixed_time(t);
}

std::vector<std::string> ChatTemplate::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : templates_) out.push_back(name);
  return out;
}

ChatTemplate ChatTemplate::from_source(const std::string& source, const ojson& special_tokens) {
  ChatTemplate t;
  t.origin_ = "<template>";
  t.special_tokens_ = ordered_special(special_tokens.is_object() ? special_tokens : ojson::object());
  t.add("default", source);
  return t;
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file) {
  ChatTemplate t;
  const std::string& path = file.path();
  t.origin_ = path;
  const gguf::Value* main = file.get("tokenizer.chat_template");
  for (const auto& [key, value] : file.metadata()) {
    const std::string prefix = "tokenizer.chat_template.";
    if (key.rfind(prefix, 0) == 0) t.add(key.substr(prefix.size()), value.as_string(key));
  }
  if (main) t.add("default", main->as_string("tokenizer.chat_template"));
  if (t.templates_.empty()) fail(path, ": the GGUF has no tokenizer.chat_template");
  ojson special = ojson::object();
  if (const gguf::Value* toks = file.get("tokenizer.ggml.tokens")) {
    const auto& list = toks->as_strings("tokenizer.ggml.tokens");
    auto set_tok = [&](const char* key, const char* name) {
      const gguf::Value* id = file.get(key);
      if (!id) return;
      int64_t i = id->as_int(key);
      if (i >= 0 && static_cast<size_t>(i) < list.size()) special[name] = list[static_cast<size_t>(i)];
    };
    set_tok("tokenizer.ggml.bos_token_id", "bos_token");
    set_tok("tokenizer.ggml.eos_token_id", "eos_token");
    set_tok("tokenizer.ggml.unknown_token_id", "unk_token");
    set_tok("tokenizer.ggml.seperator_token_id", "sep_token");
    set_tok("tokenizer.ggml.padding_token_id", "pad_token");
  }
  t.special_tokens_ = ordered_special(special);
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& path) {
  ChatTemplate t;
  t.origin_ = path;
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    ojson special = ojson::object();
    ojson config;
    if (fs::exists(p / "tokenizer_config.json")) {
      config = read_json(p / "tokenizer_config.json");
      merge_special_tokens(special, config);
    }
    if (fs::exists(p / "special_tokens_map.json")) merge_special_tokens(special, read_json(p / "special_tokens_map.json"));
    t.special_tokens_ = ordered_special(special);
    if (fs::exists(p / "chat_template.jinja")) {
      t.origin_ = (p / "chat_template.jinja").string();
      t.add("default", read_text(p / "chat_template.jinja"));
      fs::path extra = p / "additional_chat_templates";
      if (fs::is_directory(extra, ec))
        for (const auto& e : fs::directory_iterator(extra))
          if (e.path().extension() == ".jinja") t.add(e.path().stem().string(), read_text(e.path()));
      return t;
    }
    if (fs::exists(p / "chat_template.json")) {
      ojson j = read_json(p / "chat_template.json");
      if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
        t.origin_ = (p / "chat_template.json").string();
        t.add("default", j["chat_template"].get<std::string>());
        return t;
      }
    }
    if (config.is_object() && config.contains("chat_template")) {
      t.origin_ = (p / "tokenizer_config.json").string();
      const ojson& ct = config["chat_template"];
      if (ct.is_string()) {
        t.add("default", ct.get<std::string>());
      } else if (ct.is_array()) {
        for (const auto& e : ct) {
          if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
              !e["template"].is_string())
            fail(t.origin_, ": chat_template list entries must be {\"name\": str, \"template\": str}");
          t.add(e["name"].get<std::string>(), e["template"].get<std::string>());
        }
      } else {
        fail(t.origin_, ": chat_template must be a string or a list of named templates");
      }
      if (t.templates_.empty()) fail(t.origin_, ": chat_template list is empty");
      return t;
    }
    fail(path, ": no chat template found (looked for chat_template.jinja, chat_template.json and "
               "chat_template in tokenizer_config.json)");
  }
  if (!fs::exists(p, ec)) fail(path, ": no such file or folder");
  if (p.extension() == ".gguf") return from_gguf(*gguf::File::open(path));
  if (p.filename() == "tokenizer_config.json") {
    // A tokenizer_config.json on its own: treat its folder as the model folder.
    return load(p.parent_path().empty() ? std::string(".") : p.parent_path().string());
  }
  t.add("default", read_text(p));
  return t;
}

const jinja::Template& ChatTemplate::pick(const std::string& template_name, bool has_tools, std::string* picked) const {
  std::string name = template_name;
  if (name.empty()) {
    if (templates_.size() == 1) {
      name = templates_.begin()->first;
    } else if (has_tools && templates_.count("tool_use")) {
      name = "tool_use";
    } else {
      name = "default";
    }
  }
  auto it = templates_.find(name);
  if (it == templates_.end()) {
    std::string avail;
    for (const auto& [n, e] : templates_) avail += (avail.empty() ? "" : ", ") + n;
    fail(origin_, ": no chat template named '", name, "' (available: ", avail, ")");
  }
  if (picked) *picked = name;
  return *it->second.second;
}

const std::string& ChatTemplate::source(const std::string& template_name, bool has_tools) const {
  std::string name;
  pick(template_name, has_tools, &name);
  return templates_.at(name).first;
}

std::string ChatTemplate::render(const ojson& messages, const ojson& tools, bool add_generation_prompt,
                                 const ojson& kwargs, const std::string& template_name) const {
  if (!messages.is_array()) fail("chat template: messages must be a JSON array");
  if (!tools.is_null() && !tools.is_array()) fail("chat template: tools must be a JSON array or null");
  if (!kwargs.is_null() && !kwargs.is_object()) fail("chat template: kwargs must be a JSON object");
  bool has_tools = tools.is_array() && !tools.empty();
  std::string name;
  const jinja::Template& tpl = pick(template_name, has_tools, &name);

  // Same variables, same order as transformers: render(messages=, tools=, documents=,
  // add_generation_prompt=, **special_tokens_map, **kwargs).
  jinja::Dict ctx;
  ctx.set(jinja::Value::string("messages"), jinja::from_json(messages));
  ctx.set(jinja::Value::string("tools"), tools.is_null() ? jinja::Value::none() : jinja::from_json(tools));
  ctx.set(jinja::Value::string("documents"), jinja::Value::none());
  ctx.set(jinja::Value::string("add_generation_prompt"), jinja::Value::boolean(add_generation_prompt));
  for (auto it = special_tokens_.begin(); it != special_tokens_.end(); ++it)
    ctx.set(jinja::Value::string(it.key()), jinja::from_json(it.value()));
  if (kwargs.is_object())
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it) ctx.set(jinja::Value::string(it.key()), jinja::from_json(it.value()));
  try {
    return tpl.render(jinja::Value::make_dict(std::move(ctx)));
  } catch (const Error& e) {
    fail(origin_, (name == "default" ? std::string() : " (template '" + name + "')"), ": ", e.what());
  }
}

std::string ChatTemplate::render(const nlohmann::json& messages, const nlohmann::json& tools, bool add_generation_prompt,
                                 const nlohmann::json& kwargs) const {
  return render(ojson::parse(messages.dump()), ojson::parse(tools.dump()), add_generation_prompt,
                ojson::parse(kwargs.dump()));
}

}  // namespace kexa::chat
