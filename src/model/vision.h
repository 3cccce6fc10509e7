// EXAONE 4.5's vision tower (Qwen2-VL style ViT with grouped KV heads) and its patch merger, on
// the CPU kernels. Loaded from an exaone4_5 Hugging Face folder (config.json vision_config,
// preprocessor_config.json, model.visual.* tensors) or from llama.cpp's separate "mmproj" GGUF
// (general.architecture "clip", clip.projector_type "exaone4_5", v.* / mm.* tensors). The forward
// pass follows llama.cpp's graph for that projector (tools/mtmd/models/exaone4_5.cpp): two-frame
// patch embedding (an image is both frames, so the two kernels' outputs are summed), patches
// grouped 2x2 in merge order, windowed attention (patches regrouped into windows of window_size
// pixels) on every block except each n_wa_pattern-th, 2-D rotary positions (y on the first half
// of each rotated pair's frequencies, x on the second), SiLU-gated MLP, then RMSNorm and a
// two-layer GELU MLP over each 2x2 group into the text width; rows come back in raster order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "formats/transformer_shape.h"
#include "model/vision_preprocess.h"
#include "util/rgb_image.h"

namespace kexa {

class ThreadPool;
namespace gguf {
class File;
class Writer;
}

struct VisionConfig : TransformerShape {
  int64_t out_hidden_size = 0;  // the text model's width (llama.cpp: projection_dim)
  int64_t image_size = 560;     // written for llama.cpp; the resize uses min/max pixels
  int64_t window_size = 0;      // pixels; llama.cpp's default 112 when 0
  int64_t n_wa_pattern = 0;     // every n-th block (1-based) attends fully; 0: all blocks do
  double norm_eps = 1e-6;
  float rope_theta = 10000.0f;
  VisionPreprocessConfig pre;   // patch size, merge size (2), pixel bounds, mean/std

  // Tokens the text decoder sees for each image (top-level config.json; GGUF: from the tokenizer).
  int64_t image_token_id = -1;

  // `config` is the whole exaone4_5 config.json, `preprocessor` preprocessor_config.json (may be
  // null: then min/max pixels and mean/std must be in vision_config). Throws kexa::Error naming
  // `origin` and the key: missing vision_config, a merge size other than 2 or disagreeing with the
  // preprocessor's, full-attention blocks not evenly spaced, heads not dividing the width.
  static VisionConfig from_hf_json(const nlohmann::json& config, const nlohmann::json* preprocessor,
                                   const std::string& origin);
  // from_hf_json with `dir`/preprocessor_config.json when the folder has one.
  static VisionConfig from_hf_dir(const std::string& dir, const nlohmann::json& config);
  // From an mmproj GGUF; throws for another projector type or a file without a vision encoder.
  static VisionConfig from_gguf(const gguf::File& file);
  // The clip.* metadata llama.cpp's converter writes for this projector (general.* included).
  void write_gguf_metadata(const std::string& name, gguf::Writer& w) const;
};

// A tensor of the tower in llama.cpp's naming with its HF name and shape (outermost first), in
// the order llama.cpp's converter writes them. The patch embedding's two frames are separate
// GGUF tensors cut from HF's one 5-D tensor (frame = 0 or 1, -1 for every other tensor).
struct VisionTensorName {
  std::string gguf;
  std::string hf;
  std::vector<int64_t> shape;
  int frame = -1;
  bool optional = false;  // biases of the norms
};
std::vector<VisionTensorName> vision_tensor_names(const VisionConfig& c);

class VisionTower {
 public:
  // An exaone4_5 Hugging Face folder. Throws kexa::Error when the tower is missing or misshapen.
  static std::unique_ptr<VisionTower> from_hf(const std::string& dir);
  // An mmproj GGUF; `text_hidden` (> 0) is checked against the projection width.
  static std::unique_ptr<VisionTower> from_mmproj(const std::string& path, int64_t text_hidden);
  ~VisionTower();

  const VisionConfig& config() const { return config_; }
  const std::string& path() const { return path_; }
  // Image tokens (merged patches) `image` becomes.
  int64_t token_count(const RgbImage& image) const;
  // Preprocesses and encodes: [token_count][out_hidden_size] in raster order of the merged grid.
  std::vector<float> encode(const RgbImage& image, ThreadPool& pool) const;
  // The tower on an already preprocessed image (sides multiples of patch * merge).
  std::vector<float> encode(const VisionInput& input, ThreadPool& pool) const;

  struct Weights;  // opaque: the tower's tensors as f32

 private:
  VisionTower() = default;
  VisionConfig config_;
  std::string path_;
  std::unique_ptr<Weights> w_;
};

// The mmproj file llama.cpp's converter writes beside a text GGUF: "mmproj-<name>.gguf" in the
// same folder; else the only "mmproj*.gguf" there. Empty when there is none (or several).
std::string find_mmproj_beside(const std::string& text_gguf);

}  // namespace kexa
