#include "tokenizer/gguf_writer.h"

#include <cctype>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/json_file.h"
#include "util/error.h"

namespace kexa {

namespace {

using nlohmann::json;
using gguf::Value;
using gguf::ValueType;

// llama.cpp's token types.
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
};

// What the tokenizer files say, before it is laid out one token per embedding row.
struct SourceVocab {
  std::map<int64_t, std::string> by_id;
  std::vector<AddedToken> added;
  std::vector<std::string> merges;
  bool spm_style = false;  // SentencePiece-style (Llama) rather than GPT-2 byte-level
  std::string unk_text;
  json post_processor;
};

bool is_byte_token(const std::string& p) {
  return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(p[3])) && std::isxdigit(static_cast<unsigned char>(p[4]));
}

// A token's text from tokenizer_config.json, where it is either a string or {"content": ...}.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

bool json_contains_type(const json& node, const std::string& type) {
  if (node.is_object()) {
    if (node.contains("type") && node["type"] == type) return true;
    for (const auto& [k, v] : node.items()) {
      if (json_contains_type(v, type)) return true;
    }
  } else if (node.is_array()) {
    for (const auto& v : node) {
      if (json_contains_type(v, type)) return true;
    }
  }
  return false;
}

void add_vocab(const json& vocab, const std::string& origin, const char* what, SourceVocab& s) {
  for (const auto& [piece, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) fail(origin, what, piece, "' is not a valid id");
    s.by_id[id.get<int64_t>()] = piece;
  }
}

void read_tokenizer_json(const std::string& path, SourceVocab& s) {
  json tj = read_json_file(path);
  const json& model = tj.contains("model") ? tj["model"] : json();
  if (!model.is_object() || model.value("type", "") != "BPE") {
    fail(path, ": tokenizer model type '", model.is_object() ? model.value("type", "?") : "?",
         "' is not supported (kexa converts BPE tokenizers)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path, ": model.vocab is missing");
  add_vocab(model["vocab"], path, ": vocab id for '", s);
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        s.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        s.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        fail(path, ": bad merge entry ", m.dump());
      }
    }
  }
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const json& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content")) fail(path, ": bad added_tokens entry");
      s.added.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false)});
    }
  }
  // SentencePiece-style (Llama) tokenizers mark word starts with '▁' and fall back to bytes;
  // GPT-2-style ones map bytes to printable characters (ByteLevel).
  s.spm_style = model.value("byte_fallback", false) || json_contains_type(tj["pre_tokenizer"], "Metaspace") ||
                json_contains_type(tj["decoder"], "Metaspace") || json_contains_type(tj["decoder"], "ByteFallback");
  if (model.contains("unk_token") && model["unk_token"].is_string()) s.unk_text = model["unk_token"].get<std::string>();
  if (tj.contains("post_processor")) s.post_processor = tj["post_processor"];
}

// The "slow" GPT-2 files: vocab.json + merges.txt, added tokens from tokenizer_config.json.
void read_slow_files(const std::string& dir, const json& tc, SourceVocab& s) {
  const std::string vpath = dir + "/vocab.json";
  json vocab = read_json_file(vpath);
  if (!vocab.is_object()) fail(vpath, ": expected an object of token -> id");
  add_vocab(vocab, vpath, ": id for '", s);
  std::istringstream in(read_text_file(dir + "/merges.txt"));
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first && line.rfind("#version", 0) == 0) {
      first = false;
      continue;
    }
    first = false;
    if (line.empty()) continue;
    if (line.find(' ') == std::string::npos) fail(dir, "/merges.txt: bad merge line '", line, "'");
    s.merges.push_back(line);
  }
  if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object()) {
    for (const auto& [id, a] : tc["added_tokens_decoder"].items()) {
      s.added.push_back({std::stoll(id), token_text(a), a.is_object() && a.value("special", false)});
    }
  }
}

struct RowVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::map<std::string, int64_t> id_of;
};

// One token per embedding row, as llama.cpp requires; holes become "[PAD<id>]" (unused).
RowVocab lay_out_rows(const SourceVocab& s, const std::string& dir, int64_t n_vocab) {
  if (!s.by_id.empty() && s.by_id.rbegin()->first >= n_vocab) {
    fail(dir, ": tokenizer has token id ", s.by_id.rbegin()->first, " ('", s.by_id.rbegin()->second,
         "') but config.json vocab_size is ", n_vocab);
  }
  std::map<int64_t, bool> added_special;
  for (const AddedToken& a : s.added) added_special[a.id] = a.special;
  RowVocab r;
  r.tokens.resize(static_cast<size_t>(n_vocab));
  r.types.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) {
    auto it = s.by_id.find(i);
    if (it == s.by_id.end()) {
      r.tokens[i] = concat("[PAD", i, "]");
      r.types[i] = kUnused;
      continue;
    }
    r.tokens[i] = it->second;
    r.id_of.emplace(it->second, i);
    auto a = added_special.find(i);
    if (s.spm_style && is_byte_token(r.tokens[i])) {
      r.types[i] = kByte;
    } else if (s.spm_style && !s.unk_text.empty() && r.tokens[i] == s.unk_text) {
      r.types[i] = kUnknown;
    } else if (a != added_special.end()) {
      r.types[i] = a->second ? kControl : kUserDefined;
    } else {
      r.types[i] = kNormal;
    }
  }
  return r;
}

