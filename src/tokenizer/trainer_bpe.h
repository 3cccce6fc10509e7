// Building blocks the BPE trainer shares with its own minimal encoder: the GPT-2 byte alphabet,
// regex pre-tokenizers (PCRE2, written to split exactly like the Oniguruma patterns HF stores in
// tokenizer.json), NFC normalisation and a byte-level BPE encoder that applies merges the way
// HF's BPE model does. The encoder lets the trainer segment SuperBPE's second-stage pre-tokens and
// lets `kexa tokenizer stats` measure any byte-level BPE vocabulary.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kexa::bpe {

// GPT-2's reversible byte -> printable code point table (UTF-8 encoded).
const std::array<std::string, 256>& byte_alphabet();
// Raw bytes -> the byte-level string stored in vocab.json / merges.
std::string to_byte_level(std::string_view bytes);
// Inverse of to_byte_level; returns false when a character is not in the alphabet.
bool from_byte_level(std::string_view text, std::string& bytes);

// Pre-tokenizer patterns as Hugging Face stores them (Oniguruma syntax).
// GPT-2 / EXAONE 3.x-4.0: word-bounded.
inline constexpr const char* kWordPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// K-EXAONE (exaone-architecture.md §6.3): letter runs continue across single spaces.
inline constexpr const char* kSuperwordPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)";

// Splits text into pieces with "isolated" behaviour: every match and every gap between matches
// is a piece, so the pieces concatenate back to the input. Thread-safe (match state is per call).
class RegexSplitter {
 public:
  // Takes an HF (Oniguruma) pattern; \s is rewritten to Oniguruma's Unicode whitespace set and
  // the two known patterns get possessive quantifiers so long inputs cannot exhaust the stack.
  explicit RegexSplitter(const std::string& hf_pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` (valid UTF-8) to `out`.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  const std::string& hf_pattern() const { return hf_pattern_; }

 private:
  struct Impl;
  std::string hf_pattern_;
  std::unique_ptr<Impl> impl_;
};

// Replaces invalid UTF-8 sequences with U+FFFD (as a lossy text reader would); returns how many.
size_t sanitize_utf8(std::string_view in, std::string& out);
// Unicode NFC of valid UTF-8.
std::string nfc(std::string_view text);

// Minimal byte-level BPE tokenizer: added tokens, optional NFC, one Split regex, byte-level
// mapping and rank-ordered merges with HF's tie rule (lowest rank, then leftmost).
class ByteLevelBpe {
 public:
  // Loads a directory (tokenizer.json, or vocab.json + merges.txt with the GPT-2 pattern) or a
  // tokenizer.json path. Only byte-level BPE with a Split/ByteLevel pre-tokenizer is supported.
  static ByteLevelBpe load(const std::string& path);
  // Builds from parts (the trainer uses this for its second stage).
  ByteLevelBpe(std::vector<std::string> vocab_bytes,
               const std::vector<std::array<uint32_t, 3>>& merges,  // left, right, result ids
               std::string hf_pattern, bool nfc, std::vector<std::string> added_tokens);
  ByteLevelBpe(ByteLevelBpe&&) noexcept;
  ByteLevelBpe& operator=(ByteLevelBpe&&) noexcept;
  ~ByteLevelBpe();

  using Cache = std::unordered_map<std::string, std::vector<uint32_t>>;
  // Encodes text (no BOS/EOS). The optional cache memoises pre-token results.
  void encode(std::string_view text, std::vector<uint32_t>& ids, Cache* cache = nullptr) const;
  // Merges the raw bytes of one pre-token (no normalisation, no splitting).
  void encode_piece(std::string_view piece_bytes, std::vector<uint32_t>& ids) const;

  size_t vocab_size() const { return vocab_.size(); }
  // Raw bytes of a token (added tokens: their literal text).
  const std::string& token_bytes(uint32_t id) const { return vocab_[id]; }
  bool is_added(uint32_t id) const;

 private:
  ByteLevelBpe() = default;
  void finish_init();

  std::vector<std::string> vocab_;                 // id -> raw bytes
  std::array<uint32_t, 256> byte_id_{};            // byte -> id
  std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> merges_;  // pair -> (rank, id)
  std::vector<std::pair<std::string, uint32_t>> added_;  // longest first
  std::unique_ptr<RegexSplitter> splitter_;
  bool nfc_ = false;
};

inline uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

}  // namespace kexa::bpe
