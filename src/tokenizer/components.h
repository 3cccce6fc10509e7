// tokenizer.json normalizers and decoders (the parts around the model), as HF tokenizers runs them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/steps.h"

namespace kexa::tok {

struct NormalizerStep;  // one normalizer of the sequence (defined in the .cpp)
struct DecoderStep;

class Normalizer : public Steps<Normalizer, NormalizerStep> {
 public:
  using Step = NormalizerStep;

  static Normalizer from_json(const nlohmann::json& j, const std::string& where);  // null ok
  static Normalizer nfc();
  std::string apply(std::string_view s) const;
};

class Decoder : public Steps<Decoder, DecoderStep> {
 public:
  using Step = DecoderStep;

  static Decoder from_json(const nlohmann::json& j, const std::string& where);  // null ok
  static Decoder byte_level();
  // SentencePiece BPE as HF converts it: Replace(▁→' '), ByteFallback, Fuse, Strip(' ', 1, 0).
  static Decoder sentencepiece();

  // Only ByteLevel: each token decodes on its own (per-id bytes can be precomputed).
  bool is_byte_level_only() const;
  // Bytes (no U+FFFD substitution, unlike HF's lossy ByteLevel/ByteFallback).
  std::string decode(std::vector<std::string> tokens) const;
};

}  // namespace kexa::tok
