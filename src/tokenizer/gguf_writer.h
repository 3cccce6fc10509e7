// A Hugging Face tokenizer folder -> GGUF tokenizer.ggml.* / tokenizer.chat_template keys, with
// llama.cpp's Vocab / SpecialVocab conventions, so llama.cpp (and kexa's GGUF tokenizer loader)
// reads the same vocabulary, merges, special ids and chat template.
#pragma once

#include <cstdint>
#include <string>

namespace kexa {
namespace gguf { class Writer; }

struct GgufTokenizerOptions {
  int64_t n_vocab = 0;  // embedding rows: one token per row, holes become "[PAD<id>]"
  std::string pre;      // tokenizer.ggml.pre for GPT-2-style vocabularies (llama.cpp picks its regex by it)
  // config.json's ids, used when tokenizer_config.json does not name the token; -1 = none.
  int64_t bos_id = -1, eos_id = -1, pad_id = -1;
};

// Reads `dir`'s tokenizer.json (or vocab.json + merges.txt), tokenizer_config.json and
// chat_template.jinja and sets the keys on `w`. Returns false, writing nothing, when the folder has
// no tokenizer. Only BPE tokenizers are supported; throws kexa::Error naming the file otherwise or
// when an id does not fit n_vocab; nlohmann::json / std::logic_error escape on malformed entries.
bool write_gguf_tokenizer(const std::string& dir, const GgufTokenizerOptions& opt, gguf::Writer& w);

}  // namespace kexa
