// EXAONE 4.0 (`exaone4`): Llama-style tensor names, no input norm, RMSNorm on the attention and
// MLP outputs ("QK-Reorder-Norm"), per-head QK-norm.
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_post_norm_layer(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b, LayerWeights& l) {
  const int64_t H = c.hidden_size;
  bind_llama_attention(c, gguf_names, p, b, l);
  l.post_attn_norm = b.vector(tensor_name(gguf_names, p, "post_attention_norm.weight", "post_attention_layernorm.weight"), H);
  bind_llama_mlp(c, gguf_names, p, c.intermediate_size, b, l);
  l.post_ffn_norm = b.vector(tensor_name(gguf_names, p, "post_ffw_norm.weight", "post_feedforward_layernorm.weight"), H);
}

void bind_exaone4(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  bind_llama_layers(c, gguf_names, b, w, [&](const std::string& p, size_t, LayerWeights& l) {
    bind_post_norm_layer(c, gguf_names, p, b, l);
  });
  // EXAONE 4.5 text towers carry MTP blocks after the main stack; bind_mtp binds the one that runs.
  ignore_mtp_blocks(c, gguf_names, c.n_layers, b);
}

}  // namespace kexa::model_detail
