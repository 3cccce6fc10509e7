// Hugging Face folder -> GGUF with llama.cpp's architecture names, metadata keys and tensor names
// (llama.cpp's convert_hf_to_gguf.py classes ExaoneModel / Exaone4Model), so llama.cpp loads it.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/convert.h"
#include "formats/dtype_convert.h"
#include "formats/gguf.h"
#include "formats/hf_checkpoint.h"
#include "model/config.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

using nlohmann::json;
using gguf::Value;
using gguf::ValueType;

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json read_json(const std::string& path) {
  try {
    return json::parse(read_text(path));
  } catch (const json::exception& e) {
    fail(path, ": bad JSON: ", e.what());
  }
}

// llama.cpp's GGUF architecture name for a model_type.
std::string gguf_arch(Arch a) {
  switch (a) {
    case Arch::Exaone: return "exaone";
    case Arch::Exaone4: return "exaone4";
    case Arch::ExaoneMoe: return "exaone-moe";
  }
  return "";
}

// llama.cpp's LLAMA_FTYPE values for the dominant weight type.
uint32_t file_type_of(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::BF16: return 32;
    default: return 0;
  }
}

// llama3 rope scaling as llama.cpp's converter bakes it: one divisor per frequency pair, computed
// in float32 like its torch code (freqs = 1 / base ** (arange(0, dim, 2) / dim)).
std::vector<double> llama3_rope_divisors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const int64_t dim = c.head_dim;
  const float base = static_cast<float>(c.rope_theta);
  const float factor = static_cast<float>(s.factor);
  const float lo = static_cast<float>(s.low_freq_factor), hi = static_cast<float>(s.high_freq_factor);
  const float old_ctx = static_cast<float>(s.original_max_position);
  const float low_wl = old_ctx / lo, high_wl = old_ctx / hi;
  if (low_wl == high_wl) fail("rope_scaling llama3: low_freq_factor equals high_freq_factor");
  std::vector<double> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const float e = static_cast<float>(i) / static_cast<float>(dim);
    const float freq = 1.0f / std::pow(base, e);
    const float wavelen = 2.0f * static_cast<float>(M_PI) / freq;
    if (wavelen < high_wl) {
      out.push_back(1.0);
    } else if (wavelen > low_wl) {
      out.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Tokenizer -> tokenizer.ggml.* (llama.cpp's Vocab / SpecialVocab conventions)

enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
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

void add_tokenizer(gguf::Writer& w, const std::string& dir, const ModelConfig& cfg, const json& config) {
  const std::string tj_path = dir + "/tokenizer.json";
  const std::string tc_path = dir + "/tokenizer_config.json";
  const bool has_tj = file_exists(tj_path);
  const bool has_slow = file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt");
  if (!has_tj && !has_slow) {
    std::fprintf(stderr, "kexa convert: %s has no tokenizer.json or vocab.json+merges.txt; GGUF without a tokenizer\n",
                 dir.c_str());
    return;
  }
  json tc = file_exists(tc_path) ? read_json(tc_path) : json::object();
  if (!tc.is_object()) fail(tc_path, ": expected a JSON object");

  std::map<int64_t, std::string> by_id;
  std::vector<AddedToken> added;
  std::vector<std::string> merges;
  bool spm_style = false;
  std::string unk_text;
  json post_processor;

  auto add_merge = [&](const json& m, const std::string& origin) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      fail(origin, ": bad merge entry ", m.dump());
    }
  };

  if (has_tj) {
    json tj = read_json(tj_path);
    const json& model = tj.contains("model") ? tj["model"] : json();
    if (!model.is_object() || model.value("type", "") != "BPE") {
      fail(tj_path, ": tokenizer model type '", model.is_object() ? model.value("type", "?") : "?",
           "' is not supported (kexa converts BPE tokenizers)");
    }
    if (!model.contains("vocab") || !model["vocab"].is_object()) fail(tj_path, ": model.vocab is missing");
    for (const auto& [piece, id] : model["vocab"].items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) fail(tj_path, ": vocab id for '", piece, "' is not a valid id");
      by_id[id.get<int64_t>()] = piece;
    }
    if (model.contains("merges") && model["merges"].is_array()) {
      for (const json& m : model["merges"]) add_merge(m, tj_path);
    }
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
      for (const json& a : tj["added_tokens"]) {
        if (!a.is_object() || !a.contains("id") || !a.contains("content")) fail(tj_path, ": bad added_tokens entry");
        added.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false)});
      }
    }
    // SentencePiece-style (Llama) tokenizers mark word starts with '▁' and fall back to bytes;
    // GPT-2-style ones map bytes to printable characters (ByteLevel).
    spm_style = model.value("byte_fallback", false) || json_contains_type(tj["pre_tokenizer"], "Metaspace") ||
                json_contains_type(tj["decoder"], "Metaspace") || json_contains_type(tj["decoder"], "ByteFallback");
    if (model.contains("unk_token") && model["unk_token"].is_string()) unk_text = model["unk_token"].get<std::string>();
    if (tj.contains("post_processor")) post_processor = tj["post_processor"];
  } else {
    const std::string vpath = dir + "/vocab.json";
    json vocab = read_json(vpath);
    if (!vocab.is_object()) fail(vpath, ": expected an object of token -> id");
    for (const auto& [piece, id] : vocab.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) fail(vpath, ": id for '", piece, "' is not a valid id");
      by_id[id.get<int64_t>()] = piece;
    }
    std::istringstream in(read_text(dir + "/merges.txt"));
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
      merges.push_back(line);
    }
    if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object()) {
      for (const auto& [id, a] : tc["added_tokens_decoder"].items()) {
        added.push_back({std::stoll(id), token_text(a), a.is_object() && a.value("special", false)});
      }
    }
  }
  for (const AddedToken& a : added) by_id[a.id] = a.content;

  // One token per embedding row, as llama.cpp requires; holes become "[PAD<id>]" (unused).
  const int64_t n_vocab = cfg.vocab_size;
  if (!by_id.empty() && by_id.rbegin()->first >= n_vocab) {
    fail(dir, ": tokenizer has token id ", by_id.rbegin()->first, " ('", by_id.rbegin()->second,
         "') but config.json vocab_size is ", n_vocab);
  }
  std::map<int64_t, bool> added_special;
  for (const AddedToken& a : added) added_special[a.id] = a.special;
  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int64_t> types(static_cast<size_t>(n_vocab));
  std::vector<double> scores;
  std::map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < n_vocab; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens[i] = concat("[PAD", i, "]");
      types[i] = kUnused;
      continue;
    }
    tokens[i] = it->second;
    id_of.emplace(it->second, i);
    auto a = added_special.find(i);
    if (spm_style && is_byte_token(tokens[i])) {
      types[i] = kByte;
    } else if (spm_style && !unk_text.empty() && tokens[i] == unk_text) {
      types[i] = kUnknown;
    } else if (a != added_special.end()) {
      types[i] = a->second ? kControl : kUserDefined;
    } else {
      types[i] = kNormal;
    }
  }

  w.set("tokenizer.ggml.model", Value::str(spm_style ? "llama" : "gpt2"));
  if (!spm_style) {
    // llama.cpp picks the pre-tokenizer regex by this name.
    const char* pre = cfg.arch == Arch::Exaone ? "exaone" : cfg.arch == Arch::Exaone4 ? "exaone4" : "exaone-moe";
    w.set("tokenizer.ggml.pre", Value::str(pre));
  }
  w.set("tokenizer.ggml.tokens", Value::strings(tokens));
  if (spm_style) {
    // llama.cpp's SentencePiece tokenizer merges the pair whose result has the highest score.
    // SentencePiece BPE vocabularies are sorted by score, so -id reproduces the merge order.
    scores.resize(static_cast<size_t>(n_vocab));
    for (int64_t i = 0; i < n_vocab; ++i) scores[i] = types[i] == kNormal ? -static_cast<double>(i) : 0.0;
    w.set("tokenizer.ggml.scores", Value::floats(ValueType::FLOAT32, scores));
  }
  w.set("tokenizer.ggml.token_type", Value::ints(ValueType::INT32, types));
  if (!spm_style) w.set("tokenizer.ggml.merges", Value::strings(merges));

  // Special ids: tokenizer_config.json's token strings first, config.json ids as fallback.
  auto special_id = [&](const char* tc_key, const char* cfg_key) -> int64_t {
    if (tc.contains(tc_key)) {
      std::string text = token_text(tc[tc_key]);
      if (!text.empty()) {
        auto it = id_of.find(text);
        if (it != id_of.end()) return it->second;
      }
    }
    if (cfg_key != nullptr && config.contains(cfg_key)) {
      const json& v = config[cfg_key];
      if (v.is_number_integer()) return v.get<int64_t>();
      if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    }
    return -1;
  };
  const int64_t bos = special_id("bos_token", "bos_token_id");
  const int64_t eos = special_id("eos_token", "eos_token_id");
  const int64_t unk = special_id("unk_token", nullptr);
  const int64_t pad = special_id("pad_token", "pad_token_id");
  auto put_id = [&](const char* key, int64_t id) {
    if (id >= 0 && id < n_vocab) w.set(key, Value::u32(static_cast<uint32_t>(id)));
  };
  put_id("tokenizer.ggml.bos_token_id", bos);
  put_id("tokenizer.ggml.eos_token_id", eos);
  put_id("tokenizer.ggml.unknown_token_id", unk);
  put_id("tokenizer.ggml.padding_token_id", pad);

  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(tc["add_bos_token"].get<bool>()));
  } else if (post_processor.is_object() && post_processor.value("type", "") == "TemplateProcessing" &&
             post_processor.contains("single") && post_processor["single"].is_array() &&
             !post_processor["single"].empty() && post_processor["single"][0].contains("SpecialToken")) {
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(true));
  }
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) {
    w.set("tokenizer.ggml.add_eos_token", Value::boolean(tc["add_eos_token"].get<bool>()));
  }

  std::string tmpl;
  if (file_exists(dir + "/chat_template.jinja")) {
    tmpl = read_text(dir + "/chat_template.jinja");
  } else if (tc.contains("chat_template")) {
    const json& t = tc["chat_template"];
    if (t.is_string()) {
      tmpl = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const json& e : t) {
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) tmpl = e["template"].get<std::string>();
      }
    }
  }
  if (!tmpl.empty()) w.set("tokenizer.chat_template", Value::str(tmpl));
}

