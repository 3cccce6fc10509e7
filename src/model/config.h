// One description of every EXAONE generation: global hyperparameters plus a per-layer plan.
// Architecture files translate config.json / GGUF metadata into this; one decoder executes it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "formats/transformer_shape.h"
#include "model/moe.h"

namespace kexa {
namespace gguf { class File; class Writer; }

enum class Arch { Exaone, Exaone4, ExaoneMoe };

// Pre: RMSNorm before each sublayer (EXAONE 3.x, K-EXAONE).
// Post: no input norm; RMSNorm on each sublayer's output before the residual add (EXAONE 4.0).
enum class NormPlacement { Pre, Post };

struct RopeScaling {
  enum class Type { None, Llama3 } type = Type::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
};

struct LayerPlan {
  int64_t window = 0;   // sliding window W (keys q-W+1..q visible); 0 = full attention
  bool rope = true;     // false on NoPE global layers
  bool moe = false;     // MoE MLP instead of dense SwiGLU
};

// n_layers counts the main decoder layers (MTP layers not included).
struct ModelConfig : TransformerShape {
  Arch arch = Arch::Exaone;
  std::string model_type;  // "exaone", "exaone4", "exaone_moe"
  int64_t vocab_size = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position = 0;
  bool tie_word_embeddings = false;
  bool qk_norm = false;
  NormPlacement norm = NormPlacement::Pre;
  std::vector<LayerPlan> layers;
  // The sliding window W the source declares, kept even when no layer slides (EXAONE 4.0 writes
  // it to GGUF then); 0 = none declared. The layers' windows are what runs.
  int64_t sliding_window = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = -1;

  // Mixture of experts (exaone_moe only).
  moe::RouterParams router;  // experts, experts used per token, group-limited routing, scaling
  int64_t moe_intermediate_size = 0;
  int64_t n_shared_experts = 0;
  // Width of the (summed) shared expert; HF: moe_intermediate_size * num_shared_experts.
  int64_t shared_intermediate_size = 0;
  int64_t n_mtp_layers = 0;  // exaone_moe and exaone4 (num_nextn_predict_layers)
  // Attention plan of the MTP block: mtp_layer_types / mtp_sliding_windows when given (K-EXAONE:
  // ["full_attention"] -> global, NoPE because the model has sliding layers), otherwise global
  // for exaone_moe and layer 0's plan for exaone4 (EXAONE 4.5: sliding with RoPE, as vLLM builds
  // it). Meaningful only when n_mtp_layers > 0.
  LayerPlan mtp_layer{0, false, false};

  // GGUF files carry llama3 scaling as a tensor (rope_freqs.weight): one divisor per frequency,
  // applied as inv_freq[i] / divisor[i]. Filled by the loader; empty for HF checkpoints, which
  // use rope_scaling instead.
  std::vector<float> rope_freq_divisors;

  // `origin` (a path) prefixes error messages. Unknown model_type, missing or inconsistent keys
  // throw kexa::Error naming the key.
  static ModelConfig from_hf_json(const nlohmann::json& config, std::string_view origin);
  static ModelConfig from_gguf(const gguf::File& file);

  // llama3 rope scaling as llama.cpp's converter bakes it into rope_freqs.weight: one divisor per
  // frequency pair, in float32 like its torch code. Throws when the scaling is degenerate.
  std::vector<float> llama3_rope_freq_divisors() const;

  // inv_freq[i] for i < head_dim/2 after rope scaling.
  std::vector<float> rope_inv_freq() const;
  bool has_sliding_layers() const;
  // Layers of sliding type (window > 0).
  int64_t n_sliding_layers() const;
  // Width of the attention projections (n_heads * head_dim); differs from hidden_size in K-EXAONE.
  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  // One-line human summary ("exaone4 L=30 H=2048 heads=32/8x64 ...") for logs and errors.
  std::string summary() const;
};

// llama.cpp's GGUF architecture name ("exaone", "exaone4", "exaone-moe").
std::string gguf_architecture(Arch arch);

// What a GGUF file says about itself besides the model (general.*).
struct GgufGeneral {
  std::string name;         // general.name
  uint32_t file_type = 0;   // general.file_type: llama.cpp's LLAMA_FTYPE of the dominant weight type
};

// Writes `c` as the general.* and <arch>.* metadata from_gguf reads back, with llama.cpp's keys in
// its converter's order (so llama.cpp loads the file). block_count covers the n_mtp_layers MTP
// blocks after the main stack. `origin` prefixes errors: llama.cpp's exaone-moe needs every dense
// layer before the first MoE layer.
void write_gguf_metadata(const ModelConfig& c, const GgufGeneral& general, std::string_view origin,
                         gguf::Writer& w);

}  // namespace kexa
