// K-EXAONE (`exaone_moe`): pre-norm decoder with per-head QK-norm, leading dense layers and
// sigmoid-routed mixture-of-experts MLPs with shared experts (spec 4.2-4.4). Expert weights are
// never copied: each expert is a view into the mapped file.
#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"
#include "model/moe.h"
#include "model/weights.h"
#include "util/error.h"

namespace kexa {

namespace moe {

void route(const float* logits, const float* bias, const RouterParams& p, int32_t* experts,
           float* weights, std::vector<float>& scratch) {
  const int64_t E = p.n_experts, k = p.n_used;
  scratch.resize(static_cast<size_t>(2 * E));
  float* score = scratch.data();    // sigmoid(logit): the weights
  float* select = score + E;        // score + bias: only for choosing
  for (int64_t e = 0; e < E; ++e) {
    score[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    select[e] = score[e] + (bias != nullptr ? bias[e] : 0.0f);
  }
  // Group-limited routing (DeepSeek-V3 noaux_tc): a group scores the sum of its two best
  // selection scores; experts outside the best topk_group groups cannot be chosen.
  if (p.n_group > 1 && p.topk_group < p.n_group) {
    const int64_t per = E / p.n_group;
    std::vector<std::pair<float, int64_t>> groups;
    for (int64_t g = 0; g < p.n_group; ++g) {
      float best = -INFINITY, second = -INFINITY;
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        if (select[e] > best) {
          second = best;
          best = select[e];
        } else if (select[e] > second) {
          second = select[e];
        }
      }
      groups.push_back({per >= 2 ? best + second : best, g});
    }
    std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = static_cast<size_t>(p.topk_group); i < groups.size(); ++i) {
      const int64_t g = groups[i].second;
      for (int64_t e = g * per; e < (g + 1) * per; ++e) select[e] = -INFINITY;
    }
  }
  // Top-k by repeated maximum: k is small (8 of 128) and this keeps ties deterministic.
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e) {
      if (select[e] == -INFINITY && best >= 0) continue;
      bool taken = false;
      for (int64_t i = 0; i < j; ++i) taken = taken || experts[i] == e;
      if (taken) continue;
      if (best < 0 || select[e] > select[best]) best = e;
    }
    experts[j] = static_cast<int32_t>(best);
    weights[j] = score[best];
  }
  if (p.norm_topk_prob) {
    // Sum in double rounded to float, then a float division (as llama.cpp's sum_rows / div); the
    // floor on the sum keeps an all-zero selection finite (HF adds 1e-20 instead).
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j) sum += weights[j];
    const float total = std::max(static_cast<float>(sum), 6.103515625e-5f);
    for (int64_t j = 0; j < k; ++j) weights[j] /= total;
  }
  const float scale = static_cast<float>(p.scaling);
  for (int64_t j = 0; j < k; ++j) weights[j] *= scale;
}

}  // namespace moe

