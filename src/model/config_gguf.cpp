// ModelConfig <-> GGUF metadata: the reader (from_gguf) and the writer (write_gguf_metadata) side
// by side, every key named once below.
#include <algorithm>
#include <cmath>

#include "formats/gguf.h"
#include "model/config.h"
#include "model/config_detail.h"
#include "util/error.h"

namespace kexa {

namespace {

using namespace config_detail;
using gguf::Value;
using gguf::ValueType;

// <arch>.* key suffixes (llama.cpp's LLM_KV names).
namespace key {
constexpr const char* kBlockCount = "block_count";
constexpr const char* kContextLength = "context_length";
constexpr const char* kEmbeddingLength = "embedding_length";
constexpr const char* kFeedForwardLength = "feed_forward_length";
constexpr const char* kHeadCount = "attention.head_count";
constexpr const char* kHeadCountKv = "attention.head_count_kv";
constexpr const char* kRopeFreqBase = "rope.freq_base";
constexpr const char* kRmsEps = "attention.layer_norm_rms_epsilon";
constexpr const char* kNormEps = "attention.layer_norm_epsilon";
constexpr const char* kKeyLength = "attention.key_length";
constexpr const char* kValueLength = "attention.value_length";
constexpr const char* kRopeDimensionCount = "rope.dimension_count";
constexpr const char* kRopeScalingType = "rope.scaling.type";
constexpr const char* kVocabSize = "vocab_size";
constexpr const char* kSlidingWindow = "attention.sliding_window";
constexpr const char* kSlidingWindowPattern = "attention.sliding_window_pattern";
constexpr const char* kExpertCount = "expert_count";
constexpr const char* kExpertUsedCount = "expert_used_count";
constexpr const char* kExpertGroupCount = "expert_group_count";
constexpr const char* kExpertGroupUsedCount = "expert_group_used_count";
constexpr const char* kExpertGatingFunc = "expert_gating_func";
constexpr const char* kExpertFeedForwardLength = "expert_feed_forward_length";
constexpr const char* kExpertSharedCount = "expert_shared_count";
constexpr const char* kExpertSharedFeedForwardLength = "expert_shared_feed_forward_length";
constexpr const char* kExpertWeightsScale = "expert_weights_scale";
constexpr const char* kExpertWeightsNorm = "expert_weights_norm";
constexpr const char* kLeadingDenseBlockCount = "leading_dense_block_count";
constexpr const char* kNextnPredictLayers = "nextn_predict_layers";
}  // namespace key

// llama.cpp's enum: 1 softmax, 2 sigmoid. K-EXAONE's router is sigmoid only.
constexpr int64_t kSigmoidGating = 2;

// One row per architecture: llama.cpp's name and the block layout it implies.
struct ArchRow {
  Arch arch;
  const char* gguf_name;
  const char* model_type;
  NormPlacement norm;
  bool qk_norm;
  int64_t default_window;  // llama.cpp's window when the file has no sliding_window key
};

constexpr ArchRow kArchs[] = {
    {Arch::Exaone, "exaone", "exaone", NormPlacement::Pre, false, 0},
    {Arch::Exaone4, "exaone4", "exaone4", NormPlacement::Post, true, 0},
    {Arch::ExaoneMoe, "exaone-moe", "exaone_moe", NormPlacement::Pre, true, 128},
};

class GgufReader {
 public:
  GgufReader(const gguf::File& f, std::string arch) : f_(f), arch_(std::move(arch)) {}

  std::string key(std::string_view suffix) const { return arch_ + "." + std::string(suffix); }
  const gguf::Value* get(std::string_view suffix) const { return f_.get(key(suffix)); }

  int64_t integer(std::string_view suffix) const {
    const gguf::Value* v = get(suffix);
    if (v == nullptr) fail(f_.path(), ": GGUF metadata lacks required key ", key(suffix));
    return scalar_or_uniform(*v, suffix);
  }
  int64_t integer_or(std::string_view suffix, int64_t fallback) const {
    const gguf::Value* v = get(suffix);
    return v == nullptr ? fallback : scalar_or_uniform(*v, suffix);
  }
  double number_or(std::string_view suffix, double fallback) const {
    const gguf::Value* v = get(suffix);
    return v == nullptr ? fallback : v->as_float(key(suffix));
  }
  // llama.cpp allows per-layer arrays for some counts; kexa needs them uniform.
  int64_t scalar_or_uniform(const gguf::Value& v, std::string_view suffix) const {
    if (!v.is_array()) return v.as_int(key(suffix));
    const std::vector<int64_t>& a = v.as_ints(key(suffix));
    if (a.empty()) fail(f_.path(), ": GGUF key ", key(suffix), " is an empty array");
    for (int64_t x : a) {
      if (x != a[0]) fail(f_.path(), ": GGUF key ", key(suffix), " varies per layer; kexa needs one value");
    }
    return a[0];
  }

