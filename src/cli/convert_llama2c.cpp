// llama2.c checkpoint (+ tokenizer.bin) -> EXAONE 3.x Hugging Face folder.
//
// The architectures agree (pre-norm RMSNorm, GQA, SwiGLU, RoPE theta 1e4) except for RoPE's pair
// layout: llama2.c rotates (2j, 2j+1) of each head, EXAONE (and HF Llama) rotates (j, j+hd/2).
// Reordering the rows of every head of Wq and Wk as [0,2,4,..,1,3,5,..] turns one into the other:
// after the permutation, rotate-half position j holds old element 2j and position j+hd/2 holds old
// 2j+1, each rotated by the same angle; q.k is unchanged because q and k share the permutation.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/convert.h"
#include "formats/dtype_convert.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

using ojson = nlohmann::ordered_json;

const char* kSpaceMarker = "\xe2\x96\x81";  // U+2581, SentencePiece's word-boundary marker

void write_text(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, ": cannot create: ", std::strerror(errno));
    out << text;
    out.flush();
    if (!out) fail(path, ": write failed: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot rename into place: ", std::strerror(errno));
}

void make_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) fail(dir, ": exists and is not a folder");
    return;
  }
  size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dir(dir.substr(0, slash));  // like mkdir -p
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail(dir, ": cannot create folder: ", std::strerror(errno));
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

// Length in bytes of the UTF-8 sequence starting with byte c (1 for invalid lead bytes, so a
// malformed piece is still split somewhere rather than looping).
size_t utf8_len(unsigned char c) {
  if (c >= 0xf0) return 4;
  if (c >= 0xe0) return 3;
  if (c >= 0xc0) return 2;
  return 1;
}

bool is_byte_piece(const std::string& p) {
  return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::isxdigit(static_cast<unsigned char>(p[3])) &&
         std::isxdigit(static_cast<unsigned char>(p[4]));
}

