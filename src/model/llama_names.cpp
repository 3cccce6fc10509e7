// Tensor names shared by the Llama-named EXAONE generations (see weights.h).
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_llama_head(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  const int64_t H = c.hidden_size, V = c.vocab_size;
  w.embed = b.matrix(gguf_names ? "token_embd.weight" : "model.embed_tokens.weight", V, H);
  w.output = b.optional_matrix(gguf_names ? "output.weight" : "lm_head.weight", V, H);
  w.tied = w.output == nullptr;
  if (w.tied) w.output = w.embed;
  w.output_norm = b.vector(gguf_names ? "output_norm.weight" : "model.norm.weight", H);
}

void bind_llama_layers(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w,
                       const std::function<void(const std::string& p, size_t i, LayerWeights& l)>& layer) {
  bind_llama_head(c, gguf_names, b, w);
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = gguf_names ? concat("blk.", i, ".") : concat("model.layers.", i, ".");
    layer(p, static_cast<size_t>(i), w.layers[static_cast<size_t>(i)]);
  }
}

void bind_llama_attention(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b, LayerWeights& l) {
  const int64_t H = c.hidden_size, hd = c.head_dim, QD = c.q_dim(), KVD = c.kv_dim();
  auto name = [&](const char* gguf, const char* hf) { return tensor_name(gguf_names, p, gguf, hf); };
  l.wq = b.matrix(name("attn_q.weight", "self_attn.q_proj.weight"), QD, H);
  l.wk = b.matrix(name("attn_k.weight", "self_attn.k_proj.weight"), KVD, H);
  l.wv = b.matrix(name("attn_v.weight", "self_attn.v_proj.weight"), KVD, H);
  l.wo = b.matrix(name("attn_output.weight", "self_attn.o_proj.weight"), H, QD);
  l.q_norm = b.vector(name("attn_q_norm.weight", "self_attn.q_norm.weight"), hd);
  l.k_norm = b.vector(name("attn_k_norm.weight", "self_attn.k_norm.weight"), hd);
}

void bind_pre_norm_attention(const ModelConfig& c, bool gguf_names, const std::string& p, Binder& b,
                             LayerWeights& l) {
  const int64_t H = c.hidden_size;
  l.attn_norm = b.vector(p + (gguf_names ? "attn_norm.weight" : "input_layernorm.weight"), H);
  bind_llama_attention(c, gguf_names, p, b, l);
  l.ffn_norm = b.vector(p + (gguf_names ? "ffn_norm.weight" : "post_attention_layernorm.weight"), H);
}

void bind_llama_mlp(const ModelConfig& c, bool gguf_names, const std::string& p, int64_t inner, Binder& b,
                    LayerWeights& l) {
  const int64_t H = c.hidden_size;
  l.gate = b.matrix(p + (gguf_names ? "ffn_gate.weight" : "mlp.gate_proj.weight"), inner, H);
  l.up = b.matrix(p + (gguf_names ? "ffn_up.weight" : "mlp.up_proj.weight"), inner, H);
  l.down = b.matrix(p + (gguf_names ? "ffn_down.weight" : "mlp.down_proj.weight"), H, inner);
}

void ignore_mtp_blocks(const ModelConfig& c, bool gguf_names, int64_t first_block, Binder& b) {
  if (gguf_names) {
    for (int64_t i = first_block; i < c.n_layers + c.n_mtp_layers; ++i) b.ignore_prefix(concat("blk.", i, "."));
  } else {
    b.ignore_prefix("mtp.");
  }
}

}  // namespace kexa::model_detail
