// Picks the next token from a row of logits: greedy, or seeded random sampling with temperature,
// top-k, top-p and min-p, after repetition / presence / frequency penalties.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace kexa {

// Defaults are all "off": temperature 0 means greedy (argmax, ties to the lowest id, as llama.cpp).
struct SamplingParams {
  double temperature = 0.0;  // <= 0: greedy
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = off
  double top_p = 1.0;        // keep the smallest prefix whose probability reaches p; 1 = off
  double min_p = 0.0;        // drop tokens with p < min_p * p_max; 0 = off
  // llama.cpp / CTRL semantics: a seen token's logit is divided by the penalty when positive and
  // multiplied by it when negative. 1 = off.
  double repeat_penalty = 1.0;
  double presence_penalty = 0.0;   // subtracted once from each seen token's logit (OpenAI)
  double frequency_penalty = 0.0;  // subtracted once per occurrence (OpenAI)
  int64_t penalty_last_n = 64;     // history window the penalties look at; -1 = all, 0 = none
  uint64_t seed = 0;

  // Throws kexa::Error naming the offending field (negative temperature, top_p outside (0,1], ...).
  void validate() const;
  bool greedy() const { return temperature <= 0.0; }
  bool operator==(const SamplingParams&) const = default;
};

// Order of operations (the Hugging Face / vLLM order): penalties, temperature, top-k, top-p, min-p,
// then one draw from the renormalised distribution. Same params, same seed and same sequence of
// (logits, accepted tokens) give the same tokens on every platform: the generator is mt19937_64
// (its output is fixed by the standard) and the draw does not use std::*_distribution.
class Sampler {
 public:
  Sampler(const SamplingParams& params, int64_t vocab_size);

  // Chooses a token from `logits` (size vocab_size); does not record it (see accept).
  int32_t sample(std::span<const float> logits);
  // Records a token of the sequence (prompt or generated) for the penalties.
  void accept(int32_t token);
  // Forgets the recorded tokens; the random stream continues (use reseed to restart it).
  void clear_history() { history_.clear(); }
  void reseed(uint64_t seed) { rng_.seed(seed); }

  const SamplingParams& params() const { return params_; }
  int64_t vocab_size() const { return vocab_size_; }

  // Exposed for tests: the logits after penalties (and nothing else) for the current history.
  std::vector<float> penalized(std::span<const float> logits) const;
  // Exposed for tests: the candidates (id, probability) the final draw chooses from, in draw order
  // (most likely first when top-k or top-p sorted them, else by id), after every filter; the
  // probabilities sum to 1. Greedy yields the single argmax.
  std::vector<std::pair<int32_t, double>> candidates(std::span<const float> logits) const;

 private:
  void apply_penalties(std::vector<float>& logits) const;
  std::vector<std::pair<int32_t, double>> filter(std::vector<float>& logits) const;
  // min-p, then renormalisation, of filter()'s candidates.
  void normalize(std::vector<std::pair<int32_t, double>>& out) const;
  // Whether neither top-k nor top-p removes any of V tokens.
  bool keeps_all(size_t V) const;
  // sample() when keeps_all: filter() and the draw in one pass, without the candidate list.
  int32_t draw_all(std::span<const float> logits);
  double uniform();  // [0, 1)

  SamplingParams params_;
  int64_t vocab_size_;
  std::vector<int32_t> history_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;
  std::vector<double> probs_;
};

// The lowest id among the largest logits.
int32_t argmax(std::span<const float> logits);

}  // namespace kexa
