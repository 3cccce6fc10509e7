// Model config parsing, weight binding, and the forward pass checked against an independent
// double-precision reference written here (no kexa kernels involved in the reference).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "memory_source.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa {
namespace {

using test::MemorySource;

using nlohmann::json;

std::string shared_dir() {
  if (const char* env = std::getenv("KEXA_SHARED"); env != nullptr && *env != 0) return env;
  return std::string(KEXA_SOURCE_DIR) + "/../shared";
}

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return json::parse(in);
}

// Runs `fn`, expects a kexa::Error whose message contains every one of `needles`.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected a kexa::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

// ---- config.json ------------------------------------------------------------------------------

TEST(ModelConfig, Exaone4_1_2B_RealConfig) {
  std::string path = shared_dir() + "/fixtures/exaone4-tokenizer/config.json";
  ModelConfig c = ModelConfig::from_hf_json(read_json_file(path), path);
  EXPECT_EQ(c.arch, Arch::Exaone4);
  EXPECT_EQ(c.model_type, "exaone4");
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 4096);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 16.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(c.max_position, 65536);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.norm, NormPlacement::Post);
  EXPECT_FALSE(c.has_sliding_layers());
  ASSERT_EQ(c.layers.size(), 30u);
  for (const LayerPlan& l : c.layers) {
    EXPECT_EQ(l.window, 0);
    EXPECT_TRUE(l.rope);  // no sliding layers => RoPE on every layer
    EXPECT_FALSE(l.moe);
  }
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{361});
  EXPECT_EQ(c.pad_token_id, 0);
}

TEST(ModelConfig, Exaone35_2_4B_RealConfig) {
  std::string path = shared_dir() + "/fixtures/exaone35-tokenizer/config.json";
  ModelConfig c = ModelConfig::from_hf_json(read_json_file(path), path);
  EXPECT_EQ(c.arch, Arch::Exaone);
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 2560);
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 80);
  EXPECT_EQ(c.intermediate_size, 7168);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.max_position, 32768);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.norm, NormPlacement::Pre);
  for (const LayerPlan& l : c.layers) {
    EXPECT_EQ(l.window, 0);
    EXPECT_TRUE(l.rope);
  }
}

json exaone3_minimal() {
  return json{{"model_type", "exaone"},   {"vocab_size", 64},         {"hidden_size", 32},
              {"num_layers", 2},          {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"intermediate_size", 48},  {"activation_function", "silu"},
              {"layer_norm_epsilon", 1e-6}, {"rope_theta", 10000.0}};
}

TEST(ModelConfig, ExaoneAliasesAndDefaults) {
  json j = exaone3_minimal();
  j["head_dim"] = 999;  // ignored by the reference implementation: head_dim = H / nH
  ModelConfig c = ModelConfig::from_hf_json(j, "t");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_TRUE(c.tie_word_embeddings);  // key missing => PretrainedConfig default (true)
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  j.erase("intermediate_size");
  EXPECT_EQ(ModelConfig::from_hf_json(j, "t").intermediate_size, 4 * 32);
  j["tie_word_embeddings"] = false;
  EXPECT_FALSE(ModelConfig::from_hf_json(j, "t").tie_word_embeddings);
}

// Counts bands of the llama3 rule by comparing with the unscaled frequencies.
struct Bands { int unchanged = 0, ramped = 0, divided = 0; };
Bands llama3_bands(double theta, int64_t hd, double factor) {
  ModelConfig c;
  c.head_dim = hd;
  c.rope_theta = theta;
  std::vector<float> base = c.rope_inv_freq();
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = factor;
  std::vector<float> scaled = c.rope_inv_freq();
  Bands b;
  for (size_t i = 0; i < base.size(); ++i) {
    if (scaled[i] == base[i]) {
      ++b.unchanged;
    } else if (std::fabs(scaled[i] - base[i] / factor) <= 1e-6 * base[i]) {
      ++b.divided;
    } else {
      EXPECT_LT(scaled[i], base[i]);
      EXPECT_GT(scaled[i], base[i] / factor);
      ++b.ramped;
    }
  }
  return b;
}

TEST(ModelConfig, Llama3BandsOfExaone4_32B) {
  Bands b = llama3_bands(1e6, 128, 16.0);
  EXPECT_EQ(b.unchanged, 27);
  EXPECT_EQ(b.ramped, 7);
  EXPECT_EQ(b.divided, 30);
}

TEST(ModelConfig, Llama3RampValue) {
  // Independent evaluation of one ramped frequency in double precision.
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 1e6;
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 16.0;
  std::vector<float> inv = c.rope_inv_freq();
  const double pi = std::acos(-1.0);
  for (int i = 0; i < 64; ++i) {
    double f = std::pow(1e6, -2.0 * i / 128.0);
    double wl = 2 * pi / f;
    double expect = f;
    if (wl > 8192) {
      expect = f / 16;
    } else if (wl >= 2048) {
      double s = (8192 / wl - 1.0) / 3.0;
      expect = (1 - s) * f / 16 + s * f;
    }
    EXPECT_NEAR(inv[static_cast<size_t>(i)], expect, 2e-6 * f) << "i=" << i;
  }
}

TEST(ModelConfig, GgufDivisorsMatchLlama3) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 1e6;
  std::vector<float> base = c.rope_inv_freq();
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 16.0;
  std::vector<float> scaled = c.rope_inv_freq();
  ModelConfig g;
  g.head_dim = 128;
  g.rope_theta = 1e6;
  for (size_t i = 0; i < base.size(); ++i) g.rope_freq_divisors.push_back(base[i] / scaled[i]);
  std::vector<float> via = g.rope_inv_freq();
  for (size_t i = 0; i < base.size(); ++i) EXPECT_NEAR(via[i], scaled[i], 1e-6 * base[i]);
}

json exaone4_minimal() {
  return json{{"model_type", "exaone4"},     {"vocab_size", 64},          {"hidden_size", 32},
              {"num_hidden_layers", 8},      {"num_attention_heads", 4},  {"num_key_value_heads", 2},
              {"head_dim", 8},               {"intermediate_size", 48},   {"hidden_act", "silu"},
              {"rms_norm_eps", 1e-5},        {"rope_theta", 10000.0},     {"sliding_window", 8},
              {"sliding_window_pattern", "LLLG"}};
}

