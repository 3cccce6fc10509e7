// The multi-token-prediction block of K-EXAONE and of dense EXAONE 4.5 text towers: tensor names
// (spec 4.2, 4b) for Hugging Face checkpoints (mtp.*) and GGUF files (block n_layers:
// blk.<L>.nextn.* plus the ordinary names of a decoder layer of the model's own layout).
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_mtp(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w, const std::string& hf_prefix) {
  if (c.n_mtp_layers <= 0) return;
  const int64_t H = c.hidden_size;
  auto m = std::make_unique<MtpWeights>();
  LayerWeights& l = m->layer;
  const std::string p = gguf_names ? concat("blk.", c.n_layers, ".") : hf_prefix + "layers.0.";
  if (gguf_names) {
    m->fc = b.matrix(p + "nextn.eh_proj.weight", H, 2 * H);
    m->enorm = b.vector(p + "nextn.enorm.weight", H);
    m->hnorm = b.vector(p + "nextn.hnorm.weight", H);
    m->norm = b.vector(p + "nextn.shared_head_norm.weight", H);
  } else {
    m->fc = b.matrix(hf_prefix + "fc.weight", H, 2 * H);
    m->enorm = b.vector(hf_prefix + "pre_fc_norm_embedding.weight", H);
    m->hnorm = b.vector(hf_prefix + "pre_fc_norm_hidden.weight", H);
    m->norm = b.vector(hf_prefix + "norm.weight", H);
  }
  // The block is a decoder layer of the main stack's kind: pre-norm (K-EXAONE) or post-norm (4.5).
  if (c.norm == NormPlacement::Post) {
    bind_post_norm_layer(c, gguf_names, p, b, l);
  } else {
    bind_pre_norm_attention(c, gguf_names, p, b, l);
    bind_llama_mlp(c, gguf_names, p, c.intermediate_size, b, l);
  }
  // Only the first block drafts (every draft step reuses it, as with mtp_share_layers); deeper
  // ones are not executed.
  if (gguf_names) {
    ignore_mtp_blocks(c, true, c.n_layers + 1, b);
  } else {
    b.ignore_prefix(hf_prefix);
  }
  // A missing or misshapen tensor is reported by Binder::finish(); keep the block only when whole.
  bool whole = m->fc && l.wq && l.wk && l.wv && l.wo && l.gate && l.up && l.down;
  if (whole) w.mtp = std::move(m);
}

}  // namespace kexa::model_detail
