// K-EXAONE mixture-of-experts: the router on hand-computed cases, and the MoE decoder's batch /
// chunk / naming invariances and named errors on a tiny in-memory model. (Numerical agreement of
// the whole forward pass with llama.cpp is checked by tests/conformance/llamacpp_moe.sh.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
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
#include "model/moe.h"
#include "util/error.h"

namespace kexa {
namespace {

using nlohmann::json;
using test::MemorySource;

template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected a kexa::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  }
}

// ---- router -------------------------------------------------------------------------------------

TEST(MoeRouter, CorrectionBiasFlipsAnExpertButNotTheWeights) {
  // sigmoid(0, 1, -1, 0.5) = 0.5, 0.7310586, 0.2689414, 0.6224593.
  const float logits[4] = {0.0f, 1.0f, -1.0f, 0.5f};
  moe::RouterParams p;
  p.n_experts = 4;
  p.n_used = 2;
  p.norm_topk_prob = true;
  p.scaling = 2.5;
  std::vector<float> scratch;
  int32_t ex[2];
  float w[2];

  // Without bias: experts 1 and 3; weights 2.5 * s / (s1 + s3).
  moe::route(logits, nullptr, p, ex, w, scratch);
  EXPECT_EQ(ex[0], 1);
  EXPECT_EQ(ex[1], 3);
  EXPECT_NEAR(w[0], 2.5 * 0.7310586 / (0.7310586 + 0.6224593), 1e-6);  // 1.350291
  EXPECT_NEAR(w[1], 2.5 * 0.6224593 / (0.7310586 + 0.6224593), 1e-6);  // 1.149709

  // A bias of +0.3 on expert 0 gives it a selection score 0.8 > 0.7310586 > 0.6224593: expert 0
  // flips in, expert 3 flips out, and the weights use the unbiased scores 0.5 and 0.7310586.
  const float bias[4] = {0.3f, 0.0f, 0.0f, 0.0f};
  moe::route(logits, bias, p, ex, w, scratch);
  EXPECT_EQ(ex[0], 0);
  EXPECT_EQ(ex[1], 1);
  EXPECT_NEAR(w[0], 2.5 * 0.5 / (0.5 + 0.7310586), 1e-6);        // 1.015387
  EXPECT_NEAR(w[1], 2.5 * 0.7310586 / (0.5 + 0.7310586), 1e-6);  // 1.484613

  // A negative bias pushes expert 1 out (0.7310586 - 0.2 = 0.5310586 < 0.6224593, > 0.5).
  const float bias2[4] = {0.0f, -0.2f, 0.0f, 0.0f};
  moe::route(logits, bias2, p, ex, w, scratch);
  EXPECT_EQ(ex[0], 3);
  EXPECT_EQ(ex[1], 1);

  // norm_topk_prob = false: raw sigmoid scores times the scaling factor.
  p.norm_topk_prob = false;
  moe::route(logits, bias, p, ex, w, scratch);
  EXPECT_NEAR(w[0], 2.5 * 0.5, 1e-6);
  EXPECT_NEAR(w[1], 2.5 * 0.7310586, 1e-6);
}

TEST(MoeRouter, GroupLimitedTopK) {
  // sigmoid(2, -2, 1, 1) = 0.8807971, 0.1192029, 0.7310586, 0.7310586. Groups {0,1} and {2,3}
  // score 1.0 and 1.4621172 (sum of their top two), so with topk_group = 1 only group {2,3} may
  // be chosen although expert 0 has the best score.
  const float logits[4] = {2.0f, -2.0f, 1.0f, 1.0f};
  moe::RouterParams p;
  p.n_experts = 4;
  p.n_used = 2;
  p.n_group = 2;
  p.topk_group = 1;
  p.norm_topk_prob = true;
  p.scaling = 1.0;
  std::vector<float> scratch;
  int32_t ex[2];
  float w[2];
  moe::route(logits, nullptr, p, ex, w, scratch);
  EXPECT_EQ(ex[0], 2);
  EXPECT_EQ(ex[1], 3);
  EXPECT_NEAR(w[0], 0.5, 1e-7);
  EXPECT_NEAR(w[1], 0.5, 1e-7);
  // One group (K-EXAONE's n_group = 1): plain top-2, ties to the lower index.
  p.n_group = 1;
  moe::route(logits, nullptr, p, ex, w, scratch);
  EXPECT_EQ(ex[0], 0);
  EXPECT_EQ(ex[1], 2);
  EXPECT_NEAR(w[0], 0.8807971 / (0.8807971 + 0.7310586), 1e-6);
}

