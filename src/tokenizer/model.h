// The subword models: BPE by merge rank (HF tokenizers' algorithm, with byte fallback and a
// thread-safe piece cache) and SentencePiece-style BPE by score (llama.cpp's `llama` vocab type).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kexa::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Piece -> ids memo shared by all threads; sharded so concurrent encodes rarely contend.
class PieceCache {
 public:
  bool get(std::string_view piece, std::vector<int32_t>& out) const;  // appends on hit
  void put(std::string_view piece, const int32_t* ids, size_t n) const;

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kMaxPerShard = 4096;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

struct BpeOptions {
  bool byte_level = false;  // pieces are raw bytes; vocab strings are GPT-2 byte-mapped
  bool byte_fallback = false;
  bool ignore_merges = false;
  bool fuse_unk = false;
  std::optional<int32_t> unk;
  std::string continuing_subword_prefix, end_of_word_suffix;
};

class BpeModel {
 public:
  // vocab: token string (as in the file) -> id; merges in rank order.
  // Throws kexa::Error naming `where` for a merge whose parts or result are not in the vocab.
  void build(const TokenMap& vocab, const std::vector<std::pair<std::string, std::string>>& merges,
             BpeOptions opts, const std::string& where);
  void encode(std::string_view piece, std::vector<int32_t>& out) const;
  size_t merge_count() const { return n_merges_; }

 private:
  struct MergeSlot {
    uint64_t key = ~uint64_t(0);
    int32_t rank = 0;
    int32_t new_id = 0;
  };
  const MergeSlot* find_merge(int32_t a, int32_t b) const;
  void encode_uncached(std::string_view piece, std::vector<int32_t>& out) const;

  BpeOptions opts_;
  TokenMap model_vocab_;  // in the model alphabet (raw bytes when byte_level)
  std::array<int32_t, 256> byte_id_{};  // byte_level: id of each single byte, -1 if absent
  std::array<int32_t, 256> fallback_id_{};  // "<0xXX>" ids, -1 if absent
  std::vector<MergeSlot> table_;
  uint64_t mask_ = 0;
  size_t n_merges_ = 0;
  std::unique_ptr<PieceCache> cache_ = std::make_unique<PieceCache>();
};

// llama.cpp's SentencePiece tokenizer: greedy merges of the adjacent pair whose concatenation
// is a token with the highest score; characters without a token become <0xXX> byte tokens.
class SpmModel {
 public:
  void build(const TokenMap& vocab, std::vector<float> scores, std::optional<int32_t> unk);
  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  const TokenMap* vocab_ = nullptr;
  std::vector<float> scores_;
  std::array<int32_t, 256> byte_id_{};
  std::optional<int32_t> unk_;
};

}  // namespace kexa::tok
