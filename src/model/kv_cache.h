// Per-sequence key/value cache. Global layers keep every position; sliding-window layers keep a
// ring of W-1+chunk entries, never the whole context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"

namespace kexa {

// Positions of a sequence whose input is an embedding vector instead of a token's embedding row
// (the image tokens of a vision-language model). Each span covers positions [pos, pos + count);
// its rows lie in `rows` from `offset` (floats), `width` floats each.
struct InputEmbeddings {
  struct Span {
    int64_t pos = 0;
    int64_t count = 0;
    size_t offset = 0;
  };
  int64_t width = 0;
  std::vector<Span> spans;  // ascending, not overlapping
  std::vector<float> rows;
  // The row for position `pos`, or nullptr when that position is an ordinary token.
  const float* row_at(int64_t pos) const;
  int64_t count() const;  // positions covered
};

class KVCache {
 public:
  // max_context: positions the sequence may reach; chunk: the most tokens evaluated per forward.
  KVCache(const ModelConfig& config, int64_t max_context, int64_t chunk = 512);
  // A cache for explicitly given layer plans (the MTP head's own layer), rows of `row_size` floats.
  KVCache(const std::vector<LayerPlan>& layers, int64_t row_size, int64_t max_context, int64_t chunk = 512);

  int64_t n_past() const { return n_past_; }
  int64_t max_context() const { return max_context_; }
  int64_t chunk() const { return chunk_; }
  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t row_size() const { return row_; }  // floats per position (n_kv_heads * head_dim)
  // Slots allocated for layer `layer` (W-1+chunk for sliding layers, max_context for global).
  int64_t slots(int64_t layer) const;
  size_t bytes() const;  // total bytes held by K and V of all layers
  void clear() { n_past_ = 0; }
  // The sequence's embedding inputs (shared, never modified); null: every position is a token.
  // The forward pass takes a position's input from here when it is covered.
  void set_input_embeddings(std::shared_ptr<const InputEmbeddings> e) { embeddings_ = std::move(e); }
  const InputEmbeddings* input_embeddings() const { return embeddings_.get(); }
  const std::shared_ptr<const InputEmbeddings>& shared_input_embeddings() const { return embeddings_; }
  // Forgets positions >= n (speculative decoding rolls back rejected drafts). Keys of the kept
  // positions stay valid as long as no ring slot they occupy was reused, i.e. on sliding layers
  // when n_past() - n <= chunk(); can_truncate says whether that holds, truncate throws when not.
  bool can_truncate(int64_t n) const;
  void truncate(int64_t n);

  // Used by the forward pass.
  float* keys(int64_t layer);
  float* values(int64_t layer);
  void advance(int64_t n) { n_past_ += n; }

 private:
  struct Layer {
    int64_t slots = 0;
    std::vector<float> k;  // [slots][n_kv_heads * head_dim]
    std::vector<float> v;
  };
  std::vector<Layer> layers_;
  std::vector<int64_t> windows_;  // per layer, 0 = global
  int64_t n_past_ = 0;
  int64_t max_context_ = 0;
  int64_t chunk_ = 0;
  int64_t row_ = 0;
  std::shared_ptr<const InputEmbeddings> embeddings_;
};

}  // namespace kexa
