#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <unordered_map>
#include <utility>

#include "kernels/kernels.h"
#include "util/error.h"

namespace kexa {

void SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0)
    fail("sampling: temperature must be a finite number >= 0, got ", temperature);
  if (top_k < 0) fail("sampling: top_k must be >= 0 (0 = off), got ", top_k);
  if (!(top_p > 0.0 && top_p <= 1.0)) fail("sampling: top_p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0.0 && min_p <= 1.0)) fail("sampling: min_p must be in [0, 1], got ", min_p);
  if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0)
    fail("sampling: repeat_penalty must be a finite number > 0, got ", repeat_penalty);
  if (!std::isfinite(presence_penalty))
    fail("sampling: presence_penalty must be finite, got ", presence_penalty);
  if (!std::isfinite(frequency_penalty))
    fail("sampling: frequency_penalty must be finite, got ", frequency_penalty);
  if (penalty_last_n < -1) fail("sampling: penalty_last_n must be >= -1, got ", penalty_last_n);
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) fail("sampling: empty logits");
  size_t best = 0;
  // Strict '>' keeps the first (lowest id) of equal maxima.
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplingParams& params, int64_t vocab_size)
    : params_(params), vocab_size_(vocab_size), rng_(params.seed) {
  params_.validate();
  if (vocab_size <= 0) fail("sampling: vocabulary size must be positive, got ", vocab_size);
}

void Sampler::accept(int32_t token) { history_.push_back(token); }

double Sampler::uniform() {
  // 53 random bits -> a double in [0, 1); identical on every standard library.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::apply_penalties(std::vector<float>& logits) const {
  const bool any = params_.repeat_penalty != 1.0 || params_.presence_penalty != 0.0 ||
                   params_.frequency_penalty != 0.0;
  if (!any || params_.penalty_last_n == 0 || history_.empty()) return;
  size_t n = history_.size();
  if (params_.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(params_.penalty_last_n));
  std::unordered_map<int32_t, int> counts;
  for (size_t i = history_.size() - n; i < history_.size(); ++i) ++counts[history_[i]];
  for (const auto& [token, count] : counts) {
    if (token < 0 || token >= vocab_size_) continue;  // ids outside the vocab cannot be penalised
    float& l = logits[static_cast<size_t>(token)];
    if (params_.repeat_penalty != 1.0) {
      l = l > 0 ? static_cast<float>(l / params_.repeat_penalty)
                : static_cast<float>(l * params_.repeat_penalty);
    }
    l -= static_cast<float>(count * params_.frequency_penalty + params_.presence_penalty);
  }
}

std::vector<float> Sampler::penalized(std::span<const float> logits) const {
  if (static_cast<int64_t>(logits.size()) != vocab_size_)
    fail("sampling: logits have ", logits.size(), " entries, expected the vocabulary size ",
         vocab_size_);
  std::vector<float> out(logits.begin(), logits.end());
  apply_penalties(out);
  return out;
}

