// K-EXAONE's multi-token-prediction block: tensor names (spec 4.2) for Hugging Face checkpoints
// (mtp.*) and GGUF files (block n_layers: blk.<L>.nextn.* plus ordinary attention/FFN names).
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_mtp(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  if (c.n_mtp_layers <= 0) return;
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  const int64_t QD = c.q_dim(), KVD = c.kv_dim();
  auto m = std::make_unique<MtpWeights>();
  LayerWeights& l = m->layer;
  if (gguf_names) {
    const std::string p = concat("blk.", c.n_layers, ".");
    m->fc = b.matrix(p + "nextn.eh_proj.weight", H, 2 * H);
    m->enorm = b.vector(p + "nextn.enorm.weight", H);
    m->hnorm = b.vector(p + "nextn.hnorm.weight", H);
    m->norm = b.vector(p + "nextn.shared_head_norm.weight", H);
    l.attn_norm = b.vector(p + "attn_norm.weight", H);
    l.wq = b.matrix(p + "attn_q.weight", QD, H);
    l.wk = b.matrix(p + "attn_k.weight", KVD, H);
    l.wv = b.matrix(p + "attn_v.weight", KVD, H);
    l.wo = b.matrix(p + "attn_output.weight", H, QD);
    l.q_norm = b.vector(p + "attn_q_norm.weight", hd);
    l.k_norm = b.vector(p + "attn_k_norm.weight", hd);
    l.ffn_norm = b.vector(p + "ffn_norm.weight", H);
    l.gate = b.matrix(p + "ffn_gate.weight", I, H);
    l.up = b.matrix(p + "ffn_up.weight", I, H);
    l.down = b.matrix(p + "ffn_down.weight", H, I);
    // Only the first block drafts; deeper ones (none in released models) are not executed.
    for (int64_t i = c.n_layers + 1; i < c.n_layers + c.n_mtp_layers; ++i) b.ignore_prefix(concat("blk.", i, "."));
  } else {
    const std::string p = "mtp.layers.0.";
    m->fc = b.matrix("mtp.fc.weight", H, 2 * H);
    m->enorm = b.vector("mtp.pre_fc_norm_embedding.weight", H);
    m->hnorm = b.vector("mtp.pre_fc_norm_hidden.weight", H);
    m->norm = b.vector("mtp.norm.weight", H);
    l.attn_norm = b.vector(p + "input_layernorm.weight", H);
    l.wq = b.matrix(p + "self_attn.q_proj.weight", QD, H);
    l.wk = b.matrix(p + "self_attn.k_proj.weight", KVD, H);
    l.wv = b.matrix(p + "self_attn.v_proj.weight", KVD, H);
    l.wo = b.matrix(p + "self_attn.o_proj.weight", H, QD);
    l.q_norm = b.vector(p + "self_attn.q_norm.weight", hd);
    l.k_norm = b.vector(p + "self_attn.k_norm.weight", hd);
    l.ffn_norm = b.vector(p + "post_attention_layernorm.weight", H);
    l.gate = b.matrix(p + "mlp.gate_proj.weight", I, H);
    l.up = b.matrix(p + "mlp.up_proj.weight", I, H);
    l.down = b.matrix(p + "mlp.down_proj.weight", H, I);
    b.ignore_prefix("mtp.");
  }
  // A missing or misshapen tensor is reported by Binder::finish(); keep the block only when whole.
  bool whole = m->fc && l.wq && l.wk && l.wv && l.wo && l.gate && l.up && l.down;
  if (whole) w.mtp = std::move(m);
}

}  // namespace kexa::model_detail