// ---- a tiny MoE model in memory -----------------------------------------------------------------


constexpr int64_t kV = 40, kH = 16, kHeads = 4, kKv = 2, kHd = 8, kI = 24, kE = 6, kK = 2, kIe = 8, kL = 3;

json tiny_config() {
  return {{"model_type", "exaone_moe"}, {"vocab_size", kV}, {"hidden_size", kH}, {"num_hidden_layers", kL},
          {"num_attention_heads", kHeads}, {"num_key_value_heads", kKv}, {"head_dim", kHd},
          {"intermediate_size", kI}, {"moe_intermediate_size", kIe}, {"num_experts", kE},
          {"num_experts_per_tok", kK}, {"num_shared_experts", 1}, {"first_k_dense_replace", 1},
          {"routed_scaling_factor", 2.5}, {"norm_topk_prob", true}, {"sliding_window", 3},
          {"sliding_window_pattern", "LLG"}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
          {"rms_norm_eps", 1e-5}};
}

// HF-named tensors (per-expert layout) of the tiny model.
std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> tiny_tensors(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> t;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, float scale, float offset) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<float> v(static_cast<size_t>(count));
    for (float& x : v) x = offset + scale * nd(rng);
    t[n] = {std::move(shape), std::move(v)};
  };
  const float lin = 1.0f / std::sqrt(static_cast<float>(kH));
  add("model.embed_tokens.weight", {kV, kH}, 1.0f, 0.0f);
  add("lm_head.weight", {kV, kH}, 1.0f, 0.0f);
  add("model.norm.weight", {kH}, 0.1f, 1.0f);
  for (int64_t l = 0; l < kL; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {kH}, 0.1f, 1.0f);
    add(p + "post_attention_layernorm.weight", {kH}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {kHeads * kHd, kH}, lin, 0.0f);
    add(p + "self_attn.k_proj.weight", {kKv * kHd, kH}, lin, 0.0f);
    add(p + "self_attn.v_proj.weight", {kKv * kHd, kH}, lin, 0.0f);
    add(p + "self_attn.o_proj.weight", {kH, kHeads * kHd}, 1.0f / std::sqrt(32.0f), 0.0f);
    add(p + "self_attn.q_norm.weight", {kHd}, 0.1f, 1.0f);
    add(p + "self_attn.k_norm.weight", {kHd}, 0.1f, 1.0f);
    if (l == 0) {
      add(p + "mlp.gate_proj.weight", {kI, kH}, lin, 0.0f);
      add(p + "mlp.up_proj.weight", {kI, kH}, lin, 0.0f);
      add(p + "mlp.down_proj.weight", {kH, kI}, 1.0f / std::sqrt(static_cast<float>(kI)), 0.0f);
      continue;
    }
    add(p + "mlp.gate.weight", {kE, kH}, lin, 0.0f);
    add(p + "mlp.e_score_correction_bias", {kE}, 0.3f, 0.0f);
    for (int64_t e = 0; e < kE; ++e) {
      const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
      add(x + "gate_proj.weight", {kIe, kH}, lin, 0.0f);
      add(x + "up_proj.weight", {kIe, kH}, lin, 0.0f);
      add(x + "down_proj.weight", {kH, kIe}, 1.0f / std::sqrt(static_cast<float>(kIe)), 0.0f);
    }
    add(p + "mlp.shared_experts.gate_proj.weight", {kIe, kH}, lin, 0.0f);
    add(p + "mlp.shared_experts.up_proj.weight", {kIe, kH}, lin, 0.0f);
    add(p + "mlp.shared_experts.down_proj.weight", {kH, kIe}, 1.0f / std::sqrt(static_cast<float>(kIe)), 0.0f);
  }
  return t;
}

