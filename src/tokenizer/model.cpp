#include "tokenizer/model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <queue>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace kexa::tok {

size_t StringHash::operator()(std::string_view s) const noexcept {
  // FNV-1a over 8-byte words: pieces are short and hashing dominates cache lookups.
  uint64_t h = 0xcbf29ce484222325ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < s.size(); ++i) h = (h ^ static_cast<uint8_t>(s[i])) * 0x100000001b3ull;
  return static_cast<size_t>(h ^ (h >> 32));
}

bool PieceCache::get(std::string_view piece, std::vector<int32_t>& out) const {
  Shard& sh = shards_[StringHash{}(piece) % kShards];
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.map.find(piece);
  if (it == sh.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void PieceCache::put(std::string_view piece, const int32_t* ids, size_t n) const {
  Shard& sh = shards_[StringHash{}(piece) % kShards];
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.map.size() >= kMaxPerShard) sh.map.clear();  // bounded memory; hot pieces come back
  sh.map.emplace(std::string(piece), std::vector<int32_t>(ids, ids + n));
}

namespace {

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
}
inline uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

std::string byte_token_name(int b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

}  // namespace

void BpeModel::build(const TokenMap& vocab,
                     const std::vector<std::pair<std::string, std::string>>& merges,
                     BpeOptions opts, const std::string& where) {
  opts_ = std::move(opts);
  model_vocab_.clear();
  if (opts_.byte_level) {
    // Strings outside the byte alphabet (e.g. literal-space added tokens) can never come out of
    // byte-level pre-tokenization, so they stay out of the model's lookup table.
    std::string bytes;
    for (const auto& [tok, id] : vocab)
      if (unmap_byte_level(tok, bytes)) model_vocab_[bytes] = id;
  } else {
    model_vocab_ = vocab;
  }
  byte_id_.fill(-1);
  fallback_id_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    if (opts_.byte_level) {
      auto it = model_vocab_.find(std::string(1, char(b)));
      if (it != model_vocab_.end()) byte_id_[b] = it->second;
    }
    auto it = vocab.find(byte_token_name(b));
    if (it != vocab.end()) fallback_id_[b] = it->second;
  }

  size_t cap = 16;
  while (cap < merges.size() * 2 + 16) cap <<= 1;
  table_.assign(cap, MergeSlot{});
  mask_ = cap - 1;
  n_merges_ = merges.size();
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    auto ia = vocab.find(a), ib = vocab.find(b), ic = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || ic == vocab.end()) {
      const std::string& missing = ia == vocab.end() ? a : ib == vocab.end() ? b : a + b;
      fail(where, ": merge ", r + 1, " '", a, " ", b, "': token '", missing, "' is not in the vocab");
    }
    const uint64_t key = pair_key(ia->second, ib->second);
    for (uint64_t s = mix(key) & mask_;; s = (s + 1) & mask_) {
      MergeSlot& slot = table_[s];
      if (slot.key == key || slot.key == ~uint64_t(0)) {
        // A repeated merge takes the later rank, as HF's map construction does.
        slot = {key, int32_t(r), ic->second};
        break;
      }
    }
  }
}