std::vector<int64_t> windows(const ModelConfig& c) {
  std::vector<int64_t> w;
  for (const LayerPlan& l : c.layers) w.push_back(l.window);
  return w;
}
std::vector<bool> ropes(const ModelConfig& c) {
  std::vector<bool> r;
  for (const LayerPlan& l : c.layers) r.push_back(l.rope);
  return r;
}

TEST(ModelConfig, Exaone4SlidingPatterns) {
  const std::vector<int64_t> lllg = {8, 8, 8, 0, 8, 8, 8, 0};
  const std::vector<bool> lllg_rope = {true, true, true, false, true, true, true, false};
  json j = exaone4_minimal();
  ModelConfig c = ModelConfig::from_hf_json(j, "t");
  EXPECT_EQ(windows(c), lllg);
  EXPECT_EQ(ropes(c), lllg_rope);  // NoPE on global layers of a hybrid model
  EXPECT_EQ(c.n_sliding_layers(), 6);

  j["sliding_window_pattern"] = 4;  // HF: sliding iff (i+1) % 4 != 0
  EXPECT_EQ(windows(ModelConfig::from_hf_json(j, "t")), lllg);

  j["sliding_window_pattern"] = "LG";
  EXPECT_EQ(windows(ModelConfig::from_hf_json(j, "t")), (std::vector<int64_t>{8, 0, 8, 0, 8, 0, 8, 0}));

  // layer_types take precedence over the pattern.
  json lt = json::array();
  for (int i = 0; i < 8; ++i) lt.push_back(i < 2 ? "full_attention" : "sliding_attention");
  j["layer_types"] = lt;
  c = ModelConfig::from_hf_json(j, "t");
  EXPECT_EQ(windows(c), (std::vector<int64_t>{0, 0, 8, 8, 8, 8, 8, 8}));
  EXPECT_EQ(ropes(c), (std::vector<bool>{false, false, true, true, true, true, true, true}));

  // Missing sliding_window: HF default 4096 with pattern 4.
  json m = exaone4_minimal();
  m.erase("sliding_window");
  m.erase("sliding_window_pattern");
  EXPECT_EQ(windows(ModelConfig::from_hf_json(m, "t")),
            (std::vector<int64_t>{4096, 4096, 4096, 0, 4096, 4096, 4096, 0}));

  // Explicit null: no sliding layers at all, RoPE everywhere (1.2B style).
  json n = exaone4_minimal();
  n["sliding_window"] = nullptr;
  c = ModelConfig::from_hf_json(n, "t");
  EXPECT_FALSE(c.has_sliding_layers());
  EXPECT_EQ(ropes(c), std::vector<bool>(8, true));

  // All layers global although a window is set: RoPE on every layer.
  json g = exaone4_minimal();
  g["layer_types"] = json::array();
  for (int i = 0; i < 8; ++i) g["layer_types"].push_back("full_attention");
  EXPECT_EQ(ropes(ModelConfig::from_hf_json(g, "t")), std::vector<bool>(8, true));
}

TEST(ModelConfig, RopeParametersTransformers5) {
  json j = exaone4_minimal();
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 16.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  ModelConfig c = ModelConfig::from_hf_json(j, "t");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 16.0);

  // Legacy "type" spelling inside rope_scaling.
  json k = exaone4_minimal();
  k["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}};
  c = ModelConfig::from_hf_json(k, "t");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);

  json d = exaone4_minimal();
  d["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  c = ModelConfig::from_hf_json(d, "t");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
}

TEST(ModelConfig, ExaoneMoe) {
  json j = {{"model_type", "exaone_moe"}, {"vocab_size", 153600}, {"hidden_size", 6144},
            {"num_hidden_layers", 8}, {"num_attention_heads", 64}, {"num_key_value_heads", 8},
            {"head_dim", 128}, {"intermediate_size", 18432}, {"moe_intermediate_size", 2048},
            {"num_experts", 128}, {"num_experts_per_tok", 8}, {"num_shared_experts", 1},
            {"first_k_dense_replace", 1}, {"n_group", 1}, {"topk_group", 1}, {"norm_topk_prob", true},
            {"routed_scaling_factor", 2.5}, {"sliding_window", 128}, {"sliding_window_pattern", "LLLG"},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1000000}}},
            {"num_nextn_predict_layers", 1}, {"tie_word_embeddings", false}, {"eos_token_id", 53}};
  ModelConfig c = ModelConfig::from_hf_json(j, "t");
  EXPECT_EQ(c.arch, Arch::ExaoneMoe);
  EXPECT_EQ(c.norm, NormPlacement::Pre);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.q_dim(), 8192);
  EXPECT_EQ(c.router.n_experts, 128);
  EXPECT_EQ(c.router.n_used, 8);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_DOUBLE_EQ(c.router.scaling, 2.5);
  EXPECT_EQ(c.n_mtp_layers, 1);
  EXPECT_EQ(windows(c), (std::vector<int64_t>{128, 128, 128, 0, 128, 128, 128, 0}));
  EXPECT_EQ(ropes(c), (std::vector<bool>{true, true, true, false, true, true, true, false}));
  std::vector<bool> moe;
  for (const LayerPlan& l : c.layers) moe.push_back(l.moe);
  EXPECT_EQ(moe, (std::vector<bool>{false, true, true, true, true, true, true, true}));

  // sliding_windows beats layer_types and the pattern; mlp_layer_types beats first_k_dense_replace.
  j["layer_types"] = json::array();
  for (int i = 0; i < 8; ++i) j["layer_types"].push_back("full_attention");
  j["sliding_windows"] = {64, 0, 64, 0, 32, 0, 0, 0};
  j["mlp_layer_types"] = {"dense", "dense", "sparse", "sparse", "sparse", "sparse", "sparse", "dense"};
  c = ModelConfig::from_hf_json(j, "t");
  EXPECT_EQ(windows(c), (std::vector<int64_t>{64, 0, 64, 0, 32, 0, 0, 0}));
  moe.clear();
  for (const LayerPlan& l : c.layers) moe.push_back(l.moe);
  EXPECT_EQ(moe, (std::vector<bool>{false, false, true, true, true, true, true, false}));
}

