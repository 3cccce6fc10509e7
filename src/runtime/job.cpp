#include "runtime/job.h"

#include <algorithm>

#include "model/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

namespace kexa {

LocalGeneration::LocalGeneration(Model& model, int64_t context)
    : model_(model), context_(context), cache_(std::make_unique<KVCache>(model.config(), context)) {}

LocalGeneration::~LocalGeneration() = default;

JobEnd LocalGeneration::run(Job job, const std::function<bool(const JobEvent&)>& on_event) {
  if (job.prompt.empty()) fail("the prompt is empty");
  if (static_cast<int64_t>(job.prompt.size()) >= context_)
    fail("the prompt has ", job.prompt.size(), " tokens but the context is ", context_, " tokens");
  // The same sampling parameters continue the random stream of the previous job (a chat's turns
  // with one --seed); others start a new one.
  if (!generator_ || !(generator_->sampler().params() == job.sampling))
    generator_ = std::make_unique<Generator>(model_, *cache_, job.sampling);
  GenerateOptions options = job.options;
  options.filter = job.filter.get();
  JobEvent event;
  options.on_logprob = [&](const TokenLogprob& lp) { event.logprobs.push_back(lp); };
  const std::vector<int32_t>& stops = options.stop_ids;
  auto is_stop = [&](int32_t t) {
    if (std::find(stops.begin(), stops.end(), t) != stops.end()) return true;
    if (!options.use_model_eos) return false;
    const auto& eos = model_.config().eos_token_ids;
    return std::find(eos.begin(), eos.end(), t) != eos.end();
  };
  JobEnd end;
  try {
    GenerateResult r = generator_->generate(job.prompt, options, [&](int32_t token) {
      if (is_stop(token)) {
        event.logprobs.clear();
        return true;
      }
      event.tokens.push_back(token);
      bool keep_going = !on_event || on_event(event);
      event = JobEvent{};
      return keep_going;
    });
    end.reason = r.reason;
  } catch (const Error& e) {
    end = JobEnd{StopReason::Error, e.what()};
  }
  return end;
}

}  // namespace kexa
