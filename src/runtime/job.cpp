#include "runtime/job.h"

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa {

LocalGeneration::LocalGeneration(Model& model, int64_t context)
    : model_(model),
      context_(context),
      cache_(std::make_unique<KVCache>(model.config(), context, /*chunk=*/512, model.kv_type())) {}

LocalGeneration::~LocalGeneration() = default;

JobEnd LocalGeneration::run(Job job, const std::function<bool(const JobEvent&)>& on_event) {
  if (job.prompt.empty()) fail("the prompt is empty");
  if (static_cast<int64_t>(job.prompt.size()) >= context_)
    fail("the prompt has ", job.prompt.size(), " tokens but the context is ", context_, " tokens");
  // The same sampling parameters continue the random stream of the previous job (a chat's turns
  // with one --seed); others start a new one.
  if (!generator_ || !(generator_->sampler().params() == job.sampling))
    generator_ = std::make_unique<Generator>(model_, *cache_, job.sampling);
  // Embedding inputs make equal ids mean different things: such a sequence is never reused.
  if (job.embeddings || cache_->input_embeddings()) generator_->reset();
  cache_->set_input_embeddings(job.embeddings);
  GenerateOptions options = job.options;
  options.filter = job.filter.get();
  options.on_logprob = {};  // each token's logprob travels in its event
  JobEnd end;
  try {
    GenerateResult r = generator_->generate(job.prompt, options, [&](const NextToken::Choice& c) {
      if (c.is_stop) return true;  // ends the job (Eos); the stop id is not part of the output
      JobEvent event;
      event.tokens.push_back(c.token);
      if (c.logprob) event.logprobs.push_back(*c.logprob);
      return !on_event || on_event(event);
    });
    end.reason = r.reason;
  } catch (const Error& e) {
    end = JobEnd{StopReason::Error, e.what()};
  }
  return end;
}

}  // namespace kexa
