#include "runtime/scheduler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <span>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"
#include "util/thread_pool.h"

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
  Slot(const Model& model, int64_t context) : cache(model.config(), context, /*chunk=*/512, model.kv_type()) {}
  KVCache cache;
  Job job;
  std::shared_ptr<JobHandle> handle;
  std::optional<Sampler> sampler;
  std::optional<NextToken> next;
  size_t prompt_done = 0;  // prompt tokens already in the cache
  int32_t pending = -1;    // chosen token not yet evaluated
  std::vector<float> logits;
  bool busy = false;
  // A group: the first job's slot evaluates the prompt (leader) while the others wait for its
  // cache (followers, not evaluated until the fork).
  Slot* leader = nullptr;
  std::vector<Slot*> followers;

  // Ends the job, and the followers still waiting for this slot's prompt with it.
  void finish(StopReason reason, const std::string& error = {}) {
    if (!busy) return;
    handle->end(reason, error);
    next.reset();
    busy = false;
    if (leader) {
      std::erase(leader->followers, this);
      leader = nullptr;
    }
    for (Slot* f : followers) {
      f->leader = nullptr;
      f->finish(reason, error);
    }
    followers.clear();
  }
};

Scheduler::Scheduler(Model& model, int n_slots, int64_t context, int queue_limit, int64_t prefill_chunk)
    : model_(model), context_(context), queue_limit_(queue_limit), prefill_chunk_(prefill_chunk) {
  if (n_slots < 1) fail("--parallel must be at least 1");
  for (int i = 0; i < n_slots; ++i) {
    slots_.push_back(std::make_unique<Slot>(model, context));
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

void Scheduler::check(Job& job) const {
  if (job.prompt.empty()) fail("the prompt is empty");
  if (static_cast<int64_t>(job.prompt.size()) >= context_) {
    fail("the prompt has ", job.prompt.size(), " tokens but the context is ", context_, " tokens (server --ctx)");
  }
  const int64_t vocab = model_.config().vocab_size;
  for (int32_t id : job.prompt) {
    if (id < 0 || id >= vocab) fail("token id ", id, " is outside the vocabulary (", vocab, ")");
  }
  for (const auto& [id, bias] : job.options.logit_bias) {
    if (id < 0 || id >= vocab) fail("logit_bias: token id ", id, " is outside the vocabulary (", vocab, ")");
  }
  if (job.options.on_logits || job.options.on_logprob)
    fail("scheduler: per-token callbacks are not supported; read the job's events");
  job.options.top_logprobs = std::min(job.options.top_logprobs, 20);
}

std::shared_ptr<JobHandle> Scheduler::submit(Job job) {
  std::vector<Job> one;
  one.push_back(std::move(job));
  std::vector<std::shared_ptr<JobHandle>> handles = submit_group(std::move(one));
  return handles.empty() ? nullptr : handles[0];
}

std::vector<std::shared_ptr<JobHandle>> Scheduler::submit_group(std::vector<Job> jobs) {
  if (jobs.empty()) fail("scheduler: a group needs at least one job");
  if (jobs.size() > slots_.size())
    fail(jobs.size(), " sequences must run together but the server has ", slots_.size(), " slots (--parallel)");
  for (Job& job : jobs) {
    check(job);
    if (job.prompt != jobs[0].prompt) fail("scheduler: the jobs of a group must share their prompt");
  }
  Waiting w;
  const double now = now_seconds();
  for (const Job& job : jobs) {
    auto handle = std::make_shared<JobHandle>();
    handle->prompt_tokens_ = static_cast<int64_t>(job.prompt.size());
    handle->submitted_at_ = now;
    w.handles.push_back(std::move(handle));
  }
  w.jobs = std::move(jobs);
  std::vector<std::shared_ptr<JobHandle>> handles = w.handles;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (static_cast<int>(queue_.size()) >= queue_limit_) return {};
    queue_.push_back(std::move(w));
  }
  cv_.notify_all();
  return handles;
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

// Under mu_: moves waiting jobs into free slots (between steps, never during one), in order: a
// group that needs more slots than are free holds back the ones behind it until they free up.
void Scheduler::admit_waiting_jobs() {
  while (!queue_.empty()) {
    Waiting& w = queue_.front();
    if (std::all_of(w.handles.begin(), w.handles.end(), [](const auto& h) { return h->cancelled(); })) {
      for (auto& h : w.handles) h->end(StopReason::Callback);
      queue_.pop_front();
      continue;
    }
    std::vector<Slot*> free;
    for (auto& s : slots_)
      if (!s->busy) free.push_back(s.get());
    if (free.size() < w.jobs.size()) return;
    Slot* leader = nullptr;
    for (size_t i = 0; i < w.jobs.size(); ++i) {
      Slot* s = free[i];
      s->job = std::move(w.jobs[i]);
      s->job.options.filter = s->job.filter.get();
      s->handle = std::move(w.handles[i]);
      s->sampler.emplace(s->job.sampling, model_.config().vocab_size);
      s->next.emplace(*s->sampler, s->job.options, model_.config().eos_token_ids, s->job.prompt);
      s->cache.clear();
      s->cache.set_input_embeddings(s->job.embeddings);
      s->prompt_done = 0;
      s->pending = -1;
      s->busy = true;
      s->leader = leader;
      s->followers.clear();
      if (leader) leader->followers.push_back(s);
      else leader = s;
    }
    stats_.tokens_prompt += static_cast<int64_t>(leader->job.prompt.size());
    queue_.pop_front();
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
        for (Waiting& w : queue_)
          for (auto& handle : w.handles) handle->end(StopReason::Callback);
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
    if (s->leader) {  // waits for its group's prompt
      if (s->handle->cancelled()) s->finish(StopReason::Callback);
      continue;
    }
    // A cancelled leader still evaluates the prompt its followers wait for; it ends at the fork.
    if (s->handle->cancelled() && s->followers.empty()) {
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
  // 3. Fork the groups whose prompt is done, then choose, publish, retire.
  std::vector<Slot*> choosing;
  for (Slot* s : running) {
    if (!error.empty()) {
      s->finish(StopReason::Error, error);
      continue;
    }
    if (s->prompt_done < s->job.prompt.size()) continue;  // still prefilling
    choosing.push_back(s);
    for (Slot* f : s->followers) {
      f->cache.copy_from(s->cache);
      f->logits = s->logits;
      f->prompt_done = f->job.prompt.size();
      f->leader = nullptr;
      choosing.push_back(f);
    }
    s->followers.clear();
  }
  std::erase_if(choosing, [](Slot* s) {
    if (!s->handle->cancelled()) return false;
    s->finish(StopReason::Callback);
    return true;
  });
  // Each sequence has its own sampler and random stream, so the choices do not depend on one
  // another: sampling a full vocabulary costs about a millisecond per sequence, which the pool
  // shares out instead of its threads waiting for the scheduler thread. A token filter may be
  // shared by the jobs of a group, so filtered jobs choose here, one after the other, in order.
  std::vector<NextToken::Choice> choices(choosing.size());
  std::vector<std::string> errors(choosing.size());
  std::vector<uint8_t> failed(choosing.size(), 0);
  auto choose = [&](size_t i) {
    try {
      choices[i] = choosing[i]->next->choose(choosing[i]->logits);
    } catch (const Error& e) {
      errors[i] = e.what();
      failed[i] = 1;
    }
  };
  std::vector<size_t> unfiltered;
  for (size_t i = 0; i < choosing.size(); ++i) {
    if (choosing[i]->job.options.filter != nullptr) choose(i);
    else unfiltered.push_back(i);
  }
  ThreadPool& pool = model_.pool();
  if (unfiltered.size() < 2 || pool.size() == 1) {
    for (size_t i : unfiltered) choose(i);
  } else {
    std::atomic<size_t> next{0};
    pool.run([&](int, int) {
      for (size_t j = next.fetch_add(1); j < unfiltered.size(); j = next.fetch_add(1)) choose(unfiltered[j]);
    });
  }
  int produced = 0;
  for (size_t i = 0; i < choosing.size(); ++i) {
    Slot* s = choosing[i];
    if (failed[i]) {
      s->finish(StopReason::Error, errors[i]);
      continue;
    }
    const NextToken::Choice& c = choices[i];
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
