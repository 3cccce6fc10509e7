#include "runtime/embedder.h"

#include <algorithm>
#include <filesystem>

#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa {

TextEmbedder::TextEmbedder(const std::string& path, int n_threads) {
  EngineOptions eo;
  eo.n_threads = n_threads;
  engine_ = Engine::open(path, eo);
  // The absolute path plus the model's shape: a different model at the same path is caught too.
  const ModelConfig& c = engine_->config();
  id_ = std::filesystem::absolute(path).lexically_normal().string() + " (" + c.model_type + ", hidden " +
        std::to_string(c.hidden_size) + ", layers " + std::to_string(c.n_layers) + ")";
  if (c.max_position > 0) max_tokens_ = std::min<std::int64_t>(max_tokens_, c.max_position);
}

TextEmbedder::~TextEmbedder() = default;

std::vector<float> TextEmbedder::embed(std::string_view text) const {
  Model& model = engine_->model();
  std::vector<int32_t> ids = engine_->tokenizer().encode(text, /*add_special_tokens=*/true, /*parse_special=*/false);
  if (static_cast<std::int64_t>(ids.size()) > max_tokens_) ids.resize(static_cast<std::size_t>(max_tokens_));
  auto h = static_cast<std::size_t>(model.config().hidden_size);
  std::vector<float> out(h, 0.0f);
  if (ids.empty()) return out;
  KVCache cache(model.config(), static_cast<std::int64_t>(ids.size()), /*chunk=*/512, model.kv_type());
  std::vector<float> hidden(ids.size() * h);
  model.forward_hidden(ids, cache, {}, false, hidden);
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::size_t i = 0; i < h; ++i) out[i] += hidden[t * h + i];
  for (float& x : out) x /= static_cast<float>(ids.size());
  return out;
}

}  // namespace kexa
