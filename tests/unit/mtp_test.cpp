// MTP speculative decoding: the acceptance rule, KV-cache rollback, the MTP head against a
// double-precision reference written from the spec (4.6), and speculative == plain greedy output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/tensor.h"
#include "memory_source.h"
#include "kernels/kernels.h"
#include "model/exact_matmul.h"
#include "util/thread_pool.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "runtime/speculative.h"
#include "util/error.h"

namespace kexa {
namespace {

using json = nlohmann::json;
using test::MemorySource;

// ---- The speculative-sampling rule --------------------------------------------------------------

double u01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Draft from q, verify against p, many times: the accepted-or-replacement token must follow p
// (chi-square test at a fixed seed; the threshold is the 99.99% quantile for 5 degrees of freedom,
// so a correct rule fails with probability 1e-4 at an arbitrary seed and never at this one).
TEST(SpeculativeRule, OutputFollowsTargetDistribution) {
  const TokenDist p = {{0, 0.40}, {1, 0.25}, {2, 0.15}, {3, 0.10}, {4, 0.06}, {5, 0.04}};
  // q overweights some tokens, underweights others and gives 0 to token 5.
  const TokenDist q = {{0, 0.10}, {1, 0.45}, {2, 0.15}, {3, 0.05}, {4, 0.25}};
  std::mt19937_64 rng(12345);
  const int trials = 200000;
  std::vector<double> count(6, 0.0);
  int accepted = 0;
  for (int i = 0; i < trials; ++i) {
    const int32_t draft = dist_draw(q, u01(rng));
    const double ua = u01(rng), ur = u01(rng);
    const SpeculativeOutcome o = speculative_accept(p, q, draft, ua, ur);
    ASSERT_GE(o.token, 0);
    ASSERT_LT(o.token, 6);
    if (o.accepted) {
      ++accepted;
      EXPECT_EQ(o.token, draft);
    }
    count[static_cast<size_t>(o.token)] += 1;
  }
  double chi2 = 0;
  for (const auto& [id, pr] : p) {
    const double expect = pr * trials;
    chi2 += (count[static_cast<size_t>(id)] - expect) * (count[static_cast<size_t>(id)] - expect) / expect;
  }
  EXPECT_LT(chi2, 25.74) << "output histogram does not follow p";
  // Acceptance probability is sum_x min(p(x), q(x)) = 0.1 + 0.25 + 0.15 + 0.05 + 0.06 = 0.61.
  EXPECT_NEAR(static_cast<double>(accepted) / trials, 0.61, 0.005);

  // A rule that keeps every draft would follow q instead and fail the same test.
  std::vector<double> naive(6, 0.0);
  for (int i = 0; i < trials; ++i) naive[static_cast<size_t>(dist_draw(q, u01(rng)))] += 1;
  double chi2_naive = 0;
  for (const auto& [id, pr] : p) {
    const double expect = pr * trials;
    chi2_naive += (naive[static_cast<size_t>(id)] - expect) * (naive[static_cast<size_t>(id)] - expect) / expect;
  }
  EXPECT_GT(chi2_naive, 1000.0);
}

TEST(SpeculativeRule, PointMassesAreGreedy) {
  const TokenDist p = {{7, 1.0}}, q_same = {{7, 1.0}}, q_other = {{3, 1.0}};
  for (double u : {0.0, 0.5, 0.999999}) {
    SpeculativeOutcome o = speculative_accept(p, q_same, 7, u, u);
    EXPECT_TRUE(o.accepted);
    EXPECT_EQ(o.token, 7);
    o = speculative_accept(p, q_other, 3, u, u);
    EXPECT_FALSE(o.accepted);
    EXPECT_EQ(o.token, 7);
  }
}

// ---- Row-exact batched matmul ----------------------------------------------------------------

// Each row of matmul_rows_exact equals the single-token kernels::matmul (and matmul_many) bit for
// bit, for float and quantized weights; plain batched kernels::matmul is not required to.
TEST(ExactRows, MatchesSingleTokenKernels) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  ThreadPool pool(2);
  std::vector<std::unique_ptr<ThreadPool>> inline_pools;
  const int64_t rows = 700, cols = 1536, n = 3;
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) v = uni(rng);
  for (DType dt : {DType::F32, DType::BF16, DType::Q8_0}) {
    kernels::Weight W;
    W.name = "w";
    W.dtype = dt;
    W.shape = {rows, cols};
    std::vector<uint8_t> bytes(dtype_bytes(dt, rows * cols));
    if (dt == DType::Q8_0) {
      // Blocks of an f16 scale (0.0125) and 32 random int8.
      for (size_t b = 0; b < bytes.size(); b += 34) {
        bytes[b] = 0x66;
        bytes[b + 1] = 0x22;
        for (size_t i = 2; i < 34; ++i) bytes[b + i] = static_cast<uint8_t>(rng());
      }
    } else {
      for (size_t i = 0; i < bytes.size(); i += dt == DType::F32 ? 4 : 2) {
        float f = uni(rng);
        uint32_t u;
        std::memcpy(&u, &f, 4);
        std::memcpy(bytes.data() + i, reinterpret_cast<uint8_t*>(&u) + (dt == DType::F32 ? 0 : 2), dt == DType::F32 ? 4 : 2);
      }
    }
    W.data = bytes.data();
    W.nbytes = bytes.size();
    std::vector<float> want(static_cast<size_t>(n * rows)), many(static_cast<size_t>(n * rows)),
        got(static_cast<size_t>(n * rows));
    for (int64_t t = 0; t < n; ++t) {
      kernels::matmul(W, x.data() + t * cols, 1, want.data() + t * rows, pool);
      const kernels::MatmulOut out[] = {{&W, many.data() + t * rows}};
      kernels::matmul_many(out, x.data() + t * cols, 1, pool);
    }
    model_detail::matmul_rows_exact(W, x.data(), n, got.data(), pool, inline_pools);
    EXPECT_EQ(got, want) << dtype_name(dt);
    EXPECT_EQ(many, want) << dtype_name(dt) << " (matmul_many)";
  }
}

// ---- Tiny models with an MTP block: K-EXAONE-shaped (pre-norm, all dense, so no MoE code), or ---
// ---- an EXAONE 4.5 text tower (`post`: exaone4, post-norm, MTP layer sliding with RoPE) --------