// Special ids (tokenizer_config.json's token strings first, config.json ids as fallback) and the
// add_bos / add_eos flags.
void write_special_tokens(const json& tc, const SourceVocab& s, const RowVocab& r, const GgufTokenizerOptions& opt,
                          gguf::Writer& w) {
  auto special_id = [&](const char* tc_key, int64_t fallback) -> int64_t {
    if (tc.contains(tc_key)) {
      std::string text = token_text(tc[tc_key]);
      if (!text.empty()) {
        auto it = r.id_of.find(text);
        if (it != r.id_of.end()) return it->second;
      }
    }
    return fallback;
  };
  auto put_id = [&](const char* key, int64_t id) {
    if (id >= 0 && id < opt.n_vocab) w.set(key, Value::u32(static_cast<uint32_t>(id)));
  };
  put_id("tokenizer.ggml.bos_token_id", special_id("bos_token", opt.bos_id));
  put_id("tokenizer.ggml.eos_token_id", special_id("eos_token", opt.eos_id));
  put_id("tokenizer.ggml.unknown_token_id", special_id("unk_token", -1));
  put_id("tokenizer.ggml.padding_token_id", special_id("pad_token", opt.pad_id));

  const json& pp = s.post_processor;
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(tc["add_bos_token"].get<bool>()));
  } else if (pp.is_object() && pp.value("type", "") == "TemplateProcessing" && pp.contains("single") &&
             pp["single"].is_array() && !pp["single"].empty() && pp["single"][0].contains("SpecialToken")) {
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(true));
  }
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) {
    w.set("tokenizer.ggml.add_eos_token", Value::boolean(tc["add_eos_token"].get<bool>()));
  }
}

// chat_template.jinja, else tokenizer_config.json's chat_template (a string or a list of named
// templates, of which "default" is taken).
std::string chat_template(const std::string& dir, const json& tc) {
  std::string tmpl;
  if (regular_file_exists(dir + "/chat_template.jinja")) {
    tmpl = read_text_file(dir + "/chat_template.jinja");
  } else if (tc.contains("chat_template")) {
    const json& t = tc["chat_template"];
    if (t.is_string()) {
      tmpl = t.get<std::string>();
    } else if (t.is_array()) {
      for (const json& e : t) {
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) tmpl = e["template"].get<std::string>();
      }
    }
  }
  return tmpl;
}

}  // namespace

bool write_gguf_tokenizer(const std::string& dir, const GgufTokenizerOptions& opt, gguf::Writer& w) {
  const std::string tj_path = dir + "/tokenizer.json";
  const std::string tc_path = dir + "/tokenizer_config.json";
  const bool has_tj = regular_file_exists(tj_path);
  const bool has_slow = regular_file_exists(dir + "/vocab.json") && regular_file_exists(dir + "/merges.txt");
  if (!has_tj && !has_slow) return false;
  json tc = regular_file_exists(tc_path) ? read_json_file(tc_path) : json::object();
  if (!tc.is_object()) fail(tc_path, ": expected a JSON object");

  SourceVocab s;
  if (has_tj) {
    read_tokenizer_json(tj_path, s);
  } else {
    read_slow_files(dir, tc, s);
  }
  for (const AddedToken& a : s.added) s.by_id[a.id] = a.content;
  const RowVocab r = lay_out_rows(s, dir, opt.n_vocab);

  w.set("tokenizer.ggml.model", Value::str(s.spm_style ? "llama" : "gpt2"));
  if (!s.spm_style) w.set("tokenizer.ggml.pre", Value::str(opt.pre));
  w.set("tokenizer.ggml.tokens", Value::strings(r.tokens));
  if (s.spm_style) {
    // llama.cpp's SentencePiece tokenizer merges the pair whose result has the highest score.
    // SentencePiece BPE vocabularies are sorted by score, so -id reproduces the merge order.
    std::vector<double> scores(static_cast<size_t>(opt.n_vocab));
    for (int64_t i = 0; i < opt.n_vocab; ++i) scores[i] = r.types[i] == kNormal ? -static_cast<double>(i) : 0.0;
    w.set("tokenizer.ggml.scores", Value::floats(ValueType::FLOAT32, scores));
  }
  w.set("tokenizer.ggml.token_type", Value::ints(ValueType::INT32, r.types));
  if (!s.spm_style) w.set("tokenizer.ggml.merges", Value::strings(s.merges));
  write_special_tokens(tc, s, r, opt, w);
  const std::string tmpl = chat_template(dir, tc);
  if (!tmpl.empty()) w.set("tokenizer.chat_template", Value::str(tmpl));
  return true;
}

}  // namespace kexa
