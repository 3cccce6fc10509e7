// A generation job and the two things that run one: LocalGeneration (this thread, one sequence,
// a Generator with its own KV cache) and Scheduler (runtime/scheduler.h: a thread batching many
// sequences). Chat turns (runtime/turn.h) run on either through GenerationBackend, so `kexa
// chat`, RAG answers, text-to-SQL and the server share one path from prompt ids to tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace kexa {

class Model;
class KVCache;
struct InputEmbeddings;

// What one request asks the model to do.
struct Job {
  std::vector<int32_t> prompt;  // the whole sequence from position 0
  SamplingParams sampling;
  // max_tokens, stop ids, logprobs; `filter` and the callbacks are ignored (see below).
  GenerateOptions options;
  std::shared_ptr<TokenFilter> filter;  // constrained decoding; null = none
  // Prompt positions whose input is an embedding (image tokens); null = none.
  std::shared_ptr<const InputEmbeddings> embeddings;
};

// Tokens produced since the last event. Stop ids are not included (they end the job).
struct JobEvent {
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token when options.top_logprobs >= 0
};

struct JobEnd {
  StopReason reason = StopReason::MaxTokens;
  std::string error;  // when reason == Error
};

class GenerationBackend {
 public:
  virtual ~GenerationBackend() = default;
  // Positions one sequence may hold (prompt + generated).
  virtual int64_t context() const = 0;
  // Runs `job` to its end on the calling thread's behalf. `on_event` gets the new tokens as they
  // come, and is also called with an empty event while nothing new arrived (about every 250 ms),
  // so a caller can notice a client that went away; returning false cancels the job (reason
  // Callback). Throws kexa::Error when the job can never run (empty prompt, an id outside the
  // vocabulary, a prompt longer than the context) and Busy when the backend's queue is full.
  virtual JobEnd run(Job job, const std::function<bool(const JobEvent&)>& on_event) = 0;

  struct Busy {};
};

// One sequence on the calling thread. Keeps its KV cache between jobs, so a job whose prompt
// continues the previous one's sequence (a chat's next turn) evaluates only what is new.
class LocalGeneration : public GenerationBackend {
 public:
  LocalGeneration(Model& model, int64_t context);
  ~LocalGeneration() override;
  int64_t context() const override { return context_; }
  JobEnd run(Job job, const std::function<bool(const JobEvent&)>& on_event) override;

 private:
  Model& model_;
  int64_t context_;
  std::unique_ptr<KVCache> cache_;
  std::unique_ptr<Generator> generator_;
};

}  // namespace kexa