 private:
  const gguf::File& f_;
  std::string arch_;
};

class GgufWriter {
 public:
  GgufWriter(gguf::Writer& w, std::string arch) : w_(w), arch_(std::move(arch)) {}
  void u32(const char* suffix, int64_t v) { w_.set(arch_ + "." + suffix, Value::u32(static_cast<uint32_t>(v))); }
  void f32(const char* suffix, double v) { w_.set(arch_ + "." + suffix, Value::f32(static_cast<float>(v))); }
  void set(const char* suffix, Value v) { w_.set(arch_ + "." + suffix, std::move(v)); }

 private:
  gguf::Writer& w_;
  std::string arch_;
};

const ArchRow& arch_row(Arch a) {
  for (const ArchRow& r : kArchs) {
    if (r.arch == a) return r;
  }
  fail("internal: unknown Arch ", static_cast<int>(a));
}

void read_dims(const GgufReader& g, const std::string& path, ModelConfig& c) {
  c.hidden_size = g.integer(key::kEmbeddingLength);
  int64_t block_count = g.integer(key::kBlockCount);
  c.n_mtp_layers = g.integer_or(key::kNextnPredictLayers, 0);
  if (c.n_mtp_layers < 0 || c.n_mtp_layers >= block_count) {
    fail(path, ": GGUF ", g.key(key::kNextnPredictLayers), " (", c.n_mtp_layers, ") must be below block_count (",
         block_count, ")");
  }
  c.n_layers = block_count - c.n_mtp_layers;
  c.n_heads = g.integer(key::kHeadCount);
  c.n_kv_heads = g.integer_or(key::kHeadCountKv, c.n_heads);
  require_positive(path, g.key(key::kHeadCount), c.n_heads);
  require_positive(path, g.key(key::kEmbeddingLength), c.hidden_size);
  c.head_dim = g.integer_or(key::kKeyLength, c.hidden_size / c.n_heads);
  int64_t v_len = g.integer_or(key::kValueLength, c.head_dim);
  if (v_len != c.head_dim) {
    fail(path, ": GGUF ", g.key(key::kValueLength), " (", v_len, ") differs from key_length (", c.head_dim, ")");
  }
  int64_t rot = g.integer_or(key::kRopeDimensionCount, c.head_dim);
  if (rot != c.head_dim) {
    fail(path, ": GGUF ", g.key(key::kRopeDimensionCount), " = ", rot, " but head_dim = ", c.head_dim,
         " (partial rotary embedding is not used by EXAONE)");
  }
  c.intermediate_size = g.integer(key::kFeedForwardLength);
  c.max_position = g.integer_or(key::kContextLength, 0);
  if (g.get(key::kRmsEps) != nullptr) {
    c.norm_eps = g.number_or(key::kRmsEps, 1e-5);
  } else {
    c.norm_eps = g.number_or(key::kNormEps, 1e-5);
  }
  c.rope_theta = g.number_or(key::kRopeFreqBase, 10000.0);
  if (const gguf::Value* st = g.get(key::kRopeScalingType); st != nullptr) {
    const std::string& t = st->as_string(g.key(key::kRopeScalingType));
    if (t != "none" && t != "") {
      fail(path, ": GGUF ", g.key(key::kRopeScalingType), " = \"", t,
           "\" is not supported (EXAONE's llama3 scaling comes as rope_freqs.weight)");
    }
  }
}

void read_vocab_and_tokens(const gguf::File& file, const GgufReader& g, ModelConfig& c) {
  // Vocabulary: explicit key, else the embedding matrix, else the token list.
  c.vocab_size = g.integer_or(key::kVocabSize, 0);
  if (c.vocab_size == 0) {
    if (const TensorView* emb = file.find("token_embd.weight"); emb != nullptr && emb->shape.size() == 2) {
      c.vocab_size = emb->shape[0];
    } else if (const gguf::Value* toks = file.get("tokenizer.ggml.tokens"); toks != nullptr) {
      c.vocab_size = static_cast<int64_t>(toks->as_strings("tokenizer.ggml.tokens").size());
    }
  }
  c.tie_word_embeddings = file.find("output.weight") == nullptr;

  if (const gguf::Value* v = file.get("tokenizer.ggml.bos_token_id")) c.bos_token_id = v->as_int("tokenizer.ggml.bos_token_id");
  if (const gguf::Value* v = file.get("tokenizer.ggml.padding_token_id")) c.pad_token_id = v->as_int("tokenizer.ggml.padding_token_id");
  if (const gguf::Value* v = file.get("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(v->as_int("tokenizer.ggml.eos_token_id"));
  if (const gguf::Value* v = file.get("tokenizer.ggml.eot_token_id")) {
    int64_t eot = v->as_int("tokenizer.ggml.eot_token_id");
    if (c.eos_token_ids.empty() || c.eos_token_ids[0] != eot) c.eos_token_ids.push_back(eot);
  }
}

void read_experts(const GgufReader& g, const std::string& path, ModelConfig& c) {
  c.router.n_experts = g.integer(key::kExpertCount);
  c.router.n_used = g.integer(key::kExpertUsedCount);
  c.moe_intermediate_size = g.integer(key::kExpertFeedForwardLength);
  c.n_shared_experts = g.integer_or(key::kExpertSharedCount, 0);
  c.router.n_group = std::max<int64_t>(1, g.integer_or(key::kExpertGroupCount, 1));
  c.router.topk_group = std::max<int64_t>(1, g.integer_or(key::kExpertGroupUsedCount, 1));
  c.router.scaling = g.number_or(key::kExpertWeightsScale, 1.0);
  if (const gguf::Value* v = g.get(key::kExpertWeightsNorm)) c.router.norm_topk_prob = v->as_bool(g.key(key::kExpertWeightsNorm));
  c.shared_intermediate_size = c.n_shared_experts <= 0 ? 0
      : g.integer_or(key::kExpertSharedFeedForwardLength, c.moe_intermediate_size * c.n_shared_experts);
  require_positive(path, g.key(key::kExpertCount), c.router.n_experts);
  require_positive(path, g.key(key::kExpertUsedCount), c.router.n_used);
  require_positive(path, g.key(key::kExpertFeedForwardLength), c.moe_intermediate_size);
  if (c.router.n_used > c.router.n_experts) {
    fail(path, ": GGUF ", g.key(key::kExpertUsedCount), " (", c.router.n_used, ") exceeds ", g.key(key::kExpertCount),
         " (", c.router.n_experts, ")");
  }
  if (c.router.n_experts % c.router.n_group != 0 || c.router.topk_group > c.router.n_group) {
    fail(path, ": GGUF ", g.key(key::kExpertGroupCount), " (", c.router.n_group, ") / ", g.key(key::kExpertGroupUsedCount),
         " (", c.router.topk_group, ") do not divide ", g.key(key::kExpertCount), " (", c.router.n_experts, ")");
  }
  if (c.n_shared_experts < 0 || c.shared_intermediate_size < 0) {
    fail(path, ": GGUF ", g.key(key::kExpertSharedCount), " / ", g.key(key::kExpertSharedFeedForwardLength),
         " are negative");
  }
  if (const gguf::Value* v = g.get(key::kExpertGatingFunc)) {
    const int64_t f = v->as_int(g.key(key::kExpertGatingFunc));
    if (f != kSigmoidGating) fail(path, ": GGUF ", g.key(key::kExpertGatingFunc), " = ", f, "; exaone-moe needs 2 (sigmoid)");
  }
}

// Per-layer windows, and the MTP block's (entry n_layers of a per-block pattern). llama.cpp stores
// a bool per block (true = sliding) or an int period.
std::vector<int64_t> read_windows(const GgufReader& g, const std::string& path, const ArchRow& a, ModelConfig& c,
                                  int64_t& mtp_window) {
  const size_t L = static_cast<size_t>(c.n_layers);
  int64_t window = a.default_window;
  if (g.get(key::kSlidingWindow) != nullptr) {
    window = g.integer(key::kSlidingWindow);
  } else if (a.arch == Arch::Exaone4 && c.n_layers == 64) {
    window = 4096;  // llama.cpp's default for EXAONE-4.0-32B files written without the key
  }
  if (window < 0) fail(path, ": GGUF ", g.key(key::kSlidingWindow), " is negative");
  mtp_window = 0;
  if (window <= 0 || a.arch == Arch::Exaone) return {};
  c.sliding_window = window;
  std::vector<bool> sliding(L, false);
  const gguf::Value* pat = g.get(key::kSlidingWindowPattern);
  if (pat != nullptr && pat->is_array()) {
    const std::vector<int64_t>& flags = pat->as_ints(g.key(key::kSlidingWindowPattern));
    if (flags.size() < L) {
      fail(path, ": GGUF ", g.key(key::kSlidingWindowPattern), " has ", flags.size(), " entries for ", c.n_layers,
           " layers");
    }
    for (size_t i = 0; i < L; ++i) sliding[i] = flags[i] != 0;
    if (c.n_mtp_layers > 0 && flags.size() > L) {
      mtp_window = flags[L] != 0 ? window : 0;
      return windows_of(sliding, window);
    }
  } else {
    int64_t n = pat != nullptr ? pat->as_int(g.key(key::kSlidingWindowPattern)) : 4;
    // Period 0: every layer slides; a negative period (meaningless) none.
    if (n > 0) sliding = periodic_sliding(c.n_layers, n);
    if (n == 0) sliding.assign(L, true);
  }
  // No entry for the MTP block (llama.cpp's converters write one per main layer): K-EXAONE's is
  // global, an exaone4 MTP layer attends as layer 0 (as config.json without mtp_layer_types).
  if (a.arch == Arch::Exaone4 && L > 0 && sliding[0]) mtp_window = window;
  return windows_of(sliding, window);
}

}  // namespace

std::string gguf_architecture(Arch arch) { return arch_row(arch).gguf_name; }

ModelConfig ModelConfig::from_gguf(const gguf::File& file) {
  const std::string arch = file.architecture();
  const ArchRow* a = nullptr;
  for (const ArchRow& r : kArchs) {
    if (arch == r.gguf_name) a = &r;
  }
  if (a == nullptr) {
    fail(file.path(), ": unknown GGUF architecture \"", arch, "\" (kexa supports exaone, exaone4, exaone-moe)");
  }
  ModelConfig c;
  c.arch = a->arch;
  c.model_type = a->model_type;
  c.norm = a->norm;
  c.qk_norm = a->qk_norm;
  GgufReader g(file, arch);
  const std::string& path = file.path();
  read_dims(g, path, c);
  read_vocab_and_tokens(file, g, c);
  require_positive(path, g.key(key::kBlockCount), c.n_layers);
  int64_t mtp_win = 0;
  const std::vector<int64_t> windows = read_windows(g, path, *a, c, mtp_win);
  std::vector<bool> moe;
  if (c.arch == Arch::ExaoneMoe) {
    read_experts(g, path, c);
    const int64_t dense_lead = g.integer_or(key::kLeadingDenseBlockCount, 1);
    for (int64_t i = 0; i < c.n_layers; ++i) moe.push_back(i >= dense_lead);
  }
  plan_layers(c, windows, moe, mtp_win);
  validate(c, path);
  return c;
}

void write_gguf_metadata(const ModelConfig& c, const GgufGeneral& general, std::string_view origin,
                         gguf::Writer& w) {
  const std::string arch = gguf_architecture(c.arch);
  GgufWriter g(w, arch);
  w.set("general.architecture", Value::str(arch));
  w.set("general.type", Value::str("model"));
  w.set("general.name", Value::str(general.name));
  g.u32(key::kBlockCount, c.n_layers + c.n_mtp_layers);
  if (c.max_position > 0) g.u32(key::kContextLength, c.max_position);
  g.u32(key::kEmbeddingLength, c.hidden_size);
  g.u32(key::kFeedForwardLength, c.intermediate_size);
  g.u32(key::kHeadCount, c.n_heads);
  g.u32(key::kHeadCountKv, c.n_kv_heads);
  g.f32(key::kRopeFreqBase, c.rope_theta);
  g.f32(key::kRmsEps, c.norm_eps);
  g.u32(key::kKeyLength, c.head_dim);
  g.u32(key::kValueLength, c.head_dim);
  w.set("general.file_type", Value::u32(general.file_type));
  if (c.arch == Arch::Exaone) g.u32(key::kRopeDimensionCount, c.head_dim);
  if (c.arch != Arch::Exaone) {
    g.u32(key::kVocabSize, c.vocab_size);
    int64_t window = 0;
    std::vector<int64_t> pattern;
    for (const LayerPlan& l : c.layers) {
      window = std::max(window, l.window);
      pattern.push_back(l.window > 0 ? 1 : 0);
    }
    // One entry per MTP block only when the block does not attend as from_gguf assumes without one.
    const bool mtp_default = c.arch == Arch::Exaone4 && !c.layers.empty() ? c.mtp_layer.window == c.layers[0].window
                                                                          : c.mtp_layer.window == 0;
    if (c.n_mtp_layers > 0 && !mtp_default) pattern.insert(pattern.end(), c.n_mtp_layers, c.mtp_layer.window > 0 ? 1 : 0);
    // EXAONE 4.0 writes a declared window even when no layer slides, as llama.cpp's converter does
    // for a non-null sliding_window; llama.cpp's exaone-moe always has the keys.
    if (c.arch == Arch::Exaone4 && window == 0) window = c.sliding_window;
    if (window > 0 || c.arch == Arch::ExaoneMoe) {
      g.u32(key::kSlidingWindow, window);
      g.set(key::kSlidingWindowPattern, Value::ints(ValueType::BOOL, pattern));
    }
  }
  if (c.arch == Arch::ExaoneMoe) {
    g.u32(key::kExpertCount, c.router.n_experts);
    g.u32(key::kExpertUsedCount, c.router.n_used);
    g.u32(key::kExpertGroupCount, c.router.n_group);
    g.u32(key::kExpertGroupUsedCount, c.router.topk_group);
    g.u32(key::kExpertGatingFunc, kSigmoidGating);
    g.u32(key::kExpertFeedForwardLength, c.moe_intermediate_size);
    g.u32(key::kExpertSharedCount, c.n_shared_experts);
    g.u32(key::kExpertSharedFeedForwardLength, c.shared_intermediate_size);
    g.f32(key::kExpertWeightsScale, c.router.scaling);
    g.set(key::kExpertWeightsNorm, Value::boolean(c.router.norm_topk_prob));
    int64_t lead = 0;
    while (lead < c.n_layers && !c.layers[static_cast<size_t>(lead)].moe) ++lead;
    for (int64_t l = lead; l < c.n_layers; ++l) {
      if (!c.layers[static_cast<size_t>(l)].moe) {
        fail(origin, ": layer ", l, " is dense after MoE layers; llama.cpp's exaone-moe only supports leading dense layers");
      }
    }
    g.u32(key::kLeadingDenseBlockCount, lead);
    g.u32(key::kNextnPredictLayers, c.n_mtp_layers);
    g.set(key::kRopeScalingType, Value::str("none"));
  }
  // As llama.cpp's EXAONE 4.5 text converter: the key only when the model has MTP blocks.
  if (c.arch == Arch::Exaone4 && c.n_mtp_layers > 0) g.u32(key::kNextnPredictLayers, c.n_mtp_layers);
  w.set("general.quantization_version", Value::u32(2));
}

std::vector<float> ModelConfig::llama3_rope_freq_divisors() const {
  const RopeScaling& s = rope_scaling;
  const float base = static_cast<float>(rope_theta);
  const float factor = static_cast<float>(s.factor);
  const float lo = static_cast<float>(s.low_freq_factor), hi = static_cast<float>(s.high_freq_factor);
  const float old_ctx = static_cast<float>(s.original_max_position);
  const float low_wl = old_ctx / lo, high_wl = old_ctx / hi;
  if (low_wl == high_wl) fail("rope_scaling llama3: low_freq_factor equals high_freq_factor");
  std::vector<float> out;
  for (int64_t i = 0; i < head_dim; i += 2) {
    const float e = static_cast<float>(i) / static_cast<float>(head_dim);
    const float freq = 1.0f / std::pow(base, e);
    const float wavelen = 2.0f * static_cast<float>(M_PI) / freq;
    if (wavelen < high_wl) {
      out.push_back(1.0f);
    } else if (wavelen > low_wl) {
      out.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

}  // namespace kexa
