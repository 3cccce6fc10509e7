// Dense embeddings for the document store from a kexa model (rag/ may not call model/, so the
// command line builds the embedder and hands it to rag::Store as a plain function).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kexa {
class Model;
class Tokenizer;
}  // namespace kexa

namespace kexa::cli {

class RagEmbedder {
 public:
  // `path`: a Hugging Face folder or .gguf with a tokenizer. Throws kexa::Error naming the path.
  explicit RagEmbedder(const std::string& path, int n_threads = 0);
  ~RagEmbedder();
  RagEmbedder(const RagEmbedder&) = delete;
  RagEmbedder& operator=(const RagEmbedder&) = delete;

  // Mean over tokens of the final-normed hidden states (the lm_head input) of `text`, truncated
  // to the first max_tokens tokens; a decoder's last-layer states carry the text's content, and
  // the mean is stable where the last position alone is dominated by the next-token guess.
  std::vector<float> embed(std::string_view text) const;
  // Identifies the model for the store (so vectors of different models are never compared).
  const std::string& model_id() const { return id_; }

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::string id_;
  std::int64_t max_tokens_ = 512;
};

}  // namespace kexa::cli
