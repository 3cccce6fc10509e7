#include "cli/rag_embed.h"

#include <algorithm>
#include <filesystem>

#include "model/kv_cache.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa::cli {

RagEmbedder::RagEmbedder(const std::string& path, int n_threads) {
  LoadOptions lo;
  lo.n_threads = n_threads;
  model_ = Model::load(path, lo);
  tok_ = Tokenizer::load(path, model_->config().model_type);
  // The absolute path plus the model's shape: a different model at the same path is caught too.
  const ModelConfig& c = model_->config();
  id_ = std::filesystem::absolute(path).lexically_normal().string() + " (" + c.model_type + ", hidden " +
        std::to_string(c.hidden_size) + ", layers " + std::to_string(c.n_layers) + ")";
  if (c.max_position > 0) max_tokens_ = std::min<std::int64_t>(max_tokens_, c.max_position);
}

RagEmbedder::~RagEmbedder() = default;

std::vector<float> RagEmbedder::embed(std::string_view text) const {
  std::vector<int32_t> ids = tok_->encode(text, /*add_special_tokens=*/true, /*parse_special=*/false);
  if (static_cast<std::int64_t>(ids.size()) > max_tokens_) ids.resize(static_cast<std::size_t>(max_tokens_));
  auto h = static_cast<std::size_t>(model_->config().hidden_size);
  std::vector<float> out(h, 0.0f);
  if (ids.empty()) return out;
  KVCache cache(model_->config(), static_cast<std::int64_t>(ids.size()));
  std::vector<float> hidden(ids.size() * h);
  model_->forward_hidden(ids, cache, {}, false, hidden);
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::size_t i = 0; i < h; ++i) out[i] += hidden[t * h + i];
  for (float& x : out) x /= static_cast<float>(ids.size());
  return out;
}

}  // namespace kexa::cli
