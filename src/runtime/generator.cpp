#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
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
  }
  return "?";
}

Generator::Generator(Model& model, KVCache& cache, const SamplingParams& params)
    : model_(model),
      cache_(cache),
      sampler_(params, model.config().vocab_size),
      vocab_(model.config().vocab_size) {
  cache_.clear();
}

int32_t Generator::sample_allowed(TokenFilter* filter) {
  int32_t tok = sampler_.sample(last_logits_);
  if (!filter) return tok;
  if (!filter->allows(tok)) {
    masked_logits_ = last_logits_;
    filter->mask(masked_logits_);
    if (std::none_of(masked_logits_.begin(), masked_logits_.end(),
                     [](float v) { return v != -std::numeric_limits<float>::infinity(); }))
      fail("generate: constrained decoding: the token filter allows no token after ",
           tokens_.size(), " tokens");
    tok = sampler_.sample(masked_logits_);
  }
  filter->accept(tok);
  return tok;
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
  if (prompt.empty()) fail("generate: the prompt is empty (it needs at least one token, e.g. BOS)");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab_)
      fail("generate: prompt token ", i, " has id ", prompt[i], ", outside the vocabulary [0, ",
           vocab_, ")");
  if (static_cast<int64_t>(prompt.size()) > cache_.max_context())
    fail("generate: the prompt has ", prompt.size(), " tokens but the context holds only ",
         cache_.max_context(), " positions");

  std::vector<int32_t> stop = options.stop_ids;
  if (options.use_model_eos)
    for (int64_t id : model_.config().eos_token_ids) stop.push_back(static_cast<int32_t>(id));
  auto is_stop = [&](int32_t t) { return std::find(stop.begin(), stop.end(), t) != stop.end(); };

  const size_t start = reusable_prefix(prompt);
  if (start == 0) {
    cache_.clear();
  } else {
    // Rewind: positions >= start are overwritten by the evaluation below. KVCache has no
    // truncate(); a negative advance moves its end back, which is all a rewind needs.
    cache_.advance(static_cast<int64_t>(start) - cache_.n_past());
  }
  tokens_.assign(prompt.begin(), prompt.end());
  sampler_.clear_history();
  for (int32_t t : prompt) sampler_.accept(t);

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.prompt_evaluated = static_cast<int64_t>(prompt.size() - start);
  auto t0 = std::chrono::steady_clock::now();
  evaluate(prompt.subspan(start), options);
  result.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  if (options.max_tokens <= 0) return result;
  for (;;) {
    const int32_t tok = sample_allowed(options.filter);
    sampler_.accept(tok);
    tokens_.push_back(tok);
    result.tokens.push_back(tok);
    const bool keep_going = on_token ? on_token(tok) : true;
    if (is_stop(tok)) {
      result.reason = StopReason::Eos;
      break;
    }
    if (!keep_going) {
      result.reason = StopReason::Callback;
      break;
    }
    if (static_cast<int64_t>(result.tokens.size()) >= options.max_tokens) {
      result.reason = StopReason::MaxTokens;
      break;
    }
    if (cache_.n_past() >= cache_.max_context()) {
      result.reason = StopReason::ContextFull;
      break;
    }
    const int32_t one[1] = {tok};
    evaluate(one, options);
    ++result.decode_steps;
  }
  result.decode_seconds = seconds_since(t0);
  return result;
}

}  // namespace kexa