TEST(ModelConfig, BadConfigsGiveNamedErrors) {
  json j = exaone4_minimal();
  j["model_type"] = "llama";
  expect_error([&] { ModelConfig::from_hf_json(j, "/m/config.json"); }, {"/m/config.json", "model_type", "llama"});

  j = exaone4_minimal();
  j.erase("model_type");
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"model_type"});

  j = exaone4_minimal();
  j.erase("hidden_size");
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"hidden_size"});

  j = exaone4_minimal();
  j["num_key_value_heads"] = 3;
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"num_key_value_heads"});

  j = exaone4_minimal();
  j["layer_types"] = {"full_attention"};
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"layer_types", "8"});

  j = exaone4_minimal();
  j["layer_types"] = json::array();
  for (int i = 0; i < 8; ++i) j["layer_types"].push_back(i == 5 ? "chunked_attention" : "full_attention");
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"layer_types[5]", "chunked_attention"});

  j = exaone4_minimal();
  j["sliding_window_pattern"] = "LLXG";
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"sliding_window_pattern", "LLXG"});

  j = exaone4_minimal();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"rope_scaling", "yarn"});

  j = exaone4_minimal();
  j["hidden_act"] = "gelu";
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"gelu"});

  j = exaone4_minimal();
  j["vocab_size"] = "many";
  expect_error([&] { ModelConfig::from_hf_json(j, "x"); }, {"vocab_size", "integer"});

  expect_error([&] { ModelConfig::from_hf_json(json::array(), "x"); }, {"x", "object"});
}

// ---- tiny models and the reference forward pass ------------------------------------------------

struct RefTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};


struct TinySpec {
  std::string arch = "exaone4";  // or "exaone"
  int64_t V = 50, H = 32, nH = 4, nKV = 2, hd = 8, I = 40;
  std::vector<int64_t> windows = {3, 0};  // per layer; 0 = global
  std::vector<bool> rope = {true, false};
  bool tied = false;
  bool llama3 = true;
  double theta = 10000.0;
  double factor = 4.0;
  int64_t orig = 64;
  double eps = 1e-5;
  uint64_t seed = 1;
};

struct Tiny {
  TinySpec spec;
  json config;
  std::map<std::string, RefTensor> tensors;  // HF names
};

bool is_exaone3(const TinySpec& s) { return s.arch == "exaone"; }

std::string hf_name(const TinySpec& s, int64_t layer, const std::string& what) {
  std::string p = is_exaone3(s) ? "transformer.h." + std::to_string(layer) + "."
                                : "model.layers." + std::to_string(layer) + ".";
  static const std::map<std::string, std::pair<std::string, std::string>> names = {
      {"q", {"attn.attention.q_proj.weight", "self_attn.q_proj.weight"}},
      {"k", {"attn.attention.k_proj.weight", "self_attn.k_proj.weight"}},
      {"v", {"attn.attention.v_proj.weight", "self_attn.v_proj.weight"}},
      {"o", {"attn.attention.out_proj.weight", "self_attn.o_proj.weight"}},
      {"gate", {"mlp.c_fc_0.weight", "mlp.gate_proj.weight"}},
      {"up", {"mlp.c_fc_1.weight", "mlp.up_proj.weight"}},
      {"down", {"mlp.c_proj.weight", "mlp.down_proj.weight"}},
      {"ln1", {"ln_1.weight", ""}},
      {"ln2", {"ln_2.weight", ""}},
      {"qn", {"", "self_attn.q_norm.weight"}},
      {"kn", {"", "self_attn.k_norm.weight"}},
      {"pan", {"", "post_attention_layernorm.weight"}},
      {"pfn", {"", "post_feedforward_layernorm.weight"}},
  };
  const auto& e = names.at(what);
  return p + (is_exaone3(s) ? e.first : e.second);
}
std::string hf_global(const TinySpec& s, const std::string& what) {
  if (what == "embed") return is_exaone3(s) ? "transformer.wte.weight" : "model.embed_tokens.weight";
  if (what == "norm") return is_exaone3(s) ? "transformer.ln_f.weight" : "model.norm.weight";
  return "lm_head.weight";
}

Tiny make_tiny(const TinySpec& s) {
  Tiny m;
  m.spec = s;
  const int64_t L = static_cast<int64_t>(s.windows.size());
  std::mt19937_64 rng(s.seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  auto rand_t = [&](std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    RefTensor t;
    t.shape = shape;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    t.data.resize(static_cast<size_t>(n));
    for (float& x : t.data) x = offset + scale * uni(rng);
    return t;
  };
  const float ws = 1.0f / std::sqrt(static_cast<float>(s.H));
  m.tensors[hf_global(s, "embed")] = rand_t({s.V, s.H}, 1.0f);
  if (!s.tied) m.tensors[hf_global(s, "head")] = rand_t({s.V, s.H}, 1.5f);
  m.tensors[hf_global(s, "norm")] = rand_t({s.H}, 0.2f, 1.0f);
  for (int64_t l = 0; l < L; ++l) {
    m.tensors[hf_name(s, l, "q")] = rand_t({s.nH * s.hd, s.H}, 2 * ws);
    m.tensors[hf_name(s, l, "k")] = rand_t({s.nKV * s.hd, s.H}, 2 * ws);
    m.tensors[hf_name(s, l, "v")] = rand_t({s.nKV * s.hd, s.H}, 2 * ws);
    m.tensors[hf_name(s, l, "o")] = rand_t({s.H, s.nH * s.hd}, 2 * ws);
    m.tensors[hf_name(s, l, "gate")] = rand_t({s.I, s.H}, 2 * ws);
    m.tensors[hf_name(s, l, "up")] = rand_t({s.I, s.H}, 2 * ws);
    m.tensors[hf_name(s, l, "down")] = rand_t({s.H, s.I}, 2.0f / std::sqrt(static_cast<float>(s.I)));
    if (is_exaone3(s)) {
      m.tensors[hf_name(s, l, "ln1")] = rand_t({s.H}, 0.2f, 1.0f);
      m.tensors[hf_name(s, l, "ln2")] = rand_t({s.H}, 0.2f, 1.0f);
    } else {
      m.tensors[hf_name(s, l, "qn")] = rand_t({s.hd}, 0.3f, 1.0f);
      m.tensors[hf_name(s, l, "kn")] = rand_t({s.hd}, 0.3f, 1.0f);
      m.tensors[hf_name(s, l, "pan")] = rand_t({s.H}, 0.2f, 1.0f);
      m.tensors[hf_name(s, l, "pfn")] = rand_t({s.H}, 0.2f, 1.0f);
    }
  }
  json c = {{"model_type", s.arch}, {"vocab_size", s.V}, {"hidden_size", s.H},
            {"num_attention_heads", s.nH}, {"num_key_value_heads", s.nKV}, {"intermediate_size", s.I},
            {"rope_theta", s.theta}, {"tie_word_embeddings", s.tied}, {"max_position_embeddings", 4096}};
  if (s.llama3) {
    c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", s.factor}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", s.orig}};
  }
  if (is_exaone3(s)) {
    c["num_layers"] = L;
    c["layer_norm_epsilon"] = s.eps;
    c["activation_function"] = "silu";
  } else {
    c["num_hidden_layers"] = L;
    c["head_dim"] = s.hd;
    c["rms_norm_eps"] = s.eps;
    c["hidden_act"] = "silu";
    int64_t w = 0;
    json lt = json::array();
    for (int64_t x : s.windows) {
      w = std::max(w, x);
      lt.push_back(x > 0 ? "sliding_attention" : "full_attention");
    }
    if (w > 0) {
      c["sliding_window"] = w;
      c["layer_types"] = lt;
    } else {
      c["sliding_window"] = nullptr;
    }
  }
  m.config = c;
  return m;
}