std::unique_ptr<MemorySource> hf_source(uint32_t seed) {
  auto src = std::make_unique<MemorySource>();
  for (auto& [n, v] : tiny_tensors(seed)) src->add_f32(n, v.first, v.second);
  return src;
}

// The same weights under llama.cpp names with experts stacked [E, rows, cols].
std::unique_ptr<MemorySource> gguf_source(uint32_t seed) {
  auto t = tiny_tensors(seed);
  auto src = std::make_unique<MemorySource>();
  auto put = [&](const std::string& hf, const std::string& g) { src->add_f32(g, t[hf].first, t[hf].second); };
  put("model.embed_tokens.weight", "token_embd.weight");
  put("lm_head.weight", "output.weight");
  put("model.norm.weight", "output_norm.weight");
  for (int64_t l = 0; l < kL; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", b = "blk." + std::to_string(l) + ".";
    put(p + "input_layernorm.weight", b + "attn_norm.weight");
    put(p + "post_attention_layernorm.weight", b + "ffn_norm.weight");
    put(p + "self_attn.q_proj.weight", b + "attn_q.weight");
    put(p + "self_attn.k_proj.weight", b + "attn_k.weight");
    put(p + "self_attn.v_proj.weight", b + "attn_v.weight");
    put(p + "self_attn.o_proj.weight", b + "attn_output.weight");
    put(p + "self_attn.q_norm.weight", b + "attn_q_norm.weight");
    put(p + "self_attn.k_norm.weight", b + "attn_k_norm.weight");
    if (l == 0) {
      for (const char* w : {"gate", "up", "down"}) put(p + "mlp." + w + "_proj.weight", b + "ffn_" + w + ".weight");
      continue;
    }
    put(p + "mlp.gate.weight", b + "ffn_gate_inp.weight");
    put(p + "mlp.e_score_correction_bias", b + "exp_probs_b.bias");
    for (const char* w : {"gate", "up", "down"}) {
      std::vector<float> all;
      std::vector<int64_t> shape;
      for (int64_t e = 0; e < kE; ++e) {
        const auto& one = t[p + "mlp.experts." + std::to_string(e) + "." + w + "_proj.weight"];
        all.insert(all.end(), one.second.begin(), one.second.end());
        shape = {kE, one.first[0], one.first[1]};
      }
      src->add_f32(b + "ffn_" + w + "_exps.weight", shape, all);
      put(p + "mlp.shared_experts." + w + "_proj.weight", b + "ffn_" + w + "_shexp.weight");
    }
  }
  return src;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % kV);
  return t;
}