const BpeModel::MergeSlot* BpeModel::find_merge(int32_t a, int32_t b) const {
  const uint64_t key = pair_key(a, b);
  for (uint64_t s = mix(key) & mask_;; s = (s + 1) & mask_) {
    const MergeSlot& slot = table_[s];
    if (slot.key == key) return &slot;
    if (slot.key == ~uint64_t(0)) return nullptr;
  }
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (opts_.byte_level && piece.size() == 1 && byte_id_[static_cast<uint8_t>(piece[0])] >= 0) {
    out.push_back(byte_id_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (opts_.ignore_merges) {
    auto it = model_vocab_.find(piece);
    if (it != model_vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() <= 256;
  if (cacheable && cache_->get(piece, out)) return;
  const size_t before = out.size();
  encode_uncached(piece, out);
  if (cacheable) cache_->put(piece, out.data() + before, out.size() - before);
}

void BpeModel::encode_uncached(std::string_view w, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
  };
  std::vector<Sym> syms;
  syms.reserve(w.size());
  auto add = [&](int32_t id, uint32_t len) {
    const int32_t n = int32_t(syms.size());
    syms.push_back({id, n - 1, n + 1, len});
  };
  std::optional<std::pair<int32_t, uint32_t>> unk;  // pending (unk id, byte length)
  auto flush_unk = [&] {
    if (unk) add(unk->first, unk->second), unk.reset();
  };
  std::string tmp;
  for (size_t i = 0; i < w.size();) {
    uint32_t len = opts_.byte_level ? 1 : decode_utf8(w, i).len;
    int32_t id = -1;
    if (opts_.byte_level && opts_.continuing_subword_prefix.empty() && opts_.end_of_word_suffix.empty()) {
      id = byte_id_[static_cast<uint8_t>(w[i])];
    } else {
      tmp.assign(w.substr(i, len));
      if (i != 0) tmp.insert(0, opts_.continuing_subword_prefix);
      if (i + len == w.size()) tmp += opts_.end_of_word_suffix;
      auto it = model_vocab_.find(tmp);
      if (it != model_vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      flush_unk();
      add(id, len);
    } else {
      bool done = false;
      if (opts_.byte_fallback) {
        bool all = true;
        for (uint32_t k = 0; k < len; ++k) all &= fallback_id_[static_cast<uint8_t>(w[i + k])] >= 0;
        if (all) {
          // HF does not flush a pending unk here; byte tokens go in first.
          for (uint32_t k = 0; k < len; ++k) add(fallback_id_[static_cast<uint8_t>(w[i + k])], 1);
          done = true;
        }
      }
      if (!done && opts_.unk) {
        if (unk && opts_.fuse_unk) {
          unk->second += len;
        } else {
          flush_unk();
          unk = std::make_pair(*opts_.unk, len);
        }
      }
    }
    i += len;
  }
  flush_unk();
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Cand> heap;
  heap.reserve(syms.size());
  auto consider = [&](int32_t pos) {
    const int32_t nx = syms[pos].next;
    if (nx < 0) return;
    if (const MergeSlot* m = find_merge(syms[pos].id, syms[nx].id)) {
      heap.push_back({m->rank, pos, m->new_id});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (int32_t p = 0; p + 1 < int32_t(syms.size()); ++p) consider(p);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Cand top = heap.back();
    heap.pop_back();
    Sym& cur = syms[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    const int32_t nx = cur.next;
    const MergeSlot* m = find_merge(cur.id, syms[nx].id);
    if (!m || m->new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += syms[nx].len;
    syms[nx].len = 0;
    cur.next = syms[nx].next;
    if (cur.next >= 0) syms[cur.next].prev = top.pos;
    if (cur.prev >= 0) consider(cur.prev);
    consider(top.pos);
  }
  for (const Sym& s : syms)
    if (s.len) out.push_back(s.id);
}

// ----------------------------------------------------------------------------- SentencePiece

void SpmModel::build(const TokenMap& vocab, std::vector<float> scores, std::optional<int32_t> unk) {
  vocab_ = &vocab;
  scores_ = std::move(scores);
  unk_ = unk;
  byte_id_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(byte_token_name(b));
    if (it != vocab.end()) byte_id_[b] = it->second;
  }
}

void SpmModel::encode(std::string_view text, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t prev, next;
    uint32_t off, len;
  };
  std::vector<Sym> syms;
  for (size_t i = 0; i < text.size();) {
    uint32_t len = decode_utf8(text, i).len;
    const int32_t n = int32_t(syms.size());
    syms.push_back({n - 1, n + 1, uint32_t(i), len});
    i += len;
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  struct Big {
    float score;
    int32_t left, right;
    uint32_t size;
  };
  auto worse = [](const Big& a, const Big& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Big, std::vector<Big>, decltype(worse)> queue(worse);
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    std::string_view t = text.substr(syms[l].off, syms[l].len + syms[r].len);
    auto it = vocab_->find(t);
    if (it == vocab_->end() || size_t(it->second) >= scores_.size()) return;
    queue.push({scores_[it->second], l, r, uint32_t(t.size())});
  };
  for (int32_t i = 1; i < int32_t(syms.size()); ++i) try_pair(i - 1, i);
  while (!queue.empty()) {
    Big b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_pair(l.prev, b.left);
    try_pair(b.left, l.next);
  }
  for (int32_t i = 0; i != -1; i = syms[i].next) {
    std::string_view t = text.substr(syms[i].off, syms[i].len);
    auto it = vocab_->find(t);
    if (it != vocab_->end()) {
      out.push_back(it->second);
      continue;
    }
    // Merged symbols are always tokens, so this is a single character without one.
    for (char ch : t) {
      int32_t id = byte_id_[static_cast<uint8_t>(ch)];
      if (id >= 0) out.push_back(id);
      else if (unk_) out.push_back(*unk_);
    }
  }
}

}  // namespace kexa::tok
