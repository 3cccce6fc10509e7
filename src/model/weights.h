// Internal to src/model: the bound weights of a dense EXAONE decoder and the helper the
// architecture files use to find, validate and bind tensors by name.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"
#include "kernels/weight.h"
#include "model/config.h"

namespace kexa::model_detail {

// A mixture-of-experts MLP (K-EXAONE). Expert matrices are views into the mapped file: row
// slices of GGUF's stacked [E, rows, cols] tensors or HF's per-expert / fused tensors.
struct MoeWeights {
  // Router [E, H], converted to f32 once at load (the router runs in fp32, spec 4.4).
  std::vector<float> router_data;
  kernels::Weight router;
  std::vector<float> bias;  // e_score_correction_bias [E]; zeros when the file has none
  std::vector<kernels::Weight> gate, up, down;  // per expert: [I, H], [I, H], [H, I]
  size_t expert_bytes = 0;                 // bytes of one expert's three matrices
  const kernels::Weight* shared_gate = nullptr;  // [Is, H]; null without shared experts
  const kernels::Weight* shared_up = nullptr;
  const kernels::Weight* shared_down = nullptr;  // [H, Is]
};

struct LayerWeights {
  const kernels::Weight* wq = nullptr;
  const kernels::Weight* wk = nullptr;
  const kernels::Weight* wv = nullptr;
  const kernels::Weight* wo = nullptr;
  const kernels::Weight* gate = nullptr;
  const kernels::Weight* up = nullptr;
  const kernels::Weight* down = nullptr;
  // Norm weights are tiny, so they are converted to f32 once at load.
  std::vector<float> attn_norm;       // NormPlacement::Pre: before attention
  std::vector<float> ffn_norm;        // NormPlacement::Pre: before the MLP
  std::vector<float> post_attn_norm;  // NormPlacement::Post: on the attention output
  std::vector<float> post_ffn_norm;   // NormPlacement::Post: on the MLP output
  std::vector<float> q_norm;          // per-head QK-norm (length head_dim), empty when unused
  std::vector<float> k_norm;
  std::unique_ptr<MoeWeights> moe;  // set on MoE layers, which then have no gate/up/down
};

// The multi-token-prediction block (spec 4.6, 4b): fc over [enorm(embed(x)), hnorm(hidden)], one
// decoder layer with a dense MLP (pre-norm in K-EXAONE, post-norm in EXAONE 4.5), a final norm;
// the embedding and lm_head are the main model's.
struct MtpWeights {
  const kernels::Weight* fc = nullptr;  // [H, 2H]
  std::vector<float> enorm, hnorm, norm;
  LayerWeights layer;
};

struct ModelWeights {
  // Every bound matrix by name: the layers point into it, and the loader sets row_group here when
  // it packs a matrix (a tied embedding and output matrix are one entry, so both see it).
  std::map<std::string, kernels::Weight, std::less<>> matrices;
  const kernels::Weight* embed = nullptr;
  const kernels::Weight* output = nullptr;  // == embed when tied
  bool tied = false;
  std::vector<float> output_norm;
  std::vector<LayerWeights> layers;
  std::unique_ptr<MtpWeights> mtp;  // null when the model has no (usable) MTP block
};

// Looks tensors up in a source, checks shape and dtype, and collects every problem so one error
// lists all missing, misshapen, mistyped and unexpected tensors at once.
class Binder {
 public:
  // Matrices are added to `weights.matrices`.
  Binder(const TensorSource& source, std::string origin, ModelWeights& weights)
      : source_(source), origin_(std::move(origin)), weights_(weights) {}

  // A weight used by matmul: shape {rows, cols}, any dtype the kernels multiply.
  const kernels::Weight* matrix(const std::string& name, int64_t rows, int64_t cols);
  // nullptr when absent (no problem recorded).
  const kernels::Weight* optional_matrix(const std::string& name, int64_t rows, int64_t cols);
  // A weight of any rank whose rows are matmul rows (stacked experts): shape checked exactly.
  const kernels::Weight* stacked(const std::string& name, const std::vector<int64_t>& shape);
  // A 1-D weight of length n (F32/F16/BF16), returned as f32.
  std::vector<float> vector(const std::string& name, int64_t n);
  bool has(const std::string& name) const { return source_.find(name) != nullptr; }
  // Marks a tensor as known so it is not reported as unexpected (e.g. unused MTP weights).
  void ignore(const std::string& name) { used_.insert(name); }
  void ignore_prefix(const std::string& prefix);

