// A loaded EXAONE model (any generation) and the forward pass that executes its per-layer plan.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "formats/tensor.h"
#include "model/config.h"

namespace kexa {

class ThreadPool;
class KVCache;

struct LoadOptions {
  int n_threads = 0;  // 0 = all online CPUs
};

class Model {
 public:
  // `path`: a Hugging Face folder (config.json + safetensors) or a .gguf file. Validates names,
  // shapes and dtypes of every tensor against the config; throws kexa::Error naming the file, the
  // tensor and what was expected.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options = {});
  // Binds an already parsed config to tensors of any source (tests, converters). `gguf_names`
  // selects llama.cpp tensor naming; `origin` prefixes error messages.
  static std::unique_ptr<Model> from_source(ModelConfig config, std::unique_ptr<TensorSource> source,
                                            bool gguf_names, const std::string& origin,
                                            const LoadOptions& options = {});
  ~Model();

  const ModelConfig& config() const;
  const std::string& path() const;
  ThreadPool& pool();
  // Bytes of weights read per decoded token (for bandwidth rooflines).
  size_t weight_bytes() const;
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

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kexa
