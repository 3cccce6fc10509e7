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
  ~Model();

  const ModelConfig& config() const;
  const std::string& path() const;
  ThreadPool& pool();
  // Bytes of weights read per decoded token (for bandwidth rooflines).
  size_t weight_bytes() const;

  // Evaluates `tokens` for one sequence at positions cache.n_past() ... and appends them to the
  // cache (prefill is chunked internally to the cache's chunk size). `logits` receives
  // [tokens.size()][vocab] when all_logits, else only the last position's [vocab] row; it may be
  // empty when no logits are needed.
  void forward(std::span<const int32_t> tokens, KVCache& cache, std::span<float> logits,
               bool all_logits);

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kexa