std::vector<float> all_logits(Model& m, const std::vector<int32_t>& toks, int64_t chunk) {
  KVCache cache(m.config(), 64, chunk);
  std::vector<float> out(toks.size() * kV);
  m.forward(toks, cache, out, true);
  return out;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

TEST(MoeModel, ChunkBatchAndNamingInvariance) {
  const ModelConfig c = ModelConfig::from_hf_json(tiny_config(), "tiny");
  auto hf = Model::from_source(c, hf_source(4), false, "tiny-hf");
  auto gg = Model::from_source(c, gguf_source(4), true, "tiny-gguf");
  const std::vector<int32_t> toks = tokens(20, 9);
  const std::vector<float> ref = all_logits(*hf, toks, 64);  // one chunk: every expert sees many rows
  float scale = 0;
  for (float v : ref) scale = std::max(scale, std::abs(v));
  ASSERT_GT(scale, 0.5f);
  // Stacked GGUF experts bound as row slices compute the same thing as per-expert HF tensors.
  EXPECT_LE(max_abs_diff(ref, all_logits(*gg, toks, 64)), 1e-5f * scale);
  // Token by token (decode: one row per expert) and in chunks of 3.
  EXPECT_LE(max_abs_diff(ref, all_logits(*hf, toks, 1)), 1e-4f * scale);
  EXPECT_LE(max_abs_diff(ref, all_logits(*hf, toks, 3)), 1e-4f * scale);

  // forward_batch: three sequences at different depths in one step.
  std::vector<std::vector<int32_t>> seqs = {tokens(9, 1), tokens(5, 2), tokens(12, 3)};
  std::vector<size_t> split = {4, 4, 11};
  std::vector<std::unique_ptr<KVCache>> caches;
  std::vector<std::vector<float>> out(seqs.size(), std::vector<float>(kV));
  std::vector<Model::BatchItem> items;
  for (size_t i = 0; i < seqs.size(); ++i) {
    caches.push_back(std::make_unique<KVCache>(hf->config(), 32, 4));
    hf->forward(std::span<const int32_t>(seqs[i].data(), split[i]), *caches[i], {}, false);
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    Model::BatchItem it;
    it.tokens = std::span<const int32_t>(seqs[i].data() + split[i], seqs[i].size() - split[i]);
    it.cache = caches[i].get();
    it.logits = out[i];
    items.push_back(it);
  }
  hf->reset_expert_stats();
  hf->forward_batch(items);
  EXPECT_GT(hf->expert_stats().bytes_touched, 0u);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<float> full = all_logits(*hf, seqs[i], 64);
    const std::vector<float> last(full.end() - kV, full.end());
    EXPECT_LE(max_abs_diff(out[i], last), 1e-4f * scale) << "batch item " << i;
  }

  // Expert accounting: 2 MoE layers x 6 experts x 3 matrices of 8 x 16 f32.
  EXPECT_EQ(hf->expert_bytes(), static_cast<size_t>(2 * kE * 3 * kIe * kH * 4));
  KVCache one(hf->config(), 8, 8);
  hf->reset_expert_stats();
  const int32_t tok = 5;
  hf->forward(std::span<const int32_t>(&tok, 1), one, {}, false);
  // A decoded token reads exactly k experts per MoE layer.
  EXPECT_EQ(hf->expert_stats().bytes_touched, static_cast<uint64_t>(2 * kK * 3 * kIe * kH * 4));
  EXPECT_EQ(hf->expert_stats().layer_steps, 2u);
}

TEST(MoeModel, CorrectionBiasChangesTheOutput) {
  const ModelConfig c = ModelConfig::from_hf_json(tiny_config(), "tiny");
  auto with = Model::from_source(c, hf_source(4), false, "tiny");
  auto src = hf_source(4);
  for (int64_t l = 1; l < kL; ++l) {
    src->add_f32("model.layers." + std::to_string(l) + ".mlp.e_score_correction_bias", {kE},
                 std::vector<float>(kE, 0.0f));
  }
  auto without = Model::from_source(c, std::move(src), false, "tiny");
  const std::vector<int32_t> toks = tokens(12, 5);
  EXPECT_GT(max_abs_diff(all_logits(*with, toks, 64), all_logits(*without, toks, 64)), 1e-3f);
}