// ------------------------------------------------------------------------------------------------
// Tensors

struct Planned {
  std::string hf;    // source name
  std::string gguf;  // destination name
  std::vector<int64_t> shape;
  bool optional = false;
  // Experts stacked into one [E, rows, cols] tensor: `hf` is a pattern with "{E}" for the index.
  int64_t stack = 0;
  bool force_f32 = false;  // llama.cpp keeps the MoE router in F32
  std::string alt = {};    // another name the same tensor may have (transformers 5 naming)
  // transformers 5 fuses each MoE layer's experts: `fused` [E, fused_rows, cols] holds this
  // tensor's rows [fused_row0, fused_row0 + rows) of every expert.
  std::string fused = {};
  int64_t fused_rows = 0, fused_row0 = 0;
};

std::string expert_name(const std::string& pattern, int64_t e) {
  std::string s = pattern;
  s.replace(s.find("{E}"), 3, std::to_string(e));
  return s;
}

// K-EXAONE: pre-norm with QK-norm; layer 0 dense, the rest MoE; MTP blocks appended after the
// main layers as llama.cpp's converter renames them (mtp.layers.k -> blk.(L+k), mtp.fc -> eh_proj).
void plan_exaone_moe(const ModelConfig& c, int64_t n_mtp, std::vector<Planned>& p) {
  const int64_t H = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim, hd = c.head_dim;
  const int64_t E = c.n_experts, Im = c.moe_intermediate_size, Is = c.moe_intermediate_size * c.n_shared_experts;
  p.push_back({"model.embed_tokens.weight", "token_embd.weight", {V, H}});
  auto attn = [&](const std::string& s, const std::string& b) {
    p.push_back({s + "input_layernorm.weight", b + "attn_norm.weight", {H}});
    p.push_back({s + "self_attn.q_proj.weight", b + "attn_q.weight", {q, H}});
    p.push_back({s + "self_attn.k_proj.weight", b + "attn_k.weight", {kv, H}});
    p.push_back({s + "self_attn.v_proj.weight", b + "attn_v.weight", {kv, H}});
    p.push_back({s + "self_attn.o_proj.weight", b + "attn_output.weight", {H, q}});
    p.push_back({s + "self_attn.q_norm.weight", b + "attn_q_norm.weight", {hd}});
    p.push_back({s + "self_attn.k_norm.weight", b + "attn_k_norm.weight", {hd}});
    p.push_back({s + "post_attention_layernorm.weight", b + "ffn_norm.weight", {H}});
  };
  auto dense = [&](const std::string& s, const std::string& b) {
    p.push_back({s + "mlp.gate_proj.weight", b + "ffn_gate.weight", {I, H}});
    p.push_back({s + "mlp.up_proj.weight", b + "ffn_up.weight", {I, H}});
    p.push_back({s + "mlp.down_proj.weight", b + "ffn_down.weight", {H, I}});
  };
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string s = concat("model.layers.", l, "."), b = concat("blk.", l, ".");
    attn(s, b);
    if (!c.layers[static_cast<size_t>(l)].moe) {
      dense(s, b);
      continue;
    }
    Planned router{s + "mlp.gate.weight", b + "ffn_gate_inp.weight", {E, H}};
    router.force_f32 = true;
    p.push_back(router);
    Planned bias{s + "mlp.e_score_correction_bias", b + "exp_probs_b.bias", {E}};
    bias.optional = true;
    bias.alt = s + "mlp.gate.e_score_correction_bias";
    p.push_back(bias);
    for (const char* w : {"gate", "up", "down"}) {
      const bool down = std::string(w) == "down";
      Planned x{concat(s, "mlp.experts.{E}.", w, "_proj.weight"), concat(b, "ffn_", w, "_exps.weight"),
                down ? std::vector<int64_t>{E, H, Im} : std::vector<int64_t>{E, Im, H}};
      x.stack = E;
      x.fused = s + (down ? "mlp.experts.down_proj" : "mlp.experts.gate_up_proj");
      x.fused_rows = down ? H : 2 * Im;
      x.fused_row0 = std::string(w) == "up" ? Im : 0;
      p.push_back(x);
    }
    p.push_back({s + "mlp.shared_experts.gate_proj.weight", b + "ffn_gate_shexp.weight", {Is, H}});
    p.push_back({s + "mlp.shared_experts.up_proj.weight", b + "ffn_up_shexp.weight", {Is, H}});
    p.push_back({s + "mlp.shared_experts.down_proj.weight", b + "ffn_down_shexp.weight", {H, Is}});
  }
  p.push_back({"model.norm.weight", "output_norm.weight", {H}});
  p.push_back({"lm_head.weight", "output.weight", {V, H}});
  for (int64_t k = 0; k < n_mtp; ++k) {
    const std::string s = concat("mtp.layers.", k, "."), b = concat("blk.", c.n_layers + k, ".");
    attn(s, b);
    dense(s, b);
    // The fc and its norms are shared by every MTP block; llama.cpp stores a copy per block.
    p.push_back({"mtp.fc.weight", b + "nextn.eh_proj.weight", {H, 2 * H}});
    p.push_back({"mtp.pre_fc_norm_embedding.weight", b + "nextn.enorm.weight", {H}});
    p.push_back({"mtp.pre_fc_norm_hidden.weight", b + "nextn.hnorm.weight", {H}});
    p.push_back({"mtp.norm.weight", b + "nextn.shared_head_norm.weight", {H}});
  }
}

