// K-EXAONE's multi-token-prediction block: tensor names (spec 4.2) for Hugging Face checkpoints
// (mtp.*) and GGUF files (block n_layers: blk.<L>.nextn.* plus ordinary attention/FFN names).
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

void bind_mtp(const ModelConfig& c, bool gguf_names, Binder& b, ModelWeights& w) {
  if (c.n_mtp_layers <= 0) return;
  const int64_t H = c.hidden_size;
  auto m = std::make_unique<MtpWeights>();
  LayerWeights& l = m->layer;
  const std::string p = gguf_names ? concat("blk.", c.n_layers, ".") : std::string("mtp.layers.0.");
  if (gguf_names) {
    m->fc = b.matrix(p + "nextn.eh_proj.weight", H, 2 * H);
    m->enorm = b.vector(p + "nextn.enorm.weight", H);
    m->hnorm = b.vector(p + "nextn.hnorm.weight", H);
    m->norm = b.vector(p + "nextn.shared_head_norm.weight", H);
  } else {
    m->fc = b.matrix("mtp.fc.weight", H, 2 * H);
    m->enorm = b.vector("mtp.pre_fc_norm_embedding.weight", H);
    m->hnorm = b.vector("mtp.pre_fc_norm_hidden.weight", H);
    m->norm = b.vector("mtp.norm.weight", H);
  }
  bind_pre_norm_attention(c, gguf_names, p, b, l);
  bind_llama_mlp(c, gguf_names, p, c.intermediate_size, b, l);
  // Only the first block drafts; deeper ones (none in released models) are not executed.
  ignore_mtp_blocks(c, gguf_names, c.n_layers + 1, b);
  // A missing or misshapen tensor is reported by Binder::finish(); keep the block only when whole.
  bool whole = m->fc && l.wq && l.wk && l.wv && l.wo && l.gate && l.up && l.down;
  if (whole) w.mtp = std::move(m);
}

}  // namespace kexa::model_detail
