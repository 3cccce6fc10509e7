#include "runtime/engine.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "chat/template.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/vision.h"
#include "util/rgb_image.h"
#include "util/thread_pool.h"
#include "runtime/speculative.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa {

namespace {

std::string local_path(const std::string& spec, const EngineOptions& options) {
  return options.locate ? options.locate(spec) : spec;
}

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) && gguf::has_magic(path);
}

}  // namespace

TokenTexts::TokenTexts(const Tokenizer& tokenizer) {
  const int32_t n = tokenizer.vocab_size();
  text_.resize(static_cast<size_t>(n));
  special_.resize(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    text_[static_cast<size_t>(id)] = tokenizer.decode(std::span<const int32_t>(&id, 1));
    special_[static_cast<size_t>(id)] = tokenizer.is_special(id) ? 1 : 0;
  }
}

const std::string& TokenTexts::text(int32_t id) const {
  static const std::string none;
  return id < 0 || static_cast<size_t>(id) >= text_.size() ? none : text_[static_cast<size_t>(id)];
}

void Engine::open_vision(const EngineOptions& options) {
  n_threads_ = options.n_threads;
  const int64_t width = model_->config().hidden_size;
  if (is_gguf_file(path_)) {
    if (!options.mmproj.empty()) {
      vision_ = VisionTower::from_mmproj(options.mmproj, width);
    } else if (std::string found = find_mmproj_beside(path_); !found.empty()) {
      // Found by name only: another model's projector beside it is not this model's tower.
      std::unique_ptr<gguf::File> f = gguf::File::open(found);
      const gguf::Value* type = f->get("clip.projector_type");
      if (type != nullptr && type->type == gguf::ValueType::STRING && type->as_string() == "exaone4_5")
        vision_ = VisionTower::from_mmproj(found, width);
    }
  } else {
    if (!options.mmproj.empty())
      fail("--mmproj ", options.mmproj, ": a Hugging Face folder carries its own vision tower (mmproj files go with GGUF models)");
    std::error_code ec;
    if (std::filesystem::is_directory(path_, ec)) {
      std::ifstream in(path_ + "/config.json");
      nlohmann::json cfg = nlohmann::json::parse(in, nullptr, false);
      if (cfg.is_object() && cfg.value("model_type", "") == "exaone4_5") vision_ = VisionTower::from_hf(path_);
    }
  }
  if (!vision_) return;
  if (vision_->config().image_token_id >= 0) image_token_id_ = static_cast<int32_t>(vision_->config().image_token_id);
  else if (tokenizer_) image_token_id_ = tokenizer_->token_id("<|image_pad|>").value_or(-1);
}

const VisionTower& Engine::vision() const {
  if (!vision_) fail(path_, ": this model has no vision tower");
  return *vision_;
}

std::vector<float> Engine::encode_image(const RgbImage& image) const {
  const VisionTower& v = vision();
  std::lock_guard<std::mutex> lock(vision_mutex_);
  if (!vision_pool_) vision_pool_ = std::make_unique<ThreadPool>(n_threads_);
  return v.encode(image, *vision_pool_);
}

bool TokenTexts::is_special(int32_t id) const {
  return id < 0 || static_cast<size_t>(id) >= special_.size() || special_[static_cast<size_t>(id)] != 0;
}

std::unique_ptr<Engine> Engine::open(const std::string& spec, const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->path_ = local_path(spec, options);
  LoadOptions load;
  load.n_threads = options.n_threads;
  load.device = options.device;
  load.gpu_layers = options.gpu_layers;
  load.kv_type = options.kv_type;
  // Each part is read once: a GGUF is parsed once and handed on; a folder's tokenizer and template
  // live in their own JSON files beside the weights.
  auto try_part = [](std::string& why, auto&& make) {
    try {
      make();
    } catch (const Error& err) {
      why = err.what();
    }
  };
  if (is_gguf_file(e->path_)) {
    std::unique_ptr<gguf::File> file = gguf::File::open(e->path_);
    try_part(e->tokenizer_error_, [&] { e->tokenizer_ = Tokenizer::from_gguf(*file); });
    try_part(e->template_error_,
             [&] { e->chat_template_ = std::make_unique<chat::ChatTemplate>(chat::ChatTemplate::from_gguf(*file)); });
    e->model_ = Model::from_gguf(std::move(file), load);
  } else {
    e->model_ = Model::load(e->path_, load);
    try_part(e->tokenizer_error_, [&] { e->tokenizer_ = Tokenizer::load(e->path_, e->model_->config().model_type); });
    try_part(e->template_error_,
             [&] { e->chat_template_ = std::make_unique<chat::ChatTemplate>(chat::ChatTemplate::load(e->path_)); });
  }
  if (!e->tokenizer_ && options.require_tokenizer) fail(e->tokenizer_error_);
  e->open_vision(options);
  for (int64_t id : e->model_->config().eos_token_ids) e->stop_ids_.push_back(static_cast<int32_t>(id));
  if (e->tokenizer_)
    for (int32_t id : e->tokenizer_->eos_ids())
      if (std::find(e->stop_ids_.begin(), e->stop_ids_.end(), id) == e->stop_ids_.end()) e->stop_ids_.push_back(id);
  return e;
}

std::unique_ptr<Tokenizer> Engine::open_tokenizer(const std::string& spec, std::string_view model_type_hint,
                                                  const EngineOptions& options) {
  return Tokenizer::load(local_path(spec, options), model_type_hint);
}

chat::ChatTemplate Engine::open_chat_template(const std::string& spec, const EngineOptions& options) {
  return chat::ChatTemplate::load(local_path(spec, options));
}

Engine::~Engine() = default;

const ModelConfig& Engine::config() const { return model_->config(); }
const std::string& Engine::model_type() const { return model_->config().model_type; }
int64_t Engine::vocab_size() const { return model_->config().vocab_size; }

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_) fail(path_, ": no tokenizer (", tokenizer_error_, ")");
  return *tokenizer_;
}

const chat::ChatTemplate& Engine::chat_template() const {
  if (!chat_template_) fail("this model has no chat template (", template_error_, ")");
  return *chat_template_;
}

bool Engine::is_stop(int32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

const TokenTexts& Engine::token_texts() const {
  std::call_once(texts_once_, [&] { texts_ = std::make_unique<TokenTexts>(tokenizer()); });
  return *texts_;
}

bool Engine::has_mtp() const { return model_->has_mtp(); }

std::unique_ptr<SpeculativeGenerator> Engine::mtp_drafter(KVCache& cache, const SamplingParams& params,
                                                          int n_draft) const {
  if (!has_mtp()) fail(path_, ": the model has no MTP block to draft with");
  return std::make_unique<SpeculativeGenerator>(*model_, cache, params, n_draft);
}

}  // namespace kexa
