#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::Eos: return "eos";
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::ContextFull: return "context_full";
    case StopReason::Callback: return "stopped";
    case StopReason::StopString: return "stop_string";
    case StopReason::Error: return "error";
  }
  return "?";
}

TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int k) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  const float log_z = max + static_cast<float>(std::log(sum));
  TokenLogprob out;
  out.token = token;
  out.logprob = logits[static_cast<size_t>(token)] - log_z;
  if (k > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    const size_t kk = std::min<size_t>(static_cast<size_t>(k), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kk), ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (size_t i = 0; i < kk; ++i) out.top.emplace_back(ids[i], logits[static_cast<size_t>(ids[i])] - log_z);
  }
  return out;
}

std::vector<int32_t> stop_ids(const GenerateOptions& options, std::span<const int64_t> model_eos) {
  std::vector<int32_t> stop = options.stop_ids;
  if (options.use_model_eos)
    for (int64_t id : model_eos)
      if (std::find(stop.begin(), stop.end(), id) == stop.end()) stop.push_back(static_cast<int32_t>(id));
  return stop;
}

void check_prompt(std::span<const int32_t> prompt, int64_t vocab, int64_t max_context) {
  if (prompt.empty()) fail("generate: the prompt is empty (it needs at least one token, e.g. BOS)");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      fail("generate: prompt token ", i, " has id ", prompt[i], ", outside the vocabulary [0, ", vocab, ")");
  if (static_cast<int64_t>(prompt.size()) > max_context)
    fail("generate: the prompt has ", prompt.size(), " tokens but the context holds only ", max_context,
         " positions");
}

NextToken::NextToken(Sampler& sampler, const GenerateOptions& options, std::span<const int64_t> model_eos,
                     std::span<const int32_t> prompt)
    : sampler_(sampler), options_(options), stop_(kexa::stop_ids(options, model_eos)) {
  for (const auto& [id, bias] : options.logit_bias)
    if (id < 0 || id >= sampler_.vocab_size())
      fail("logit_bias: token id ", id, " is outside the vocabulary [0, ", sampler_.vocab_size(), ")");
  sampler_.clear_history();
  for (int32_t t : prompt) sampler_.accept(t);
}

NextToken::Choice NextToken::choose(std::span<const float> raw) {
  TokenFilter* filter = options_.filter;
  Choice c;
  std::span<const float> logits = raw;
  if (!options_.logit_bias.empty()) {
    biased_.assign(raw.begin(), raw.end());
    for (const auto& [id, bias] : options_.logit_bias) biased_[static_cast<size_t>(id)] += bias;
    logits = biased_;
  }
  if (filter) filter->set_remaining(options_.max_tokens - generated_ - 1);
  c.token = sampler_.sample(logits);
  if (filter && !filter->allows(c.token)) {
    constexpr float kRemoved = -std::numeric_limits<float>::infinity();
    masked_.assign(logits.begin(), logits.end());
    masked_[static_cast<size_t>(c.token)] = kRemoved;
    c.token = -1;
    for (int tries = 0; tries < filter->redraws() && c.token < 0; ++tries) {
      const int32_t t = sampler_.sample(masked_);
      if (filter->allows(t)) c.token = t;
      else masked_[static_cast<size_t>(t)] = kRemoved;
    }
    if (c.token < 0) {
      filter->mask(masked_);
      if (std::none_of(masked_.begin(), masked_.end(), [&](float v) { return v != kRemoved; }))
        fail("generate: constrained decoding: no token can continue the output after ", generated_, " tokens");
      c.token = sampler_.sample(masked_);
    }
  }
  if (filter) filter->accept(c.token);
  sampler_.accept(c.token);
  ++generated_;
  c.is_stop = std::find(stop_.begin(), stop_.end(), c.token) != stop_.end();
  if (options_.top_logprobs >= 0) c.logprob = token_logprob(raw, c.token, options_.top_logprobs);
  return c;
}

std::optional<StopReason> NextToken::finish_after(const Choice& c, int64_t cache_positions,
                                                  int64_t max_context) const {
  if (c.is_stop) return StopReason::Eos;
  if (generated_ >= options_.max_tokens) return StopReason::MaxTokens;
  if (cache_positions >= max_context) return StopReason::ContextFull;
  return std::nullopt;
}

Generator::Generator(Model& model, KVCache& cache, const SamplingParams& params)
    : model_(model),
      cache_(cache),
      sampler_(params, model.config().vocab_size),
      vocab_(model.config().vocab_size) {
  cache_.clear();
}

void Generator::reset() {
  tokens_.clear();
  cache_.clear();
}

