// Continuous batching: a fixed number of sequence slots, each with its own KV cache, advanced
// together by one batched forward per step. New requests join between steps; their prompts are
// prefilled in chunks so running streams keep producing tokens. Each slot chooses its tokens
// through NextToken, the same code Generator uses, so a job's tokens are what Generator gives for
// the same prompt, sampling parameters, seed and filter. A group of jobs with one prompt (the
// OpenAI `n` choices) evaluates that prompt once and forks its KV cache into the group's slots.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/job.h"

namespace kexa {

class Model;
class KVCache;

// The consumer side of one submitted job. The producer is the scheduler thread. Thread-safe.
class JobHandle {
 public:
  struct Event {
    JobEvent output;
    std::optional<JobEnd> end;  // set once the job has ended (it stays set for later waits)
  };
  // Blocks until new tokens or the end are available, or the timeout passes (then returns an
  // empty event without an end).
  Event wait(int timeout_ms = 1000);
  // Waits for events until the job ends, passing each to on_event (an empty one about every
  // 250 ms while nothing arrives); on_event returning false cancels the job (reason Callback).
  // Scheduler::run is submit + follow; a caller that must know the job was queued before it
  // waits (the server answers 429 before a stream starts) submits and follows itself.
  JobEnd follow(const std::function<bool(const JobEvent&)>& on_event);
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  double queued_seconds() const;  // time from submit to the first token

 private:
  friend class Scheduler;
  void publish(const NextToken::Choice& c);  // under no lock; takes mu_
  void end(StopReason reason, const std::string& error = {});

  std::mutex mu_;
  std::condition_variable cv_;
  JobEvent pending_;
  std::optional<JobEnd> end_;
  std::atomic<bool> cancelled_{false};
  int64_t prompt_tokens_ = 0;
  double submitted_at_ = 0;
  double first_token_at_ = 0;
};

struct SchedulerStats {
  int64_t active = 0;
  int64_t queued = 0;
  int64_t slots = 0;
  int64_t kv_bytes_used = 0;   // bytes of KV cache holding live positions
  int64_t kv_bytes_total = 0;  // bytes allocated for all slots
  int64_t steps = 0;
  int64_t tokens_generated = 0;
  int64_t tokens_prompt = 0;  // prompt tokens evaluated (a group's shared prompt counts once)
};

class Scheduler : public GenerationBackend {
 public:
  // n_slots sequences at once, each up to `context` positions; at most `queue_limit` waiting.
  // prefill_chunk: prompt tokens a joining sequence may evaluate per step.
  Scheduler(Model& model, int n_slots, int64_t context, int queue_limit, int64_t prefill_chunk = 128);
  ~Scheduler() override;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // nullptr when the queue is full. Throws kexa::Error when the job can never run (empty prompt,
  // an id outside the vocabulary in the prompt or the logit bias, a prompt that does not fit the
  // context).
  std::shared_ptr<JobHandle> submit(Job job);
  // Jobs that continue the same prompt (they may differ in anything else: sampling and seed,
  // options, filter), run as one group: they wait until as many slots are free at once, the
  // prompt is evaluated once in the first job's slot, and its KV cache is copied into the
  // others' before each chooses its first token. So every job's tokens are what it would get
  // alone. One handle per job, in order; empty when the queue is full (a group takes one place
  // in it). Throws kexa::Error as submit does, when the jobs' prompts differ, or when there are
  // more jobs than slots (the group could never start).
  std::vector<std::shared_ptr<JobHandle>> submit_group(std::vector<Job> jobs);
  // GenerationBackend: submit + wait on the calling thread; throws Busy when the queue is full.
  JobEnd run(Job job, const std::function<bool(const JobEvent&)>& on_event) override;
  int64_t context() const override { return context_; }
  SchedulerStats stats() const;

  // Called after every step that produced tokens with the step's wall time (seconds), for the
  // metrics. Set before the first submit.
  std::function<void(double step_seconds, int tokens)> on_step;

 private:
  struct Slot;
  struct Waiting {  // a queued group (one job for submit)
    std::vector<Job> jobs;
    std::vector<std::shared_ptr<JobHandle>> handles;
  };
  void check(Job& job) const;
  void loop();
  void admit_waiting_jobs();
  void step(std::vector<Slot*>& active);

  Model& model_;
  int64_t context_;
  int queue_limit_;
  int64_t prefill_chunk_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Waiting> queue_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

double now_seconds();

}  // namespace kexa
