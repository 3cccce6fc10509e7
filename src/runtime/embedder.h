// Dense embeddings of text from a kexa model, for the document store's dense retrieval (rag/ may
// not call model/, so the applications build the embedder and hand it to rag::Store as a plain
// function).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kexa {

class Engine;

class TextEmbedder {
 public:
  // `path`: a Hugging Face folder or .gguf with a tokenizer. Throws kexa::Error naming the path.
  explicit TextEmbedder(const std::string& path, int n_threads = 0);
  ~TextEmbedder();
  TextEmbedder(const TextEmbedder&) = delete;
  TextEmbedder& operator=(const TextEmbedder&) = delete;

  // Mean over tokens of the final-normed hidden states (the lm_head input) of `text`, truncated
  // to the first max_tokens tokens; a decoder's last-layer states carry the text's content, and
  // the mean is stable where the last position alone is dominated by the next-token guess.
  std::vector<float> embed(std::string_view text) const;
  // Identifies the model for the store (so vectors of different models are never compared).
  const std::string& model_id() const { return id_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::string id_;
  std::int64_t max_tokens_ = 512;
};

}  // namespace kexa
