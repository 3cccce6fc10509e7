#include "server/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa::server {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

JobHandle::Event JobHandle::wait(int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
               [&] { return finished_ || !pending_.tokens.empty(); });
  Event out = std::move(pending_);
  pending_ = Event{};
  if (finished_) {  // the end stays visible to later waits
    pending_.finish = out.finish;
    pending_.error = out.error;
  }
  return out;
}

double JobHandle::queued_seconds() const {
  return first_token_at_ > 0 ? first_token_at_ - submitted_at_ : 0.0;
}

struct Scheduler::Slot {
  Slot(const ModelConfig& config, int64_t context)
      : cache(config, context, /*chunk=*/512) {}
  KVCache cache;
  std::optional<Sampler> sampler;
  Job job;
  std::shared_ptr<JobHandle> handle;
  size_t prompt_done = 0;   // prompt tokens already in the cache
  int32_t pending = -1;     // sampled token not yet evaluated
  int64_t generated = 0;
  std::vector<float> logits;
  bool busy = false;
};

Scheduler::Scheduler(Model& model, int n_slots, int64_t context, int queue_limit,
                     int64_t prefill_chunk)
    : model_(model), context_(context), queue_limit_(queue_limit), prefill_chunk_(prefill_chunk) {
  if (n_slots < 1) fail("--parallel must be at least 1");
  for (int i = 0; i < n_slots; ++i) {
    slots_.push_back(std::make_unique<Slot>(model.config(), context));
    stats_.kv_bytes_total += static_cast<int64_t>(slots_.back()->cache.bytes());
  }
  stats_.slots = n_slots;
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<JobHandle> Scheduler::submit(Job job) {
  if (job.prompt.empty()) fail("the prompt is empty");
  if (static_cast<int64_t>(job.prompt.size()) >= context_) {
    fail("the prompt has ", job.prompt.size(), " tokens but the context is ", context_,
         " tokens (server --ctx)");
  }
  int64_t vocab = model_.config().vocab_size;
  for (int32_t id : job.prompt) {
    if (id < 0 || id >= vocab) fail("token id ", id, " is outside the vocabulary (", vocab, ")");
  }
  auto handle = std::make_shared<JobHandle>();
  handle->prompt_tokens_ = static_cast<int64_t>(job.prompt.size());
  handle->submitted_at_ = now_seconds();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (static_cast<int>(queue_.size()) >= queue_limit_) return nullptr;
    queue_.emplace_back(std::move(job), handle);
  }
  cv_.notify_all();
  return handle;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

namespace {

// log-softmax entry for `token` and the k best alternatives, from raw logits.
TokenLogprob logprob_of(std::span<const float> logits, int32_t token, int k) {
  float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  float log_z = max + static_cast<float>(std::log(sum));
  TokenLogprob out;
  out.token = token;
  out.logprob = logits[static_cast<size_t>(token)] - log_z;
  if (k > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    size_t kk = std::min<size_t>(static_cast<size_t>(k), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kk), ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (size_t i = 0; i < kk; ++i) out.top.emplace_back(ids[i], logits[static_cast<size_t>(ids[i])] - log_z);
  }
  return out;
}

}  // namespace

void Scheduler::loop() {
  std::vector<Slot*> active;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        bool any_busy = std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->busy; });
        return stopping_ || any_busy || !queue_.empty();
      });
      if (stopping_) {
        for (auto& s : slots_) {
          if (s->busy) {
            std::lock_guard<std::mutex> hl(s->handle->mu_);
            s->handle->finished_ = true;
            s->handle->pending_.finish = FinishReason::Cancelled;
            s->handle->cv_.notify_all();
          }
        }
        return;
      }
      // Admit waiting requests into free slots (between steps, never during one).
      for (auto& s : slots_) {
        if (s->busy || queue_.empty()) continue;
        auto [job, handle] = std::move(queue_.front());
        queue_.pop_front();
        if (handle->cancelled()) continue;
        s->job = std::move(job);
        s->handle = std::move(handle);
        s->sampler.emplace(s->job.sampling, model_.config().vocab_size);
        for (int32_t t : s->job.prompt) s->sampler->accept(t);
        s->cache.clear();
        s->prompt_done = 0;
        s->pending = -1;
        s->generated = 0;
        s->busy = true;
        stats_.tokens_prompt += static_cast<int64_t>(s->job.prompt.size());
      }
      active.clear();
      for (auto& s : slots_) {
        if (s->busy) active.push_back(s.get());
      }
      stats_.active = static_cast<int64_t>(active.size());
      stats_.queued = static_cast<int64_t>(queue_.size());
    }
    if (!active.empty()) step(active);
  }
}

