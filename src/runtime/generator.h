// The generation loop for one sequence: prompt -> chunked prefill -> decode loop with a sampler.
//
// Typical use (kexa run, kexa chat, the server):
//
//   auto model = Model::load(path, {.n_threads = 2});
//   KVCache cache(model->config(), /*max_context=*/4096);
//   Generator gen(*model, cache, SamplingParams{.temperature = 0.7, .seed = 42});
//   GenerateOptions opt;  opt.max_tokens = 256;         // stops on the model's EOS ids too
//   GenerateResult r = gen.generate(prompt_ids, opt, [&](int32_t id) {
//     print(decoder.push(id));  return true;            // false stops generation
//   });
//
// Multi-turn: pass the WHOLE conversation's ids to every generate() call. The generator reuses
// the cached positions of the longest common prefix of the new prompt and the sequence it already
// evaluated, and evaluates only the rest: the usual chat case (new prompt = old prompt + reply +
// next user turn) costs just the new turn, and a prompt that diverges (edited history, a reply
// re-tokenized differently or with its reasoning removed) rewinds the cache to the divergence.
// Sliding-window layers keep only a ring of recent keys, so a rewind further back than the ring
// still covers (about one prefill chunk) clears the cache and evaluates everything.
//
// Not thread-safe, and Model::forward is not reentrant: one generate() at a time per Model.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/sampler.h"

namespace kexa {

class Model;
class KVCache;

// Constrained decoding (grammars, schemas): which tokens may come next. The generator samples as
// usual and asks allows(); only when the sampled token is refused does it call mask() and sample
// again from what is left, so an unconstrained-looking model pays one check per token.
class TokenFilter {
 public:
  virtual ~TokenFilter() = default;
  virtual bool allows(int32_t token) = 0;
  // Sets the logit of every token that may not come next to -infinity.
  virtual void mask(std::span<float> logits) = 0;
  // The token was chosen (it is part of the output now).
  virtual void accept(int32_t token) = 0;
};

enum class StopReason {
  Eos,          // sampled one of the stop ids (it is the last entry of GenerateResult::tokens)
  MaxTokens,    // produced max_tokens tokens
  ContextFull,  // the next token would not fit the KV cache's max_context
  Callback,     // the token callback returned false
};
const char* stop_reason_name(StopReason reason);

struct GenerateOptions {
  int64_t max_tokens = 128;
  // Tokens that end generation: these plus, when use_model_eos, the model config's eos ids.
  std::vector<int32_t> stop_ids;
  bool use_model_eos = true;  // false (--ignore-eos): only stop_ids end generation
  // Called with the logits row of every evaluated position, in order: prompt positions first
  // (only the positions actually evaluated, i.e. not those reused from the cache), then one row
  // per decode step. The last sampled token is never evaluated, so a run evaluates
  // prompt + generated - 1 positions. Setting it makes prefill compute every row (slower).
  std::function<void(std::span<const float> row)> on_logits;
  // Constrained decoding: every generated token (stop ids included) must pass the filter; when
  // the filter allows nothing, generate() throws kexa::Error. Not owned; null = unconstrained.
  TokenFilter* filter = nullptr;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, including the stop id when reason == Eos
  StopReason reason = StopReason::MaxTokens;
  int64_t prompt_tokens = 0;     // size of the prompt passed in
  int64_t prompt_evaluated = 0;  // prompt tokens actually evaluated (the rest came from the cache)
  double prefill_seconds = 0;    // prompt evaluation
  double decode_seconds = 0;     // sampling + one forward per generated token after the first
  int64_t decode_steps = 0;      // forward passes in the decode loop
};

class Generator {
 public:
  // The token callback gets every generated id as soon as it is sampled (the stop id too);
  // returning false ends generation (reason Callback).
  using TokenCallback = std::function<bool(int32_t token)>;

  // Model and cache must outlive the generator; the cache must have been made for this model.
  Generator(Model& model, KVCache& cache, const SamplingParams& params);

  // Continues `prompt` (the whole sequence from position 0; must not be empty). Throws kexa::Error
  // when the prompt does not fit the cache or holds an id outside the vocabulary.
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                          const TokenCallback& on_token = {});

  // Every token of the current sequence: prompt + generated (the last generated one is not in
  // the cache yet; the next generate() evaluates it when the new prompt continues this).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Forgets the sequence and clears the cache. The random stream continues.
  void reset();

  Sampler& sampler() { return sampler_; }
  Model& model() { return model_; }
  KVCache& cache() { return cache_; }

 private:
  // Cached positions of `prompt` that can be kept (the cache is rewound to that length).
  size_t reusable_prefix(std::span<const int32_t> prompt) const;
  // Evaluates tokens at the cache's current end; leaves the last row in last_logits_.
  void evaluate(std::span<const int32_t> tokens, const GenerateOptions& options);
  // Samples from last_logits_, restricted to what `filter` allows (when set), and tells it.
  int32_t sample_allowed(TokenFilter* filter);

  Model& model_;
  KVCache& cache_;
  Sampler sampler_;
  int64_t vocab_ = 0;
  std::vector<int32_t> tokens_;  // invariant: tokens_[0 .. cache_.n_past()) are in the cache
  std::vector<float> last_logits_;
  std::vector<float> chunk_logits_;
  std::vector<float> masked_logits_;  // last_logits_ with what the token filter refused removed
};

}  // namespace kexa
