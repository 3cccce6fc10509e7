// Internal state of kexa::Tokenizer, shared by the loaders and the encoder. Not a public header.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tokenizer/components.h"
#include "tokenizer/model.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace kexa {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// Leftmost-longest matcher over the added tokens' contents (what HF's Aho-Corasick does).
class AddedTokenTrie {
 public:
  void build(const std::vector<AddedToken>& tokens, bool normalized_set,
             const tok::Normalizer* normalizer);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest token starting at `pos`: index into the token list, and its byte length.
  bool match_at(std::string_view s, size_t pos, int32_t& index, size_t& len) const;
  bool may_start(uint8_t b) const { return first_[b]; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> kids;  // sorted by byte
    int32_t token = -1;
  };
  std::vector<Node> nodes_;
  bool first_[256] = {};
};

struct Tokenizer::Impl {
  std::string source;
  // Vocabulary as written in the files (byte-mapped strings for byte-level BPE).
  std::vector<std::string> id_to_token;
  tok::TokenMap token_to_id;
  std::vector<std::string> id_piece;  // what each id decodes to on its own
  std::vector<uint8_t> special;       // per id

  std::vector<AddedToken> added;
  AddedTokenTrie raw_trie, norm_trie;

  tok::Normalizer normalizer;
  tok::PreTokenizer pre;
  enum class ModelKind { kBpe, kSpm } model_kind = ModelKind::kBpe;
  tok::BpeModel bpe;
  tok::SpmModel spm;
  bool spm_space_prefix = true;  // llama.cpp SPM: ' ' before text at the start / after specials
  tok::Decoder decoder;

  std::vector<int32_t> prefix_ids, suffix_ids;  // added by encode(add_special_tokens=true)
  std::optional<int32_t> bos, pad;
  std::vector<int32_t> eos;

  // Called by every loader once the vocab, added tokens and components are set.
  void finalize();
  void encode_segment(std::string_view text, bool at_origin, bool& prev_special,
                      std::vector<int32_t>& out, tok::Pieces& scratch) const;
};

}  // namespace kexa