TEST(MoeModel, BadInputGivesNamedErrors) {
  // top-k larger than the number of experts.
  json j = tiny_config();
  j["num_experts_per_tok"] = kE + 1;
  expect_error([&] { ModelConfig::from_hf_json(j, "cfg.json"); },
               {"cfg.json", "num_experts_per_tok (7)", "num_experts (6)"});
  j = tiny_config();
  j["n_group"] = 4;
  expect_error([&] { ModelConfig::from_hf_json(j, "cfg.json"); }, {"n_group (4)", "num_experts (6)"});

  const ModelConfig c = ModelConfig::from_hf_json(tiny_config(), "tiny");
  // A missing expert tensor.
  auto src = hf_source(4);
  src->remove("model.layers.2.mlp.experts.5.up_proj.weight");
  expect_error([&] { Model::from_source(c, std::move(src), false, "/m/tiny"); },
               {"/m/tiny", "model.layers.2.mlp.experts.5.up_proj.weight", "missing", "[8, 16]"});
  // A correction bias of the wrong length.
  src = hf_source(4);
  src->add_f32("model.layers.1.mlp.e_score_correction_bias", {kE + 1}, std::vector<float>(kE + 1, 0.0f));
  expect_error([&] { Model::from_source(c, std::move(src), false, "tiny"); },
               {"model.layers.1.mlp.e_score_correction_bias", "[7]", "expected [6]"});
  // A stacked GGUF expert tensor with the wrong expert count.
  src = gguf_source(4);
  src->add_f32("blk.1.ffn_down_exps.weight", {kE - 1, kH, kIe}, std::vector<float>((kE - 1) * kH * kIe, 0.0f));
  expect_error([&] { Model::from_source(c, std::move(src), true, "g.gguf"); },
               {"blk.1.ffn_down_exps.weight", "[5, 16, 8]", "[6, 16, 8]"});
  // A router of the wrong shape.
  src = hf_source(4);
  src->add_f32("model.layers.1.mlp.gate.weight", {kE, kH + 1}, std::vector<float>(kE * (kH + 1), 0.0f));
  expect_error([&] { Model::from_source(c, std::move(src), false, "tiny"); }, {"model.layers.1.mlp.gate.weight", "[6, 17]"});
}

// exaone-moe GGUF metadata with inconsistent MoE counts: named errors from ModelConfig::from_gguf.
TEST(MoeModel, BadGgufMetadataGivesNamedErrors) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("kexa-moe-meta-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".gguf")).string();
  auto write = [&](int used, int experts, int gating) {
    gguf::Writer w;
    const std::string a = "exaone-moe.";
    w.set("general.architecture", gguf::Value::str("exaone-moe"));
    w.set(a + "block_count", gguf::Value::u32(3));
    w.set(a + "embedding_length", gguf::Value::u32(kH));
    w.set(a + "feed_forward_length", gguf::Value::u32(kI));
    w.set(a + "attention.head_count", gguf::Value::u32(kHeads));
    w.set(a + "attention.head_count_kv", gguf::Value::u32(kKv));
    w.set(a + "attention.key_length", gguf::Value::u32(kHd));
    w.set(a + "attention.value_length", gguf::Value::u32(kHd));
    w.set(a + "vocab_size", gguf::Value::u32(kV));
    w.set(a + "expert_count", gguf::Value::u32(static_cast<uint32_t>(experts)));
    w.set(a + "expert_used_count", gguf::Value::u32(static_cast<uint32_t>(used)));
    w.set(a + "expert_feed_forward_length", gguf::Value::u32(kIe));
    w.set(a + "expert_shared_count", gguf::Value::u32(1));
    w.set(a + "expert_gating_func", gguf::Value::u32(static_cast<uint32_t>(gating)));
    w.set(a + "leading_dense_block_count", gguf::Value::u32(1));
    w.add_tensor("output_norm.weight", DType::F32, {kH},
                 [](uint8_t* out, size_t n) { std::memset(out, 0, n); });
    w.write(path);
  };
  write(kK, kE, 2);
  EXPECT_NO_THROW(ModelConfig::from_gguf(*gguf::File::open(path)));
  write(kE + 3, kE, 2);
  expect_error([&] { ModelConfig::from_gguf(*gguf::File::open(path)); },
               {path, "exaone-moe.expert_used_count (9)", "exaone-moe.expert_count (6)"});
  write(kK, 0, 2);
  expect_error([&] { ModelConfig::from_gguf(*gguf::File::open(path)); }, {path, "exaone-moe.expert_count"});
  write(kK, kE, 1);  // softmax gating is not K-EXAONE's router
  expect_error([&] { ModelConfig::from_gguf(*gguf::File::open(path)); }, {"exaone-moe.expert_gating_func", "sigmoid"});
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kexa