namespace {

// The largest logit's id; fails on a NaN or when every logit is -inf.
int32_t checked_argmax(std::span<const float> logits) {
  for (float l : logits)
    if (std::isnan(l)) fail("sampling: the logits contain NaN");
  const int32_t best = argmax(logits);
  if (!(logits[static_cast<size_t>(best)] > -INFINITY))
    fail("sampling: every logit is -inf, nothing can be sampled");
  return best;
}

// probs[i] = softmax of logits / temperature, in id order, each exponential taken once (relative
// to the largest logit, so it never overflows) by kernels::exp_sum: vectorized, and the same bits
// on every machine, so a seed draws the same tokens everywhere.
void softmax_in_id_order(std::span<const float> logits, double max_l, double inv_t, std::vector<double>& probs) {
  const size_t V = logits.size();
  probs.resize(V);
  const double z = kernels::exp_sum(logits.data(), static_cast<int64_t>(V), max_l, inv_t, probs.data());
  for (size_t i = 0; i < V; ++i) probs[i] = probs[i] / z;
}

// Token ids by descending logit, equal logits by ascending id (the order `before` gives the scaled
// logits), by an LSD radix sort of (logit, id) keys: a flat distribution's top-p cut needs the
// whole vocabulary in order on every token, and sampling with top_p 0.95 from 102400 such logits
// took 11.5 ms with a comparison sort, 7.2 ms with this (AMD EPYC Zen 3, AVX2, one thread).
std::vector<int32_t> ids_by_descending_logit(std::span<const float> logits) {
  const size_t V = logits.size();
  std::vector<uint64_t> keys(V), spare(V);
  for (size_t i = 0; i < V; ++i) {
    const float l = logits[i] == 0.0f ? 0.0f : logits[i];  // -0 ties with +0, as in comparisons
    uint32_t b;
    std::memcpy(&b, &l, 4);
    const uint32_t ascending = (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // float order as unsigned
    keys[i] = (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint64_t>(i);
  }
  // 11-bit digits from the lowest; digits every key shares cost no pass.
  constexpr int kBits = 11;
  constexpr size_t kBuckets = size_t{1} << kBits;
  std::vector<uint32_t> count(kBuckets);
  for (int shift = 0; shift < 64; shift += kBits) {
    std::fill(count.begin(), count.end(), 0u);
    for (uint64_t k : keys) ++count[(k >> shift) & (kBuckets - 1)];
    if (count[(keys[0] >> shift) & (kBuckets - 1)] == V) continue;
    uint32_t start = 0;
    for (uint32_t& c : count) start += std::exchange(c, start);
    for (uint64_t k : keys) spare[count[(k >> shift) & (kBuckets - 1)]++] = k;
    keys.swap(spare);
  }
  std::vector<int32_t> ids(V);
  for (size_t i = 0; i < V; ++i) ids[i] = static_cast<int32_t>(keys[i] & 0xffffffffu);
  return ids;
}

}  // namespace

std::vector<std::pair<int32_t, double>> Sampler::filter(std::vector<float>& logits) const {
  const int32_t best = checked_argmax(logits);
  if (params_.greedy()) return {{best, 1.0}};

  const double inv_t = 1.0 / params_.temperature;
  const double max_l = logits[static_cast<size_t>(best)];
  const size_t V = logits.size();
  if (keeps_all(V)) {
    // Neither top-k nor top-p cuts: every token in id order.
    std::vector<double> probs;
    softmax_in_id_order(logits, max_l, inv_t, probs);
    std::vector<std::pair<int32_t, double>> out(V);
    for (size_t i = 0; i < V; ++i) out[i] = {static_cast<int32_t>(i), probs[i]};
    normalize(out);
    return out;
  }
  // (scaled logit, id); scaled relative to the max so exp() never overflows.
  std::vector<std::pair<double, int32_t>> cand(V);
  for (size_t i = 0; i < V; ++i)
    cand[i] = {(static_cast<double>(logits[i]) - max_l) * inv_t, static_cast<int32_t>(i)};
  auto before = [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };

  std::vector<double> exps;  // exp of each token's scaled logit, by id, when computed up front
  size_t k = V;
  if (params_.top_k > 0) k = std::min(V, static_cast<size_t>(params_.top_k));
  if (k < V) {
    std::partial_sort(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(k), cand.end(), before);
    cand.resize(k);
  } else if (params_.top_p < 1.0) {
    // The top-p cut is usually among the first few hundred tokens, so those are sorted first; a
    // flat distribution's cut lies far down the vocabulary, which is then put in order whole.
    // Each token's exponential is taken once here, in id order, and looked up below.
    exps.resize(V);
    const double z = kernels::exp_sum(logits.data(), static_cast<int64_t>(V), max_l, inv_t, exps.data());
    const size_t m = std::min<size_t>(V, 1024);
    std::partial_sort(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(m), cand.end(), before);
    double mass = 0;
    for (size_t i = 0; i < m; ++i) mass += exps[static_cast<size_t>(cand[i].second)] / z;
    if (mass < params_.top_p && m < V) {
      const std::vector<int32_t> order = ids_by_descending_logit(logits);
      for (size_t i = 0; i < V; ++i)
        cand[i] = {(static_cast<double>(logits[static_cast<size_t>(order[i])]) - max_l) * inv_t, order[i]};
    }
  }
  auto exp_of = [&](const std::pair<double, int32_t>& c) {
    return exps.empty() ? std::exp(c.first) : exps[static_cast<size_t>(c.second)];
  };

  std::vector<std::pair<int32_t, double>> out;
  out.reserve(cand.size());
  double z = 0;
  for (const auto& c : cand) z += exp_of(c);
  if (params_.top_p < 1.0) {
    // Keep a token while the probability of the tokens before it is still below top_p; the token
    // that crosses the threshold stays (HF TopPLogitsWarper keeps the same set).
    double mass = 0;
    for (const auto& c : cand) {
      if (!out.empty() && mass >= params_.top_p) break;
      const double p = exp_of(c) / z;
      out.emplace_back(c.second, p);
      mass += p;
    }
  } else {
    for (const auto& c : cand) out.emplace_back(c.second, exp_of(c) / z);
  }
  normalize(out);
  return out;
}

void Sampler::normalize(std::vector<std::pair<int32_t, double>>& out) const {
  if (params_.min_p > 0.0) {
    double p_max = 0;
    for (const auto& o : out) p_max = std::max(p_max, o.second);
    const double threshold = params_.min_p * p_max;
    std::erase_if(out, [&](const std::pair<int32_t, double>& o) { return o.second < threshold; });
  }
  double total = 0;
  for (const auto& o : out) total += o.second;
  for (auto& o : out) o.second /= total;
}

bool Sampler::keeps_all(size_t V) const {
  return (params_.top_k <= 0 || static_cast<size_t>(params_.top_k) >= V) && !(params_.top_p < 1.0);
}

int32_t Sampler::draw_all(std::span<const float> logits) {
  // filter() with neither top-k nor top-p, then the draw, without building the candidate list:
  // the same operations on the same values in the same order, so the same token.
  const int32_t best = checked_argmax(logits);
  const double inv_t = 1.0 / params_.temperature;
  const size_t V = logits.size();
  softmax_in_id_order(logits, logits[static_cast<size_t>(best)], inv_t, probs_);
  // exp() never rises above exp(0), the largest logit's: its probability is the largest.
  const double p_max = probs_[static_cast<size_t>(best)];
  // min_p off: the threshold 0 keeps every token (probabilities are never negative).
  const double threshold = params_.min_p > 0.0 ? params_.min_p * p_max : 0.0;
  double total = 0;
  int32_t last = -1;
  for (size_t i = 0; i < V; ++i) {
    if (probs_[i] < threshold) continue;
    total += probs_[i];
    last = static_cast<int32_t>(i);
  }
  const double u = uniform();
  double acc = 0;
  for (size_t i = 0; i < V; ++i) {
    if (probs_[i] < threshold) continue;
    acc += probs_[i] / total;
    if (u < acc) return static_cast<int32_t>(i);
  }
  return last;  // u within rounding of 1
}

std::vector<std::pair<int32_t, double>> Sampler::candidates(std::span<const float> logits) const {
  std::vector<float> work = penalized(logits);
  return filter(work);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (static_cast<int64_t>(logits.size()) != vocab_size_)
    fail("sampling: logits have ", logits.size(), " entries, expected the vocabulary size ",
         vocab_size_);
  scratch_.assign(logits.begin(), logits.end());
  apply_penalties(scratch_);
  if (params_.greedy()) return checked_argmax(scratch_);
  if (keeps_all(scratch_.size())) return draw_all(scratch_);
  const std::vector<std::pair<int32_t, double>> cand = filter(scratch_);
  const double u = uniform();
  double acc = 0;
  for (const auto& c : cand) {
    acc += c.second;
    if (u < acc) return c.first;
  }
  return cand.back().first;  // u within rounding of 1
}

}  // namespace kexa
