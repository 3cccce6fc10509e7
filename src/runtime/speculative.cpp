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

// The buffers and progress of one generate() call.
struct SpeculativeGenerator::Run {
  Run(const ModelConfig& cfg, int n_draft, const GenerateOptions& options_, const TokenCallback& on_token_)
      : options(options_),
        on_token(on_token_),
        stop(stop_ids(options_, cfg.eos_token_ids)),
        V(static_cast<size_t>(cfg.vocab_size)),
        H(static_cast<size_t>(cfg.hidden_size)),
        draft_logits(static_cast<size_t>(n_draft) * V),
        h_draft(H),
        verify_logits(static_cast<size_t>(n_draft + 1) * V),
        verify_hidden(static_cast<size_t>(n_draft + 1) * H),
        q(static_cast<size_t>(n_draft)) {}

  const GenerateOptions& options;
  const TokenCallback& on_token;
  const std::vector<int32_t> stop;
  const size_t V, H;
  GenerateResult result;
  bool done = false;  // result.reason is final
  int32_t cur = -1;   // the chosen token the main cache has not evaluated yet
  std::vector<float> mtp_hidden;     // the MTP block's output hidden states of its last call
  std::vector<float> draft_logits;   // [n_draft][V]: row i drafts the i-th token after cur
  std::vector<float> h_draft;        // [H]: the MTP input hidden state of the next draft row
  std::vector<float> verify_logits;  // [1 + drafts][V]
  std::vector<float> verify_hidden;  // [1 + drafts][H]
  std::vector<TokenDist> q;          // each draft's distribution
  std::vector<int32_t> drafts, verify_in;
  std::vector<int32_t> out;          // the tokens a verify step settled (accepted drafts + one)

  std::span<const float> row(const std::vector<float>& rows, size_t i) const {
    return std::span<const float>(rows).subspan(i * V, V);
  }
};

GenerateResult SpeculativeGenerator::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                              const TokenCallback& on_token) {
  check_prompt(prompt, model_.config().vocab_size, cache_.max_context());
  if (options.filter != nullptr) fail("generate: constrained decoding is not supported with MTP speculative decoding");
  Run r(model_.config(), n_draft_, options, on_token);
  cache_.clear();
  mtp_cache_->clear();
  // Image rows: the main model reads them at their positions, the MTP block one row earlier.
  mtp_cache_->set_input_embeddings(cache_.shared_input_embeddings());
  sampler_.clear_history();
  for (int32_t t : prompt) sampler_.accept(t);
  stats_ = {};
  r.result.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.result.prompt_evaluated = static_cast<int64_t>(prompt.size());

  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> hidden = prefill(r, prompt);
  if (options.max_tokens <= 0) {
    r.result.prefill_seconds = seconds_since(t0);
    return r.result;
  }
  r.cur = draw(sampler_.candidates(r.row(r.verify_logits, 0)));
  start_drafting(r, prompt, hidden);
  r.result.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  if (emit(r, r.cur)) {
    while (step(r)) {
    }
  }
  r.result.decode_steps = stats_.steps;
  r.result.decode_seconds = seconds_since(t0);
  return r.result;
}

std::vector<float> SpeculativeGenerator::prefill(Run& r, std::span<const int32_t> prompt) {
  // The last logits row goes to verify_logits row 0 (all rows, chunk by chunk, to on_logits when
  // it wants them); the hidden state of every prompt position is returned for the MTP block.
  const size_t P = prompt.size(), V = r.V, H = r.H;
  std::vector<float> hidden(P * H);
  std::span<float> last = std::span<float>(r.verify_logits).first(V);
  if (r.options.on_logits) {
    const size_t chunk = static_cast<size_t>(cache_.chunk());
    std::vector<float> rows;
    for (size_t b = 0; b < P; b += chunk) {
      const size_t n = std::min(chunk, P - b);
      rows.resize(n * V);
      model_.forward_hidden(prompt.subspan(b, n), cache_, rows, true, std::span<float>(hidden).subspan(b * H, n * H));
      for (size_t i = 0; i < n; ++i) r.options.on_logits(r.row(rows, i));
      std::copy_n(rows.begin() + static_cast<ptrdiff_t>((n - 1) * V), V, last.begin());
    }
  } else {
    model_.forward_hidden(prompt, cache_, last, false, hidden);
  }
  return hidden;
}

void SpeculativeGenerator::start_drafting(Run& r, std::span<const int32_t> prompt, std::span<const float> hidden) {
  // MTP rows 0 .. P-1: (hidden_t, token_{t+1}); the last one drafts position P + 1.
  std::vector<int32_t> mtp_tokens(prompt.begin() + 1, prompt.end());
  mtp_tokens.push_back(r.cur);
  r.mtp_hidden.resize(prompt.size() * r.H);
  model_.mtp_forward(mtp_tokens, hidden, *mtp_cache_, std::span<float>(r.draft_logits).first(r.V), false,
                     r.mtp_hidden);
  std::copy(r.mtp_hidden.end() - static_cast<ptrdiff_t>(r.H), r.mtp_hidden.end(), r.h_draft.begin());
}

