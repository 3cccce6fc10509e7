// Continuous batching: a fixed number of sequence slots, each with its own KV cache, advanced
// together by one batched forward per step. New requests join between steps; their prompts are
// prefilled in chunks so running streams keep producing tokens.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sampler.h"

namespace kexa {
class Model;
class KVCache;
}

namespace kexa::server {

// What one request asks the engine to do.
struct Job {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<int32_t> stop_ids;
  int top_logprobs = -1;  // < 0: no logprobs; 0..20: chosen token's logprob (+ that many alternatives)
  // Decides whether a token may come next (constrained decoding), knowing how many tokens may
  // still follow it; empty = any token.
  std::function<bool(int32_t token, int64_t remaining)> allow;
  // Told of every accepted token (after the stop check, before it is published).
  std::function<void(int32_t token)> on_accept;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };

// The producer side is the scheduler thread; the consumer is the HTTP handler. Thread-safe.
class JobHandle {
 public:
  struct Event {
    std::vector<int32_t> tokens;
    std::vector<TokenLogprob> logprobs;
    FinishReason finish = FinishReason::None;
    std::string error;
  };
  // Blocks until new tokens or the end are available (or the timeout passes: returns an empty,
  // unfinished event).
  Event wait(int timeout_ms = 1000);
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  double queued_seconds() const;  // time from submit to the first token

 private:
  friend class Scheduler;
  std::mutex mu_;
  std::condition_variable cv_;
  Event pending_;
  bool finished_ = false;
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
  int64_t tokens_prompt = 0;
};

class Scheduler {
 public:
  // n_slots sequences at once, each up to `context` positions; at most `queue_limit` waiting.
  // prefill_chunk: prompt tokens a joining sequence may evaluate per step.
  Scheduler(Model& model, int n_slots, int64_t context, int queue_limit, int64_t prefill_chunk = 128);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // nullptr when the queue is full (the caller answers 429). Throws kexa::Error when the job
  // cannot ever run (prompt longer than the context: the caller answers 400).
  std::shared_ptr<JobHandle> submit(Job job);
  SchedulerStats stats() const;
  int64_t context() const { return context_; }
  // Exclusive use of the model by another caller (text-to-SQL runs its own grammar-constrained
  // generation): while the lock is held no batched step runs, so streams pause, not fail.
  std::unique_lock<std::mutex> pause_model() { return std::unique_lock<std::mutex>(model_mu_); }

  // Called after every step with the latencies of the tokens produced (seconds per token of
  // each sequence that produced one), for the metrics.
  std::function<void(double step_seconds, int tokens)> on_step;

 private:
  struct Slot;
  void loop();
  void step(std::vector<Slot*>& active);

  Model& model_;
  int64_t context_;
  int queue_limit_;
  int64_t prefill_chunk_;
  std::vector<std::unique_ptr<Slot>> slots_;
  mutable std::mutex mu_;
  std::mutex model_mu_;  // held around every forward
  std::condition_variable cv_;
  std::deque<std::pair<Job, std::shared_ptr<JobHandle>>> queue_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

double now_seconds();

}  // namespace kexa::server