std::unique_ptr<MemorySource> memory_source(const Tiny& m) {
  auto src = std::make_unique<MemorySource>();
  for (const auto& [name, t] : m.tensors) src->add_f32(name, t.shape, t.data);
  return src;
}

std::unique_ptr<Model> load_tiny(const Tiny& m, int threads = 2, Device device = Device::Cpu, int64_t gpu_layers = -1) {
  ModelConfig c = ModelConfig::from_hf_json(m.config, "tiny");
  LoadOptions o;
  o.n_threads = threads;
  o.device = device;
  o.gpu_layers = gpu_layers;
  return Model::from_source(c, memory_source(m), false, "tiny", o);
}

// Straightforward double-precision evaluation of the whole sequence (no cache, no ring).
std::vector<double> reference_logits(const Tiny& m, const std::vector<int32_t>& tokens) {
  const TinySpec& s = m.spec;
  const int64_t T = static_cast<int64_t>(tokens.size()), H = s.H, hd = s.hd;
  const int64_t L = static_cast<int64_t>(s.windows.size());
  const bool pre = is_exaone3(s);
  auto W = [&](const std::string& name) -> const RefTensor& { return m.tensors.at(name); };
  auto matvec = [](const RefTensor& w, const std::vector<double>& x) {
    const int64_t rows = w.shape[0], cols = w.shape[1];
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < cols; ++c) acc += static_cast<double>(w.data[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(c)];
      y[static_cast<size_t>(r)] = acc;
    }
    return y;
  };
  auto rms = [&](std::vector<double> x, const RefTensor& w, int64_t off, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += x[static_cast<size_t>(off + i)] * x[static_cast<size_t>(off + i)];
    double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + s.eps);
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(off + i)] *= inv * w.data[static_cast<size_t>(i)];
    return x;
  };
  // RoPE frequencies from the llama3 rule, evaluated independently in double.
  std::vector<double> freq(static_cast<size_t>(hd / 2));
  const double pi = std::acos(-1.0);
  for (int64_t i = 0; i < hd / 2; ++i) {
    double f = std::pow(s.theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
    if (s.llama3) {
      double wl = 2 * pi / f, lo = static_cast<double>(s.orig), hi = static_cast<double>(s.orig) / 4.0;
      if (wl > lo) {
        f /= s.factor;
      } else if (wl >= hi) {
        double sm = (static_cast<double>(s.orig) / wl - 1.0) / 3.0;
        f = (1 - sm) * f / s.factor + sm * f;
      }
    }
    freq[static_cast<size_t>(i)] = f;
  }
  auto rotate = [&](std::vector<double>& x, int64_t off, int64_t pos) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      double a = x[static_cast<size_t>(off + i)], b = x[static_cast<size_t>(off + i + hd / 2)];
      double th = static_cast<double>(pos) * freq[static_cast<size_t>(i)];
      x[static_cast<size_t>(off + i)] = a * std::cos(th) - b * std::sin(th);
      x[static_cast<size_t>(off + i + hd / 2)] = b * std::cos(th) + a * std::sin(th);
    }
  };

  std::vector<std::vector<double>> h(static_cast<size_t>(T));
  const RefTensor& emb = W(hf_global(s, "embed"));
  for (int64_t t = 0; t < T; ++t) {
    h[static_cast<size_t>(t)].assign(emb.data.begin() + tokens[static_cast<size_t>(t)] * H,
                                     emb.data.begin() + (tokens[static_cast<size_t>(t)] + 1) * H);
  }
  for (int64_t l = 0; l < L; ++l) {
    std::vector<std::vector<double>> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)), v(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> in = pre ? rms(h[static_cast<size_t>(t)], W(hf_name(s, l, "ln1")), 0, H) : h[static_cast<size_t>(t)];
      q[static_cast<size_t>(t)] = matvec(W(hf_name(s, l, "q")), in);
      k[static_cast<size_t>(t)] = matvec(W(hf_name(s, l, "k")), in);
      v[static_cast<size_t>(t)] = matvec(W(hf_name(s, l, "v")), in);
      for (int64_t hh = 0; hh < s.nH; ++hh) {
        if (!pre) q[static_cast<size_t>(t)] = rms(q[static_cast<size_t>(t)], W(hf_name(s, l, "qn")), hh * hd, hd);
        if (s.rope[static_cast<size_t>(l)]) rotate(q[static_cast<size_t>(t)], hh * hd, t);
      }
      for (int64_t hh = 0; hh < s.nKV; ++hh) {
        if (!pre) k[static_cast<size_t>(t)] = rms(k[static_cast<size_t>(t)], W(hf_name(s, l, "kn")), hh * hd, hd);
        if (s.rope[static_cast<size_t>(l)]) rotate(k[static_cast<size_t>(t)], hh * hd, t);
      }
    }
    const int64_t win = s.windows[static_cast<size_t>(l)];
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(static_cast<size_t>(s.nH * hd), 0.0);
      for (int64_t hh = 0; hh < s.nH; ++hh) {
        const int64_t kvh = hh / (s.nH / s.nKV);
        std::vector<double> sc;
        std::vector<int64_t> idx;
        for (int64_t j = 0; j <= t; ++j) {
          if (win > 0 && t - j >= win) continue;
          double d = 0;
          for (int64_t e = 0; e < hd; ++e) d += q[static_cast<size_t>(t)][static_cast<size_t>(hh * hd + e)] * k[static_cast<size_t>(j)][static_cast<size_t>(kvh * hd + e)];
          sc.push_back(d / std::sqrt(static_cast<double>(hd)));
          idx.push_back(j);
        }
        double mx = *std::max_element(sc.begin(), sc.end()), sum = 0;
        for (double& x : sc) sum += (x = std::exp(x - mx));
        for (size_t a = 0; a < sc.size(); ++a) {
          for (int64_t e = 0; e < hd; ++e) {
            att[static_cast<size_t>(hh * hd + e)] += sc[a] / sum * v[static_cast<size_t>(idx[a])][static_cast<size_t>(kvh * hd + e)];
          }
        }
      }
      std::vector<double> o = matvec(W(hf_name(s, l, "o")), att);
      if (!pre) o = rms(o, W(hf_name(s, l, "pan")), 0, H);
      for (int64_t i = 0; i < H; ++i) h[static_cast<size_t>(t)][static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> in = pre ? rms(h[static_cast<size_t>(t)], W(hf_name(s, l, "ln2")), 0, H) : h[static_cast<size_t>(t)];
      std::vector<double> g = matvec(W(hf_name(s, l, "gate")), in), u = matvec(W(hf_name(s, l, "up")), in);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      std::vector<double> d = matvec(W(hf_name(s, l, "down")), g);
      if (!pre) d = rms(d, W(hf_name(s, l, "pfn")), 0, H);
      for (int64_t i = 0; i < H; ++i) h[static_cast<size_t>(t)][static_cast<size_t>(i)] += d[static_cast<size_t>(i)];
    }
  }
  const RefTensor& head = s.tied ? emb : W(hf_global(s, "head"));
  std::vector<double> out;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> y = matvec(head, rms(h[static_cast<size_t>(t)], W(hf_global(s, "norm")), 0, H));
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double mx = 0, worst = 0;
  for (double w : want) mx = std::max(mx, std::fabs(w));
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double d = std::fabs(got[i] - want[i]);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  EXPECT_LE(worst, rel * mx) << what << ": max |diff| " << worst << " at " << at << " (max |logit| " << mx << ")";
  EXPECT_GT(mx, 1.0) << what << ": logits unexpectedly flat";
}