std::vector<Planned> plan_tensors(const ModelConfig& c, int64_t n_mtp) {
  const int64_t H = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim, hd = c.head_dim;
  std::vector<Planned> p;
  if (c.arch == Arch::Exaone) {
    p.push_back({"transformer.wte.weight", "token_embd.weight", {V, H}});
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string s = concat("transformer.h.", l, "."), b = concat("blk.", l, ".");
      p.push_back({s + "ln_1.weight", b + "attn_norm.weight", {H}});
      p.push_back({s + "attn.attention.q_proj.weight", b + "attn_q.weight", {q, H}});
      p.push_back({s + "attn.attention.k_proj.weight", b + "attn_k.weight", {kv, H}});
      p.push_back({s + "attn.attention.v_proj.weight", b + "attn_v.weight", {kv, H}});
      p.push_back({s + "attn.attention.out_proj.weight", b + "attn_output.weight", {H, q}});
      p.push_back({s + "ln_2.weight", b + "ffn_norm.weight", {H}});
      p.push_back({s + "mlp.c_fc_0.weight", b + "ffn_gate.weight", {I, H}});
      p.push_back({s + "mlp.c_fc_1.weight", b + "ffn_up.weight", {I, H}});
      p.push_back({s + "mlp.c_proj.weight", b + "ffn_down.weight", {H, I}});
    }
    p.push_back({"transformer.ln_f.weight", "output_norm.weight", {H}});
  } else if (c.arch == Arch::Exaone4) {
    p.push_back({"model.embed_tokens.weight", "token_embd.weight", {V, H}});
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string s = concat("model.layers.", l, "."), b = concat("blk.", l, ".");
      p.push_back({s + "self_attn.q_proj.weight", b + "attn_q.weight", {q, H}});
      p.push_back({s + "self_attn.k_proj.weight", b + "attn_k.weight", {kv, H}});
      p.push_back({s + "self_attn.v_proj.weight", b + "attn_v.weight", {kv, H}});
      p.push_back({s + "self_attn.o_proj.weight", b + "attn_output.weight", {H, q}});
      p.push_back({s + "self_attn.q_norm.weight", b + "attn_q_norm.weight", {hd}});
      p.push_back({s + "self_attn.k_norm.weight", b + "attn_k_norm.weight", {hd}});
      p.push_back({s + "post_attention_layernorm.weight", b + "post_attention_norm.weight", {H}});
      p.push_back({s + "mlp.gate_proj.weight", b + "ffn_gate.weight", {I, H}});
      p.push_back({s + "mlp.up_proj.weight", b + "ffn_up.weight", {I, H}});
      p.push_back({s + "mlp.down_proj.weight", b + "ffn_down.weight", {H, I}});
      p.push_back({s + "post_feedforward_layernorm.weight", b + "post_ffw_norm.weight", {H}});
    }
    p.push_back({"model.norm.weight", "output_norm.weight", {H}});
  } else {
    plan_exaone_moe(c, n_mtp, p);
    return p;
  }
  p.push_back({"lm_head.weight", "output.weight", {V, H}, true});
  return p;
}

}  // namespace