  // Throws kexa::Error listing every problem, including tensors nobody asked for.
  void finish();

 private:
  std::string where(const std::string& name) const;
  const TensorView* check(const std::string& name, const std::vector<int64_t>& shape, bool matrix);
  const kernels::Weight* bind(const TensorView* t);

  const TensorSource& source_;
  std::string origin_;
  ModelWeights& weights_;
  std::set<std::string> used_;
  std::vector<std::string> problems_;
};

// Tensor names shared by the Llama-named generations (exaone4, exaone_moe and its MTP block),
// in src/model/llama_names.cpp. `p` is the layer prefix: "blk.<i>." in GGUF files,
// "model.layers.<i>." or "mtp.layers.0." in Hugging Face folders.
// A tensor's name under the file's naming: p + gguf in GGUF files, p + hf in Hugging Face folders.
inline std::string tensor_name(bool gguf_names, const std::string& p, const char* gguf, const char* hf) {
  return p + (gguf_names ? gguf : hf);
}
// Embedding, output matrix (tied to the embedding when absent) and final norm.
void bind_llama_head(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w);
// bind_llama_head, then `layer(p, i, l)` for every main layer i, p its prefix ("blk.<i>." /
// "model.layers.<i>.").
void bind_llama_layers(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w,
                       const std::function<void(const std::string& p, size_t i, LayerWeights& l)>& layer);
// Q/K/V/O projections and the per-head QK-norm.
void bind_llama_attention(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b, LayerWeights& l);
// K-EXAONE's pre-norm layer start: input norm, bind_llama_attention, and the pre-MLP norm (which
// HF calls post_attention_layernorm, spec 8.1).
void bind_pre_norm_attention(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b,
                             LayerWeights& l);
// EXAONE 4.0's post-norm layer: bind_llama_attention, the attention output norm, the dense MLP
// and its output norm (a main layer, or an EXAONE 4.5 MTP block's layer).
void bind_post_norm_layer(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b, LayerWeights& l);
// Dense SwiGLU MLP of width `inner`.
void bind_llama_mlp(const ModelConfig& c, bool gguf_names, const std::string& p, int64_t inner, Binder& b,
                    LayerWeights& l);
// Marks MTP blocks from `first_block` on (GGUF blk.<n>.*) or all of mtp.* (HF) as known but unused.
void ignore_mtp_blocks(const ModelConfig& c, bool gguf_names, int64_t first_block, Binder& b);

// Architecture files: translate tensor names of one generation (HF or GGUF naming) into weights.
void bind_exaone(const ModelConfig& config, bool gguf_names, Binder& binder, ModelWeights& out);
void bind_exaone4(const ModelConfig& config, bool gguf_names, Binder& binder, ModelWeights& out);
void bind_exaone_moe(const ModelConfig& config, bool gguf_names, Binder& binder, ModelWeights& out);
// Binds the MTP block when config.n_mtp_layers > 0 (src/model/mtp.cpp), for any llama-named
// architecture (exaone4, exaone_moe); its layer has the main stack's norm placement. GGUF: block
// blk.<n_layers>.* with nextn.{eh_proj,enorm,hnorm,shared_head_norm}. Hugging Face: `hf_prefix`
// + {fc, pre_fc_norm_embedding, pre_fc_norm_hidden, norm}.weight and hf_prefix + "layers.0."
// + the names of a text layer; every other tensor under hf_prefix (deeper blocks) is marked
// known but unused. A loader whose checkpoint nests the MTP tensors passes its own prefix.
void bind_mtp(const ModelConfig& config, bool gguf_names, Binder& binder, ModelWeights& out,
              const std::string& hf_prefix = "mtp.");

}  // namespace kexa::model_detail