std::vector<int32_t> some_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
  return t;
}

// Evaluates `tokens` in pieces of the given sizes (prefill chunks, then decode steps) and returns
// the logits of every position.
std::vector<float> run_kexa(Model& model, KVCache& cache, const std::vector<int32_t>& tokens,
                            const std::vector<int64_t>& pieces) {
  const size_t V = static_cast<size_t>(model.config().vocab_size);
  std::vector<float> all(tokens.size() * V);
  size_t pos = 0;
  for (int64_t p : pieces) {
    std::span<const int32_t> in(tokens.data() + pos, static_cast<size_t>(p));
    model.forward(in, cache, std::span<float>(all.data() + pos * V, static_cast<size_t>(p) * V), true);
    pos += static_cast<size_t>(p);
  }
  EXPECT_EQ(pos, tokens.size());
  return all;
}

TEST(ModelForward, Exaone4PostNormQkNormSlidingNoPE) {
  TinySpec s;  // layer 0 sliding W=3 with RoPE, layer 1 global NoPE
  Tiny m = make_tiny(s);
  auto model = load_tiny(m);
  EXPECT_FALSE(model->tied_embeddings());
  std::vector<int32_t> toks = some_tokens(14, s.V, 7);
  std::vector<double> ref = reference_logits(m, toks);
  KVCache cache(model->config(), 64, 4);
  // Chunked prefill (4 + 4 + 2) then single-token decode steps.
  std::vector<float> got = run_kexa(*model, cache, toks, {4, 4, 2, 1, 1, 1, 1});
  expect_close(got, ref, 1e-4, "exaone4 sliding+NoPE");
  EXPECT_EQ(cache.n_past(), 14);
}

TEST(ModelForward, Exaone4AllGlobalRopeTied) {
  TinySpec s;
  s.windows = {0, 0};
  s.rope = {true, true};
  s.tied = true;
  s.seed = 3;
  Tiny m = make_tiny(s);
  auto model = load_tiny(m, 1);
  EXPECT_TRUE(model->tied_embeddings());
  std::vector<int32_t> toks = some_tokens(9, s.V, 9);
  KVCache cache(model->config(), 32, 512);
  std::vector<float> got = run_kexa(*model, cache, toks, {9});
  expect_close(got, reference_logits(m, toks), 1e-4, "exaone4 all-global tied");
}

TEST(ModelForward, Exaone3PreNormGqaLlama3) {
  TinySpec s;
  s.arch = "exaone";
  s.windows = {0, 0};
  s.rope = {true, true};
  s.nKV = 1;
  s.seed = 11;
  s.orig = 16;  // small original context so all three llama3 bands occur at hd=8
  Tiny m = make_tiny(s);
  auto model = load_tiny(m, 3);
  std::vector<int32_t> toks = some_tokens(12, s.V, 5);
  KVCache cache(model->config(), 12, 5);
  std::vector<float> got = run_kexa(*model, cache, toks, {12});
  expect_close(got, reference_logits(m, toks), 1e-4, "exaone pre-norm GQA llama3");

  // Tied fallback: without lm_head.weight the embedding matrix is used.
  TinySpec t = s;
  t.tied = true;
  Tiny mt = make_tiny(t);
  json cfg = mt.config;
  cfg["tie_word_embeddings"] = false;  // presence of lm_head.weight decides
  mt.config = cfg;
  auto tied = load_tiny(mt);
  EXPECT_TRUE(tied->tied_embeddings());
  KVCache c2(tied->config(), 12, 512);
  expect_close(run_kexa(*tied, c2, toks, {6, 6}), reference_logits(mt, toks), 1e-4, "exaone tied fallback");
}

// The same models on the Vulkan backend (lavapipe in CI), against the same double-precision
// references and tolerance: matrix products, norms, SwiGLU and residuals run in shaders.
// Without a usable device the backend falls back to the CPU (the note says why): the test then
// skips, or fails under KEXA_REQUIRE_VULKAN=1.
#define KEXA_EXPECT_VULKAN(model)                                                       \
  if ((model)->backend_name().rfind("vulkan", 0) != 0) {                                \
    const char* req_ = std::getenv("KEXA_REQUIRE_VULKAN");                              \
    if (req_ != nullptr && std::string(req_) == "1") {                                 \
      FAIL() << (model)->device_note();                                                 \
    }                                                                                   \
    GTEST_SKIP() << "not on Vulkan: " << (model)->device_note();                        \
  }

