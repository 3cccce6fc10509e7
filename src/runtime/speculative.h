// Self-speculative decoding with K-EXAONE's multi-token-prediction (MTP) block (spec 4.6).
//
// Each step drafts N tokens with the MTP block (one small layer), then the main model verifies
// the current token and all N drafts in ONE batched forward. On a memory-bound machine that
// forward costs about as much as a single-token decode step, so every accepted draft is a token
// gained. Greedy output is exactly the non-speculative output; with sampling the standard
// speculative-sampling rule (accept x with probability min(1, p(x)/q(x)), otherwise resample from
// norm(max(0, p - q))) keeps the output distribution that of the main model.
//
//   SpeculativeGenerator gen(*model, cache, params, /*n_draft=*/2);
//   GenerateResult r = gen.generate(prompt_ids, options, on_token);
//   gen.stats().acceptance();
//
// Positions (spec 4.6 item 6): MTP row p joins the main model's final-normed hidden state at p
// with the token at p + 1 and predicts p + 2; it sits at position p of the MTP block's own KV
// cache. Invariant between steps: the main cache holds positions [0, m), the token at m is chosen
// but not evaluated, and the MTP cache holds rows [0, m) whose last row drafted position m + 1.
// After a verify that accepted a drafts, both caches are rolled back (KVCache::truncate) and
// the MTP block evaluates rows m .. m+a from the verify forward's hidden states, which also
// drafts the next step's first token.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace kexa {

class Model;
class KVCache;

// A sparse probability distribution: (token, probability) pairs, probabilities summing to 1
// (the format of Sampler::candidates).
using TokenDist = std::vector<std::pair<int32_t, double>>;

// Probability of `token` under `d` (0 when absent).
double dist_prob(const TokenDist& d, int32_t token);
// Inverse-CDF draw from `d` with u uniform in [0, 1).
int32_t dist_draw(const TokenDist& d, double u);

struct SpeculativeOutcome {
  bool accepted = false;
  int32_t token = -1;  // the draft when accepted, else the replacement drawn from the residual
};
// One speculative-sampling decision for a draft drawn from q, verified against p: accepted when
// u_accept < p(draft) / q(draft), otherwise a replacement is drawn (with u_resample) from
// norm(max(0, p - q)). Point masses (greedy) reduce to "accept iff the argmaxes agree, else take
// p's argmax".
SpeculativeOutcome speculative_accept(const TokenDist& p, const TokenDist& q, int32_t draft, double u_accept,
                                      double u_resample);

struct SpeculativeStats {
  int64_t steps = 0;     // verification forwards of the main model
  int64_t drafted = 0;   // draft tokens proposed
  int64_t accepted = 0;  // draft tokens accepted
  double verify_seconds = 0;  // main-model forwards of the decode loop (current token + drafts)
  double draft_seconds = 0;   // MTP-block forwards of the decode loop
  double acceptance() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
};

class SpeculativeGenerator {
 public:
  using TokenCallback = Generator::TokenCallback;

  // The model must have an MTP block (Model::has_mtp); n_draft >= 1. Model and cache must
  // outlive the generator; the MTP block's own cache is made here with the same context size.
  SpeculativeGenerator(Model& model, KVCache& cache, const SamplingParams& params, int n_draft);
  ~SpeculativeGenerator();

  // Same contract as Generator::generate (options.on_logits gets the rows of the positions the
  // non-speculative generator would evaluate, in the same order; options.filter is not
  // supported and throws). Always starts from an empty cache (no prefix reuse). The cache's input
  // embeddings (KVCache::set_input_embeddings: a picture's rows at its image-token positions) are
  // the main model's inputs at those positions, as for Generator, and the MTP block's at the row
  // before each (row p joins the token, or image row, at p + 1).
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                          const TokenCallback& on_token = {});

  const SpeculativeStats& stats() const { return stats_; }
  int n_draft() const { return n_draft_; }
  // The MTP block's cache (tests check that its rows match a fresh evaluation of the output).
  const KVCache& mtp_cache() const { return *mtp_cache_; }

 private:
  int32_t draw(const TokenDist& d);

  // The steps of generate(), on the state of one call.
  struct Run;
  // Evaluates the prompt; returns its hidden states.
  std::vector<float> prefill(Run& r, std::span<const int32_t> prompt);
  // The MTP block over the prompt and the first chosen token: drafts the first step's first token.
  void start_drafting(Run& r, std::span<const int32_t> prompt, std::span<const float> hidden);
  // Records one output token; false (result.reason set) when generation ends with it.
  bool emit(Run& r, int32_t token);
  // One draft-verify-settle step; false when generation has ended.
  bool step(Run& r);
  void draft(Run& r, int n);
  void verify(Run& r);
  // Accepts or replaces the n drafts; returns how many were accepted.
  int settle(Run& r, int n);
  // Rolls both caches back to the settled tokens after position m; the MTP block re-evaluates
  // them from the verified hidden states.
  void roll_back(Run& r, int64_t m, int a);

  Model& model_;
  KVCache& cache_;
  std::unique_ptr<KVCache> mtp_cache_;
  Sampler sampler_;  // history (penalties) and filters; the draws use rng_ below
  std::mt19937_64 rng_;
  int n_draft_ = 0;
  SpeculativeStats stats_;
};

}  // namespace kexa
