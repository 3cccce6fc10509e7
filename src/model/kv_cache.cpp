#include "model/kv_cache.h"

#include <algorithm>

#include "util/error.h"

namespace kexa {

KVCache::KVCache(const ModelConfig& config, int64_t max_context, int64_t chunk)
    : max_context_(max_context), chunk_(chunk) {
  if (max_context <= 0) fail("KV cache: context size must be positive, got ", max_context);
  if (chunk <= 0) fail("KV cache: chunk size must be positive, got ", chunk);
  chunk_ = std::min(chunk, max_context);
  const int64_t row = config.kv_dim();
  row_ = row;
  layers_.resize(config.layers.size());
  for (size_t i = 0; i < config.layers.size(); ++i) {
    const int64_t w = config.layers[i].window;
    // A sliding layer's oldest needed key during a chunk of C tokens is W-1 positions before the
    // chunk's first token, so W-1+C slots suffice; smaller would let the chunk overwrite keys its
    // own earlier rows still read.
    int64_t slots = w > 0 ? std::min(w - 1 + chunk_, max_context_) : max_context_;
    Layer& l = layers_[i];
    l.slots = slots;
    l.k.assign(static_cast<size_t>(slots * row), 0.0f);
    l.v.assign(static_cast<size_t>(slots * row), 0.0f);
  }
}

int64_t KVCache::slots(int64_t layer) const { return layers_.at(static_cast<size_t>(layer)).slots; }

size_t KVCache::bytes() const {
  size_t total = 0;
  for (const Layer& l : layers_) total += (l.k.size() + l.v.size()) * sizeof(float);
  return total;
}

float* KVCache::keys(int64_t layer) { return layers_[static_cast<size_t>(layer)].k.data(); }
float* KVCache::values(int64_t layer) { return layers_[static_cast<size_t>(layer)].v.data(); }

}  // namespace kexa