TEST(ModelVulkan, SlidingNoPEAndLlama3GqaFollowTheReference) {
  TinySpec s;  // exaone4: layer 0 sliding W=3 with RoPE, layer 1 global NoPE, post-norm, QK-norm
  Tiny m = make_tiny(s);
  auto model = load_tiny(m, 2, Device::Vulkan);
  KEXA_EXPECT_VULKAN(model);
  std::vector<int32_t> toks = some_tokens(14, s.V, 7);
  KVCache cache(model->config(), 64, 4);
  expect_close(run_kexa(*model, cache, toks, {4, 4, 2, 1, 1, 1, 1}), reference_logits(m, toks), 1e-4,
               "vulkan exaone4 sliding+NoPE");
  // Partial offload: layer 0 on the device, layer 1 and the output on the CPU.
  auto half = load_tiny(m, 2, Device::Vulkan, 1);
  KVCache cache_h(half->config(), 64, 4);
  expect_close(run_kexa(*half, cache_h, toks, {4, 4, 2, 1, 1, 1, 1}), reference_logits(m, toks), 1e-4,
               "vulkan --gpu-layers 1");
  EXPECT_THROW(load_tiny(m, 2, Device::Vulkan, 3), Error);

  TinySpec e;  // exaone 3.x: pre-norm, GQA, llama3 rope bands, tied
  e.arch = "exaone";
  e.windows = {0, 0};
  e.rope = {true, true};
  e.nKV = 1;
  e.seed = 11;
  e.orig = 16;
  e.tied = true;
  Tiny me = make_tiny(e);
  auto model_e = load_tiny(me, 2, Device::Vulkan);
  KEXA_EXPECT_VULKAN(model_e);
  std::vector<int32_t> toks_e = some_tokens(12, e.V, 5);
  KVCache cache_e(model_e->config(), 12, 5);
  expect_close(run_kexa(*model_e, cache_e, toks_e, {12}), reference_logits(me, toks_e), 1e-4,
               "vulkan exaone pre-norm GQA llama3 tied");
}

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(ModelForward, Bf16WeightsFollowTheReference) {
  // Weights stored as BF16 (matrices and norms); the reference uses the same rounded values.
  // Tolerance is looser because BF16 matmuls also round activations to bf16 (as llama.cpp does).
  TinySpec s;
  s.seed = 5;
  Tiny m = make_tiny(s);
  auto src = std::make_unique<MemorySource>();
  for (auto& [name, t] : m.tensors) {
    std::vector<uint8_t> bytes(t.data.size() * 2);
    for (size_t i = 0; i < t.data.size(); ++i) {
      uint16_t h = to_bf16(t.data[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
      t.data[i] = from_bf16(h);
    }
    src->add(name, DType::BF16, t.shape, std::move(bytes));
  }
  auto model = Model::from_source(ModelConfig::from_hf_json(m.config, "bf16"), std::move(src), false, "bf16");
  std::vector<int32_t> toks = some_tokens(12, s.V, 2);
  KVCache cache(model->config(), 16, 5);
  expect_close(run_kexa(*model, cache, toks, {5, 5, 1, 1}), reference_logits(m, toks), 3e-2, "bf16 weights");
}

TEST(ModelForward, LastRowOnlyAndChunkInvariance) {
  TinySpec s;
  Tiny m = make_tiny(s);
  auto model = load_tiny(m);
  std::vector<int32_t> toks = some_tokens(11, s.V, 13);
  std::vector<double> ref = reference_logits(m, toks);
  KVCache cache(model->config(), 16, 3);
  std::vector<float> last(static_cast<size_t>(s.V));
  model->forward(toks, cache, last, false);
  std::vector<double> want(ref.end() - s.V, ref.end());
  expect_close(last, want, 1e-4, "last row");
}

TEST(ModelForward, SlidingRingStaysSmallOver4W) {
  // Window 4, chunk 3: sliding layers keep W-1+chunk = 6 slots while 4*W+ tokens are generated.
  TinySpec s;
  s.windows = {4, 0, 4};
  s.rope = {true, false, true};
  s.seed = 21;
  Tiny m = make_tiny(s);
  auto model = load_tiny(m);
  const int64_t W = 4, chunk = 3, max_ctx = 64;
  KVCache cache(model->config(), max_ctx, chunk);
  EXPECT_EQ(cache.slots(0), W - 1 + chunk);
  EXPECT_EQ(cache.slots(1), max_ctx);
  EXPECT_EQ(cache.slots(2), W - 1 + chunk);
  const size_t row_bytes = static_cast<size_t>(s.nKV * s.hd) * sizeof(float) * 2;
  EXPECT_EQ(cache.bytes(), row_bytes * static_cast<size_t>(2 * (W - 1 + chunk) + max_ctx));

  // Prompt of 5 (chunks 3 + 2), then greedy generation to 4*W + 5 tokens in total.
  std::vector<int32_t> seq = some_tokens(5, s.V, 17);
  const size_t V = static_cast<size_t>(s.V);
  std::vector<float> all(seq.size() * V);
  model->forward(seq, cache, all, true);
  while (seq.size() < static_cast<size_t>(4 * W + 5)) {
    const float* last = all.data() + (seq.size() - 1) * V;
    int32_t next = static_cast<int32_t>(std::max_element(last, last + V) - last);
    seq.push_back(next);
    std::vector<float> row(V);
    model->forward(std::span<const int32_t>(&seq.back(), 1), cache, row, true);
    all.insert(all.end(), row.begin(), row.end());
    EXPECT_EQ(cache.slots(0), W - 1 + chunk);
  }
  EXPECT_EQ(cache.n_past(), 4 * W + 5);
  expect_close(all, reference_logits(m, seq), 1e-4, "ring vs full reference");
}

TEST(ModelForward, BatchOfSequencesMatchesReference) {
  // Three sequences at different depths in one fused step (prefill of one, decode of others),
  // with a chunk smaller than one item's tokens so the batch takes several rounds.
  TinySpec s;
  s.windows = {3, 0};
  s.seed = 8;
  Tiny m = make_tiny(s);
  auto model = load_tiny(m);
  const size_t V = static_cast<size_t>(s.V);
  std::vector<std::vector<int32_t>> seqs = {some_tokens(9, s.V, 1), some_tokens(6, s.V, 2), some_tokens(12, s.V, 3)};
  std::vector<size_t> split = {5, 1, 12};  // tokens already in each cache before the batch step
  std::vector<std::unique_ptr<KVCache>> caches;
  for (size_t i = 0; i < seqs.size(); ++i) {
    caches.push_back(std::make_unique<KVCache>(model->config(), 32, 4));
    if (split[i] > 0) model->forward(std::span<const int32_t>(seqs[i].data(), split[i]), *caches[i], {}, false);
  }
  std::vector<std::vector<float>> out(seqs.size(), std::vector<float>(V));
  std::vector<Model::BatchItem> items;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Model::BatchItem it;
    it.tokens = std::span<const int32_t>(seqs[i].data() + split[i], seqs[i].size() - split[i]);
    it.cache = caches[i].get();
    it.logits = out[i];
    items.push_back(it);
  }
  model->forward_batch(items);
  for (size_t i = 0; i < seqs.size(); ++i) {
    std::vector<double> ref = reference_logits(m, seqs[i]);
    if (split[i] == seqs[i].size()) continue;  // nothing evaluated in the batch
    std::vector<double> last(ref.end() - static_cast<std::ptrdiff_t>(V), ref.end());
    expect_close(out[i], last, 1e-4, "batch item " + std::to_string(i));
    EXPECT_EQ(caches[i]->n_past(), static_cast<int64_t>(seqs[i].size()));
  }
  std::vector<Model::BatchItem> shared = {items[0], items[0]};
  expect_error([&] { model->forward_batch(shared); }, {"share"});
}

TEST(ModelForward, ContextOverflowAndBadTokens) {
  TinySpec s;
  Tiny m = make_tiny(s);
  auto model = load_tiny(m);
  KVCache cache(model->config(), 4, 4);
  std::vector<int32_t> five = some_tokens(5, s.V, 1);
  expect_error([&] { model->forward(five, cache, {}, false); }, {"context"});
  std::vector<int32_t> bad = {1, static_cast<int32_t>(s.V)};
  expect_error([&] { model->forward(bad, cache, {}, false); }, {"token id", std::to_string(s.V)});
}

// ---- bad weights ---------------------------------------------------------------------------------

TEST(ModelLoad, MissingWrongShapeWrongDtypeUnexpected) {
  TinySpec s;
  Tiny m = make_tiny(s);
  ModelConfig c = ModelConfig::from_hf_json(m.config, "tiny");

  auto src = memory_source(m);
  src->remove("model.layers.1.self_attn.k_norm.weight");
  expect_error([&] { Model::from_source(c, std::move(src), false, "/x/tiny"); },
               {"/x/tiny", "model.layers.1.self_attn.k_norm.weight", "missing", "[8]"});

  src = memory_source(m);
  RefTensor wrong{{s.nKV * s.hd + 1, s.H}, std::vector<float>(static_cast<size_t>((s.nKV * s.hd + 1) * s.H))};
  src->add_f32("model.layers.0.self_attn.k_proj.weight", wrong.shape, wrong.data);
  expect_error([&] { Model::from_source(c, std::move(src), false, "tiny"); },
               {"model.layers.0.self_attn.k_proj.weight", "[17, 32]", "[16, 32]"});

  src = memory_source(m);
  src->add("model.layers.0.mlp.up_proj.weight", DType::I32, {s.I, s.H},
           std::vector<uint8_t>(static_cast<size_t>(s.I * s.H * 4)));
  expect_error([&] { Model::from_source(c, std::move(src), false, "tiny"); },
               {"model.layers.0.mlp.up_proj.weight", "dtype", "I32"});

  src = memory_source(m);
  src->add_f32("model.layers.0.self_attn.extra.weight", {2}, {1, 2});
  expect_error([&] { Model::from_source(c, std::move(src), false, "tiny"); },
               {"unexpected tensor model.layers.0.self_attn.extra.weight"});

  // Every problem is reported at once.
  src = memory_source(m);
  src->remove("model.norm.weight");
  src->remove("model.layers.0.mlp.down_proj.weight");
  expect_error([&] { Model::from_source(c, std::move(src), false, "tiny"); },
               {"2 tensor problems", "model.norm.weight", "model.layers.0.mlp.down_proj.weight"});
}

// ---- files on disk: HF folder and GGUF -----------------------------------------------------------

std::string temp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/kexa_model_test_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

void write_hf_folder(const Tiny& m, const std::string& dir) {
  {
    std::ofstream cfg(dir + "/config.json");
    cfg << m.config.dump(2);
  }
  json header = json::object();
  size_t off = 0;
  for (const auto& [name, t] : m.tensors) {
    size_t nb = t.data.size() * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';
  std::ofstream out(dir + "/model.safetensors", std::ios::binary);
  uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& [name, t] : m.tensors) out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * 4));
}

