// Per-sequence key/value cache. Global layers keep every position; sliding-window layers keep a
// ring of W-1+chunk entries, never the whole context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace kexa {

// Element type of the cached keys and values. F32 keeps them as the forward pass computed them
// (exact to the references); F16 (IEEE half, round to nearest even, as llama.cpp's default cache)
// halves the cache's memory and the bytes attention reads per token, at a relative error of at
// most 2^-11 per element. Attention widens f16 rows to f32 and then computes as with F32 rows.
enum class KVType { F32, F16 };
// "f32", "f16"; nullopt for anything else.
std::optional<KVType> parse_kv_type(std::string_view name);
const char* kv_type_name(KVType type);

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
  KVCache(const ModelConfig& config, int64_t max_context, int64_t chunk = 512, KVType type = KVType::F32);
  // A cache for explicitly given layer plans (the MTP head's own layer), `heads` KV heads of
  // `head_dim` elements per position.
  KVCache(const std::vector<LayerPlan>& layers, int64_t heads, int64_t head_dim, int64_t max_context,
          int64_t chunk = 512, KVType type = KVType::F32);

  int64_t n_past() const { return n_past_; }
  int64_t max_context() const { return max_context_; }
  int64_t chunk() const { return chunk_; }
  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t row_size() const { return heads_ * head_dim_; }  // elements per position (all KV heads)
  int64_t heads() const { return heads_; }
  int64_t head_dim() const { return head_dim_; }
  KVType type() const { return type_; }
  size_t element_bytes() const { return type_ == KVType::F16 ? 2 : 4; }
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

  // Used by the forward pass: layer `layer`'s elements of type() (float, or IEEE half bits as
  // uint16_t), head-major: element i of KV head h at position p sits at
  //   (h * slots(layer) + p % slots(layer)) * head_dim() + i,
  // so one head's rows are contiguous and attention reads them as one stream.
  void* keys(int64_t layer);
  void* values(int64_t layer);
  // Makes this cache hold the sequence `from` holds: the keys and values of its positions (a
  // sliding layer's whole ring once it has wrapped) and its length. Both caches must have been
  // made for the same model with the same context, chunk and type (kexa::Error otherwise).
  void copy_from(const KVCache& from);
  void advance(int64_t n) { n_past_ += n; }

 private:
  struct Layer {
    int64_t slots = 0;
    // [heads][slots][head_dim] elements of type_, as raw storage (float-aligned).
    std::vector<float> k;
    std::vector<float> v;
  };
  KVType type_ = KVType::F32;
  std::vector<Layer> layers_;
  std::vector<int64_t> windows_;  // per layer, 0 = global
  int64_t n_past_ = 0;
  int64_t max_context_ = 0;
  int64_t chunk_ = 0;
  int64_t heads_ = 0;
  int64_t head_dim_ = 0;
  std::shared_ptr<const InputEmbeddings> embeddings_;
};

}  // namespace kexa