// tok512.bin -> HF tokenizer.json as transformers' LlamaConverter builds it from a SentencePiece
// BPE model: vocab = pieces ('▁' for spaces, which llama2.c's export had replaced), merges = every
// split of a piece into two vocab pieces, ordered by the score of the merged piece (highest
// first), ties by vocab order; byte fallback; Prepend('▁') + Replace(' ', '▁') normalizer.
ojson build_tokenizer_json(const llama2c::Tokenizer& tok, std::vector<std::string>& pieces_out) {
  const size_t n = tok.pieces.size();
  if (n < 3) fail("llama2.c tokenizer has only ", n, " pieces; expected <unk>, <s>, </s> first");
  std::vector<std::string> pieces(n);
  pieces[0] = "<unk>";
  pieces[1] = "<s>";
  pieces[2] = "</s>";
  for (size_t i = 3; i < n; ++i) pieces[i] = replace_all(tok.pieces[i], " ", kSpaceMarker);
  std::map<std::string, size_t> vocab;
  for (size_t i = 0; i < n; ++i) {
    if (!vocab.emplace(pieces[i], i).second) fail("llama2.c tokenizer: duplicate piece '", pieces[i], "' (id ", i, ")");
  }

  struct Merge {
    size_t left, right;
    float score;
  };
  std::vector<Merge> merges;
  for (size_t id = 3; id < n; ++id) {
    const std::string& p = pieces[id];
    if (is_byte_piece(p)) continue;
    std::vector<Merge> local;
    for (size_t cut = utf8_len(static_cast<unsigned char>(p[0])); cut < p.size();
         cut += utf8_len(static_cast<unsigned char>(p[cut]))) {
      auto l = vocab.find(p.substr(0, cut));
      auto r = vocab.find(p.substr(cut));
      if (l != vocab.end() && r != vocab.end() && l->second >= 3 && r->second >= 3) {
        local.push_back({l->second, r->second, tok.scores[id]});
      }
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });

  ojson vocab_json = ojson::object();
  for (size_t i = 0; i < n; ++i) vocab_json[pieces[i]] = i;
  ojson merges_json = ojson::array();
  for (const Merge& m : merges) merges_json.push_back(ojson::array({pieces[m.left], pieces[m.right]}));

  auto added = [&](size_t id) {
    return ojson{{"id", id},          {"content", pieces[id]}, {"single_word", false}, {"lstrip", false},
                 {"rstrip", false},   {"normalized", false},   {"special", true}};
  };
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = ojson::array({added(0), added(1), added(2)});
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       ojson::array({ojson{{"type", "Prepend"}, {"prepend", kSpaceMarker}},
                     ojson{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceMarker}}})}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", ojson::array({ojson{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                               ojson{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", ojson::array({ojson{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                             ojson{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                             ojson{{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                             ojson{{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", ojson::array({1})}, {"tokens", ojson::array({"<s>"})}}}}}};
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       ojson::array({ojson{{"type", "Replace"}, {"pattern", {{"String", kSpaceMarker}}}, {"content", " "}},
                     ojson{{"type", "ByteFallback"}}, ojson{{"type", "Fuse"}},
                     ojson{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab_json},
                {"merges", merges_json}};
  pieces_out = std::move(pieces);
  return j;
}

}  // namespace

void convert_llama2c_to_hf(const std::string& src, const std::string& dst_dir, const ConvertOptions& opt) {
  auto ck = llama2c::Checkpoint::open(src);
  const llama2c::Config& c = ck->config();
  const DType out = opt.out_type.value_or(DType::F32);
  const int64_t hd = c.head_dim;

  std::optional<llama2c::Tokenizer> tok;
  if (!opt.tokenizer.empty()) tok = llama2c::Tokenizer::load(opt.tokenizer, c.vocab_size);

  make_dir(dst_dir);

  // --- weights ---
  std::vector<safetensors::WriteTensor> ts;
  const std::vector<int64_t> perm = llama2c::rotate_half_row_order(hd);
  auto plain = [&](const std::string& hf_name, const std::string& src_name) {
    const TensorView* t = &ck->at(src_name);
    ts.push_back({hf_name, out, t->shape, [t, out](uint8_t* dst, size_t) {
                    convert_elements(DType::F32, t->data, out, dst, static_cast<size_t>(t->numel()));
                  }});
  };
  auto permuted = [&](const std::string& hf_name, const std::string& src_name) {
    const TensorView* t = &ck->at(src_name);
    ts.push_back({hf_name, out, t->shape, [t, out, hd, perm](uint8_t* dst, size_t) {
                    const int64_t cols = t->cols();
                    const size_t row_in = static_cast<size_t>(cols) * 4;
                    const size_t row_out = dtype_bytes(out, cols);
                    for (int64_t r = 0; r < t->rows(); ++r) {
                      const int64_t head = r / hd, within = r % hd;
                      const int64_t from = head * hd + perm[static_cast<size_t>(within)];
                      convert_elements(DType::F32, t->data + static_cast<size_t>(from) * row_in, out,
                                       dst + static_cast<size_t>(r) * row_out, static_cast<size_t>(cols));
                    }
                  }});
  };
  plain("transformer.wte.weight", "token_embedding");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string s = concat("layers.", l, ".");
    const std::string h = concat("transformer.h.", l, ".");
    plain(h + "ln_1.weight", s + "rms_att");
    permuted(h + "attn.attention.q_proj.weight", s + "wq");
    permuted(h + "attn.attention.k_proj.weight", s + "wk");
    plain(h + "attn.attention.v_proj.weight", s + "wv");
    plain(h + "attn.attention.out_proj.weight", s + "wo");
    plain(h + "ln_2.weight", s + "rms_ffn");
    plain(h + "mlp.c_fc_0.weight", s + "w1");  // gate: silu(w1 x)
    plain(h + "mlp.c_fc_1.weight", s + "w3");  // up
    plain(h + "mlp.c_proj.weight", s + "w2");  // down
  }
  plain("transformer.ln_f.weight", "rms_final");
  if (!c.shared_classifier) plain("lm_head.weight", "wcls");
  safetensors::write(dst_dir + "/model.safetensors", ts, {{"format", "pt"}});

  // --- config.json ---
  const char* torch_dtype = out == DType::F32 ? "float32" : out == DType::F16 ? "float16" : "bfloat16";
  ojson cfg;
  cfg["architectures"] = ojson::array({"ExaoneForCausalLM"});
  cfg["model_type"] = "exaone";
  cfg["vocab_size"] = c.vocab_size;
  cfg["hidden_size"] = c.hidden_size;
  cfg["num_layers"] = c.n_layers;
  cfg["num_attention_heads"] = c.n_heads;
  cfg["num_key_value_heads"] = c.n_kv_heads;
  cfg["head_dim"] = hd;
  cfg["intermediate_size"] = c.intermediate_size;
  cfg["activation_function"] = "silu";
  cfg["layer_norm_epsilon"] = 1e-5;
  cfg["rope_theta"] = 10000.0;
  cfg["rope_scaling"] = nullptr;
  cfg["max_position_embeddings"] = c.seq_len;
  cfg["tie_word_embeddings"] = c.shared_classifier;
  cfg["bos_token_id"] = 1;
  cfg["eos_token_id"] = 2;
  cfg["pad_token_id"] = 0;
  cfg["embed_dropout"] = 0.0;
  cfg["attention_dropout"] = 0.0;
  cfg["use_cache"] = true;
  cfg["torch_dtype"] = torch_dtype;
  write_text(dst_dir + "/config.json", cfg.dump(2) + "\n");

  // --- tokenizer ---
  if (tok) {
    std::vector<std::string> pieces;
    ojson tj = build_tokenizer_json(*tok, pieces);
    write_text(dst_dir + "/tokenizer.json", tj.dump(2) + "\n");
    ojson tc;
    tc["add_bos_token"] = true;
    tc["add_eos_token"] = false;
    tc["bos_token"] = "<s>";
    tc["eos_token"] = "</s>";
    tc["unk_token"] = "<unk>";
    tc["pad_token"] = nullptr;
    tc["clean_up_tokenization_spaces"] = false;
    tc["legacy"] = true;
    tc["model_max_length"] = c.seq_len;
    tc["tokenizer_class"] = "LlamaTokenizerFast";
    tc["chat_template"] = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}";
    write_text(dst_dir + "/tokenizer_config.json", tc.dump(2) + "\n");
    ojson sm = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}};
    write_text(dst_dir + "/special_tokens_map.json", sm.dump(2) + "\n");
  }
}

}  // namespace kexa::cli