TEST(ModelLoad, HfFolderMatchesReference) {
  TinySpec s;
  Tiny m = make_tiny(s);
  std::string dir = temp_dir("hf");
  write_hf_folder(m, dir);
  LoadOptions o;
  o.n_threads = 2;
  auto model = Model::load(dir, o);
  std::vector<int32_t> toks = some_tokens(10, s.V, 3);
  KVCache cache(model->config(), 16, 4);
  expect_close(run_kexa(*model, cache, toks, {4, 4, 1, 1}), reference_logits(m, toks), 1e-4, "HF folder");
}

// Writes the model with llama.cpp's exaone4 names and metadata; llama3 scaling as rope_freqs.
void write_gguf(const Tiny& m, const std::string& path, const std::string& arch, int64_t extra_rope_freqs = 0) {
  const TinySpec& s = m.spec;
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str(arch));
  const int64_t L = static_cast<int64_t>(s.windows.size());
  w.set(arch + ".block_count", gguf::Value::u32(static_cast<uint32_t>(L)));
  w.set(arch + ".context_length", gguf::Value::u32(4096));
  w.set(arch + ".embedding_length", gguf::Value::u32(static_cast<uint32_t>(s.H)));
  w.set(arch + ".feed_forward_length", gguf::Value::u32(static_cast<uint32_t>(s.I)));
  w.set(arch + ".attention.head_count", gguf::Value::u32(static_cast<uint32_t>(s.nH)));
  w.set(arch + ".attention.head_count_kv", gguf::Value::u32(static_cast<uint32_t>(s.nKV)));
  w.set(arch + ".attention.key_length", gguf::Value::u32(static_cast<uint32_t>(s.hd)));
  w.set(arch + ".attention.value_length", gguf::Value::u32(static_cast<uint32_t>(s.hd)));
  w.set(arch + ".rope.dimension_count", gguf::Value::u32(static_cast<uint32_t>(s.hd)));
  w.set(arch + ".rope.freq_base", gguf::Value::f32(static_cast<float>(s.theta)));
  w.set(arch + ".attention.layer_norm_rms_epsilon", gguf::Value::f32(static_cast<float>(s.eps)));
  w.set(arch + ".vocab_size", gguf::Value::u32(static_cast<uint32_t>(s.V)));
  int64_t win = 0;
  std::vector<int64_t> flags;
  for (int64_t x : s.windows) {
    win = std::max(win, x);
    flags.push_back(x > 0 ? 1 : 0);
  }
  if (win > 0) {
    w.set(arch + ".attention.sliding_window", gguf::Value::u32(static_cast<uint32_t>(win)));
    w.set(arch + ".attention.sliding_window_pattern", gguf::Value::ints(gguf::ValueType::BOOL, flags));
  }
  auto add = [&](const std::string& name, const RefTensor& t) {
    auto data = std::make_shared<std::vector<float>>(t.data);
    w.add_tensor(name, DType::F32, t.shape, [data](uint8_t* out, size_t nb) { std::memcpy(out, data->data(), nb); });
  };
  add("token_embd.weight", m.tensors.at(hf_global(s, "embed")));
  if (!s.tied) add("output.weight", m.tensors.at(hf_global(s, "head")));
  add("output_norm.weight", m.tensors.at(hf_global(s, "norm")));
  if (s.llama3) {
    // Divisors computed independently (double) as llama.cpp's converter does.
    RefTensor rf{{s.hd / 2}, {}};
    const double pi = std::acos(-1.0);
    for (int64_t i = 0; i < s.hd / 2; ++i) {
      double f = std::pow(s.theta, -2.0 * static_cast<double>(i) / static_cast<double>(s.hd));
      double wl = 2 * pi / f, lo = static_cast<double>(s.orig), hi = lo / 4.0;
      double d = 1.0;
      if (wl > lo) {
        d = s.factor;
      } else if (wl >= hi) {
        double sm = (lo / wl - 1.0) / 3.0;
        d = 1.0 / ((1 - sm) / s.factor + sm);
      }
      rf.data.push_back(static_cast<float>(d));
    }
    for (int64_t i = 0; i < extra_rope_freqs; ++i) rf.data.push_back(1.0f);
    rf.shape[0] += extra_rope_freqs;
    add("rope_freqs.weight", rf);
  }
  for (int64_t l = 0; l < L; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_q.weight", m.tensors.at(hf_name(s, l, "q")));
    add(p + "attn_k.weight", m.tensors.at(hf_name(s, l, "k")));
    add(p + "attn_v.weight", m.tensors.at(hf_name(s, l, "v")));
    add(p + "attn_output.weight", m.tensors.at(hf_name(s, l, "o")));
    add(p + "ffn_gate.weight", m.tensors.at(hf_name(s, l, "gate")));
    add(p + "ffn_up.weight", m.tensors.at(hf_name(s, l, "up")));
    add(p + "ffn_down.weight", m.tensors.at(hf_name(s, l, "down")));
    if (is_exaone3(s)) {
      add(p + "attn_norm.weight", m.tensors.at(hf_name(s, l, "ln1")));
      add(p + "ffn_norm.weight", m.tensors.at(hf_name(s, l, "ln2")));
    } else {
      add(p + "attn_q_norm.weight", m.tensors.at(hf_name(s, l, "qn")));
      add(p + "attn_k_norm.weight", m.tensors.at(hf_name(s, l, "kn")));
      add(p + "post_attention_norm.weight", m.tensors.at(hf_name(s, l, "pan")));
      add(p + "post_ffw_norm.weight", m.tensors.at(hf_name(s, l, "pfn")));
    }
  }
  w.write(path);
}

