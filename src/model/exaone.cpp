// EXAONE 3.0 / 3.5 / Deep (`exaone`): GPT-2-style tensor names, pre-norm Llama-style decoder.
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_exaone(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t QD = c.q_dim(), KVD = c.kv_dim();
  const std::string embed = gguf_names ? "token_embd.weight" : "transformer.wte.weight";
  const std::string head = gguf_names ? "output.weight" : "lm_head.weight";
  w.embed = b.matrix(embed, V, H);
  // The presence of the output matrix decides tied vs untied (the 3.x config often omits the key).
  w.output = b.optional_matrix(head, V, H);
  w.tied = w.output == nullptr;
  if (w.tied) w.output = w.embed;
  w.output_norm = b.vector(gguf_names ? "output_norm.weight" : "transformer.ln_f.weight", H);

  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = gguf_names ? concat("blk.", i, ".") : concat("transformer.h.", i, ".");
    auto name = [&](const char* gguf, const char* hf) { return tensor_name(gguf_names, p, gguf, hf); };
    l.attn_norm = b.vector(name("attn_norm.weight", "ln_1.weight"), H);
    l.wq = b.matrix(name("attn_q.weight", "attn.attention.q_proj.weight"), QD, H);
    l.wk = b.matrix(name("attn_k.weight", "attn.attention.k_proj.weight"), KVD, H);
    l.wv = b.matrix(name("attn_v.weight", "attn.attention.v_proj.weight"), KVD, H);
    l.wo = b.matrix(name("attn_output.weight", "attn.attention.out_proj.weight"), H, QD);
    l.ffn_norm = b.vector(name("ffn_norm.weight", "ln_2.weight"), H);
    l.gate = b.matrix(name("ffn_gate.weight", "mlp.c_fc_0.weight"), I, H);
    l.up = b.matrix(name("ffn_up.weight", "mlp.c_fc_1.weight"), I, H);
    l.down = b.matrix(name("ffn_down.weight", "mlp.c_proj.weight"), H, I);
    // Some exports keep the (recomputed) rotary buffer; it carries no information.
    if (!gguf_names) b.ignore(p + "attn.attention.rotary.inv_freq");
  }
}

}  // namespace kexa::model_detail
