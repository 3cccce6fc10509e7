#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace kexa {

const float* InputEmbeddings::row_at(int64_t pos) const {
  for (const Span& s : spans) {
    if (pos < s.pos) return nullptr;
    if (pos < s.pos + s.count) return rows.data() + s.offset + static_cast<size_t>((pos - s.pos) * width);
  }
  return nullptr;
}

int64_t InputEmbeddings::count() const {
  int64_t n = 0;
  for (const Span& s : spans) n += s.count;
  return n;
}

std::optional<KVType> parse_kv_type(std::string_view name) {
  if (name == "f32") return KVType::F32;
  if (name == "f16") return KVType::F16;
  return std::nullopt;
}

const char* kv_type_name(KVType type) { return type == KVType::F16 ? "f16" : "f32"; }

KVCache::KVCache(const ModelConfig& config, int64_t max_context, int64_t chunk, KVType type)
    : KVCache(config.layers, config.n_kv_heads, config.head_dim, max_context, chunk, type) {}

KVCache::KVCache(const std::vector<LayerPlan>& plans, int64_t heads, int64_t head_dim, int64_t max_context,
                 int64_t chunk, KVType type)
    : type_(type), max_context_(max_context), chunk_(chunk), heads_(heads), head_dim_(head_dim) {
  if (max_context <= 0) fail("KV cache: context size must be positive, got ", max_context);
  if (chunk <= 0) fail("KV cache: chunk size must be positive, got ", chunk);
  chunk_ = std::min(chunk, max_context);
  if (heads <= 0 || head_dim <= 0) fail("KV cache: ", heads, " heads of ", head_dim, " elements");
  const int64_t row = row_size();
  layers_.resize(plans.size());
  windows_.resize(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) {
    const int64_t w = plans[i].window;
    windows_[i] = w;
    // A sliding layer's oldest needed key during a chunk of C tokens is W-1 positions before the
    // chunk's first token, so W-1+C slots suffice; smaller would let the chunk overwrite keys its
    // own earlier rows still read.
    int64_t slots = w > 0 ? std::min(w - 1 + chunk_, max_context_) : max_context_;
    Layer& l = layers_[i];
    l.slots = slots;
    // Whole floats of storage: an f16 row of an odd element count rounds up.
    const size_t floats = (static_cast<size_t>(slots * row) * element_bytes() + 3) / 4;
    l.k.assign(floats, 0.0f);
    l.v.assign(floats, 0.0f);
  }
}

bool KVCache::can_truncate(int64_t n) const {
  if (n < 0 || n > n_past_) return false;
  for (size_t i = 0; i < layers_.size(); ++i) {
    // Position p sits in slot p % slots. After truncating to n the next query (position n)
    // reads keys from max(0, n - W + 1) on; they are intact unless a position written since,
    // i.e. below n_past, reached their slot again: n_past - slots > n - W.
    const int64_t w = windows_[i];
    const int64_t s = layers_[i].slots;
    const int64_t oldest_needed = w > 0 ? std::max<int64_t>(0, n - w + 1) : 0;
    if (n_past_ - s > oldest_needed) return false;
  }
  return true;
}

void KVCache::truncate(int64_t n) {
  if (n < 0 || n > n_past_) fail("KV cache: cannot truncate to ", n, " positions; it holds ", n_past_);
  if (!can_truncate(n)) {
    fail("KV cache: cannot roll back from ", n_past_, " to ", n,
         " positions: a sliding-window ring has already overwritten keys still needed (at most ", chunk_,
         " positions can be rolled back)");
  }
  n_past_ = n;
}

int64_t KVCache::slots(int64_t layer) const { return layers_.at(static_cast<size_t>(layer)).slots; }

size_t KVCache::bytes() const {
  size_t total = 0;
  for (const Layer& l : layers_) total += (l.k.size() + l.v.size()) * sizeof(float);
  return total;
}

void* KVCache::keys(int64_t layer) { return layers_[static_cast<size_t>(layer)].k.data(); }
void* KVCache::values(int64_t layer) { return layers_[static_cast<size_t>(layer)].v.data(); }

void KVCache::copy_from(const KVCache& from) {
  if (from.n_layers() != n_layers() || from.heads_ != heads_ || from.head_dim_ != head_dim_ ||
      from.max_context_ != max_context_ ||
      from.type_ != type_)
    fail("KV cache copy: the caches were made for different models, contexts or element types");
  const int64_t n = from.n_past_;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& a = from.layers_[l];
    Layer& b = layers_[l];
    if (a.slots != b.slots) fail("KV cache copy: layer ", l, " has ", a.slots, " and ", b.slots, " slots");
    // Position p sits in slot p % slots: each head's first min(n, slots) slots are all that is written.
    const size_t head_bytes = static_cast<size_t>(b.slots * head_dim_) * element_bytes();
    const size_t bytes = static_cast<size_t>(std::min(n, a.slots) * head_dim_) * element_bytes();
    for (int64_t h = 0; h < heads_; ++h) {
      std::memcpy(reinterpret_cast<char*>(b.k.data()) + h * head_bytes,
                  reinterpret_cast<const char*>(a.k.data()) + h * head_bytes, bytes);
      std::memcpy(reinterpret_cast<char*>(b.v.data()) + h * head_bytes,
                  reinterpret_cast<const char*>(a.v.data()) + h * head_bytes, bytes);
    }
  }
  n_past_ = n;
}

}  // namespace kexa
