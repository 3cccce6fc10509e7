// A loaded EXAONE model (any generation) and the forward pass that executes its per-layer plan.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "formats/tensor.h"
#include "model/config.h"
#include "model/kv_cache.h"

namespace kexa {

class ThreadPool;
class KVCache;
namespace gguf {
class File;
}

// Where the decoder's operations run (model/backend.h).
enum class Device {
  Cpu,     // the CPU kernels
  Vulkan,  // the first Vulkan device, GPU or not (lavapipe included); the CPU when none is usable
  Auto,    // a Vulkan GPU (discrete, integrated or virtual) when one is usable, else the CPU
};
// "cpu", "vulkan", "auto"; nullopt for anything else.
std::optional<Device> parse_device(std::string_view name);

struct LoadOptions {
  int n_threads = 0;  // 0 = all online CPUs
  Device device = Device::Cpu;
  // On a device backend: how many of the first layers run there (their weights uploaded); the
  // others run on the CPU from the mapped file. -1 = all layers, the output matrix and the MTP
  // block; with fewer, the output matrix and MTP block stay on the CPU too.
  int64_t gpu_layers = -1;
  // Element type of the KV caches made for this model by the runtime (Model::kv_type).
  KVType kv_type = KVType::F32;
};

class Model {
 public:
  // `path`: a Hugging Face folder (config.json + safetensors) or a .gguf file. Validates names,
  // shapes and dtypes of every tensor against the config; throws kexa::Error naming the file, the
  // tensor and what was expected.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options = {});
  // From an already opened GGUF file (the model keeps it: weights stay in its mapping).
  static std::unique_ptr<Model> from_gguf(std::unique_ptr<gguf::File> file, const LoadOptions& options = {});
  // Binds an already parsed config to tensors of any source (tests, converters). `gguf_names`
  // selects llama.cpp tensor naming; `origin` prefixes error messages.
  static std::unique_ptr<Model> from_source(ModelConfig config, std::unique_ptr<TensorSource> source,
                                            bool gguf_names, const std::string& origin,
                                            const LoadOptions& options = {});
  ~Model();

  const ModelConfig& config() const;
  const std::string& path() const;
  ThreadPool& pool();
  // The backend the decoder runs on: "cpu" or "vulkan (<device name>)".
  std::string backend_name() const;
  // Why the device asked for in LoadOptions is not the one used (e.g. "Vulkan: libvulkan.so.1
  // not found (...); running on the CPU"); empty when it is, and for Device::Auto without a GPU.
  const std::string& device_note() const;
  // LoadOptions::kv_type: what every KV cache made for this model's sequences should hold.
  KVType kv_type() const;
  // Bytes of weights read per decoded token (for bandwidth rooflines).
  size_t weight_bytes() const;
  // Mixture-of-experts models: bytes of all routed experts (0 for dense models), and the expert
  // bytes the forward passes read since the last reset (each chosen expert counted once per
  // layer per step, however many rows chose it).
  size_t expert_bytes() const;
  struct ExpertStats {
    uint64_t bytes_touched = 0;
    uint64_t layer_steps = 0;  // MoE layer evaluations
    // The same restricted to steps of a single row (plain decoding of one sequence).
    uint64_t decode_bytes = 0;
    uint64_t decode_layer_steps = 0;
  };
  ExpertStats expert_stats() const;
  void reset_expert_stats();
  // True when the output projection reuses the embedding matrix (decided by the tensors present).
  bool tied_embeddings() const;

  // Evaluates `tokens` for one sequence at positions cache.n_past() ... and appends them to the
  // cache (prefill is chunked internally to the cache's chunk size). `logits` receives
  // [tokens.size()][vocab] when all_logits, else only the last position's [vocab] row; it may be
  // empty when no logits are needed. Not reentrant: one forward at a time per Model (activation
  // buffers are reused across calls so the hot loop does not allocate).
  void forward(std::span<const int32_t> tokens, KVCache& cache, std::span<float> logits,
               bool all_logits);

  // One step of several independent sequences (continuous batching): each item's tokens are
  // evaluated at its own cache's end and its `logits` receives the last position's row (or
  // nothing when empty). The weights are read once for the whole batch.
  struct BatchItem {
    std::span<const int32_t> tokens;
    KVCache* cache = nullptr;
    std::span<float> logits;
  };
  void forward_batch(std::span<BatchItem> items);

  // When on, a forward over several rows of one sequence gives every row bit for bit the result
  // of evaluating it alone (single-token kernels per row; weights still read once per chunk of
  // rows). Speculative decoding verifies its drafts this way so that it reproduces plain decoding
  // exactly. Off by default (the batched kernels are faster for prefill).
  void set_exact_rows(bool on);

  // ---- Multi-token prediction (the MTP block of K-EXAONE or of an exaone4 / EXAONE 4.5 text
  // tower, spec 4.6, 4b; used by runtime/speculative) ----
  // True when the model carries a complete MTP block.
  bool has_mtp() const;
  // forward(), and also the final-normed hidden state (the lm_head input) of every evaluated row
  // into `hidden` ([tokens.size()][hidden_size]; may be empty).
  void forward_hidden(std::span<const int32_t> tokens, KVCache& cache, std::span<float> logits, bool all_logits,
                      std::span<float> hidden);
  // A KV cache for the MTP block's single layer.
  std::unique_ptr<KVCache> make_mtp_cache(int64_t max_context, int64_t chunk = 512) const;
  // Runs the MTP block on n = tokens.size() rows at positions mtp_cache.n_past() ...: row t joins
  // hidden[t] (the final-normed hidden state of position p = n_past + t, or the block's own
  // previous output when drafting further ahead) with tokens[t] (the token at p + 1), and
  // predicts the token at p + 2. When mtp_cache has input embeddings (KVCache::
  // set_input_embeddings with the sequence's own, indexed by sequence position) and they cover
  // p + 1, that row is row t's input instead of tokens[t]'s embedding, as in the main model.
  // `logits` gets [n][vocab] when all_logits, else the last row;
  // `out_hidden` ([n][hidden_size], may be empty) the block's normalised output, which is the
  // next draft step's `hidden`. Throws when the model has no MTP block.
  void mtp_forward(std::span<const int32_t> tokens, std::span<const float> hidden, KVCache& mtp_cache,
                   std::span<float> logits, bool all_logits, std::span<float> out_hidden);

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kexa
