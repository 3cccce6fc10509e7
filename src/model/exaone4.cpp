// EXAONE 4.0 (`exaone4`): Llama-style tensor names, no input norm, RMSNorm on the attention and
// MLP outputs ("QK-Reorder-Norm"), per-head QK-norm.
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_exaone4(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const int64_t QD = c.q_dim(), KVD = c.kv_dim();
  w.embed = b.matrix(gguf_names ? "token_embd.weight" : "model.embed_tokens.weight", V, H);
  w.output = b.optional_matrix(gguf_names ? "output.weight" : "lm_head.weight", V, H);
  w.tied = w.output == nullptr;
  if (w.tied) w.output = w.embed;
  w.output_norm = b.vector(gguf_names ? "output_norm.weight" : "model.norm.weight", H);

  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    if (gguf_names) {
      std::string p = concat("blk.", i, ".");
      l.wq = b.matrix(p + "attn_q.weight", QD, H);
      l.wk = b.matrix(p + "attn_k.weight", KVD, H);
      l.wv = b.matrix(p + "attn_v.weight", KVD, H);
      l.wo = b.matrix(p + "attn_output.weight", H, QD);
      l.q_norm = b.vector(p + "attn_q_norm.weight", hd);
      l.k_norm = b.vector(p + "attn_k_norm.weight", hd);
      l.post_attn_norm = b.vector(p + "post_attention_norm.weight", H);
      l.gate = b.matrix(p + "ffn_gate.weight", I, H);
      l.up = b.matrix(p + "ffn_up.weight", I, H);
      l.down = b.matrix(p + "ffn_down.weight", H, I);
      l.post_ffn_norm = b.vector(p + "post_ffw_norm.weight", H);
    } else {
      std::string p = concat("model.layers.", i, ".");
      l.wq = b.matrix(p + "self_attn.q_proj.weight", QD, H);
      l.wk = b.matrix(p + "self_attn.k_proj.weight", KVD, H);
      l.wv = b.matrix(p + "self_attn.v_proj.weight", KVD, H);
      l.wo = b.matrix(p + "self_attn.o_proj.weight", H, QD);
      l.q_norm = b.vector(p + "self_attn.q_norm.weight", hd);
      l.k_norm = b.vector(p + "self_attn.k_norm.weight", hd);
      l.post_attn_norm = b.vector(p + "post_attention_layernorm.weight", H);
      l.gate = b.matrix(p + "mlp.gate_proj.weight", I, H);
      l.up = b.matrix(p + "mlp.up_proj.weight", I, H);
      l.down = b.matrix(p + "mlp.down_proj.weight", H, I);
      l.post_ffn_norm = b.vector(p + "post_feedforward_layernorm.weight", H);
    }
  }
  // EXAONE 4.5 text towers carry MTP blocks after the main stack; they are not executed here.
  if (gguf_names) {
    for (int64_t i = c.n_layers; i < c.n_layers + c.n_mtp_layers; ++i) b.ignore_prefix(concat("blk.", i, "."));
  } else {
    b.ignore_prefix("mtp.");
  }
}

}  // namespace kexa::model_detail
