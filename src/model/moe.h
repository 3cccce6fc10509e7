// K-EXAONE's mixture-of-experts router (spec 4.4), separate from the decoder so it can be tested
// on hand-computed cases.
#pragma once

#include <cstdint>
#include <vector>

namespace kexa::moe {

struct RouterParams {
  int64_t n_experts = 0;
  int64_t n_used = 0;      // top-k
  int64_t n_group = 1;     // experts are split into n_group equal groups ...
  int64_t topk_group = 1;  // ... and only the best topk_group groups may be chosen
  bool norm_topk_prob = true;
  double scaling = 1.0;    // routed_scaling_factor, applied after the normalisation
};

// One token: logits[E] (fp32 router output) and bias[E] (e_score_correction_bias, may be null)
// -> experts[n_used] and weights[n_used]. Scores are sigmoid(logits); the bias only influences
// which experts are chosen, the weights come from the unbiased scores. Experts are listed by
// descending biased score (ties: lower index first). `scratch` is resized as needed.
void route(const float* logits, const float* bias, const RouterParams& p, int32_t* experts,
           float* weights, std::vector<float>& scratch);

}  // namespace kexa::moe
