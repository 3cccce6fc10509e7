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
    std::string p = gguf_names ? concat("blk.", i, ".") : concat("transformer.h.", i, ".");
    if (gguf_names) {
      l.attn_norm = b.vector(p + "attn_norm.weight", H);
      l.wq = b.matrix(p + "attn_q.weight", QD, H);
      l.wk = b.matrix(p + "attn_k.weight", KVD, H);
      l.wv = b.matrix(p + "attn_v.weight", KVD, H);
      l.wo = b.matrix(p + "attn_output.weight", H, QD);
      l.ffn_norm = b.vector(p + "ffn_norm.weight", H);
      l.gate = b.matrix(p + "ffn_gate.weight", I, H);
      l.up = b.matrix(p + "ffn_up.weight", I, H);
      l.down = b.matrix(p + "ffn_down.weight", H, I);
    } else {
      l.attn_norm = b.vector(p + "ln_1.weight", H);
      l.wq = b.matrix(p + "attn.attention.q_proj.weight", QD, H);
      l.wk = b.matrix(p + "attn.attention.k_proj.weight", KVD, H);
      l.wv = b.matrix(p + "attn.attention.v_proj.weight", KVD, H);
      l.wo = b.matrix(p + "attn.attention.out_proj.weight", H, QD);
      l.ffn_norm = b.vector(p + "ln_2.weight", H);
      l.gate = b.matrix(p + "mlp.c_fc_0.weight", I, H);
      l.up = b.matrix(p + "mlp.c_fc_1.weight", I, H);
      l.down = b.matrix(p + "mlp.c_proj.weight", H, I);
      // Some exports keep the (recomputed) rotary buffer; it carries no information.
      b.ignore(p + "attn.attention.rotary.inv_freq");
    }
  }
}

}  // namespace kexa::model_detail
