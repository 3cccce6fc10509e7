#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <span>

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

JobHandle::Event JobHandle::wait(int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
               [&] { return end_.has_value() || !pending_.tokens.empty(); });
  Event out;
  out.output = std::move(pending_);
  pending_ = JobEvent{};
  out.end = end_;
  return out;
}

JobEnd JobHandle::follow(const std::function<bool(const JobEvent&)>& on_event) {
  for (;;) {
    Event ev = wait(250);
    if (on_event && !on_event(ev.output)) {
      cancel();
      return JobEnd{StopReason::Callback, {}};
    }
    if (ev.end) return *ev.end;
  }
}

double JobHandle::queued_seconds() const {
  return first_token_at_ > 0 ? first_token_at_ - submitted_at_ : 0.0;
}

void JobHandle::publish(const NextToken::Choice& c) {
  std::lock_guard<std::mutex> lk(mu_);
  if (first_token_at_ == 0) first_token_at_ = now_seconds();
  if (!c.is_stop) {
    pending_.tokens.push_back(c.token);
    if (c.logprob) pending_.logprobs.push_back(*c.logprob);
  }
  cv_.notify_all();
}

void JobHandle::end(StopReason reason, const std::string& error) {
  std::lock_guard<std::mutex> lk(mu_);
  end_ = JobEnd{reason, error};
  cv_.notify_all();
}

struct Scheduler::Slot {
  Slot(const ModelConfig& config, int64_t context) : cache(config, context, /*chunk=*/512) {}
  KVCache cache;
  Job job;
  std::shared_ptr<JobHandle> handle;
  std::optional<Sampler> sampler;
  std::optional<NextToken> next;
  size_t prompt_done = 0;  // prompt tokens already in the cache
  int32_t pending = -1;    // chosen token not yet evaluated
  std::vector<float> logits;
  bool busy = false;

  void finish(StopReason reason, const std::string& error = {}) {
    handle->end(reason, error);
    next.reset();
    busy = false;
  }
};

Scheduler::Scheduler(Model& model, int n_slots, int64_t context, int queue_limit, int64_t prefill_chunk)
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
    fail("the prompt has ", job.prompt.size(), " tokens but the context is ", context_, " tokens (server --ctx)");
  }
  const int64_t vocab = model_.config().vocab_size;
  for (int32_t id : job.prompt) {
    if (id < 0 || id >= vocab) fail("token id ", id, " is outside the vocabulary (", vocab, ")");
  }
  if (job.options.on_logits || job.options.on_logprob)
    fail("scheduler: per-token callbacks are not supported; read the job's events");
  job.options.top_logprobs = std::min(job.options.top_logprobs, 20);
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

JobEnd Scheduler::run(Job job, const std::function<bool(const JobEvent&)>& on_event) {
  std::shared_ptr<JobHandle> handle = submit(std::move(job));
  if (!handle) throw Busy{};
  return handle->follow(on_event);
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

// Under mu_: moves waiting jobs into free slots (between steps, never during one).
void Scheduler::admit_waiting_jobs() {
  for (auto& s : slots_) {
    if (s->busy || queue_.empty()) continue;
    auto [job, handle] = std::move(queue_.front());
    queue_.pop_front();
    if (handle->cancelled()) {
      handle->end(StopReason::Callback);
      continue;
    }
    s->job = std::move(job);
    s->job.options.filter = s->job.filter.get();
    s->handle = std::move(handle);
    s->sampler.emplace(s->job.sampling, model_.config().vocab_size);
    s->next.emplace(*s->sampler, s->job.options, model_.config().eos_token_ids, s->job.prompt);
    s->cache.clear();
    s->prompt_done = 0;
    s->pending = -1;
    s->busy = true;
    stats_.tokens_prompt += static_cast<int64_t>(s->job.prompt.size());
  }
}

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
        for (auto& s : slots_)
          if (s->busy) s->finish(StopReason::Callback);
        for (auto& [job, handle] : queue_) handle->end(StopReason::Callback);
        return;
      }
      admit_waiting_jobs();
      active.clear();
      for (auto& s : slots_)
        if (s->busy) active.push_back(s.get());
      stats_.active = static_cast<int64_t>(active.size());
      stats_.queued = static_cast<int64_t>(queue_.size());
    }
    if (!active.empty()) step(active);
  }
}

void Scheduler::step(std::vector<Slot*>& active) {
  const double t0 = now_seconds();
  const int64_t vocab = model_.config().vocab_size;
  // 1. What each sequence evaluates this step: a prompt chunk, or its last chosen token.
  std::vector<Slot*> running;
  std::vector<Model::BatchItem> batch;
  for (Slot* s : active) {
    if (s->handle->cancelled()) {
      s->finish(StopReason::Callback);
      continue;
    }
    std::span<const int32_t> in;
    if (s->prompt_done < s->job.prompt.size()) {
      const size_t n = std::min<size_t>(static_cast<size_t>(prefill_chunk_), s->job.prompt.size() - s->prompt_done);
      in = std::span<const int32_t>(s->job.prompt).subspan(s->prompt_done, n);
      s->prompt_done += n;
    } else {
      in = std::span<const int32_t>(&s->pending, 1);
    }
    s->logits.resize(static_cast<size_t>(vocab));
    running.push_back(s);
    batch.push_back({in, &s->cache, s->logits});
  }
  // 2. One forward over all of them.
  std::string error;
  try {
    if (!batch.empty()) model_.forward_batch(batch);
  } catch (const std::exception& e) {
    error = e.what();
  }
  // 3. Choose, publish, retire.
  int produced = 0;
  for (Slot* s : running) {
    if (!error.empty()) {
      s->finish(StopReason::Error, error);
      continue;
    }
    if (s->prompt_done < s->job.prompt.size()) continue;  // still prefilling
    NextToken::Choice c;
    try {
      c = s->next->choose(s->logits);
    } catch (const Error& e) {
      s->finish(StopReason::Error, e.what());
      continue;
    }
    ++produced;
    s->handle->publish(c);
    if (std::optional<StopReason> end = s->next->finish_after(c, s->cache.n_past(), s->cache.max_context())) {
      s->finish(*end);
    } else {
      s->pending = c.token;
    }
  }
  const double dt = now_seconds() - t0;
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

}  // namespace kexa