void convert_hf_to_gguf(const std::string& src_dir, const std::string& dst, const ConvertOptions& opt) {
  auto ck = HFCheckpoint::open(src_dir);
  const std::string cfg_path = ck->dir() + "/config.json";
  const ModelConfig cfg = ModelConfig::from_hf_json(ck->config(), cfg_path);
  const json& raw = ck->config();
  const std::string arch = gguf_arch(cfg.arch);

  // --- tensors: every expected one present with the right shape, nothing left over ---
  // MTP blocks are converted when the checkpoint carries them (a config may announce them for a
  // checkpoint that was saved without).
  const int64_t n_mtp = cfg.arch == Arch::ExaoneMoe && ck->find("mtp.fc.weight") != nullptr
                            ? std::max<int64_t>(cfg.n_mtp_layers, 1)
                            : 0;
  std::vector<Planned> plan = plan_tensors(cfg, n_mtp);
  std::set<std::string> used;
  struct Job {
    std::string name;
    std::vector<const TensorView*> srcs;  // one, or one per stacked expert
    std::vector<int64_t> shape;
    DType out;
  };
  std::vector<Job> jobs;
  std::vector<std::unique_ptr<TensorView>> slices;  // row slices of fused expert tensors
  auto shape_str = [](const std::vector<int64_t>& shape) {
    TensorView v;
    v.shape = shape;
    return v.shape_string();
  };
  auto lookup = [&](const std::string& name, const std::vector<int64_t>& shape) -> const TensorView* {
    const TensorView* t = ck->find(name);
    if (t == nullptr) fail(ck->dir(), ": missing tensor '", name, "' (", cfg.model_type, " with ", cfg.n_layers, " layers)");
    if (t->shape != shape) {
      fail(ck->file_of(name), ": tensor '", name, "' has shape ", t->shape_string(), ", config.json implies ",
           shape_str(shape));
    }
    used.insert(name);
    return t;
  };
  for (const Planned& p : plan) {
    Job job{p.gguf, {}, p.shape, DType::F32};
    if (p.stack > 0 && !p.fused.empty() && ck->find(p.fused) != nullptr) {
      const int64_t rows = p.shape[1], cols = p.shape[2];
      const TensorView* f = lookup(p.fused, {p.stack, p.fused_rows, cols});
      const size_t row_bytes = dtype_bytes(f->dtype, cols);
      for (int64_t e = 0; e < p.stack; ++e) {
        auto v = std::make_unique<TensorView>();
        v->name = concat(p.fused, "[", e, "]");
        v->dtype = f->dtype;
        v->shape = {rows, cols};
        v->data = f->data + row_bytes * static_cast<size_t>(e * p.fused_rows + p.fused_row0);
        v->nbytes = row_bytes * static_cast<size_t>(rows);
        job.srcs.push_back(v.get());
        slices.push_back(std::move(v));
      }
    } else if (p.stack > 0) {
      const std::vector<int64_t> one(p.shape.begin() + 1, p.shape.end());
      for (int64_t e = 0; e < p.stack; ++e) job.srcs.push_back(lookup(expert_name(p.hf, e), one));
    } else {
      std::string hf = p.hf;
      if (ck->find(hf) == nullptr && !p.alt.empty() && ck->find(p.alt) != nullptr) hf = p.alt;
      if (p.optional && ck->find(hf) == nullptr) continue;
      job.srcs.push_back(lookup(hf, p.shape));
    }
    // llama.cpp keeps 1-D tensors (norm weights, biases) and the router in F32.
    const DType src_type = job.srcs.front()->dtype;
    job.out = p.shape.size() == 1 || p.force_f32 ? DType::F32 : opt.out_type.value_or(src_type);
    jobs.push_back(std::move(job));
  }
  for (const std::string& n : ck->names()) {
    if (!used.count(n)) fail(ck->file_of(n), ": unexpected tensor '", n, "' for model_type ", cfg.model_type);
  }
  if (cfg.tie_word_embeddings && ck->find("lm_head.weight") != nullptr) {
    std::fprintf(stderr, "kexa convert: note: tie_word_embeddings is set but lm_head.weight exists; writing output.weight\n");
  }

  // --- metadata, in llama.cpp's order ---
  gguf::Writer w;
  w.set("general.architecture", Value::str(arch));
  w.set("general.type", Value::str("model"));
  std::string name = opt.name;
  if (name.empty()) {
    std::string d = ck->dir();
    size_t slash = d.find_last_of('/');
    name = slash == std::string::npos ? d : d.substr(slash + 1);
  }
  w.set("general.name", Value::str(name));
  w.set(arch + ".block_count", Value::u32(static_cast<uint32_t>(cfg.n_layers)));
  if (cfg.max_position > 0) w.set(arch + ".context_length", Value::u32(static_cast<uint32_t>(cfg.max_position)));
  w.set(arch + ".embedding_length", Value::u32(static_cast<uint32_t>(cfg.hidden_size)));
  w.set(arch + ".feed_forward_length", Value::u32(static_cast<uint32_t>(cfg.intermediate_size)));
  w.set(arch + ".attention.head_count", Value::u32(static_cast<uint32_t>(cfg.n_heads)));
  w.set(arch + ".attention.head_count_kv", Value::u32(static_cast<uint32_t>(cfg.n_kv_heads)));
  w.set(arch + ".rope.freq_base", Value::f32(static_cast<float>(cfg.rope_theta)));
  w.set(arch + ".attention.layer_norm_rms_epsilon", Value::f32(static_cast<float>(cfg.norm_eps)));
  w.set(arch + ".attention.key_length", Value::u32(static_cast<uint32_t>(cfg.head_dim)));
  w.set(arch + ".attention.value_length", Value::u32(static_cast<uint32_t>(cfg.head_dim)));
  const DType dominant = jobs.empty() ? DType::F32 : jobs.front().out;
  w.set("general.file_type", Value::u32(file_type_of(dominant)));
  if (cfg.arch == Arch::Exaone) {
    w.set(arch + ".rope.dimension_count", Value::u32(static_cast<uint32_t>(cfg.head_dim)));
  }
  if (cfg.arch == Arch::Exaone4) {
    w.set(arch + ".vocab_size", Value::u32(static_cast<uint32_t>(cfg.vocab_size)));
    // Written whenever the model has a window (as llama.cpp's converter does for a non-null
    // sliding_window), from kexa's per-layer plan so layer_types / pattern rules live in one place.
    const json* sw = raw.contains("sliding_window") ? &raw["sliding_window"] : nullptr;
    int64_t window = 0;
    for (const LayerPlan& l : cfg.layers) window = std::max(window, l.window);
    if (window == 0 && sw != nullptr && sw->is_number_integer()) window = sw->get<int64_t>();
    if (window > 0) {
      w.set(arch + ".attention.sliding_window", Value::u32(static_cast<uint32_t>(window)));
      std::vector<int64_t> pattern;
      for (const LayerPlan& l : cfg.layers) pattern.push_back(l.window > 0 ? 1 : 0);
      w.set(arch + ".attention.sliding_window_pattern", Value::ints(ValueType::BOOL, pattern));
    }
  }
  if (cfg.arch == Arch::ExaoneMoe) {
    // llama.cpp's ExaoneMoEModel: block_count includes the MTP blocks; keys as its converter writes.
    w.set(arch + ".block_count", Value::u32(static_cast<uint32_t>(cfg.n_layers + n_mtp)));
    w.set(arch + ".vocab_size", Value::u32(static_cast<uint32_t>(cfg.vocab_size)));
    int64_t window = 0;
    for (const LayerPlan& l : cfg.layers) window = std::max(window, l.window);
    w.set(arch + ".attention.sliding_window", Value::u32(static_cast<uint32_t>(window)));
    std::vector<int64_t> pattern;
    for (const LayerPlan& l : cfg.layers) pattern.push_back(l.window > 0 ? 1 : 0);
    w.set(arch + ".attention.sliding_window_pattern", Value::ints(ValueType::BOOL, pattern));
    w.set(arch + ".expert_count", Value::u32(static_cast<uint32_t>(cfg.n_experts)));
    w.set(arch + ".expert_used_count", Value::u32(static_cast<uint32_t>(cfg.n_experts_used)));
    w.set(arch + ".expert_group_count", Value::u32(static_cast<uint32_t>(cfg.n_group)));
    w.set(arch + ".expert_group_used_count", Value::u32(static_cast<uint32_t>(cfg.topk_group)));
    w.set(arch + ".expert_gating_func", Value::u32(2));  // sigmoid (K-EXAONE's only router)
    w.set(arch + ".expert_feed_forward_length", Value::u32(static_cast<uint32_t>(cfg.moe_intermediate_size)));
    w.set(arch + ".expert_shared_count", Value::u32(static_cast<uint32_t>(cfg.n_shared_experts)));
    w.set(arch + ".expert_shared_feed_forward_length",
          Value::u32(static_cast<uint32_t>(cfg.moe_intermediate_size * cfg.n_shared_experts)));
    w.set(arch + ".expert_weights_scale", Value::f32(static_cast<float>(cfg.routed_scaling_factor)));
    w.set(arch + ".expert_weights_norm", Value::boolean(cfg.norm_topk_prob));
    int64_t lead = 0;
    while (lead < cfg.n_layers && !cfg.layers[static_cast<size_t>(lead)].moe) ++lead;
    for (int64_t l = lead; l < cfg.n_layers; ++l) {
      if (!cfg.layers[static_cast<size_t>(l)].moe) {
        fail(cfg_path, ": layer ", l, " is dense after MoE layers; llama.cpp's exaone-moe only supports leading dense layers");
      }
    }
    w.set(arch + ".leading_dense_block_count", Value::u32(static_cast<uint32_t>(lead)));
    w.set(arch + ".nextn_predict_layers", Value::u32(static_cast<uint32_t>(n_mtp)));
    w.set(arch + ".rope.scaling.type", Value::str("none"));
  }
  w.set("general.quantization_version", Value::u32(2));
  try {
    add_tokenizer(w, ck->dir(), cfg, raw);
  } catch (const json::exception& e) {
    fail(ck->dir(), ": malformed tokenizer files: ", e.what());
  } catch (const std::logic_error& e) {  // std::stoll on a non-numeric added_tokens_decoder key
    fail(ck->dir(), ": malformed tokenizer files: ", e.what());
  }

  // --- tensor data ---
  if (cfg.rope_scaling.type == RopeScaling::Type::Llama3) {
    std::vector<double> div = llama3_rope_divisors(cfg);
    w.add_tensor("rope_freqs.weight", DType::F32, {static_cast<int64_t>(div.size())},
                 [div](uint8_t* out, size_t) {
                   for (size_t i = 0; i < div.size(); ++i) {
                     float f = static_cast<float>(div[i]);
                     std::memcpy(out + 4 * i, &f, 4);
                   }
                 });
  }
  for (const Job& j : jobs) {
    const std::vector<const TensorView*> srcs = j.srcs;
    const DType out = j.out;
    w.add_tensor(j.name, out, j.shape, [srcs, out](uint8_t* dst, size_t) {
      for (const TensorView* t : srcs) {
        const size_t n = static_cast<size_t>(t->numel());
        convert_elements(t->dtype, t->data, out, dst, n);
        dst += dtype_bytes(out, static_cast<int64_t>(n));
      }
    });
  }
  w.write(dst);
}

}  // namespace kexa::cli