bool SpeculativeGenerator::emit(Run& r, int32_t tok) {
  sampler_.accept(tok);
  r.result.tokens.push_back(tok);
  const bool keep_going = r.on_token ? r.on_token(tok) : true;
  if (std::find(r.stop.begin(), r.stop.end(), tok) != r.stop.end()) {
    r.result.reason = StopReason::Eos;
  } else if (!keep_going) {
    r.result.reason = StopReason::Callback;
  } else if (static_cast<int64_t>(r.result.tokens.size()) >= r.options.max_tokens) {
    r.result.reason = StopReason::MaxTokens;
  } else {
    return true;
  }
  r.done = true;
  return false;
}

bool SpeculativeGenerator::step(Run& r) {
  const int64_t m = cache_.n_past();
  if (m >= cache_.max_context()) {
    r.result.reason = StopReason::ContextFull;
    return false;
  }
  // Drafts that could still be used: the context must hold them and the step's bonus token must
  // not exceed max_tokens. Rolling back more than a chunk could lose sliding-window keys
  // (KVCache::truncate).
  const int64_t left = r.options.max_tokens - static_cast<int64_t>(r.result.tokens.size());
  const int64_t fit = std::min({left - 1, cache_.max_context() - m - 1, cache_.chunk()});
  const int n = static_cast<int>(std::clamp<int64_t>(fit, 0, n_draft_));
  draft(r, n);
  verify(r);
  stats_.drafted += n;
  const int a = settle(r, n);
  stats_.accepted += a;
  // Emit row j's token after row j's logits, exactly as the plain generator would.
  for (size_t j = 0; j < r.out.size() && !r.done; ++j) {
    if (r.options.on_logits) r.options.on_logits(r.row(r.verify_logits, j));
    emit(r, r.out[j]);
  }
  if (r.done) return false;
  roll_back(r, m, a);
  return true;
}

void SpeculativeGenerator::draft(Run& r, int n) {
  // The MTP block chains its own normalised output as the next row's hidden state.
  r.drafts.clear();
  Sampler hist = sampler_;  // history + drafts, for the penalties of later draft rows
  for (int i = 0; i < n; ++i) {
    const size_t row = static_cast<size_t>(i);
    if (i > 0) {
      const int32_t prev = r.drafts.back();
      const auto td = std::chrono::steady_clock::now();
      model_.mtp_forward(std::span<const int32_t>(&prev, 1), r.h_draft, *mtp_cache_,
                         std::span<float>(r.draft_logits).subspan(row * r.V, r.V), false, r.h_draft);
      stats_.draft_seconds += seconds_since(td);
    }
    r.q[row] = hist.candidates(r.row(r.draft_logits, row));
    r.drafts.push_back(draw(r.q[row]));
    hist.accept(r.drafts.back());
  }
}

void SpeculativeGenerator::verify(Run& r) {
  // The current token and all drafts in one forward.
  r.verify_in.assign(1, r.cur);
  r.verify_in.insert(r.verify_in.end(), r.drafts.begin(), r.drafts.end());
  const size_t rows = r.verify_in.size();
  const auto tv = std::chrono::steady_clock::now();
  // Every verified row must equal what plain decoding computes for it, bit for bit.
  model_.set_exact_rows(true);
  try {
    model_.forward_hidden(r.verify_in, cache_, std::span<float>(r.verify_logits).first(rows * r.V), true,
                          std::span<float>(r.verify_hidden).first(rows * r.H));
  } catch (...) {
    model_.set_exact_rows(false);
    throw;
  }
  model_.set_exact_rows(false);
  stats_.verify_seconds += seconds_since(tv);
  ++stats_.steps;
}

int SpeculativeGenerator::settle(Run& r, int n) {
  // Speculative sampling row by row: r.out gets the accepted drafts, then the replacement of the
  // first rejected one or, when all n are accepted, the bonus token of the last row.
  r.out.clear();
  Sampler hist = sampler_;
  int a = 0;
  for (; a <= n; ++a) {
    const TokenDist p = hist.candidates(r.row(r.verify_logits, static_cast<size_t>(a)));
    if (a == n) {
      r.out.push_back(draw(p));
      break;
    }
    const double u1 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    const SpeculativeOutcome o = speculative_accept(p, r.q[static_cast<size_t>(a)], r.drafts[static_cast<size_t>(a)], u1, u2);
    r.out.push_back(o.token);
    if (!o.accepted) break;
    hist.accept(o.token);
  }
  return a;
}

void SpeculativeGenerator::roll_back(Run& r, int64_t m, int a) {
  // Main positions m .. m+a hold cur and the accepted drafts; the MTP rows written while drafting
  // (m .. m+n-2) were built on drafted hidden states and are redone from the verified ones, which
  // also drafts the next step's first token.
  cache_.truncate(m + a + 1);
  mtp_cache_->truncate(m);
  r.mtp_hidden.resize(static_cast<size_t>(a + 1) * r.H);
  const auto td = std::chrono::steady_clock::now();
  model_.mtp_forward(r.out, std::span<const float>(r.verify_hidden).first(static_cast<size_t>(a + 1) * r.H),
                     *mtp_cache_, std::span<float>(r.draft_logits).first(r.V), false, r.mtp_hidden);
  stats_.draft_seconds += seconds_since(td);
  std::copy(r.mtp_hidden.end() - static_cast<ptrdiff_t>(r.H), r.mtp_hidden.end(), r.h_draft.begin());
  r.cur = r.out.back();
}

}  // namespace kexa
