#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double dist_prob(const TokenDist& d, int32_t token) {
  for (const auto& [id, p] : d)
    if (id == token) return p;
  return 0.0;
}

int32_t dist_draw(const TokenDist& d, double u) {
  if (d.empty()) fail("speculative: drawing from an empty distribution");
  double acc = 0;
  for (const auto& [id, p] : d) {
    acc += p;
    if (u < acc) return id;
  }
  // u within rounding of 1: the last token with nonzero probability.
  for (auto it = d.rbegin(); it != d.rend(); ++it)
    if (it->second > 0) return it->first;
  return d.back().first;
}

SpeculativeOutcome speculative_accept(const TokenDist& p, const TokenDist& q, int32_t draft, double u_accept,
                                      double u_resample) {
  const double pd = dist_prob(p, draft), qd = dist_prob(q, draft);
  // q(draft) > 0 because the draft was drawn from q; the guard only protects against misuse.
  if (qd > 0 && u_accept * qd < pd) return {true, draft};
  if (qd <= 0 && pd > 0) return {true, draft};

  // Residual max(0, p - q), renormalised. Only tokens with p > 0 can have mass.
  std::unordered_map<int32_t, double> qmap;
  qmap.reserve(q.size());
  for (const auto& [id, pr] : q) qmap[id] = pr;
  TokenDist residual;
  residual.reserve(p.size());
  double total = 0;
  for (const auto& [id, pr] : p) {
    auto it = qmap.find(id);
    const double r = pr - (it == qmap.end() ? 0.0 : it->second);
    if (r > 0) {
      residual.emplace_back(id, r);
      total += r;
    }
  }
  // p == q up to rounding: rejection then has probability ~0; fall back to p itself.
  if (!(total > 0)) return {false, dist_draw(p, u_resample)};
  for (auto& e : residual) e.second /= total;
  return {false, dist_draw(residual, u_resample)};
}

SpeculativeGenerator::SpeculativeGenerator(Model& model, KVCache& cache, const SamplingParams& params, int n_draft)
    : model_(model),
      cache_(cache),
      sampler_(params, model.config().vocab_size),
      rng_(params.seed),
      n_draft_(n_draft) {
  if (!model.has_mtp()) fail(model.path(), ": speculative decoding needs an MTP block, and this model has none");
  if (n_draft < 1) fail("speculative decoding: the number of draft tokens must be >= 1, got ", n_draft);
  mtp_cache_ = model.make_mtp_cache(cache.max_context(), cache.chunk());
}

SpeculativeGenerator::~SpeculativeGenerator() = default;

int32_t SpeculativeGenerator::draw(const TokenDist& d) {
  if (d.size() == 1) return d[0].first;  // greedy: no random number consumed
  return dist_draw(d, static_cast<double>(rng_() >> 11) * 0x1.0p-53);
}