namespace model_detail {

namespace {

// Rows [row0, row0 + n) of a tensor whose rows are `cols` long, as a 2-D matrix view.
kernels::Weight row_slice(const TensorView& t, int64_t row0, int64_t n, int64_t cols, std::string name) {
  const size_t row_bytes = dtype_bytes(t.dtype, cols);
  kernels::Weight v;
  v.name = std::move(name);
  v.dtype = t.dtype;
  v.shape = {n, cols};
  v.data = t.data + row_bytes * static_cast<size_t>(row0);
  v.nbytes = row_bytes * static_cast<size_t>(n);
  return v;
}

void bind_moe_layer(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b, MoeWeights& m) {
  const int64_t H = c.hidden_size, E = c.router.n_experts, I = c.moe_intermediate_size, Is = c.shared_intermediate_size;
  const kernels::Weight* router = b.matrix(p + (gguf_names ? "ffn_gate_inp.weight" : "mlp.gate.weight"), E, H);
  m.router_data.assign(static_cast<size_t>(E * H), 0.0f);
  if (router != nullptr) kernels::to_f32(*router, 0, E * H, m.router_data.data());
  m.router.name = router != nullptr ? router->name : p + "router";
  m.router.dtype = DType::F32;
  m.router.shape = {E, H};
  m.router.data = reinterpret_cast<const uint8_t*>(m.router_data.data());
  m.router.nbytes = m.router_data.size() * sizeof(float);

  // The correction bias is optional (llama.cpp treats it so); a present one must have E entries.
  std::string bias_name;
  for (const char* n : {"exp_probs_b.bias", "mlp.e_score_correction_bias", "mlp.gate.e_score_correction_bias"}) {
    const bool gguf_style = n[0] == 'e';
    if (gguf_style == gguf_names && b.has(p + n)) bias_name = p + n;
  }
  m.bias = bias_name.empty() ? std::vector<float>(static_cast<size_t>(E), 0.0f) : b.vector(bias_name, E);

  m.gate.clear();
  m.up.clear();
  m.down.clear();
  auto add_expert = [&](const kernels::Weight* g, const kernels::Weight* u, const kernels::Weight* d) {
    if (g == nullptr || u == nullptr || d == nullptr) return;  // the binder recorded why
    m.gate.push_back(*g);
    m.up.push_back(*u);
    m.down.push_back(*d);
  };
  if (gguf_names) {
    const kernels::Weight* g = b.stacked(p + "ffn_gate_exps.weight", {E, I, H});
    const kernels::Weight* u = b.stacked(p + "ffn_up_exps.weight", {E, I, H});
    const kernels::Weight* d = b.stacked(p + "ffn_down_exps.weight", {E, H, I});
    if (g != nullptr && u != nullptr && d != nullptr) {
      for (int64_t e = 0; e < E; ++e) {
        kernels::Weight ge = row_slice(*g, e * I, I, H, concat(g->name, "[", e, "]"));
        kernels::Weight ue = row_slice(*u, e * I, I, H, concat(u->name, "[", e, "]"));
        kernels::Weight de = row_slice(*d, e * H, H, I, concat(d->name, "[", e, "]"));
        add_expert(&ge, &ue, &de);
      }
    }
  } else if (b.has(p + "mlp.experts.gate_up_proj")) {
    // transformers >= 5 layout: gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I].
    const kernels::Weight* gu = b.stacked(p + "mlp.experts.gate_up_proj", {E, 2 * I, H});
    const kernels::Weight* d = b.stacked(p + "mlp.experts.down_proj", {E, H, I});
    if (gu != nullptr && d != nullptr) {
      for (int64_t e = 0; e < E; ++e) {
        kernels::Weight ge = row_slice(*gu, e * 2 * I, I, H, concat(gu->name, "[", e, "].gate"));
        kernels::Weight ue = row_slice(*gu, e * 2 * I + I, I, H, concat(gu->name, "[", e, "].up"));
        kernels::Weight de = row_slice(*d, e * H, H, I, concat(d->name, "[", e, "]"));
        add_expert(&ge, &ue, &de);
      }
    }
  } else {
    for (int64_t e = 0; e < E; ++e) {
      const std::string x = concat(p, "mlp.experts.", e, ".");
      const kernels::Weight* g = b.matrix(x + "gate_proj.weight", I, H);
      const kernels::Weight* u = b.matrix(x + "up_proj.weight", I, H);
      const kernels::Weight* d = b.matrix(x + "down_proj.weight", H, I);
      add_expert(g, u, d);
    }
  }
  m.expert_bytes = m.gate.empty() ? 0 : m.gate[0].nbytes + m.up[0].nbytes + m.down[0].nbytes;

  if (c.n_shared_experts > 0) {
    if (gguf_names) {
      m.shared_gate = b.matrix(p + "ffn_gate_shexp.weight", Is, H);
      m.shared_up = b.matrix(p + "ffn_up_shexp.weight", Is, H);
      m.shared_down = b.matrix(p + "ffn_down_shexp.weight", H, Is);
    } else {
      m.shared_gate = b.matrix(p + "mlp.shared_experts.gate_proj.weight", Is, H);
      m.shared_up = b.matrix(p + "mlp.shared_experts.up_proj.weight", Is, H);
      m.shared_down = b.matrix(p + "mlp.shared_experts.down_proj.weight", H, Is);
    }
  }
}

}  // namespace

void bind_exaone_moe(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  bind_llama_layers(c, gguf_names, b, w, [&](const std::string& p, size_t i, LayerWeights& l) {
    bind_pre_norm_attention(c, gguf_names, p, b, l);
    if (c.layers[i].moe) {
      l.moe = std::make_unique<MoeWeights>();
      bind_moe_layer(c, gguf_names, p, b, *l.moe);
    } else {
      bind_llama_mlp(c, gguf_names, p, c.intermediate_size, b, l);
    }
  });
  // MTP blocks (after the main stack) are not part of the main forward; bind_mtp binds the one
  // that runs. Marking them known keeps the binder from reporting them as unexpected.
  ignore_mtp_blocks(c, gguf_names, c.n_layers, b);
}

}  // namespace model_detail
}  // namespace kexa
