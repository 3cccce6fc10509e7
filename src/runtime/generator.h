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
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "runtime/sampler.h"

namespace kexa {

class Model;
class KVCache;

// Constrained decoding (grammars, JSON schemas, forced tool calls, required citations): which
// tokens may come next. The one interface every constraint implements, for Generator and the
// Scheduler alike (both choose tokens through NextToken below). The sampled token is checked with
// allows(), so an unconstrained-looking model pays one check per token; a refused token is
// removed and the sampler draws again up to redraws() times, then mask() removes everything
// refused at once.
class TokenFilter {
 public:
  virtual ~TokenFilter() = default;
  // Called before each choice with the number of tokens that may still follow the one being
  // chosen (a constraint refuses tokens after which its output could not be completed in time).
  virtual void set_remaining(int64_t tokens_after) { (void)tokens_after; }
  virtual bool allows(int32_t token) = 0;
  // Redraws after a refusal before mask(): worth it when mask() is dear (it asks allows() of every
  // vocabulary entry), not when mask() is cheap (a vocabulary trie prunes whole branches).
  virtual int redraws() const { return 0; }
  // Sets the logit of every token that may not come next to -infinity.
  virtual void mask(std::span<float> logits) = 0;
  // The token was chosen (it is part of the output now).
  virtual void accept(int32_t token) = 0;
};

// How a generation ended: the one finish reason of the runtime (Generator, SpeculativeGenerator,
// Scheduler jobs and chat turns).
enum class StopReason {
  Eos,          // sampled one of the stop ids (it is the last entry of GenerateResult::tokens)
  MaxTokens,    // produced max_tokens tokens
  ContextFull,  // the next token would not fit the KV cache's max_context
  Callback,     // the caller stopped it (token callback returned false, request cancelled)
  StopString,   // the text reached one of the caller's stop strings (chat turns)
  Error,        // generation failed (the message travels beside it)
};
const char* stop_reason_name(StopReason reason);

// The log-probability of a chosen token under the model (raw logits, before any filter), and the
// best alternatives when asked for.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};
// log-softmax entry for `token` and the k most likely tokens of `logits`.
TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int k);

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
  // >= 0: on_logprob gets each generated token's logprob and this many alternatives (<= 20).
  int top_logprobs = -1;
  std::function<void(const TokenLogprob&)> on_logprob;
  // OpenAI's logit_bias: (token id, bias) pairs added to the logits before every choice, greedy
  // and sampled alike (the filter's redraws and mask see the biased row too); -100 all but bans
  // a token, +100 all but forces it. Log-probabilities stay those of the raw logits. Ids outside
  // the vocabulary make NextToken throw kexa::Error; a repeated id adds up.
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// The ids that end a generation under `options`: options.stop_ids, then (when
// options.use_model_eos) those of the model config's EOS ids not among them already.
std::vector<int32_t> stop_ids(const GenerateOptions& options, std::span<const int64_t> model_eos);
// Throws kexa::Error unless `prompt` is not empty, holds only ids in [0, vocab) and fits in
// max_context positions (the checks of every generate()).
void check_prompt(std::span<const int32_t> prompt, int64_t vocab, int64_t max_context);

// The choice of one sequence's next token, shared by Generator (one sequence) and Scheduler
// (many): sampling under the optional filter, the stop ids, the token budget, the context bound
// and the log-probabilities. One object per generation; the sampler (whose random stream may go
// on across generations) and the options belong to the caller and must outlive it.
class NextToken {
 public:
  // Records the prompt in the sampler's history (for the penalties). `model_eos`: the model
  // config's EOS ids, added to options.stop_ids when options.use_model_eos. Throws kexa::Error
  // when options.logit_bias names an id outside the sampler's vocabulary.
  NextToken(Sampler& sampler, const GenerateOptions& options, std::span<const int64_t> model_eos,
            std::span<const int32_t> prompt);

  struct Choice {
    int32_t token = -1;
    bool is_stop = false;  // one of the stop ids: generation ends with StopReason::Eos
    std::optional<TokenLogprob> logprob;
  };
  // Chooses the token after `logits` and records it. Throws kexa::Error when the filter allows
  // no token.
  Choice choose(std::span<const float> logits);
  // Why generation ends after the choice just made, given the cache's positions (the chosen
  // token is not in the cache yet); nullopt: continue. Order: Eos, MaxTokens, ContextFull.
  std::optional<StopReason> finish_after(const Choice& c, int64_t cache_positions, int64_t max_context) const;
  int64_t generated() const { return generated_; }
  const std::vector<int32_t>& stop_ids() const { return stop_; }

 private:
  Sampler& sampler_;
  const GenerateOptions& options_;
  std::vector<int32_t> stop_;
  int64_t generated_ = 0;
  std::vector<float> masked_;
  std::vector<float> biased_;  // the logits plus options.logit_bias (only when there is one)
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
  // The same with the whole choice: whether the id is a stop id, and its log-probability when
  // options.top_logprobs asks for it. A stop id ends generation (Eos) whatever it returns.
  using ChoiceCallback = std::function<bool(const NextToken::Choice& choice)>;

  // Model and cache must outlive the generator; the cache must have been made for this model.
  Generator(Model& model, KVCache& cache, const SamplingParams& params);

  // Continues `prompt` (the whole sequence from position 0; must not be empty). Throws kexa::Error
  // when the prompt does not fit the cache or holds an id outside the vocabulary.
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                          const TokenCallback& on_token = {});
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                          const ChoiceCallback& on_choice);

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

  Model& model_;
  KVCache& cache_;
  Sampler sampler_;
  int64_t vocab_ = 0;
  std::vector<int32_t> tokens_;  // invariant: tokens_[0 .. cache_.n_past()) are in the cache
  std::vector<float> last_logits_;
  std::vector<float> chunk_logits_;
};

}  // namespace kexa
