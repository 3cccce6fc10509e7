// Text <-> token ids, identical to Hugging Face `tokenizers` for the EXAONE family (byte-level BPE
// with the GPT-2, EXAONE 3.x digit-splitting and K-EXAONE SuperBPE pre-tokenizers) and for the
// other tokenizer.json / GGUF vocabularies kexa meets (SentencePiece-style BPE with byte fallback).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kexa {

class ThreadPool;
namespace gguf {
class File;
}

class Tokenizer {
 public:
  // path: a model/tokenizer folder (tokenizer.json, or vocab.json + merges.txt +
  // tokenizer_config.json), a tokenizer.json file, or a .gguf (tokenizer.ggml.*).
  // model_type_hint ("exaone", "exaone4", "exaone_moe") picks the EXAONE pre-tokenizer for the
  // slow files when the folder has no config.json saying it. Throws kexa::Error naming the file
  // and the problem.
  static std::unique_ptr<Tokenizer> load(const std::string& path,
                                         std::string_view model_type_hint = {});
  // From an already opened GGUF file (tokenizer.ggml.*).
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);
  // Same, from the bytes of a tokenizer.json (source_path() is `origin`).
  static std::unique_ptr<Tokenizer> from_json(std::string_view json,
                                              const std::string& origin = "<memory>");

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // add_special_tokens: BOS/EOS etc. as the tokenizer's post-processor / config says.
  // parse_special: match special added tokens inside the text (false = treat them as text;
  // non-special added tokens are always matched, as in HF). Invalid UTF-8 is accepted: byte-level
  // vocabularies encode the raw bytes. Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true,
                              bool parse_special = true) const;
  // Encodes many texts in parallel (pool == nullptr: std::thread::hardware_concurrency threads).
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string> texts,
                                                 bool add_special_tokens = true,
                                                 bool parse_special = true,
                                                 ThreadPool* pool = nullptr) const;
  // Exact bytes: decode(encode(x)) == x for byte-level vocabularies (no U+FFFD substitution; a
  // cut-off multi-byte character comes back as its raw bytes).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  int32_t vocab_size() const;  // highest id + 1, added tokens included
  std::optional<int32_t> token_id(std::string_view token) const;  // as written in the vocab
  std::string token_text(int32_t id) const;  // vocab string ("" when out of range)
  // The bytes/text one token stands for on its own (byte-level mapping undone).
  std::string token_piece(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;  // EOS plus end-of-turn tokens known from the config
  std::optional<int32_t> pad_id() const;
  bool is_special(int32_t id) const;  // special added token / control token
  bool adds_bos() const;              // encode(..., add_special_tokens=true) prepends BOS

  const std::string& source_path() const;  // folder or file it was loaded from

  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming: push() returns the text that became final with this id
// and never emits a partial UTF-8 sequence (held back until complete; bytes that can never form
// valid UTF-8 come out as U+FFFD). finish() flushes what is left.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  std::string push(int32_t id);
  std::string finish();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0;  // window start: the text of ids_[prefix_, read_) was already emitted
  size_t read_ = 0;
};

}  // namespace kexa
