// Sampler tests. Expected values are computed by hand from the definitions (softmax, the HF
// top-p / min-p rules, the llama.cpp / OpenAI penalty formulas), not from kexa's own output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "memory_source.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/job.h"
#include "runtime/scheduler.h"
#include "runtime/sampler.h"
#include "util/error.h"

namespace kexa {
namespace {

std::vector<float> logits_from_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::set<int32_t> ids(const std::vector<std::pair<int32_t, double>>& c) {
  std::set<int32_t> s;
  for (const auto& [id, p] : c) s.insert(id);
  return s;
}

TEST(Sampler, GreedyPicksArgmax) {
  Sampler s(SamplingParams{}, 5);
  const std::vector<float> l = {0.1f, -3.0f, 2.5f, 2.4f, -INFINITY};
  EXPECT_EQ(s.sample(l), 2);
}

TEST(Sampler, GreedyTieGoesToLowestId) {
  Sampler s(SamplingParams{}, 6);
  const std::vector<float> l = {1.0f, 3.0f, 0.0f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(s.sample(l), 1);
  EXPECT_EQ(argmax(std::vector<float>{5, 5, 5}), 0);
}

TEST(Sampler, WrongLogitCountIsAnError) {
  Sampler s(SamplingParams{}, 4);
  EXPECT_THROW(s.sample(std::vector<float>{1, 2, 3}), Error);
}

TEST(Sampler, NanLogitsAreAnError) {
  Sampler s(SamplingParams{}, 3);
  EXPECT_THROW(s.sample(std::vector<float>{1, NAN, 0}), Error);
}

// Every token ruled out (a constraint or penalty left only -inf): an error naming it, in greedy
// and in sampled mode, never token 0 by default.
TEST(Sampler, AllMinusInfinityLogitsAreAnError) {
  const std::vector<float> none(3, -INFINITY);
  for (SamplingParams p : {SamplingParams{}, SamplingParams{.temperature = 0.8, .seed = 1},
                           SamplingParams{.temperature = 0.8, .top_k = 2, .seed = 1}}) {
    Sampler s(p, 3);
    try {
      (void)s.sample(none);
      ADD_FAILURE() << "no error at temperature " << p.temperature << " top_k " << p.top_k;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("-inf"), std::string::npos) << e.what();
    }
  }
}

TEST(Sampler, InvalidParamsAreNamed) {
  auto message = [](SamplingParams p) -> std::string {
    try {
      Sampler s(p, 10);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({.temperature = -1}).find("temperature"), std::string::npos);
  EXPECT_NE(message({.top_p = 0}).find("top_p"), std::string::npos);
  EXPECT_NE(message({.top_p = 1.5}).find("top_p"), std::string::npos);
  EXPECT_NE(message({.min_p = -0.1}).find("min_p"), std::string::npos);
  EXPECT_NE(message({.top_k = -2}).find("top_k"), std::string::npos);
  EXPECT_NE(message({.repeat_penalty = 0}).find("repeat_penalty"), std::string::npos);
}

TEST(Sampler, TemperatureOnlyGivesSoftmaxOfScaledLogits) {
  SamplingParams p{.temperature = 2.0};
  Sampler s(p, 3);
  const std::vector<float> l = {2.0f, 0.0f, -2.0f};
  auto c = s.candidates(l);
  ASSERT_EQ(c.size(), 3u);
  // softmax([1, 0, -1]) = e^1, e^0, e^-1 over (e + 1 + 1/e)
  const double z = std::exp(1.0) + 1.0 + std::exp(-1.0);
  std::map<int32_t, double> got(c.begin(), c.end());
  EXPECT_NEAR(got[0], std::exp(1.0) / z, 1e-12);
  EXPECT_NEAR(got[1], 1.0 / z, 1e-12);
  EXPECT_NEAR(got[2], std::exp(-1.0) / z, 1e-12);
}

TEST(Sampler, TopKKeepsKMostLikelyAndRenormalises) {
  Sampler s({.temperature = 1.0, .top_k = 2}, 5);
  const auto l = logits_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  auto c = s.candidates(l);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].first, 1);
  EXPECT_EQ(c[1].first, 3);
  EXPECT_NEAR(c[0].second, 0.4 / 0.7, 1e-6);
  EXPECT_NEAR(c[1].second, 0.3 / 0.7, 1e-6);
}

TEST(Sampler, TopKTieBreaksByLowestId) {
  Sampler s({.temperature = 1.0, .top_k = 2}, 4);
  const std::vector<float> l = {0.0f, 1.0f, 1.0f, 1.0f};
  EXPECT_EQ(ids(s.candidates(l)), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingP) {
  // Sorted probabilities: 0.4 (id 1), 0.3 (id 3), 0.15 (id 4), 0.1 (id 0), 0.05 (id 2).
  const auto l = logits_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  {
    // Mass before each: 0, 0.4, 0.7, 0.85 -> with p = 0.6 keep ids 1 and 3 (3 crosses 0.6).
    Sampler s({.temperature = 1.0, .top_p = 0.6}, 5);
    auto c = s.candidates(l);
    EXPECT_EQ(ids(c), (std::set<int32_t>{1, 3}));
    EXPECT_NEAR(c[0].second, 0.4 / 0.7, 1e-6);
  }
  {
    Sampler s({.temperature = 1.0, .top_p = 0.8}, 5);
    EXPECT_EQ(ids(s.candidates(l)), (std::set<int32_t>{1, 3, 4}));
  }
  {
    // A very small p still keeps the most likely token.
    Sampler s({.temperature = 1.0, .top_p = 0.01}, 5);
    EXPECT_EQ(ids(s.candidates(l)), (std::set<int32_t>{1}));
  }
}

TEST(Sampler, TopPAfterTopKUsesRenormalisedMass) {
  // top_k = 3 keeps 0.4, 0.3, 0.15 -> renormalised 0.4706, 0.3529, 0.1765; top_p = 0.8: mass
  // before id 4 is 0.8235 >= 0.8, so it goes (without top-k renormalisation it would stay).
  const auto l = logits_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  Sampler s({.temperature = 1.0, .top_k = 3, .top_p = 0.8}, 5);
  EXPECT_EQ(ids(s.candidates(l)), (std::set<int32_t>{1, 3}));
}

TEST(Sampler, TopPOnLargeVocabularyNeedingFullSort) {
  // 3000 tokens of equal probability: the top-p cut (0.9 -> 2700 tokens) lies beyond the first
  // partial sort, so the full-sort path must produce the same rule.
  std::vector<float> l(3000, 0.0f);
  Sampler s({.temperature = 1.0, .top_p = 0.9}, 3000);
  auto c = s.candidates(l);
  EXPECT_NEAR(static_cast<double>(c.size()), 2700.0, 1.0);
  EXPECT_EQ(c.front().first, 0);  // equal logits: lowest ids first
}

// The top-p order over a large vocabulary with many equal logits, signed zeros, -inf (banned
// tokens) and values of both signs: descending logit, equal logits by ascending id, as a
// comparison sort gives it.
TEST(Sampler, TopPOrderMatchesAComparisonSort) {
  const int V = 20000;
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> step(-40, 40);
  std::vector<float> l(V);
  for (auto& v : l) v = 0.25f * static_cast<float>(step(rng));
  l[7] = -0.0f, l[8] = 0.0f, l[9] = -std::numeric_limits<float>::infinity(), l[10] = 1e-30f, l[11] = -1e-30f;
  Sampler s({.temperature = 3.0, .top_p = 0.999999}, V);
  const auto c = s.candidates(l);
  std::vector<int32_t> want(V);
  std::iota(want.begin(), want.end(), 0);
  std::sort(want.begin(), want.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  ASSERT_GT(c.size(), 19000u);
  for (size_t i = 0; i < c.size(); ++i) ASSERT_EQ(c[i].first, want[i]) << "rank " << i;
  for (size_t i = 1; i < c.size(); ++i) ASSERT_LE(c[i].second, c[i - 1].second) << "rank " << i;
}

TEST(Sampler, MinPDropsTokensBelowFractionOfMax) {
  // p_max = 0.4; min_p = 0.5 -> threshold 0.2: keep 0.4 and 0.3 only.
  const auto l = logits_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  Sampler s({.temperature = 1.0, .min_p = 0.5}, 5);
  auto c = s.candidates(l);
  EXPECT_EQ(ids(c), (std::set<int32_t>{1, 3}));
  double total = 0;
  for (const auto& [id, p] : c) total += p;
  EXPECT_NEAR(total, 1.0, 1e-12);
  // min_p = 0.2 -> threshold 0.08: 0.1 stays, 0.05 goes.
  Sampler s2({.temperature = 1.0, .min_p = 0.2}, 5);
  EXPECT_EQ(ids(s2.candidates(l)), (std::set<int32_t>{0, 1, 3, 4}));
}

TEST(Sampler, MinPDependsOnTemperature) {
  // logits [0, -1]: at T=1 p1/p0 = e^-1 = 0.37 (kept by min_p 0.3); at T=0.5 it is e^-2 = 0.135.
  const std::vector<float> l = {0.0f, -1.0f};
  Sampler hot({.temperature = 1.0, .min_p = 0.3}, 2);
  EXPECT_EQ(hot.candidates(l).size(), 2u);
  Sampler cold({.temperature = 0.5, .min_p = 0.3}, 2);
  EXPECT_EQ(cold.candidates(l).size(), 1u);
}

TEST(Sampler, RepeatPenaltyDividesPositiveMultipliesNegative) {
  Sampler s({.repeat_penalty = 2.0}, 4);
  s.accept(0);
  s.accept(1);
  s.accept(1);  // counted once: the repeat penalty ignores multiplicity
  auto out = s.penalized(std::vector<float>{3.0f, -1.5f, 2.0f, -4.0f});
  EXPECT_FLOAT_EQ(out[0], 1.5f);
  EXPECT_FLOAT_EQ(out[1], -3.0f);
  EXPECT_FLOAT_EQ(out[2], 2.0f);
  EXPECT_FLOAT_EQ(out[3], -4.0f);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  Sampler s({.presence_penalty = 0.5, .frequency_penalty = 0.25}, 4);
  for (int32_t t : {2, 2, 2, 0}) s.accept(t);
  auto out = s.penalized(std::vector<float>{1.0f, 1.0f, 1.0f, 1.0f});
  EXPECT_FLOAT_EQ(out[0], 1.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(out[1], 1.0f);
  EXPECT_FLOAT_EQ(out[2], 1.0f - 0.5f - 3 * 0.25f);
  EXPECT_FLOAT_EQ(out[3], 1.0f);
}

TEST(Sampler, PenaltiesLookOnlyAtLastN) {
  Sampler s({.frequency_penalty = 1.0, .penalty_last_n = 2}, 3);
  for (int32_t t : {0, 0, 1, 2}) s.accept(t);
  auto out = s.penalized(std::vector<float>{0, 0, 0});
  EXPECT_FLOAT_EQ(out[0], 0.0f);  // outside the window
  EXPECT_FLOAT_EQ(out[1], -1.0f);
  EXPECT_FLOAT_EQ(out[2], -1.0f);
}

TEST(Sampler, PenaltiesChangeTheGreedyChoice) {
  Sampler s({.repeat_penalty = 1.5}, 3);
  const std::vector<float> l = {3.0f, 2.5f, 0.0f};
  EXPECT_EQ(s.sample(l), 0);
  s.accept(0);  // 3.0 / 1.5 = 2.0 < 2.5
  EXPECT_EQ(s.sample(l), 1);
}

std::vector<int32_t> draw_sequence(const SamplingParams& p, int n) {
  Sampler s(p, 8);
  std::vector<int32_t> out;
  std::vector<float> l = {0.5f, 0.1f, 0.9f, 0.0f, -0.3f, 0.7f, 0.2f, 0.4f};
  for (int i = 0; i < n; ++i) {
    int32_t t = s.sample(l);
    s.accept(t);
    out.push_back(t);
  }
  return out;
}

TEST(Sampler, SameSeedSameSequence) {
  SamplingParams p{.temperature = 1.0, .top_k = 6, .top_p = 0.95, .repeat_penalty = 1.1,
                   .seed = 1234};
  auto a = draw_sequence(p, 200);
  auto b = draw_sequence(p, 200);
  EXPECT_EQ(a, b);
  p.seed = 1235;
  auto c = draw_sequence(p, 200);
  EXPECT_NE(a, c);
  // Not degenerate: several different tokens appear.
  EXPECT_GE(std::set<int32_t>(a.begin(), a.end()).size(), 4u);
}

TEST(Sampler, ReseedRestartsTheStream) {
  std::vector<float> l = {0.0f, 0.0f, 0.0f, 0.0f};
  Sampler s({.temperature = 1.0, .seed = 7}, 4);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 50; ++i) a.push_back(s.sample(l));
  s.reseed(7);
  for (int i = 0; i < 50; ++i) b.push_back(s.sample(l));
  EXPECT_EQ(a, b);
}

TEST(Sampler, FrequenciesMatchSoftmax) {
  // logits [1, 0, -1, 2] at T = 0.8; 40000 draws: each frequency within 5 standard errors.
  const std::vector<float> l = {1.0f, 0.0f, -1.0f, 2.0f};
  const double t = 0.8;
  std::vector<double> expect(4);
  double z = 0;
  for (int i = 0; i < 4; ++i) z += expect[i] = std::exp(l[i] / t);
  for (double& e : expect) e /= z;
  Sampler s({.temperature = t, .seed = 99}, 4);
  const int n = 40000;
  std::vector<int> count(4, 0);
  for (int i = 0; i < n; ++i) ++count[s.sample(l)];
  for (int i = 0; i < 4; ++i) {
    const double f = static_cast<double>(count[i]) / n;
    const double se = std::sqrt(expect[i] * (1 - expect[i]) / n);
    EXPECT_NEAR(f, expect[i], 5 * se) << "token " << i;
  }
}

TEST(Sampler, FilteredTokensAreNeverDrawn) {
  const auto l = logits_from_probs({0.1, 0.4, 0.05, 0.3, 0.15});
  Sampler s({.temperature = 1.0, .top_k = 3, .min_p = 0.5, .seed = 5}, 5);
  // top-k keeps {1, 3, 4}; min_p 0.5 * 0.4/0.85 drops 4 (0.15/0.85 < 0.2/0.85).
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[s.sample(l)];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 0);
  EXPECT_GT(seen[3], 0);
  // 0.4 : 0.3 -> about 57% / 43%.
  EXPECT_NEAR(seen[1] / 2000.0, 0.4 / 0.7, 0.05);
}

TEST(Sampler, DrawEqualsCandidatesWalkedWithTheSameStream) {
  // sample() without top-k / top-p draws without building the candidate list: it must pick
  // exactly the token that walking candidates() with the same random number picks.
  std::mt19937_64 gen(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> l(5000);
  for (float& x : l) x = normal(gen);
  l[17] = -std::numeric_limits<float>::infinity();
  for (const SamplingParams& base :
       {SamplingParams{.temperature = 0.8}, SamplingParams{.temperature = 1.7, .min_p = 0.02},
        SamplingParams{.temperature = 0.3, .top_k = 5000}, SamplingParams{.temperature = 1.0, .min_p = 0.3}}) {
    for (uint64_t seed = 0; seed < 40; ++seed) {
      SamplingParams p = base;
      p.seed = seed;
      Sampler s(p, static_cast<int64_t>(l.size()));
      std::mt19937_64 rng(seed);
      for (int draw = 0; draw < 3; ++draw) {
        const auto cand = s.candidates(l);
        const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        int32_t expect = cand.back().first;
        double acc = 0;
        for (const auto& [id, prob] : cand) {
          acc += prob;
          if (u < acc) {
            expect = id;
            break;
          }
        }
        ASSERT_EQ(s.sample(l), expect) << "temperature " << p.temperature << " min_p " << p.min_p << " seed " << seed;
      }
    }
  }
}

}  // namespace
}  // namespace kexa

// ---------------------------------------------------------------------------------------------
// Generator tests on a tiny random-weight EXAONE 3.x model held in memory. They check the loop's
// contract (what is evaluated, when it stops, cache reuse) against a plain token-by-token loop
// over Model::forward written here.

namespace kexa {
namespace {

using test::MemorySource;


constexpr int64_t kV = 64, kH = 32, kHeads = 4, kKv = 2, kI = 48;

// EXAONE 3.x (2 global layers) by default; with `window` > 0, EXAONE 4.0 with layers
// sliding, sliding, global (NoPE). `kv`: the runtime's KV caches' element type.
std::unique_ptr<Model> tiny_model(int64_t window = 0, KVType kv = KVType::F32) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  auto t = [&](int64_t n, float scale, float offset = 0.0f) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = offset + scale * uni(rng);
    return v;
  };
  const bool e4 = window > 0;
  const int64_t layers = e4 ? 3 : 2;
  const int64_t hd = kH / kHeads;
  const float ws = 2.0f / std::sqrt(static_cast<float>(kH));
  auto src = std::make_unique<MemorySource>();
  src->add_f32(e4 ? "model.embed_tokens.weight" : "transformer.wte.weight", {kV, kH}, t(kV * kH, 1.0f));
  src->add_f32("lm_head.weight", {kV, kH}, t(kV * kH, 1.5f));  // peaked logits: no greedy near-ties
  src->add_f32(e4 ? "model.norm.weight" : "transformer.ln_f.weight", {kH}, t(kH, 0.2f, 1.0f));
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = (e4 ? "model.layers." : "transformer.h.") + std::to_string(l) + ".";
    auto name = [&](const char* e3, const char* e4name) { return p + (e4 ? e4name : e3); };
    if (e4) {
      src->add_f32(p + "self_attn.q_norm.weight", {hd}, t(hd, 0.3f, 1.0f));
      src->add_f32(p + "self_attn.k_norm.weight", {hd}, t(hd, 0.3f, 1.0f));
      src->add_f32(p + "post_attention_layernorm.weight", {kH}, t(kH, 0.2f, 1.0f));
      src->add_f32(p + "post_feedforward_layernorm.weight", {kH}, t(kH, 0.2f, 1.0f));
    } else {
      src->add_f32(p + "ln_1.weight", {kH}, t(kH, 0.2f, 1.0f));
      src->add_f32(p + "ln_2.weight", {kH}, t(kH, 0.2f, 1.0f));
    }
    src->add_f32(name("attn.attention.q_proj.weight", "self_attn.q_proj.weight"), {kHeads * hd, kH},
             t(kHeads * hd * kH, ws));
    src->add_f32(name("attn.attention.k_proj.weight", "self_attn.k_proj.weight"), {kKv * hd, kH},
             t(kKv * hd * kH, ws));
    src->add_f32(name("attn.attention.v_proj.weight", "self_attn.v_proj.weight"), {kKv * hd, kH},
             t(kKv * hd * kH, ws));
    src->add_f32(name("attn.attention.out_proj.weight", "self_attn.o_proj.weight"), {kH, kHeads * hd},
             t(kH * kHeads * hd, ws));
    src->add_f32(name("mlp.c_fc_0.weight", "mlp.gate_proj.weight"), {kI, kH}, t(kI * kH, ws));
    src->add_f32(name("mlp.c_fc_1.weight", "mlp.up_proj.weight"), {kI, kH}, t(kI * kH, ws));
    src->add_f32(name("mlp.c_proj.weight", "mlp.down_proj.weight"), {kH, kI},
             t(kH * kI, 2.0f / std::sqrt(float(kI))));
  }
  nlohmann::json c = {{"model_type", e4 ? "exaone4" : "exaone"}, {"vocab_size", kV},
                      {"hidden_size", kH}, {"num_attention_heads", kHeads},
                      {"num_key_value_heads", kKv}, {"intermediate_size", kI},
                      {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                      {"max_position_embeddings", 256}};
  if (e4) {
    c["num_hidden_layers"] = layers;
    c["head_dim"] = hd;
    c["rms_norm_eps"] = 1e-5;
    c["hidden_act"] = "silu";
    c["sliding_window"] = window;
    c["layer_types"] = {"sliding_attention", "sliding_attention", "full_attention"};
  } else {
    c["num_layers"] = layers;
    c["layer_norm_epsilon"] = 1e-5;
    c["activation_function"] = "silu";
  }
  LoadOptions o;
  o.n_threads = 2;
  o.kv_type = kv;
  return Model::from_source(ModelConfig::from_hf_json(c, "tiny"), std::move(src), false, "tiny", o);
}

// Greedy by hand: one forward per token from an empty cache.
std::vector<int32_t> manual_greedy(Model& m, const std::vector<int32_t>& prompt, int n,
                                   std::vector<std::vector<float>>* rows = nullptr) {
  KVCache cache(m.config(), 256);
  std::vector<float> logits(kV);
  std::vector<int32_t> out;
  std::vector<int32_t> feed = prompt;
  for (int i = 0; i < n; ++i) {
    for (int32_t tok : feed) {
      m.forward(std::span<const int32_t>(&tok, 1), cache, logits, false);
      if (rows) rows->push_back(logits);
    }
    out.push_back(argmax(logits));
    feed = {out.back()};
  }
  return out;
}

const std::vector<int32_t> kPrompt = {1, 17, 5, 33, 60, 2};

TEST(Generator, GreedyMatchesManualLoopAndDumpsEveryEvaluatedRow) {
  auto model = tiny_model();
  std::vector<std::vector<float>> ref_rows;
  const auto expect = manual_greedy(*model, kPrompt, 20, &ref_rows);
  ASSERT_GE(std::set<int32_t>(expect.begin(), expect.end()).size(), 3u) << "degenerate model";

  KVCache cache(model->config(), 128);
  Generator gen(*model, cache, SamplingParams{});
  GenerateOptions opt;
  opt.max_tokens = 20;
  std::vector<std::vector<float>> rows;
  opt.on_logits = [&](std::span<const float> r) { rows.emplace_back(r.begin(), r.end()); };
  std::vector<int32_t> streamed;
  GenerateResult r = gen.generate(kPrompt, opt, [&](int32_t t) {
    streamed.push_back(t);
    return true;
  });
  EXPECT_EQ(r.tokens, expect);
  EXPECT_EQ(streamed, expect);
  EXPECT_EQ(r.reason, StopReason::MaxTokens);
  EXPECT_EQ(r.prompt_evaluated, static_cast<int64_t>(kPrompt.size()));
  EXPECT_EQ(r.decode_steps, 19);
  // prompt + generated - 1 rows: the last sampled token is never evaluated.
  ASSERT_EQ(rows.size(), kPrompt.size() + 20 - 1);
  ASSERT_EQ(ref_rows.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j)
      ASSERT_NEAR(rows[i][j], ref_rows[i][j], 1e-4f * (1.0f + std::fabs(ref_rows[i][j])))
          << "row " << i << " col " << j;
  EXPECT_EQ(cache.n_past(), static_cast<int64_t>(kPrompt.size() + 19));
  std::vector<int32_t> all = kPrompt;
  all.insert(all.end(), expect.begin(), expect.end());
  EXPECT_EQ(gen.tokens(), all);
}

TEST(Generator, StopsAtStopIdsContextAndCallback) {
  auto model = tiny_model();
  const auto expect = manual_greedy(*model, kPrompt, 12);
  // The first position where a token appears for the first time, after position 0.
  size_t k = 1;
  while (std::find(expect.begin(), expect.begin() + static_cast<ptrdiff_t>(k), expect[k]) !=
         expect.begin() + static_cast<ptrdiff_t>(k))
    ++k;
  ASSERT_LT(k, expect.size()) << "degenerate model";
  {
    KVCache cache(model->config(), 128);
    Generator gen(*model, cache, SamplingParams{});
    GenerateOptions opt;
    opt.max_tokens = 12;
    opt.stop_ids = {expect[k]};
    GenerateResult r = gen.generate(kPrompt, opt);
    EXPECT_EQ(r.reason, StopReason::Eos);
    EXPECT_EQ(r.tokens, std::vector<int32_t>(expect.begin(), expect.begin() + k + 1));
  }
  {
    // Context of prompt + 2: two more positions can be evaluated, so three tokens come out.
    KVCache cache(model->config(), static_cast<int64_t>(kPrompt.size()) + 2);
    Generator gen(*model, cache, SamplingParams{});
    GenerateOptions opt;
    opt.max_tokens = 12;
    GenerateResult r = gen.generate(kPrompt, opt);
    EXPECT_EQ(r.reason, StopReason::ContextFull);
    EXPECT_EQ(r.tokens, std::vector<int32_t>(expect.begin(), expect.begin() + 3));
  }
  {
    KVCache cache(model->config(), 128);
    Generator gen(*model, cache, SamplingParams{});
    GenerateOptions opt;
    opt.max_tokens = 12;
    int calls = 0;
    GenerateResult r = gen.generate(kPrompt, opt, [&](int32_t) { return ++calls < 4; });
    EXPECT_EQ(r.reason, StopReason::Callback);
    EXPECT_EQ(r.tokens.size(), 4u);
  }
  {
    KVCache cache(model->config(), 128);
    Generator gen(*model, cache, SamplingParams{});
    GenerateOptions opt;
    opt.max_tokens = 0;
    GenerateResult r = gen.generate(kPrompt, opt);
    EXPECT_TRUE(r.tokens.empty());
    EXPECT_EQ(cache.n_past(), static_cast<int64_t>(kPrompt.size()));
  }
}

TEST(Generator, ReusesCacheWhenPromptExtendsSequence) {
  auto model = tiny_model();
  KVCache cache(model->config(), 128);
  Generator gen(*model, cache, SamplingParams{});
  GenerateOptions opt;
  opt.max_tokens = 5;
  gen.generate(kPrompt, opt);
  std::vector<int32_t> next = gen.tokens();
  next.push_back(9);
  next.push_back(44);
  GenerateResult r2 = gen.generate(next, opt);
  // Only the pending last reply token and the two new ones are evaluated.
  EXPECT_EQ(r2.prompt_evaluated, 3);
  EXPECT_EQ(r2.tokens, manual_greedy(*model, next, 5));

  // A prompt that diverges from the cached sequence rewinds the cache to the divergence.
  std::vector<int32_t> other = next;
  other[2] = 3;
  GenerateResult r3 = gen.generate(other, opt);
  EXPECT_EQ(r3.prompt_evaluated, static_cast<int64_t>(other.size()) - 2);
  EXPECT_EQ(r3.tokens, manual_greedy(*model, other, 5));

  // The same prompt again (regenerate): the last prompt token is evaluated again for its logits.
  GenerateResult r4 = gen.generate(other, opt);
  EXPECT_EQ(r4.prompt_evaluated, 1);
  EXPECT_EQ(r4.tokens, r3.tokens);

  // A shorter prompt that is a prefix of the sequence.
  std::vector<int32_t> shorter(other.begin(), other.begin() + 4);
  GenerateResult r5 = gen.generate(shorter, opt);
  EXPECT_EQ(r5.prompt_evaluated, 1);
  EXPECT_EQ(r5.tokens, manual_greedy(*model, shorter, 5));
}

TEST(Generator, RewindRespectsSlidingWindowRing) {
  // Window 4, chunk 4: sliding layers keep a ring of 7 positions.
  auto model = tiny_model(/*window=*/4);
  KVCache cache(model->config(), 128, /*chunk=*/4);
  ASSERT_EQ(cache.slots(0), 7);
  Generator gen(*model, cache, SamplingParams{});
  GenerateOptions opt;
  opt.max_tokens = 24;
  gen.generate(kPrompt, opt);
  const std::vector<int32_t> seq = gen.tokens();  // 6 + 24 tokens, 29 cached
  auto max_tokens = [](int64_t n) {
    GenerateOptions o;
    o.max_tokens = n;
    return o;
  };
  ASSERT_EQ(cache.n_past(), 29);
  for (size_t cut : {27u, 25u, 20u, 10u, 3u}) {
    // Evaluate the cached sequence again, then diverge at position `cut`.
    gen.generate(std::vector<int32_t>(seq.begin(), seq.end() - 1), max_tokens(1));
    ASSERT_EQ(cache.n_past(), 29);
    std::vector<int32_t> p(seq.begin(), seq.begin() + static_cast<ptrdiff_t>(cut));
    p.push_back(seq[cut] == 7 ? 8 : 7);
    p.push_back(11);
    GenerateResult r = gen.generate(p, max_tokens(6));
    // The ring holds positions [22, 29); rewinding to `cut` needs [cut - 3, cut).
    const bool reusable = static_cast<int64_t>(cut) - 3 >= 22;
    EXPECT_EQ(r.prompt_evaluated, reusable ? 2 : static_cast<int64_t>(p.size())) << "cut " << cut;
    EXPECT_EQ(r.tokens, manual_greedy(*model, p, 6)) << "cut " << cut;
  }
}

TEST(Generator, SeededSamplingIsReproducible) {
  auto model = tiny_model();
  auto run = [&](uint64_t seed) {
    KVCache cache(model->config(), 128);
    Generator gen(*model, cache, SamplingParams{.temperature = 1.5, .top_p = 0.95, .seed = seed});
    GenerateOptions opt;
    opt.max_tokens = 30;
    return gen.generate(kPrompt, opt).tokens;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Generator, BadPromptsAreNamedErrors) {
  auto model = tiny_model();
  KVCache cache(model->config(), 8);
  Generator gen(*model, cache, SamplingParams{});
  GenerateOptions opt;
  auto message = [&](std::vector<int32_t> p) -> std::string {
    try {
      gen.generate(p, opt);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({}).find("empty"), std::string::npos);
  EXPECT_NE(message({1, 64}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(message({1, -3}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(message(std::vector<int32_t>(9, 1)).find("context"), std::string::npos);
}


// A constraint for the tests: only odd ids, and the stop id 2 only after `min_len` tokens.
class OddIds : public TokenFilter {
 public:
  explicit OddIds(int64_t min_len) : min_len_(min_len) {}
  void set_remaining(int64_t tokens_after) override { remaining_.push_back(tokens_after); }
  bool allows(int32_t t) override { return t == 2 ? accepted_ >= min_len_ : t % 2 == 1; }
  void mask(std::span<float> logits) override {
    for (size_t t = 0; t < logits.size(); ++t)
      if (!allows(static_cast<int32_t>(t))) logits[t] = -std::numeric_limits<float>::infinity();
  }
  void accept(int32_t) override { ++accepted_; }
  std::vector<int64_t> remaining_;

 private:
  int64_t min_len_;
  int64_t accepted_ = 0;
};

TEST(NextToken, FilterRestrictsEveryChoiceAndSeesTheBudget) {
  auto model = tiny_model();
  for (double temperature : {0.0, 1.2}) {
    KVCache cache(model->config(), 128);
    Generator gen(*model, cache, SamplingParams{.temperature = temperature, .seed = 3});
    OddIds filter(/*min_len=*/4);
    GenerateOptions opt;
    opt.max_tokens = 12;
    opt.stop_ids = {2};
    opt.filter = &filter;
    GenerateResult r = gen.generate(kPrompt, opt);
    ASSERT_FALSE(r.tokens.empty());
    for (size_t i = 0; i < r.tokens.size(); ++i) {
      if (r.tokens[i] == 2) {
        EXPECT_EQ(i + 1, r.tokens.size());
        EXPECT_GE(i, 4u);
      } else {
        EXPECT_EQ(r.tokens[i] % 2, 1) << "token " << i;
      }
    }
    ASSERT_EQ(filter.remaining_.size(), r.tokens.size());
    for (size_t i = 0; i < filter.remaining_.size(); ++i) EXPECT_EQ(filter.remaining_[i], 12 - 1 - static_cast<int64_t>(i));
  }
}

TEST(NextToken, LogprobsAreLogSoftmaxOfTheRawLogits) {
  std::vector<float> logits = {1.0f, 3.0f, 0.5f, 3.0f};
  TokenLogprob lp = token_logprob(logits, 3, 2);
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  EXPECT_NEAR(lp.logprob, 3.0 - std::log(z), 1e-6);
  ASSERT_EQ(lp.top.size(), 2u);
  EXPECT_EQ(lp.top[0].first, 1);  // ties go to the lower id
  EXPECT_EQ(lp.top[1].first, 3);
}

// The scheduler chooses tokens with the generator's code: several jobs batched together each get
// exactly what a Generator gives for that job alone (greedy, seeded sampling, a filter).
// With either KV cache type: an f16 cache's rows are widened and then computed as f32 rows are.
TEST(Scheduler, BatchedJobsEqualGeneratorAlone) {
  for (KVType kv : {KVType::F32, KVType::F16}) {
    SCOPED_TRACE(kv_type_name(kv));
    auto model = tiny_model(/*window=*/4, kv);
    struct Case {
      std::vector<int32_t> prompt;
      SamplingParams sampling;
      bool filtered;
    };
    std::vector<Case> cases = {
        {kPrompt, SamplingParams{}, false},
        {{1, 9, 9, 40, 3}, SamplingParams{.temperature = 0.9, .top_p = 0.95, .seed = 11}, false},
        {{1, 50, 7}, SamplingParams{.temperature = 1.1, .seed = 5}, true},
    };
    auto job_of = [&](const Case& c) {
      Job job;
      job.prompt = c.prompt;
      job.sampling = c.sampling;
      job.options.max_tokens = 20;
      job.options.stop_ids = {2};
      job.options.top_logprobs = 1;
      if (c.filtered) job.filter = std::make_shared<OddIds>(3);
      return job;
    };
    std::vector<std::vector<int32_t>> alone;
    for (const Case& c : cases) {
      Job job = job_of(c);
      KVCache cache(model->config(), 64, /*chunk=*/512, model->kv_type());
      Generator gen(*model, cache, c.sampling);
      job.options.filter = job.filter.get();
      GenerateResult r = gen.generate(job.prompt, job.options);
      if (!r.tokens.empty() && r.reason == StopReason::Eos) r.tokens.pop_back();  // jobs do not publish stop ids
      alone.push_back(r.tokens);
    }
    Scheduler scheduler(*model, /*n_slots=*/4, /*context=*/64, /*queue_limit=*/8, /*prefill_chunk=*/2);
    std::vector<std::shared_ptr<JobHandle>> handles;
    for (const Case& c : cases) handles.push_back(scheduler.submit(job_of(c)));
    for (size_t i = 0; i < cases.size(); ++i) {
      std::vector<int32_t> got;
      size_t logprobs = 0;
      for (;;) {
        JobHandle::Event ev = handles[i]->wait(5000);
        got.insert(got.end(), ev.output.tokens.begin(), ev.output.tokens.end());
        logprobs += ev.output.logprobs.size();
        if (ev.end) {
          EXPECT_NE(ev.end->reason, StopReason::Error) << ev.end->error;
          break;
        }
      }
      EXPECT_EQ(got, alone[i]) << "job " << i;
      EXPECT_EQ(logprobs, got.size());
    }
    EXPECT_EQ(scheduler.stats().slots, 4);
  }
}

TEST(Scheduler, RefusesJobsThatCannotRunAndEndsCancelledOnes) {
  auto model = tiny_model();
  Scheduler scheduler(*model, 1, 16, 4);
  Job empty;
  EXPECT_THROW(scheduler.submit(empty), Error);
  Job too_long;
  too_long.prompt.assign(16, 1);
  EXPECT_THROW(scheduler.submit(too_long), Error);
  Job job;
  job.prompt = kPrompt;
  job.options.max_tokens = 8;
  JobEnd end = scheduler.run(job, [](const JobEvent& ev) { return ev.tokens.empty(); });  // cancel at the first token
  EXPECT_EQ(end.reason, StopReason::Callback);
}

// OpenAI's logit_bias: a -100 bias bans a token from the greedy choice, +100 forces one, an id
// outside the vocabulary is refused, and logprobs stay those of the raw logits.
TEST(NextToken, LogitBiasBansAndForcesTokens) {
  auto model = tiny_model();
  const std::vector<int32_t> plain = manual_greedy(*model, kPrompt, 8);
  auto run = [&](std::vector<std::pair<int32_t, float>> bias, int top_logprobs = -1) {
    KVCache cache(model->config(), 64);
    Generator gen(*model, cache, SamplingParams{});
    GenerateOptions options;
    options.max_tokens = 8;
    options.use_model_eos = false;
    options.logit_bias = std::move(bias);
    options.top_logprobs = top_logprobs;
    std::vector<TokenLogprob> lps;
    options.on_logprob = [&](const TokenLogprob& lp) { lps.push_back(lp); };
    GenerateResult r = gen.generate(kPrompt, options);
    return std::make_pair(r.tokens, lps);
  };
  EXPECT_EQ(run({}).first, plain);
  // Ban every token the plain run chose: none of them comes back.
  std::vector<std::pair<int32_t, float>> bans;
  for (int32_t t : plain) bans.emplace_back(t, -100.0f);
  const std::vector<int32_t> banned = run(bans).first;
  ASSERT_EQ(banned.size(), plain.size());
  for (int32_t t : banned) EXPECT_EQ(std::find(plain.begin(), plain.end(), t), plain.end()) << t;
  // The first choice is the best token that is not banned.
  KVCache cache(model->config(), 64);
  std::vector<float> logits(kV);
  model->forward(kPrompt, cache, logits, false);
  for (int32_t t : plain) logits[static_cast<size_t>(t)] = -1e30f;
  EXPECT_EQ(banned[0], argmax(logits));
  // +100 forces a token the model would not choose; the logprob is the model's, not the bias's.
  const int32_t forced = plain[0] == 7 ? 8 : 7;
  auto [tokens, lps] = run({{forced, 100.0f}}, 0);
  EXPECT_EQ(tokens, std::vector<int32_t>(8, forced));
  ASSERT_EQ(lps.size(), 8u);
  EXPECT_LT(lps[0].logprob, -0.01f);
  EXPECT_THROW(run({{static_cast<int32_t>(kV), 1.0f}}), Error);
  EXPECT_THROW(run({{-1, 1.0f}}), Error);
}

// A copied cache continues the sequence exactly as the original does, also once a sliding
// layer's ring has wrapped (ring of W-1+chunk = 5 slots here, 11 positions).
TEST(Scheduler, CopiedKvCacheContinuesTheSequence) {
  auto model = tiny_model(/*window=*/4);
  KVCache a(model->config(), 32, /*chunk=*/2), b(model->config(), 32, /*chunk=*/2);
  std::vector<float> la(kV), lb(kV);
  const std::vector<int32_t> prompt = {1, 17, 5, 33, 60, 9, 40, 3, 12, 50, 7};
  for (size_t i = 0; i < prompt.size(); i += 2)
    model->forward(std::span<const int32_t>(prompt).subspan(i, std::min<size_t>(2, prompt.size() - i)), a, la, false);
  // b first holds another sequence: the copy must replace it entirely.
  for (int32_t t : {4, 4, 4}) model->forward(std::span<const int32_t>(&t, 1), b, lb, false);
  b.copy_from(a);
  EXPECT_EQ(b.n_past(), a.n_past());
  for (int32_t t : {20, 21, 22, 23, 24, 25}) {
    model->forward(std::span<const int32_t>(&t, 1), a, la, false);
    model->forward(std::span<const int32_t>(&t, 1), b, lb, false);
    EXPECT_EQ(la, lb) << "after token " << t;
  }
  KVCache other(model->config(), 16, 2);
  EXPECT_THROW(other.copy_from(a), Error);
  KVCache half(model->config(), 32, 2, KVType::F16);
  EXPECT_THROW(half.copy_from(a), Error);
  // An f16 cache copies as well.
  KVCache c(model->config(), 32, 2, KVType::F16), d(model->config(), 32, 2, KVType::F16);
  std::vector<float> lc(kV), ld(kV);
  for (int32_t t : prompt) model->forward(std::span<const int32_t>(&t, 1), c, lc, false);
  d.copy_from(c);
  for (int32_t t : {20, 21, 22}) {
    model->forward(std::span<const int32_t>(&t, 1), c, lc, false);
    model->forward(std::span<const int32_t>(&t, 1), d, ld, false);
    EXPECT_EQ(lc, ld) << "f16, after token " << t;
  }
}

// An f16 cache holds half the bytes and moves the logits by no more than half-precision keys and
// values can (7.4e-3 measured here; the bound keeps a margin). A 70-token prompt evaluated at once
// (query blocks sharing widened key blocks, 3 key blocks, sliding layers whose tokens each see
// other rows) gives the rows token-by-token evaluation gives.
TEST(KVCache, F16HalvesTheMemoryAndStaysNearF32) {
  auto m32 = tiny_model(/*window=*/4, KVType::F32);
  auto m16 = tiny_model(/*window=*/4, KVType::F16);
  std::vector<int32_t> seq;
  for (int i = 0; i < 70; ++i) seq.push_back(static_cast<int32_t>((i * 37 + 11) % kV));
  KVCache a(m32->config(), 128, 128, KVType::F32), b(m16->config(), 128, 128, KVType::F16);
  EXPECT_EQ(b.bytes() * 2, a.bytes());
  std::vector<float> la(kV), lb(kV);
  std::vector<std::vector<float>> rows_b;
  float worst = 0;
  for (int32_t t : seq) {
    m32->forward(std::span<const int32_t>(&t, 1), a, la, false);
    m16->forward(std::span<const int32_t>(&t, 1), b, lb, false);
    rows_b.push_back(lb);
    for (int64_t j = 0; j < kV; ++j) worst = std::max(worst, std::fabs(la[j] - lb[j]) / (1.0f + std::fabs(la[j])));
  }
  EXPECT_GT(worst, 0.0f) << "the f16 cache changed nothing: is it in use?";
  EXPECT_LT(worst, 2e-2f);
  KVCache whole(m16->config(), 128, 128, KVType::F16);
  std::vector<float> all(seq.size() * kV);
  m16->forward(seq, whole, all, /*all_logits=*/true);
  for (size_t t = 0; t < seq.size(); ++t)
    for (int64_t j = 0; j < kV; ++j)
      ASSERT_NEAR(all[t * kV + j], rows_b[t][j], 1e-4f * (1.0f + std::fabs(rows_b[t][j]))) << "token " << t;
  std::printf("f16 cache: largest logit change %.3g (relative)\n", worst);
}

// n choices of one prompt: prefilled once, each choice equal to its job run alone (greedy ones
// identical, seeded ones those of seed + i), and a group larger than the slots is refused.
TEST(Scheduler, GroupSharesThePromptAndEqualsJobsAlone) {
  auto model = tiny_model(/*window=*/4);
  const std::vector<int32_t> prompt = {1, 9, 9, 40, 3, 12, 50, 7, 33};
  auto job_of = [&](SamplingParams sampling) {
    Job job;
    job.prompt = prompt;
    job.sampling = sampling;
    job.options.max_tokens = 12;
    job.options.stop_ids = {2};
    job.options.logit_bias = {{5, -100.0f}};
    return job;
  };
  auto alone = [&](const Job& job) {
    KVCache cache(model->config(), 64);
    Generator gen(*model, cache, job.sampling);
    GenerateResult r = gen.generate(job.prompt, job.options);
    if (!r.tokens.empty() && r.reason == StopReason::Eos) r.tokens.pop_back();
    return r.tokens;
  };
  auto collect = [](JobHandle& h) {
    std::vector<int32_t> got;
    for (;;) {
      JobHandle::Event ev = h.wait(5000);
      got.insert(got.end(), ev.output.tokens.begin(), ev.output.tokens.end());
      if (ev.end) {
        EXPECT_NE(ev.end->reason, StopReason::Error) << ev.end->error;
        return got;
      }
    }
  };
  // The references run before the scheduler starts: the model's forward pass is not reentrant, and
  // the scheduler's thread uses the model from its first job on.
  std::vector<Job> greedy(3, job_of(SamplingParams{}));
  const std::vector<int32_t> expected = alone(greedy[0]);
  std::vector<Job> sampled;
  for (uint64_t i = 0; i < 2; ++i) sampled.push_back(job_of(SamplingParams{.temperature = 1.2, .seed = 40 + i}));
  const std::vector<std::vector<int32_t>> sampled_alone = {alone(sampled[0]), alone(sampled[1])};
  Scheduler scheduler(*model, /*n_slots=*/4, /*context=*/64, /*queue_limit=*/8, /*prefill_chunk=*/3);
  // A job already running beside the group.
  std::shared_ptr<JobHandle> beside = scheduler.submit(job_of(SamplingParams{.temperature = 0.8, .seed = 1}));
  std::vector<std::shared_ptr<JobHandle>> g = scheduler.submit_group(greedy);
  ASSERT_EQ(g.size(), 3u);
  for (auto& h : g) EXPECT_EQ(collect(*h), expected);
  collect(*beside);
  EXPECT_EQ(scheduler.stats().tokens_prompt, 2 * static_cast<int64_t>(prompt.size()));

  g = scheduler.submit_group(sampled);
  std::vector<std::vector<int32_t>> got = {collect(*g[0]), collect(*g[1])};
  EXPECT_EQ(got[0], sampled_alone[0]);
  EXPECT_EQ(got[1], sampled_alone[1]);
  EXPECT_NE(got[0], got[1]);

  // A follower cancelled before the fork ends; the others go on. A job whose filter holds the
  // scheduler's thread keeps the group from starting until the cancel is in.
  struct Gate : TokenFilter {
    std::promise<void> entered;
    std::promise<void> open;
    bool first = true;
    void set_remaining(int64_t) override {
      if (!first) return;
      first = false;
      entered.set_value();
      open.get_future().wait();
    }
    bool allows(int32_t) override { return true; }
    void mask(std::span<float>) override {}
    void accept(int32_t) override {}
  };
  auto gate = std::make_shared<Gate>();
  std::future<void> entered = gate->entered.get_future();
  Job blocker = job_of(SamplingParams{});
  blocker.filter = gate;
  std::shared_ptr<JobHandle> held = scheduler.submit(blocker);
  entered.wait();
  g = scheduler.submit_group(greedy);
  g[1]->cancel();
  gate->open.set_value();
  collect(*held);
  EXPECT_EQ(collect(*g[0]), expected);
  EXPECT_EQ(collect(*g[2]), expected);
  EXPECT_EQ(g[1]->wait(5000).end->reason, StopReason::Callback);

  EXPECT_THROW(scheduler.submit_group(std::vector<Job>(5, job_of(SamplingParams{}))), Error);
  std::vector<Job> mixed = {job_of(SamplingParams{}), job_of(SamplingParams{})};
  mixed[1].prompt.push_back(4);
  EXPECT_THROW(scheduler.submit_group(mixed), Error);
  Job bad_bias = job_of(SamplingParams{});
  bad_bias.options.logit_bias = {{static_cast<int32_t>(kV), 1.0f}};
  EXPECT_THROW(scheduler.submit(bad_bias), Error);
}

TEST(LocalGeneration, RunsJobsAndKeepsTheSequenceBetweenThem) {
  auto model = tiny_model();
  LocalGeneration local(*model, 64);
  Job job;
  job.prompt = kPrompt;
  job.options.max_tokens = 5;
  std::vector<int32_t> got;
  JobEnd end = local.run(job, [&](const JobEvent& ev) {
    got.insert(got.end(), ev.tokens.begin(), ev.tokens.end());
    return true;
  });
  EXPECT_EQ(end.reason, StopReason::MaxTokens);
  EXPECT_EQ(got, manual_greedy(*model, kPrompt, 5));
  Job bad;
  bad.prompt.assign(64, 1);
  EXPECT_THROW(local.run(bad, {}), Error);
}

}  // namespace
}  // namespace kexa