void Generator::evaluate(std::span<const int32_t> tokens, const GenerateOptions& options) {
  if (tokens.empty()) return;
  const int64_t before = cache_.n_past();
  const size_t V = static_cast<size_t>(vocab_);
  last_logits_.resize(V);
  if (options.on_logits) {
    // All rows are wanted: evaluate chunk by chunk so the logits buffer stays chunk x vocab.
    const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, cache_.chunk()));
    for (size_t begin = 0; begin < tokens.size(); begin += chunk) {
      const size_t n = std::min(chunk, tokens.size() - begin);
      chunk_logits_.resize(n * V);
      model_.forward(tokens.subspan(begin, n), cache_, chunk_logits_, /*all_logits=*/true);
      for (size_t r = 0; r < n; ++r)
        options.on_logits(std::span<const float>(chunk_logits_).subspan(r * V, V));
      std::copy_n(chunk_logits_.begin() + static_cast<ptrdiff_t>((n - 1) * V), V,
                  last_logits_.begin());
    }
  } else {
    model_.forward(tokens, cache_, last_logits_, /*all_logits=*/false);
  }
  if (cache_.n_past() != before + static_cast<int64_t>(tokens.size()))
    fail("generator: the cache holds ", cache_.n_past(), " positions after evaluating ",
         tokens.size(), " tokens from position ", before, " (Model::forward must advance it)");
}

size_t Generator::reusable_prefix(std::span<const int32_t> prompt) const {
  const int64_t n_cached = cache_.n_past();
  if (n_cached <= 0 || n_cached > static_cast<int64_t>(tokens_.size())) return 0;
  // At least one prompt token is always evaluated: its logits choose the first new token.
  const size_t limit = std::min(static_cast<size_t>(n_cached), prompt.size() - 1);
  size_t c = 0;
  while (c < limit && tokens_[c] == prompt[c]) ++c;
  if (c == static_cast<size_t>(n_cached) || c == 0) return c;
  // Rewinding to c: every layer must still hold the keys positions >= c will attend to. A ring
  // of S slots holds positions [n_cached - S, n_cached); a sliding layer of window W needs
  // [c - W + 1, c), a global layer [0, c).
  const std::vector<LayerPlan>& layers = model_.config().layers;
  for (size_t l = 0; l < layers.size(); ++l) {
    const int64_t oldest = std::max<int64_t>(0, n_cached - cache_.slots(static_cast<int64_t>(l)));
    const int64_t w = layers[l].window;
    const int64_t needed = w > 0 ? std::max<int64_t>(0, static_cast<int64_t>(c) - w + 1) : 0;
    if (oldest > needed) return 0;
  }
  return c;
}

GenerateResult Generator::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                   const TokenCallback& on_token) {
  if (!on_token) return generate(prompt, options, ChoiceCallback{});
  return generate(prompt, options, [&](const NextToken::Choice& c) { return on_token(c.token); });
}

GenerateResult Generator::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                   const ChoiceCallback& on_choice) {
  check_prompt(prompt, vocab_, cache_.max_context());

  const size_t start = reusable_prefix(prompt);
  if (start == 0) {
    cache_.clear();
  } else {
    // Rewind: positions >= start are overwritten by the evaluation below. KVCache has no
    // truncate(); a negative advance moves its end back, which is all a rewind needs.
    cache_.advance(static_cast<int64_t>(start) - cache_.n_past());
  }
  tokens_.assign(prompt.begin(), prompt.end());
  NextToken next(sampler_, options, model_.config().eos_token_ids, prompt);

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.prompt_evaluated = static_cast<int64_t>(prompt.size() - start);
  auto t0 = std::chrono::steady_clock::now();
  evaluate(prompt.subspan(start), options);
  result.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  if (options.max_tokens <= 0) return result;
  for (;;) {
    const NextToken::Choice c = next.choose(last_logits_);
    tokens_.push_back(c.token);
    result.tokens.push_back(c.token);
    if (c.logprob && options.on_logprob) options.on_logprob(*c.logprob);
    const bool keep_going = on_choice ? on_choice(c) : true;
    if (!c.is_stop && !keep_going) {
      result.reason = StopReason::Callback;
      break;
    }
    if (std::optional<StopReason> end = next.finish_after(c, cache_.n_past(), cache_.max_context())) {
      result.reason = *end;
      break;
    }
    const int32_t one[1] = {c.token};
    evaluate(one, options);
    ++result.decode_steps;
  }
  result.decode_seconds = seconds_since(t0);
  return result;
}

}  // namespace kexa