void Scheduler::step(std::vector<Slot*>& active) {
  double t0 = now_seconds();
  const int64_t vocab = model_.config().vocab_size;
  // 1. What each sequence evaluates this step: a prompt chunk, or its last sampled token.
  std::vector<Slot*> running;
  std::vector<std::vector<int32_t>> inputs;
  for (Slot* s : active) {
    if (s->handle->cancelled()) {
      std::lock_guard<std::mutex> hl(s->handle->mu_);
      s->handle->finished_ = true;
      s->handle->pending_.finish = FinishReason::Cancelled;
      s->handle->cv_.notify_all();
      s->busy = false;
      continue;
    }
    std::vector<int32_t> in;
    if (s->prompt_done < s->job.prompt.size()) {
      size_t n = std::min<size_t>(static_cast<size_t>(prefill_chunk_), s->job.prompt.size() - s->prompt_done);
      in.assign(s->job.prompt.begin() + static_cast<std::ptrdiff_t>(s->prompt_done),
                s->job.prompt.begin() + static_cast<std::ptrdiff_t>(s->prompt_done + n));
      s->prompt_done += n;
    } else {
      in.push_back(s->pending);
    }
    running.push_back(s);
    inputs.push_back(std::move(in));
  }
  // 2. One forward over all of them.
  std::vector<Model::BatchItem> batch;
  for (size_t i = 0; i < running.size(); ++i) {
    Slot* s = running[i];
    s->logits.resize(static_cast<size_t>(vocab));
    batch.push_back({inputs[i], &s->cache, s->logits});
  }
  std::string error;
  try {
    if (!batch.empty()) {
      std::lock_guard<std::mutex> model_lock(model_mu_);
      model_.forward_batch(batch);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  // 3. Sample, publish, retire.
  int produced = 0;
  for (Slot* s : running) {
    auto finish = [&](FinishReason why, const std::string& message = {}) {
      std::lock_guard<std::mutex> hl(s->handle->mu_);
      s->handle->finished_ = true;
      s->handle->pending_.finish = why;
      s->handle->pending_.error = message;
      s->handle->cv_.notify_all();
      s->busy = false;
    };
    if (!error.empty()) {
      finish(FinishReason::Error, error);
      continue;
    }
    if (s->prompt_done < s->job.prompt.size()) continue;  // still prefilling
    int32_t token = -1;
    const int64_t remaining = s->job.max_tokens - s->generated - 1;
    if (s->job.allow) {
      // Constrained decoding: resample with disallowed tokens masked until one is allowed.
      std::vector<float> masked = s->logits;
      for (int tries = 0; tries < 64; ++tries) {
        int32_t t = s->sampler->sample(masked);
        if (s->job.allow(t, remaining)) {
          token = t;
          break;
        }
        masked[static_cast<size_t>(t)] = -INFINITY;
      }
      if (token < 0) {
        // Slow path: mask everything disallowed at once.
        for (int32_t t = 0; t < vocab; ++t) {
          if (masked[static_cast<size_t>(t)] != -INFINITY && !s->job.allow(t, remaining)) masked[static_cast<size_t>(t)] = -INFINITY;
        }
        bool any = std::any_of(masked.begin(), masked.end(), [](float v) { return v != -INFINITY; });
        if (!any) {
          finish(FinishReason::Error, "constrained decoding: no token can continue the output");
          continue;
        }
        token = s->sampler->sample(masked);
      }
    } else {
      token = s->sampler->sample(s->logits);
    }
    s->sampler->accept(token);
    if (s->job.on_accept) s->job.on_accept(token);
    ++s->generated;
    ++produced;
    bool is_stop = std::find(s->job.stop_ids.begin(), s->job.stop_ids.end(), token) != s->job.stop_ids.end();
    {
      std::lock_guard<std::mutex> hl(s->handle->mu_);
      if (s->handle->first_token_at_ == 0) s->handle->first_token_at_ = now_seconds();
      if (!is_stop) {
        s->handle->pending_.tokens.push_back(token);
        if (s->job.top_logprobs >= 0) {
          s->handle->pending_.logprobs.push_back(logprob_of(s->logits, token, s->job.top_logprobs));
        }
      }
      s->handle->cv_.notify_all();
    }
    if (is_stop) {
      finish(FinishReason::Stop);
    } else if (s->generated >= s->job.max_tokens) {
      finish(FinishReason::Length);
    } else if (s->cache.n_past() + 1 >= context_) {
      finish(FinishReason::Length);
    } else {
      s->pending = token;
    }
  }
  double dt = now_seconds() - t0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.steps;
    stats_.tokens_generated += produced;
    int64_t used = 0;
    for (auto& s : slots_) {
      if (!s->busy || s->cache.max_context() == 0) continue;
      used += static_cast<int64_t>(s->cache.bytes()) * std::min<int64_t>(s->cache.n_past(), s->cache.max_context()) /
              s->cache.max_context();
    }
    stats_.kv_bytes_used = used;
    stats_.active = std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return s->busy; });
  }
  if (on_step && produced > 0) on_step(dt, produced);
}

}  // namespace kexa::server