TEST(ModelLoad, GgufWithRopeFreqsMatchesReference) {
  for (const std::string arch : {"exaone4", "exaone"}) {
    TinySpec s;
    if (arch == "exaone") {
      s.arch = "exaone";
      s.windows = {0, 0};
      s.rope = {true, true};
      s.tied = true;
      s.orig = 16;
    }
    Tiny m = make_tiny(s);
    std::string path = temp_dir("gguf_" + arch) + "/m.gguf";
    write_gguf(m, path, arch);
    auto model = Model::load(path);
    EXPECT_EQ(model->config().arch, arch == "exaone" ? Arch::Exaone : Arch::Exaone4);
    EXPECT_FALSE(model->config().rope_freq_divisors.empty());
    EXPECT_EQ(model->tied_embeddings(), s.tied);
    EXPECT_EQ(windows(model->config()), s.windows);
    EXPECT_EQ(ropes(model->config()), s.rope);
    std::vector<int32_t> toks = some_tokens(10, s.V, 4);
    KVCache cache(model->config(), 16, 4);
    expect_close(run_kexa(*model, cache, toks, {4, 4, 1, 1}), reference_logits(m, toks), 1e-4, "GGUF " + arch);
  }
}

TEST(ModelLoad, GgufBadRopeFreqsIsNamed) {
  TinySpec s;
  Tiny m = make_tiny(s);
  std::string path = temp_dir("gguf_bad_rope") + "/m.gguf";
  write_gguf(m, path, "exaone4", 2);
  expect_error([&] { Model::load(path); }, {"m.gguf", "rope_freqs.weight", "[6]", "[4]"});
}

TEST(ModelLoad, UnknownArchitectureAndNotAModel) {
  std::string dir = temp_dir("badarch");
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("llama"));
  w.write(dir + "/llama.gguf");
  expect_error([&] { Model::load(dir + "/llama.gguf"); }, {"llama.gguf", "architecture", "llama"});

  {
    std::ofstream junk(dir + "/junk.bin");
    junk << "not a model";
  }
  expect_error([&] { Model::load(dir + "/junk.bin"); }, {"junk.bin", "GGUF"});
  expect_error([&] { Model::load(dir + "/missing"); }, {"missing"});

  TinySpec s;
  Tiny m = make_tiny(s);
  m.config["model_type"] = "qwen3";
  std::string hf = temp_dir("badtype");
  write_hf_folder(m, hf);
  expect_error([&] { Model::load(hf); }, {"config.json", "model_type", "qwen3"});
}

}  // namespace
}  // namespace kexa