GenerateResult SpeculativeGenerator::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                              const TokenCallback& on_token) {
  const ModelConfig& cfg = model_.config();
  const int64_t vocab = cfg.vocab_size;
  const size_t V = static_cast<size_t>(vocab), H = static_cast<size_t>(cfg.hidden_size);
  if (prompt.empty()) fail("generate: the prompt is empty (it needs at least one token, e.g. BOS)");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      fail("generate: prompt token ", i, " has id ", prompt[i], ", outside the vocabulary [0, ", vocab, ")");
  if (static_cast<int64_t>(prompt.size()) > cache_.max_context())
    fail("generate: the prompt has ", prompt.size(), " tokens but the context holds only ", cache_.max_context(),
         " positions");
  if (options.filter != nullptr) fail("generate: constrained decoding is not supported with MTP speculative decoding");

  std::vector<int32_t> stop = options.stop_ids;
  if (options.use_model_eos)
    for (int64_t id : cfg.eos_token_ids) stop.push_back(static_cast<int32_t>(id));
  auto is_stop = [&](int32_t t) { return std::find(stop.begin(), stop.end(), t) != stop.end(); };

  cache_.clear();
  mtp_cache_->clear();
  sampler_.clear_history();
  for (int32_t t : prompt) sampler_.accept(t);
  stats_ = {};

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.prompt_evaluated = static_cast<int64_t>(prompt.size());
  const size_t P = prompt.size();

  // Prefill: last logits row (all rows chunk by chunk when on_logits wants them) and the hidden
  // state of every prompt position, which the MTP block consumes.
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> hidden(P * H), logits(V);
  if (options.on_logits) {
    const size_t chunk = static_cast<size_t>(cache_.chunk());
    std::vector<float> rows;
    for (size_t b = 0; b < P; b += chunk) {
      const size_t n = std::min(chunk, P - b);
      rows.resize(n * V);
      model_.forward_hidden(prompt.subspan(b, n), cache_, rows, true, std::span<float>(hidden).subspan(b * H, n * H));
      for (size_t r = 0; r < n; ++r) options.on_logits(std::span<const float>(rows).subspan(r * V, V));
      std::copy_n(rows.begin() + static_cast<ptrdiff_t>((n - 1) * V), V, logits.begin());
    }
  } else {
    model_.forward_hidden(prompt, cache_, logits, false, hidden);
  }

  // Emits one token; false when generation must end (result.reason set).
  bool done = false;
  auto emit = [&](int32_t tok) {
    sampler_.accept(tok);
    result.tokens.push_back(tok);
    const bool keep_going = on_token ? on_token(tok) : true;
    if (is_stop(tok)) {
      result.reason = StopReason::Eos;
    } else if (!keep_going) {
      result.reason = StopReason::Callback;
    } else if (static_cast<int64_t>(result.tokens.size()) >= options.max_tokens) {
      result.reason = StopReason::MaxTokens;
    } else {
      return true;
    }
    done = true;
    return false;
  };

  if (options.max_tokens <= 0) {
    result.prefill_seconds = seconds_since(t0);
    return result;
  }
  int32_t cur = draw(sampler_.candidates(logits));

  // MTP rows 0 .. P-1: (hidden_t, token_{t+1}); the last one drafts position P + 1.
  const int N = n_draft_;
  std::vector<int32_t> mtp_tokens(prompt.begin() + 1, prompt.end());
  mtp_tokens.push_back(cur);
  std::vector<float> mtp_hidden(P * H);
  std::vector<float> draft_logits(static_cast<size_t>(N) * V);
  model_.mtp_forward(mtp_tokens, hidden, *mtp_cache_, std::span<float>(draft_logits).first(V), false, mtp_hidden);
  std::vector<float> h_draft(mtp_hidden.end() - static_cast<ptrdiff_t>(H), mtp_hidden.end());
  result.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  if (!emit(cur)) {
    result.decode_seconds = seconds_since(t0);
    return result;
  }

  std::vector<int32_t> verify_in;
  std::vector<float> verify_logits(static_cast<size_t>(N + 1) * V), verify_hidden(static_cast<size_t>(N + 1) * H);
  std::vector<TokenDist> q(static_cast<size_t>(N));
  std::vector<int32_t> drafts;
  std::vector<int32_t> out;
  while (!done) {
    const int64_t m = cache_.n_past();
    if (m >= cache_.max_context()) {
      result.reason = StopReason::ContextFull;
      break;
    }
    // Drafts that could still be used: the context must hold them and the step's bonus token
    // must not exceed max_tokens.
    const int64_t left = options.max_tokens - static_cast<int64_t>(result.tokens.size());
    // Rolling back more than a chunk could lose sliding-window keys (KVCache::truncate).
    const int64_t fit = std::min({left - 1, cache_.max_context() - m - 1, cache_.chunk()});
    const int n = static_cast<int>(std::clamp<int64_t>(fit, 0, N));

    // Draft with the MTP block, chaining its own normalised output as the next hidden state.
    drafts.clear();
    Sampler hist = sampler_;  // history + drafts, for the penalties of later draft rows
    for (int i = 0; i < n; ++i) {
      if (i > 0) {
        const int32_t prev = drafts.back();
        const auto td = std::chrono::steady_clock::now();
        model_.mtp_forward(std::span<const int32_t>(&prev, 1), h_draft, *mtp_cache_,
                           std::span<float>(draft_logits).subspan(static_cast<size_t>(i) * V, V), false, h_draft);
        stats_.draft_seconds += seconds_since(td);
      }
      q[static_cast<size_t>(i)] = hist.candidates(std::span<const float>(draft_logits).subspan(static_cast<size_t>(i) * V, V));
      drafts.push_back(draw(q[static_cast<size_t>(i)]));
      hist.accept(drafts.back());
    }

    // Verify the current token and all drafts in one forward.
    verify_in.assign(1, cur);
    verify_in.insert(verify_in.end(), drafts.begin(), drafts.end());
    const size_t rows = verify_in.size();
    const auto tv = std::chrono::steady_clock::now();
    // Every verified row must equal what plain decoding computes for it, bit for bit.
    model_.set_exact_rows(true);
    try {
      model_.forward_hidden(verify_in, cache_, std::span<float>(verify_logits).first(rows * V), true,
                            std::span<float>(verify_hidden).first(rows * H));
    } catch (...) {
      model_.set_exact_rows(false);
      throw;
    }
    model_.set_exact_rows(false);
    stats_.verify_seconds += seconds_since(tv);
    ++stats_.steps;
    stats_.drafted += n;

    out.clear();
    hist = sampler_;
    int a = 0;
    for (; a <= n; ++a) {
      const TokenDist p = hist.candidates(std::span<const float>(verify_logits).subspan(static_cast<size_t>(a) * V, V));
      if (a == n) {  // every draft accepted: the bonus token comes from the last row
        out.push_back(draw(p));
        break;
      }
      const double u1 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
      const double u2 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
      const SpeculativeOutcome o = speculative_accept(p, q[static_cast<size_t>(a)], drafts[static_cast<size_t>(a)], u1, u2);
      out.push_back(o.token);
      if (!o.accepted) break;
      hist.accept(o.token);
    }
    stats_.accepted += a;

    // Emit row j's token after row j's logits, exactly as the plain generator would.
    for (size_t j = 0; j < out.size() && !done; ++j) {
      if (options.on_logits) options.on_logits(std::span<const float>(verify_logits).subspan(j * V, V));
      emit(out[j]);
    }
    if (done) break;

    // Roll back: main positions m .. m+a hold cur and the accepted drafts; the MTP rows written
    // while drafting (m .. m+n-2) were built on drafted hidden states and are redone from the
    // verified ones, which also drafts the next step's first token.
    cache_.truncate(m + a + 1);
    mtp_cache_->truncate(m);
    mtp_hidden.resize(static_cast<size_t>(a + 1) * H);
    const auto td = std::chrono::steady_clock::now();
    model_.mtp_forward(out, std::span<const float>(verify_hidden).first(static_cast<size_t>(a + 1) * H), *mtp_cache_,
                       std::span<float>(draft_logits).first(V), false, mtp_hidden);
    stats_.draft_seconds += seconds_since(td);
    std::copy(mtp_hidden.end() - static_cast<ptrdiff_t>(H), mtp_hidden.end(), h_draft.begin());
    cur = out.back();
  }
  result.decode_steps = stats_.steps;
  result.decode_seconds = seconds_since(t0);
  return result;
}

}  // namespace kexa