struct Dims {
  int64_t V = 64, H = 32, nH = 4, nKV = 2, hd = 16, I = 48, L = 4, W = 4;
  bool post = false;
};

Dims exaone4_dims() {
  Dims d;
  d.post = true;
  return d;
}

json tiny_config(const Dims& d) {
  json lt = json::array(), mt = json::array();
  for (int64_t i = 0; i < d.L; ++i) {
    lt.push_back(i % 4 == 3 ? "full_attention" : "sliding_attention");
    mt.push_back("dense");
  }
  if (d.post) {
    // No mtp_layer_types, as EXAONE 4.5's config: the MTP layer attends as layer 0.
    return {{"model_type", "exaone4"}, {"vocab_size", d.V}, {"hidden_size", d.H}, {"num_hidden_layers", d.L},
            {"num_attention_heads", d.nH}, {"num_key_value_heads", d.nKV}, {"head_dim", d.hd},
            {"intermediate_size", d.I}, {"sliding_window", d.W}, {"layer_types", lt}, {"rope_theta", 10000.0},
            {"rms_norm_eps", 1e-5}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
            {"max_position_embeddings", 4096}, {"num_nextn_predict_layers", 1}, {"mtp_share_layers", true},
            {"eos_token_id", 2}};
  }
  return {{"model_type", "exaone_moe"}, {"vocab_size", d.V}, {"hidden_size", d.H}, {"num_hidden_layers", d.L},
          {"num_attention_heads", d.nH}, {"num_key_value_heads", d.nKV}, {"head_dim", d.hd},
          {"intermediate_size", d.I}, {"moe_intermediate_size", 8}, {"num_experts", 4},
          {"num_experts_per_tok", 2}, {"num_shared_experts", 1}, {"mlp_layer_types", mt},
          {"sliding_window", d.W}, {"layer_types", lt}, {"rope_theta", 10000.0}, {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"}, {"tie_word_embeddings", false}, {"max_position_embeddings", 4096},
          {"num_nextn_predict_layers", 1}, {"mtp_layer_types", json::array({"full_attention"})},
          {"eos_token_id", 2}};
}

std::unique_ptr<MemorySource> tiny_weights(const Dims& d, uint64_t seed) {
  auto src = std::make_unique<MemorySource>();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  auto rnd = [&](std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = offset + scale * uni(rng);
    return v;
  };
  const float ws = 2.0f / std::sqrt(static_cast<float>(d.H));
  auto layer = [&](const std::string& p) {
    if (!d.post) src->add_f32(p + "input_layernorm.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
    src->add_f32(p + "self_attn.q_proj.weight", {d.nH * d.hd, d.H}, rnd({d.nH * d.hd, d.H}, ws));
    src->add_f32(p + "self_attn.k_proj.weight", {d.nKV * d.hd, d.H}, rnd({d.nKV * d.hd, d.H}, ws));
    src->add_f32(p + "self_attn.v_proj.weight", {d.nKV * d.hd, d.H}, rnd({d.nKV * d.hd, d.H}, ws));
    src->add_f32(p + "self_attn.o_proj.weight", {d.H, d.nH * d.hd}, rnd({d.H, d.nH * d.hd}, ws));
    src->add_f32(p + "self_attn.q_norm.weight", {d.hd}, rnd({d.hd}, 0.3f, 1.0f));
    src->add_f32(p + "self_attn.k_norm.weight", {d.hd}, rnd({d.hd}, 0.3f, 1.0f));
    src->add_f32(p + "post_attention_layernorm.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
    src->add_f32(p + "mlp.gate_proj.weight", {d.I, d.H}, rnd({d.I, d.H}, ws));
    src->add_f32(p + "mlp.up_proj.weight", {d.I, d.H}, rnd({d.I, d.H}, ws));
    src->add_f32(p + "mlp.down_proj.weight", {d.H, d.I}, rnd({d.H, d.I}, 2.0f / std::sqrt(static_cast<float>(d.I))));
    if (d.post) src->add_f32(p + "post_feedforward_layernorm.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
  };
  src->add_f32("model.embed_tokens.weight", {d.V, d.H}, rnd({d.V, d.H}, 1.0f));
  for (int64_t i = 0; i < d.L; ++i) layer("model.layers." + std::to_string(i) + ".");
  src->add_f32("model.norm.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
  src->add_f32("lm_head.weight", {d.V, d.H}, rnd({d.V, d.H}, 1.5f));
  layer("mtp.layers.0.");
  src->add_f32("mtp.fc.weight", {d.H, 2 * d.H}, rnd({d.H, 2 * d.H}, 2.0f / std::sqrt(static_cast<float>(2 * d.H))));
  src->add_f32("mtp.pre_fc_norm_embedding.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
  src->add_f32("mtp.pre_fc_norm_hidden.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
  src->add_f32("mtp.norm.weight", {d.H}, rnd({d.H}, 0.2f, 1.0f));
  return src;
}

std::unique_ptr<Model> load(const Dims& d, std::unique_ptr<MemorySource> src) {
  LoadOptions o;
  o.n_threads = 2;
  return Model::from_source(ModelConfig::from_hf_json(tiny_config(d), "tiny"), std::move(src), false, "tiny", o);
}

std::vector<int32_t> some_tokens(int64_t n, int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(V));
  return t;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return a.size() == b.size() ? m : INFINITY;
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float x : a) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

TEST(MtpModel, ConfigAndBinding) {
  Dims d;
  auto model = load(d, tiny_weights(d, 1));
  EXPECT_TRUE(model->has_mtp());
  EXPECT_EQ(model->config().n_mtp_layers, 1);
  EXPECT_EQ(model->config().mtp_layer.window, 0);
  EXPECT_FALSE(model->config().mtp_layer.rope);  // global layer of a model with sliding layers: NoPE

  // A missing MTP tensor is named.
  auto src = tiny_weights(d, 1);
  src->remove("mtp.layers.0.self_attn.k_norm.weight");
  try {
    load(d, std::move(src));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mtp.layers.0.self_attn.k_norm.weight is missing"), std::string::npos) << e.what();
  }
  // Wrong fc shape is named.
  src = tiny_weights(d, 1);
  src->add_f32("mtp.fc.weight", {d.H, d.H}, std::vector<float>(static_cast<size_t>(d.H * d.H), 0.0f));
  try {
    load(d, std::move(src));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mtp.fc.weight has shape"), std::string::npos) << e.what();
  }
  // A config without num_nextn_predict_layers still finds the block from its tensors (spec 4.1).
  json c = tiny_config(d);
  c.erase("num_nextn_predict_layers");
  auto m2 = Model::from_source(ModelConfig::from_hf_json(c, "tiny"), tiny_weights(d, 1), false, "tiny");
  EXPECT_TRUE(m2->has_mtp());
}

// EXAONE 4.5 text tower: the MTP block binds as a post-norm exaone4 layer and, without
// mtp_layer_types, attends as layer 0 does (sliding with RoPE here); mtp_layer_types overrides.
// A checkpoint saved without its MTP tensors loads without MTP; a partial block is a named error.
TEST(MtpModel, Exaone4ConfigAndBinding) {
  const Dims d = exaone4_dims();
  auto model = load(d, tiny_weights(d, 1));
  EXPECT_TRUE(model->has_mtp());
  EXPECT_EQ(model->config().n_mtp_layers, 1);
  EXPECT_EQ(model->config().mtp_layer.window, d.W);
  EXPECT_TRUE(model->config().mtp_layer.rope);

  auto plan = [&](const std::function<void(json&)>& edit) {
    json c = tiny_config(d);
    edit(c);
    return ModelConfig::from_hf_json(c, "tiny").mtp_layer;
  };
  LayerPlan p = plan([](json& c) { c["mtp_layer_types"] = json::array({"full_attention"}); });
  EXPECT_EQ(p.window, 0);
  EXPECT_FALSE(p.rope);  // global layer of a model with sliding layers: NoPE
  p = plan([](json& c) { c["layer_types"][0] = "full_attention"; });
  EXPECT_EQ(p.window, 0);
  EXPECT_FALSE(p.rope);
  p = plan([](json& c) {
    c["sliding_window"] = nullptr;
    c.erase("layer_types");
  });
  EXPECT_EQ(p.window, 0);
  EXPECT_TRUE(p.rope);  // no sliding layers (EXAONE 4.0 1.2B style): RoPE everywhere

  auto src = tiny_weights(d, 1);
  src->remove("mtp.layers.0.post_feedforward_layernorm.weight");
  try {
    load(d, std::move(src));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mtp.layers.0.post_feedforward_layernorm.weight is missing"), std::string::npos)
        << e.what();
  }
  src = tiny_weights(d, 1);
  for (const std::string& n : src->names())
    if (n.rfind("mtp.", 0) == 0) src->remove(n);
  auto bare = load(d, std::move(src));
  EXPECT_FALSE(bare->has_mtp());
  EXPECT_EQ(bare->config().n_mtp_layers, 0);
}

// GGUF metadata keeps the MTP block's plan: llama.cpp's converters write one sliding-pattern entry
// per main layer, so kexa adds entries for the MTP blocks only when they attend otherwise than
// from_gguf assumes without one (layer 0's kind for exaone4).
TEST(MtpModel, Exaone4GgufMetadataKeepsTheMtpPlan) {
  const Dims d = exaone4_dims();
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("kexa-mtp-meta-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".gguf"))
                               .string();
  for (const char* mtp_type : {"", "full_attention", "sliding_attention"}) {
    for (const char* layer0 : {"sliding_attention", "full_attention"}) {
      json cj = tiny_config(d);
      cj["layer_types"][0] = layer0;
      if (*mtp_type != 0) cj["mtp_layer_types"] = json::array({mtp_type});
      const ModelConfig c = ModelConfig::from_hf_json(cj, "tiny");
      gguf::Writer w;
      write_gguf_metadata(c, GgufGeneral{}, "tiny", w);
      w.add_tensor("output_norm.weight", DType::F32, {d.H}, [](uint8_t* out, size_t n) { std::memset(out, 0, n); });
      w.write(path);
      auto f = gguf::File::open(path);
      const ModelConfig g = ModelConfig::from_gguf(*f);
      const std::string what = std::string("mtp_layer_types ") + mtp_type + ", layer 0 " + layer0;
      EXPECT_EQ(g.n_mtp_layers, 1) << what;
      EXPECT_EQ(g.n_layers, d.L) << what;
      EXPECT_EQ(g.mtp_layer.window, c.mtp_layer.window) << what;
      EXPECT_EQ(g.mtp_layer.rope, c.mtp_layer.rope) << what;
      const gguf::Value* pat = f->get("exaone4.attention.sliding_window_pattern");
      ASSERT_NE(pat, nullptr) << what;
      const bool as_layer0 = c.mtp_layer.window == c.layers[0].window;
      EXPECT_EQ(pat->as_ints("pattern").size(), static_cast<size_t>(d.L + (as_layer0 ? 0 : 1))) << what;
    }
  }
  std::filesystem::remove(path);
}

// The MTP head against a straightforward double-precision evaluation of spec 4.6 (fed the main
// model's hidden states, which are checked to reproduce the main logits through lm_head): K-EXAONE's
// pre-norm global NoPE layer, and EXAONE 4.5's post-norm layer with a sliding window and RoPE at
// the position of the hidden state (spec 4.6 item 6).
TEST(MtpModel, HeadMatchesReference) {
  for (bool post : {false, true}) {
  Dims d;
  d.post = post;
  auto src = tiny_weights(d, 2);
  const MemorySource& w = *src;
  std::map<std::string, std::vector<float>> W;
  for (const std::string& n : w.names()) W[n] = w.data(n);
  auto model = load(d, std::move(src));
  const int64_t T = 12, H = d.H, V = d.V, hd = d.hd;
  const std::vector<int32_t> toks = some_tokens(T + 1, V, 7);
  KVCache cache(model->config(), 64, 5);  // chunk 5: prefill runs in 3 chunks
  std::vector<float> logits(static_cast<size_t>(T * V)), hidden(static_cast<size_t>(T * H));
  model->forward_hidden(std::span<const int32_t>(toks).first(T), cache, logits, true, hidden);

  auto matvec = [&](const std::vector<float>& m, int64_t rows, int64_t cols, const std::vector<double>& x) {
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) y[static_cast<size_t>(r)] += m[static_cast<size_t>(r * cols + c)] * x[static_cast<size_t>(c)];
    return y;
  };
  auto rms = [&](const std::vector<double>& x, const std::vector<float>& g, size_t off, size_t n) {
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += x[off + i] * x[off + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    std::vector<double> y(n);
    for (size_t i = 0; i < n; ++i) y[i] = x[off + i] * inv * g[i];
    return y;
  };

  // hidden is the lm_head input: lm_head(hidden) == logits.
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> h(hidden.begin() + t * H, hidden.begin() + (t + 1) * H);
    std::vector<double> y = matvec(W["lm_head.weight"], V, H, h);
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(y[static_cast<size_t>(v)], logits[static_cast<size_t>(t * V + v)], 1e-3);
  }

  // Reference MTP rows t = 0..T-1: (hidden_t, token_{t+1}); pre-norm: global NoPE attention over
  // rows 0..t; post-norm: RoPE at position t, window rows t-W+1..t.
  auto rope = [&](std::vector<double>& x, int64_t heads, int64_t pos) {
    const int64_t half = hd / 2;
    for (int64_t hh = 0; hh < heads; ++hh) {
      for (int64_t i = 0; i < half; ++i) {
        const double ang = static_cast<double>(pos) * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
        double& a0 = x[static_cast<size_t>(hh * hd + i)];
        double& a1 = x[static_cast<size_t>(hh * hd + i + half)];
        const double r0 = a0 * std::cos(ang) - a1 * std::sin(ang), r1 = a0 * std::sin(ang) + a1 * std::cos(ang);
        a0 = r0;
        a1 = r1;
      }
    }
  };
  const std::string p = "mtp.layers.0.";
  std::vector<std::vector<double>> K(static_cast<size_t>(T)), Vv(static_cast<size_t>(T));
  std::vector<double> ref(static_cast<size_t>(T * V)), ref_out(static_cast<size_t>(T * H));
  const int64_t group = d.nH / d.nKV;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> e(static_cast<size_t>(H)), h(static_cast<size_t>(H));
    for (int64_t i = 0; i < H; ++i) {
      e[static_cast<size_t>(i)] = W["model.embed_tokens.weight"][static_cast<size_t>(toks[static_cast<size_t>(t + 1)] * H + i)];
      h[static_cast<size_t>(i)] = hidden[static_cast<size_t>(t * H + i)];
    }
    std::vector<double> u = rms(e, W["mtp.pre_fc_norm_embedding.weight"], 0, static_cast<size_t>(H));
    std::vector<double> g = rms(h, W["mtp.pre_fc_norm_hidden.weight"], 0, static_cast<size_t>(H));
    u.insert(u.end(), g.begin(), g.end());  // embedding first, hidden second
    std::vector<double> x = matvec(W["mtp.fc.weight"], H, 2 * H, u);
    std::vector<double> a = post ? x : rms(x, W[p + "input_layernorm.weight"], 0, static_cast<size_t>(H));
    std::vector<double> q = matvec(W[p + "self_attn.q_proj.weight"], d.nH * hd, H, a);
    std::vector<double> k = matvec(W[p + "self_attn.k_proj.weight"], d.nKV * hd, H, a);
    std::vector<double> v = matvec(W[p + "self_attn.v_proj.weight"], d.nKV * hd, H, a);
    for (int64_t hh = 0; hh < d.nH; ++hh) {
      std::vector<double> r = rms(q, W[p + "self_attn.q_norm.weight"], static_cast<size_t>(hh * hd), static_cast<size_t>(hd));
      std::copy(r.begin(), r.end(), q.begin() + hh * hd);
    }
    for (int64_t hh = 0; hh < d.nKV; ++hh) {
      std::vector<double> r = rms(k, W[p + "self_attn.k_norm.weight"], static_cast<size_t>(hh * hd), static_cast<size_t>(hd));
      std::copy(r.begin(), r.end(), k.begin() + hh * hd);
    }
    if (post) {
      rope(q, d.nH, t);
      rope(k, d.nKV, t);
    }
    K[static_cast<size_t>(t)] = k;
    Vv[static_cast<size_t>(t)] = v;
    std::vector<double> att(static_cast<size_t>(d.nH * hd), 0.0);
    for (int64_t hh = 0; hh < d.nH; ++hh) {
      const int64_t kv = hh / group;
      const int64_t j0 = post ? std::max<int64_t>(0, t - d.W + 1) : 0;
      std::vector<double> s(static_cast<size_t>(t + 1), -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = j0; j <= t; ++j) {
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += q[static_cast<size_t>(hh * hd + i)] * K[static_cast<size_t>(j)][static_cast<size_t>(kv * hd + i)];
        s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double z = 0;
      for (double& x2 : s) z += (x2 = std::exp(x2 - mx));
      for (int64_t j = j0; j <= t; ++j)
        for (int64_t i = 0; i < hd; ++i)
          att[static_cast<size_t>(hh * hd + i)] += s[static_cast<size_t>(j)] / z * Vv[static_cast<size_t>(j)][static_cast<size_t>(kv * hd + i)];
    }
    std::vector<double> o = matvec(W[p + "self_attn.o_proj.weight"], H, d.nH * hd, att);
    if (post) o = rms(o, W[p + "post_attention_layernorm.weight"], 0, static_cast<size_t>(H));
    for (int64_t i = 0; i < H; ++i) x[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
    // K-EXAONE's pre-MLP norm is called post_attention_layernorm (spec 8.1); 4.5 has none.
    std::vector<double> m = post ? x : rms(x, W[p + "post_attention_layernorm.weight"], 0, static_cast<size_t>(H));
    std::vector<double> ga = matvec(W[p + "mlp.gate_proj.weight"], d.I, H, m);
    std::vector<double> up = matvec(W[p + "mlp.up_proj.weight"], d.I, H, m);
    for (int64_t i = 0; i < d.I; ++i) {
      const double gg = ga[static_cast<size_t>(i)];
      ga[static_cast<size_t>(i)] = gg / (1.0 + std::exp(-gg)) * up[static_cast<size_t>(i)];
    }
    std::vector<double> dn = matvec(W[p + "mlp.down_proj.weight"], H, d.I, ga);
    if (post) dn = rms(dn, W[p + "post_feedforward_layernorm.weight"], 0, static_cast<size_t>(H));
    for (int64_t i = 0; i < H; ++i) x[static_cast<size_t>(i)] += dn[static_cast<size_t>(i)];
    std::vector<double> out = rms(x, W["mtp.norm.weight"], 0, static_cast<size_t>(H));
    std::copy(out.begin(), out.end(), ref_out.begin() + t * H);
    std::vector<double> lg = matvec(W["lm_head.weight"], V, H, out);
    std::copy(lg.begin(), lg.end(), ref.begin() + t * V);
  }

  // kexa: all rows at once (chunked by the cache's chunk of 5), and the same rows one at a time.
  for (int pass = 0; pass < 2; ++pass) {
    auto mc = model->make_mtp_cache(64, 5);
    std::vector<float> got(static_cast<size_t>(T * V)), out(static_cast<size_t>(T * H));
    const std::vector<int32_t> next(toks.begin() + 1, toks.end());
    if (pass == 0) {
      model->mtp_forward(next, hidden, *mc, got, true, out);
    } else {
      for (int64_t t = 0; t < T; ++t) {
        model->mtp_forward(std::span<const int32_t>(next).subspan(static_cast<size_t>(t), 1),
                           std::span<const float>(hidden).subspan(static_cast<size_t>(t * H), static_cast<size_t>(H)), *mc,
                           std::span<float>(got).subspan(static_cast<size_t>(t * V), static_cast<size_t>(V)), false,
                           std::span<float>(out).subspan(static_cast<size_t>(t * H), static_cast<size_t>(H)));
      }
    }
    EXPECT_EQ(mc->n_past(), T);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      worst = std::max(worst, std::fabs(ref[i] - got[i]));
      scale = std::max(scale, std::fabs(ref[i]));
    }
    EXPECT_LT(worst, 1e-4 * scale) << "pass " << pass << " post-norm " << post;
    for (size_t i = 0; i < ref_out.size(); ++i) ASSERT_NEAR(out[i], ref_out[i], 1e-4) << "pass " << pass << " post-norm " << post;
  }
  }
}

// Rolling back a cache whose sliding layers wrapped their ring and evaluating other tokens gives
// the logits of a fresh run over the same sequence.
TEST(KVCacheTruncate, RollbackThenReevaluateEqualsFreshRun) {
  Dims d;
  auto model = load(d, tiny_weights(d, 3));
  const int64_t V = d.V, chunk = 4;
  const std::vector<int32_t> a = some_tokens(30, V, 11), b = some_tokens(4, V, 12);
  // Ring slots on the sliding layers: W - 1 + chunk = 7, far fewer than the 30 positions.
  KVCache cache(model->config(), 64, chunk);
  EXPECT_EQ(cache.slots(0), d.W - 1 + chunk);
  std::vector<float> scratch(static_cast<size_t>(chunk) * V);
  model->forward(a, cache, scratch, false);
  for (int64_t back = 1; back <= chunk; ++back) {
    KVCache c2 = cache;
    EXPECT_TRUE(c2.can_truncate(30 - back));
    c2.truncate(30 - back);
    EXPECT_EQ(c2.n_past(), 30 - back);
    std::vector<float> got(4 * static_cast<size_t>(V));
    model->forward(b, c2, got, true);

    std::vector<int32_t> seq(a.begin(), a.end() - back);
    seq.insert(seq.end(), b.begin(), b.end());
    KVCache fresh(model->config(), 64, chunk);
    std::vector<float> all(seq.size() * static_cast<size_t>(V));
    model->forward(seq, fresh, all, true);
    std::vector<float> want(all.end() - 4 * V, all.end());
    EXPECT_LT(max_abs_diff(got, want), 1e-5 * max_abs(want)) << "rolled back " << back;
  }
  // Rolling back more than a chunk would read ring slots that were overwritten.
  EXPECT_FALSE(cache.can_truncate(30 - chunk - 1));
  EXPECT_THROW(cache.truncate(30 - chunk - 1), Error);
  EXPECT_THROW(cache.truncate(31), Error);
}

// Greedy speculative decoding produces exactly the plain greedy tokens, for several draft counts,
// including runs that hit the context limit and max_tokens in the middle of a step; the logits of
// every verified row are bit for bit those of plain decoding (Model::set_exact_rows), with F32
// and with BF16 weights (whose batched and single-token kernels round differently), on a model
// wider than one kernel block (so batched and single-row summation orders differ).
TEST(MtpSpeculative, GreedyEqualsPlainDecoding) {
  for (bool post : {false, true}) {
  for (bool bf16 : {false, true}) {
  Dims d;
  d.post = post;
  d.H = 528;  // > 512, the batched f32 kernels' reduction block
  d.I = 64;
  auto src = tiny_weights(d, 4);
  if (bf16) src->matrices_to_bf16();
  auto model = load(d, std::move(src));
  const std::vector<int32_t> prompt = some_tokens(9, d.V, 5);
  GenerateOptions opt;
  opt.max_tokens = 120;
  opt.use_model_eos = false;
  for (int64_t ctx : {int64_t{200}, int64_t{60}}) {
    std::vector<std::vector<float>> plain_rows;
    KVCache c0(model->config(), ctx, 8);
    Generator plain(*model, c0, SamplingParams{});
    GenerateOptions o0 = opt;
    o0.on_logits = [&](std::span<const float> r) { plain_rows.emplace_back(r.begin(), r.end()); };
    const GenerateResult want = plain.generate(prompt, o0);
    for (int n : {1, 2, 3}) {
      std::vector<std::vector<float>> rows;
      KVCache c1(model->config(), ctx, 8);
      SpeculativeGenerator spec(*model, c1, SamplingParams{}, n);
      GenerateOptions o1 = opt;
      o1.on_logits = [&](std::span<const float> r) { rows.emplace_back(r.begin(), r.end()); };
      const GenerateResult got = spec.generate(prompt, o1);
      EXPECT_EQ(got.tokens, want.tokens) << "n_draft " << n << " ctx " << ctx;
      EXPECT_EQ(got.reason, want.reason);
      EXPECT_GT(spec.stats().steps, 0);
      // The logit rows of the evaluated positions are identical (batched vs single-row evaluation).
      ASSERT_EQ(rows.size(), plain_rows.size());
      for (size_t i = 0; i < rows.size(); ++i) {
        ASSERT_EQ(rows[i], plain_rows[i]) << "row " << i << " n_draft " << n << " ctx " << ctx << " bf16 " << bf16
                                          << " post-norm " << post << ": max |diff| " << max_abs_diff(rows[i], plain_rows[i]);
      }
    }
  }
  }
  }
}

// The rows the MTP block holds after speculative decoding are the rows a fresh evaluation of the
// final sequence gives: row t joins the main hidden state at t with token t+1 (spec 4.6 item 6),
// whatever drafts were accepted or rejected on the way.
TEST(MtpSpeculative, MtpCacheMatchesFreshEvaluation) {
  Dims d;
  auto model = load(d, tiny_weights(d, 4));
  const std::vector<int32_t> prompt = some_tokens(7, d.V, 8);
  for (int n : {1, 2, 3}) {
    KVCache cache(model->config(), 256, 8);
    SpeculativeGenerator spec(*model, cache, SamplingParams{}, n);
    GenerateOptions opt;
    opt.max_tokens = 80;
    opt.use_model_eos = false;
    const GenerateResult r = spec.generate(prompt, opt);
    ASSERT_EQ(r.tokens.size(), 80u);
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
    const int64_t T = static_cast<int64_t>(seq.size()) - 1;
    // The last step started at m >= T - n - 1; rows below it are final.
    const int64_t rows = T - n - 1;

    KVCache main(model->config(), 256, 8);
    std::vector<float> hidden(static_cast<size_t>(T * d.H));
    model->forward_hidden(std::span<const int32_t>(seq).first(static_cast<size_t>(T)), main, {}, false, hidden);
    auto fresh = model->make_mtp_cache(256, 8);
    model->mtp_forward(std::span<const int32_t>(seq).subspan(1, static_cast<size_t>(T)), hidden, *fresh, {}, false, {});

    KVCache got = spec.mtp_cache();
    ASSERT_GE(got.n_past(), rows);
    // Element i of position t's row (all KV heads) in layer `layer` of an f32 cache (head-major).
    auto at = [](KVCache& c, void* base, int64_t layer, int64_t t, int64_t i) {
      const int64_t h = i / c.head_dim(), slot = t % c.slots(layer);
      return static_cast<const float*>(base)[(h * c.slots(layer) + slot) * c.head_dim() + i % c.head_dim()];
    };
    auto K = [&](KVCache& c, int64_t layer, int64_t t, int64_t i) { return at(c, c.keys(layer), layer, t, i); };
    auto V = [&](KVCache& c, int64_t layer, int64_t t, int64_t i) { return at(c, c.values(layer), layer, t, i); };
    const int64_t row = got.row_size();
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t i = 0; i < row; ++i) {
        ASSERT_NEAR(K(got, 0, t, i), K(*fresh, 0, t, i), 1e-4) << "n " << n << " row " << t;
        ASSERT_NEAR(V(got, 0, t, i), V(*fresh, 0, t, i), 1e-4) << "n " << n << " row " << t;
      }
    }
    // The main model's global layer (3) likewise holds the verified positions.
    KVCache got_main = cache;
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t i = 0; i < row; ++i) ASSERT_NEAR(K(got_main, 3, t, i), K(main, 3, t, i), 1e-4);
  }
}

// Embedding inputs (a picture's rows at its image-token positions): the main model reads the row
// of position p there, and so does the MTP block's row p - 1 (which joins the hidden state at p - 1
// with the input at p), as vLLM's MTP drafter takes the multimodal embeddings shifted by one. Rows
// that equal the embeddings of the tokens they stand in for give exactly the run on those tokens,
// in both models and through speculative decoding; an MTP block that ignored them would not.
TEST(MtpSpeculative, EmbeddingInputsFeedTheMainModelAndTheMtpBlock) {
  Dims d = exaone4_dims();
  d.W = 128;  // windows wider than the run: the MTP cache keeps every row for the comparison below
  auto src = tiny_weights(d, 4);
  const std::vector<float> table = src->data("model.embed_tokens.weight");
  auto model = load(d, std::move(src));
  const int64_t T = 12, H = d.H, V = d.V;
  const std::vector<int32_t> real = some_tokens(T, V, 9);
  std::vector<int32_t> padded = real;
  auto e = std::make_shared<InputEmbeddings>();
  e->width = H;
  for (auto [pos, count] : {std::pair<int64_t, int64_t>{3, 3}, {9, 1}, {11, 1}}) {
    e->spans.push_back({pos, count, e->rows.size()});
    for (int64_t p = pos; p < pos + count; ++p) {
      const float* row = table.data() + real[static_cast<size_t>(p)] * H;
      e->rows.insert(e->rows.end(), row, row + H);
      padded[static_cast<size_t>(p)] = static_cast<int32_t>((real[static_cast<size_t>(p)] + 1) % V);
    }
  }

  // The hidden states of the main model and the MTP block's logits over the whole sequence.
  auto run = [&](const std::vector<int32_t>& ids, bool main_reads, bool mtp_reads) {
    KVCache main(model->config(), 64, 8);
    if (main_reads) main.set_input_embeddings(e);
    std::vector<float> hidden(static_cast<size_t>(T * H)), logits(static_cast<size_t>((T - 1) * V));
    model->forward_hidden(ids, main, {}, false, hidden);
    auto mc = model->make_mtp_cache(64, 8);
    if (mtp_reads) mc->set_input_embeddings(e);
    model->mtp_forward(std::span<const int32_t>(ids).subspan(1), hidden, *mc, logits, true, {});
    return std::make_pair(hidden, logits);
  };
  const auto [h_real, l_real] = run(real, false, false);
  const auto [h_img, l_img] = run(padded, true, true);
  EXPECT_EQ(max_abs_diff(h_img, h_real), 0.0);
  EXPECT_EQ(max_abs_diff(l_img, l_real), 0.0);
  const auto [h_tok, l_tok] = run(padded, true, false);  // MTP on the placeholder ids' embeddings
  EXPECT_GT(max_abs_diff(l_tok, l_real), 1e-3);

  GenerateOptions opt;
  opt.max_tokens = 60;
  opt.use_model_eos = false;
  KVCache c0(model->config(), 128, 8);
  c0.set_input_embeddings(e);
  Generator plain(*model, c0, SamplingParams{});
  const GenerateResult want = plain.generate(padded, opt);
  for (int n : {1, 2, 3}) {
    KVCache c1(model->config(), 128, 8), c2(model->config(), 128, 8);
    c2.set_input_embeddings(e);
    SpeculativeGenerator on_tokens(*model, c1, SamplingParams{}, n), on_rows(*model, c2, SamplingParams{}, n);
    EXPECT_EQ(on_tokens.generate(real, opt).tokens, want.tokens) << "n_draft " << n;
    EXPECT_EQ(on_rows.generate(padded, opt).tokens, want.tokens) << "n_draft " << n;
    EXPECT_GT(on_rows.stats().drafted, 0);
    EXPECT_EQ(on_rows.stats().drafted, on_tokens.stats().drafted) << "n_draft " << n;
    EXPECT_EQ(on_rows.stats().accepted, on_tokens.stats().accepted) << "n_draft " << n;
    KVCache a = on_tokens.mtp_cache(), b = on_rows.mtp_cache();
    ASSERT_EQ(a.n_past(), b.n_past());
    ASSERT_GE(a.slots(0), a.n_past());
    // Each KV head's first n_past rows (head-major: one head's slots are contiguous).
    const size_t floats = static_cast<size_t>(a.n_past() * a.head_dim());
    for (int64_t h = 0; h < a.heads(); ++h) {
      const size_t head = static_cast<size_t>(h * a.slots(0) * a.head_dim());
      EXPECT_EQ(std::memcmp(static_cast<const float*>(a.keys(0)) + head, static_cast<const float*>(b.keys(0)) + head,
                            floats * sizeof(float)),
                0)
          << "n_draft " << n << " head " << h;
    }
  }
}

// Tiny contexts and chunks (fewer positions than drafts) still work and match plain decoding.
TEST(MtpSpeculative, SmallContextAndChunk) {
  Dims d;
  auto model = load(d, tiny_weights(d, 5));
  const std::vector<int32_t> prompt = {7};
  for (int64_t chunk : {int64_t{1}, int64_t{2}, int64_t{8}}) {
    for (int64_t ctx : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{20}}) {
      GenerateOptions opt;
      opt.max_tokens = 30;
      opt.use_model_eos = false;
      KVCache c0(model->config(), ctx, chunk), c1(model->config(), ctx, chunk);
      Generator plain(*model, c0, SamplingParams{});
      SpeculativeGenerator spec(*model, c1, SamplingParams{}, 3);
      const GenerateResult want = plain.generate(prompt, opt);
      const GenerateResult got = spec.generate(prompt, opt);
      EXPECT_EQ(got.tokens, want.tokens) << "ctx " << ctx << " chunk " << chunk;
      EXPECT_EQ(got.reason, want.reason) << "ctx " << ctx << " chunk " << chunk;
    }
  }
}

// Chi-square statistic of `count` against probabilities `expect` over `trials` draws, cells
// expected fewer than 5 times pooled; returns {statistic, 99.99% quantile for its degrees of freedom}.
template <typename Key>
std::pair<double, double> chi_square(const std::map<Key, double>& expect, const std::map<Key, double>& count, int trials) {
  double chi2 = 0, pooled_expect = 0, pooled_count = 0;
  int cells = 0;
  for (const auto& [key, p] : expect) {
    auto it = count.find(key);
    const double e = p * trials, c = it == count.end() ? 0.0 : it->second;
    if (e < 5) {
      pooled_expect += e;
      pooled_count += c;
      continue;
    }
    chi2 += (c - e) * (c - e) / e;
    ++cells;
  }
  if (pooled_expect > 0) {
    chi2 += (pooled_count - pooled_expect) * (pooled_count - pooled_expect) / pooled_expect;
    ++cells;
  }
  // Wilson-Hilferty approximation of the quantile, z = 3.719.
  const double df = std::max(1, cells - 1), z = 3.719;
  return {chi2, df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3)};
}

// With sampling, speculative decoding draws from the main model's distribution: the first three
// generated tokens (the first from the prompt, the next two verified drafts or their replacements)
// follow the exact distribution, computed by enumerating the plain sampler's candidates (penalties,
// temperature and top-k included) over every prefix. Chi-square tests at a fixed seed against the
// 99.99% quantile, on the joint distribution and on the marginals of the 2nd and 3rd token. The
// MTP block of this random model often disagrees with the main model, so both the acceptance and
// the resampling paths are taken; with top-k the two distributions have different supports.
TEST(MtpSpeculative, SampledOutputFollowsTheMainModel) {
  for (bool post : {false, true}) {
  Dims d;
  d.post = post;
  LoadOptions lo;
  lo.n_threads = 1;
  auto model = Model::from_source(ModelConfig::from_hf_json(tiny_config(d), "tiny"), tiny_weights(d, 6), false,
                                  "tiny", lo);
  const std::vector<int32_t> prompt = some_tokens(5, d.V, 21);
  const size_t V = static_cast<size_t>(d.V);

  struct Case {
    double temperature;
    int64_t top_k;
    double min_acceptance, max_acceptance;
  };
  const std::vector<Case> cases = post ? std::vector<Case>{Case{4.0, 0, 0.15, 0.6}, Case{3.0, 8, 0.002, 0.5}}
                                       : std::vector<Case>{Case{4.0, 0, 0.15, 0.6}, Case{3.0, 8, 0.02, 0.5}};
  for (const Case& cs : cases) {
    SamplingParams sp;
    sp.temperature = cs.temperature;
    sp.top_k = cs.top_k;
    sp.repeat_penalty = 1.5;  // the drafts' own history must be applied to the later rows
    sp.seed = 2024;
    auto next_dist = [&](const std::vector<int32_t>& seq) {
      KVCache c(model->config(), 64, 16);
      std::vector<float> logits(V);
      model->forward(seq, c, logits, false);
      Sampler s(sp, d.V);
      for (int32_t t : seq) s.accept(t);
      return s.candidates(logits);
    };
    // The MTP block's first-draft distribution given x1, for the negative control below.
    std::vector<float> hidden(prompt.size() * static_cast<size_t>(d.H));
    {
      KVCache c(model->config(), 64, 16);
      model->forward_hidden(prompt, c, {}, false, hidden);
    }
    auto draft_dist = [&](int32_t x1) {
      std::vector<int32_t> next(prompt.begin() + 1, prompt.end());
      next.push_back(x1);
      auto mc = model->make_mtp_cache(64, 16);
      std::vector<float> logits(V);
      model->mtp_forward(next, hidden, *mc, logits, false, {});
      Sampler s(sp, d.V);
      for (int32_t t : prompt) s.accept(t);
      s.accept(x1);
      return s.candidates(logits);
    };
    std::map<std::vector<int32_t>, double> joint;
    std::map<int32_t, double> second, third, second_draft;
    for (const auto& [x1, p1] : next_dist(prompt)) {
      for (const auto& [x2, q2] : draft_dist(x1)) second_draft[x2] += p1 * q2;
      std::vector<int32_t> s1 = prompt;
      s1.push_back(x1);
      for (const auto& [x2, p2] : next_dist(s1)) {
        std::vector<int32_t> s2 = s1;
        s2.push_back(x2);
        second[x2] += p1 * p2;
        for (const auto& [x3, p3] : next_dist(s2)) {
          joint[{x1, x2, x3}] += p1 * p2 * p3;
          third[x3] += p1 * p2 * p3;
        }
      }
    }

    // Fewer draws in the (much slower) sanitizer build; the test keeps its false-alarm rate.
#if defined(__SANITIZE_ADDRESS__)  // gcc; clang below
    const int trials = 2000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    const int trials = 2000;
#else
    const int trials = 8000;
#endif
#else
    const int trials = 8000;
#endif
    KVCache cache(model->config(), 64, 16);
    SpeculativeGenerator spec(*model, cache, sp, 2);
    GenerateOptions opt;
    opt.max_tokens = 4;  // room for both drafts of the first step
    opt.use_model_eos = false;
    std::map<std::vector<int32_t>, double> joint_n;
    std::map<int32_t, double> second_n, third_n;
    int64_t drafted = 0, accepted = 0;
    for (int i = 0; i < trials; ++i) {
      const GenerateResult r = spec.generate(prompt, opt);
      ASSERT_EQ(r.tokens.size(), 4u);
      const std::vector<int32_t> key(r.tokens.begin(), r.tokens.begin() + 3);
      ASSERT_TRUE(joint.count(key)) << "sampled a sequence the main model's sampler cannot produce";
      joint_n[key] += 1;
      second_n[key[1]] += 1;
      third_n[key[2]] += 1;
      drafted += spec.stats().drafted;
      accepted += spec.stats().accepted;
    }
    const double acc = static_cast<double>(accepted) / static_cast<double>(drafted);
    EXPECT_GT(acc, cs.min_acceptance) << "top_k " << cs.top_k;
    EXPECT_LT(acc, cs.max_acceptance) << "top_k " << cs.top_k;
    const auto [c_joint, l_joint] = chi_square(joint, joint_n, trials);
    const auto [c_second, l_second] = chi_square(second, second_n, trials);
    const auto [c_third, l_third] = chi_square(third, third_n, trials);
    EXPECT_LT(c_joint, l_joint) << "joint, top_k " << cs.top_k << ", acceptance " << acc;
    EXPECT_LT(c_second, l_second) << "second token, top_k " << cs.top_k << ", acceptance " << acc;
    EXPECT_LT(c_third, l_third) << "third token, top_k " << cs.top_k << ", acceptance " << acc;
    // Negative control: the drafts' own distribution (what keeping every draft would give) is
    // told apart from the target by the same test.
    const auto [c_draft, l_draft] = chi_square(second_draft, second_n, trials);
    EXPECT_GT(c_draft, 10 * l_draft) << "top_k " << cs.top_k;
    std::printf("%s top_k %lld: acceptance %.3f | chi2 joint %.1f < %.1f, 2nd %.1f < %.1f, 3rd %.1f < %.1f; vs drafts %.1f\n",
                post ? "exaone4" : "exaone_moe", static_cast<long long>(cs.top_k), acc, c_joint, l_joint, c_second,
                l_second, c_third, l_third, c_draft);
  }
  }
}

// With sampling the run is reproducible for a seed and ends for the same reasons as plain decoding.
TEST(MtpSpeculative, SamplingIsSeededAndStopsOnEos) {
  Dims d;
  auto model = load(d, tiny_weights(d, 4));
  const std::vector<int32_t> prompt = some_tokens(5, d.V, 6);
  SamplingParams sp;
  sp.temperature = 0.8;
  sp.top_k = 20;
  sp.seed = 99;
  GenerateOptions opt;
  opt.max_tokens = 300;
  std::vector<int32_t> first;
  for (int run = 0; run < 2; ++run) {
    KVCache c(model->config(), 400, 16);
    SpeculativeGenerator spec(*model, c, sp, 2);
    const GenerateResult r = spec.generate(prompt, opt);
    if (run == 0) first = r.tokens;
    EXPECT_EQ(r.tokens, first);
    if (r.reason == StopReason::Eos) {
      EXPECT_EQ(r.tokens.back(), 2);
    }
    for (size_t i = 0; i + 1 < r.tokens.size(); ++i) EXPECT_NE(r.tokens[i], 2);
  }
}

TEST(MtpSpeculative, NeedsAnMtpBlock) {
  Dims d;
  json c = tiny_config(d);
  c["num_nextn_predict_layers"] = 0;
  auto src = tiny_weights(d, 1);
  for (const std::string& n : src->names())
    if (n.rfind("mtp.", 0) == 0) src->remove(n);
  auto model = Model::from_source(ModelConfig::from_hf_json(c, "tiny"), std::move(src), false, "tiny");
  EXPECT_FALSE(model->has_mtp());
  KVCache cache(model->config(), 32, 8);
  EXPECT_THROW(SpeculativeGenerator(*model, cache, SamplingParams{}, 2), Error);
}

}  // namespace
}  // namespace kexa
