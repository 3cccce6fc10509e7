// tokenizer.json normalizers and decoders (the parts around the model), as HF tokenizers runs them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kexa::tok {

class Normalizer {
 public:
  Normalizer();
  ~Normalizer();
  Normalizer(Normalizer&&) noexcept;
  Normalizer& operator=(Normalizer&&) noexcept;

  static Normalizer from_json(const nlohmann::json& j, const std::string& where);  // null ok
  static Normalizer nfc();
  bool empty() const { return steps_.empty(); }
  std::string apply(std::string_view s) const;

  struct Step;

 private:
  std::vector<Step> steps_;
};

class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;

  static Decoder from_json(const nlohmann::json& j, const std::string& where);  // null ok
  static Decoder byte_level();
  // SentencePiece BPE as HF converts it: Replace(▁→' '), ByteFallback, Fuse, Strip(' ', 1, 0).
  static Decoder sentencepiece();

  bool empty() const { return steps_.empty(); }
  // Only ByteLevel: each token decodes on its own (per-id bytes can be precomputed).
  bool is_byte_level_only() const;
  // Bytes (no U+FFFD substitution, unlike HF's lossy ByteLevel/ByteFallback).
  std::string decode(std::vector<std::string> tokens) const;

  struct Step;

 private:
  std::vector<Step> steps_;
};

}  // namespace kexa::tok
