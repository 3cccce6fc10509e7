// The one place a checkpoint is opened. An Engine holds what every command and the server need
// from a model: the Model (weights + forward pass), its Tokenizer, its chat template, the ids that
// end a reply, and the MTP drafter when the checkpoint has one. Nothing else in src/ constructs a
// Model, a Tokenizer or a ChatTemplate: commands that need only a tokenizer or only a template ask
// the static openers below.
//
//   EngineOptions opt;  opt.n_threads = 2;
//   std::unique_ptr<Engine> e = Engine::open("model.gguf", opt);   // or an HF folder
//   e->tokenizer().encode("...");  e->chat_template().render(...);  e->model().forward(...)
//
// A .gguf file is mapped and parsed once; the tokenizer and the template are read from that same
// parsed file. An HF folder's safetensors are opened once; the tokenizer and template come from
// its JSON files. Hub names (ORG/REPO[:QUANT]) are resolved by EngineOptions::locate, which the
// applications set (the engine library itself links no HTTP client).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"

namespace kexa {

class Model;
class KVCache;
class Tokenizer;
class SpeculativeGenerator;
class ThreadPool;
class VisionTower;
struct ModelConfig;
struct RgbImage;
namespace chat {
class ChatTemplate;
}

struct EngineOptions {
  int n_threads = 0;  // compute threads; 0 = all online CPUs
  Device device = Device::Cpu;  // where the model runs (LoadOptions::device)
  int64_t gpu_layers = -1;      // LoadOptions::gpu_layers
  KVType kv_type = KVType::F32;  // LoadOptions::kv_type
  // Turns a model argument into a local path (e.g. downloads a Hub name into the cache). Empty:
  // the argument is a local path already.
  std::function<std::string(const std::string& spec)> locate;
  // false: a checkpoint without a tokenizer still opens (kexa run --tokens, kexa bench);
  // tokenizer() then throws, naming why it is missing.
  bool require_tokenizer = true;
  // The vision tower of a GGUF vision-language model (llama.cpp's mmproj file, --mmproj). Empty:
  // the mmproj llama.cpp's converter names after the model ("mmproj-<file name>", or the only
  // mmproj*.gguf in its folder) is used when it is an exaone4_5 projector. An HF folder carries
  // its tower itself.
  std::string mmproj;
};

// Every token's text and whether it is special, decoded once: constrained decoding asks about
// most of the vocabulary at a step where the model's favourites are not allowed.
class TokenTexts {
 public:
  explicit TokenTexts(const Tokenizer& tokenizer);
  // "" for ids outside the vocabulary.
  const std::string& text(int32_t id) const;
  // True for special/control tokens and for ids outside the vocabulary.
  bool is_special(int32_t id) const;
  int32_t size() const { return static_cast<int32_t>(text_.size()); }

 private:
  std::vector<std::string> text_;
  std::vector<char> special_;
};

class Engine {
 public:
  // Opens `spec` (an HF folder, a .gguf file, or whatever options.locate resolves). The chat
  // template is optional: a checkpoint without one opens, has_chat_template() is false and
  // chat_template() throws with the reason. Throws kexa::Error naming the file and the problem.
  static std::unique_ptr<Engine> open(const std::string& spec, const EngineOptions& options = {});

  // Only a tokenizer: a model/tokenizer folder, a tokenizer.json, or a .gguf. `model_type_hint`
  // picks the EXAONE pre-tokenizer for slow files when the folder does not say it.
  static std::unique_ptr<Tokenizer> open_tokenizer(const std::string& spec, std::string_view model_type_hint = {},
                                                   const EngineOptions& options = {});
  // Only a chat template: a model folder, tokenizer_config.json, .gguf or a template source file.
  static chat::ChatTemplate open_chat_template(const std::string& spec, const EngineOptions& options = {});

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Model& model() const { return *model_; }
  const ModelConfig& config() const;
  // The config's architecture name ("exaone4", ...) and vocabulary size, for callers that report
  // them without reading model/ (the server's /v1/models).
  const std::string& model_type() const;
  int64_t vocab_size() const;
  const std::string& path() const { return path_; }  // the local path that was opened

  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const Tokenizer& tokenizer() const;  // throws when the checkpoint has none
  const std::string& tokenizer_error() const { return tokenizer_error_; }
  bool has_chat_template() const { return chat_template_ != nullptr; }
  const chat::ChatTemplate& chat_template() const;  // throws with the reason it is missing
  const std::string& chat_template_error() const { return template_error_; }

  // Ids that end a reply: the model config's EOS ids and the tokenizer's EOS / end-of-turn ids,
  // each once, config ids first.
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  bool is_stop(int32_t id) const;
  // The decoded vocabulary, built on first use (thread-safe).
  const TokenTexts& token_texts() const;

  // Multi-token prediction: true when the checkpoint carries an MTP block, which drafts tokens
  // for speculative decoding (same greedy output, same sampling distribution).
  bool has_mtp() const;
  // A speculative generator over `cache` drafting n_draft tokens per step (has_mtp() required).
  std::unique_ptr<SpeculativeGenerator> mtp_drafter(KVCache& cache, const SamplingParams& params, int n_draft) const;

  // Images (EXAONE 4.5): true when a vision tower was loaded (HF folder or mmproj).
  bool has_vision() const { return vision_ != nullptr; }
  const VisionTower& vision() const;  // throws when there is none
  // The token the chat template writes once per image, expanded into one position per image
  // token (the merger's rows); -1 when unknown.
  int32_t image_token_id() const { return image_token_id_; }
  // Preprocesses and encodes one image: [tokens][hidden_size]. Thread-safe (one at a time, on the
  // engine's own threads, so that it never competes with a forward pass for the model's pool).
  std::vector<float> encode_image(const RgbImage& image) const;

 private:
  Engine() = default;
  void open_vision(const EngineOptions& options);

  std::string path_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string tokenizer_error_;
  std::unique_ptr<chat::ChatTemplate> chat_template_;
  std::string template_error_;
  std::vector<int32_t> stop_ids_;
  std::unique_ptr<VisionTower> vision_;
  int32_t image_token_id_ = -1;
  int n_threads_ = 0;
  mutable std::mutex vision_mutex_;
  mutable std::unique_ptr<ThreadPool> vision_pool_;
  mutable std::once_flag texts_once_;
  mutable std::unique_ptr<TokenTexts> texts_;
};

}  // namespace kexa
