// Image preprocessing for EXAONE 4.5's vision tower (Qwen2-VL style), matching llama.cpp's clip
// preprocessing for projector type exaone4_5 pixel for pixel: the "smart resize" target size
// (multiples of patch x merge, pixel count brought into [min_pixels, max_pixels], aspect ratio
// kept), a Pillow-compatible bicubic resample (a = -0.5, fixed-point weights) into that size with
// the aspect ratio preserved and black padding centred around it, then x / 255 and (x - mean) / std.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "util/rgb_image.h"

namespace kexa {

struct VisionPreprocessConfig {
  int64_t patch_size = 14;
  int64_t merge_size = 2;
  int64_t min_pixels = 0;  // 0 = no lower bound
  int64_t max_pixels = 0;  // 0 = no upper bound
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

struct ImageSize {
  int64_t width = 0;
  int64_t height = 0;
};

// The size an image of `in` pixels is resized to: both sides multiples of patch_size * merge_size.
// Throws kexa::Error for an empty image or a target beyond 65536 pixels a side.
ImageSize vision_target_size(ImageSize in, const VisionPreprocessConfig& config);

// A resized, normalised image, planar: pixels[c * height * width + y * width + x], c in R, G, B.
struct VisionInput {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<float> pixels;
};

// Resize (bicubic, padded as llama.cpp does), scale to [0, 1] and normalise. Throws kexa::Error for
// an image whose buffer does not match its size.
VisionInput vision_preprocess(const RgbImage& image, const VisionPreprocessConfig& config);

// Number of image tokens (merged patches) an image of `in` pixels becomes.
int64_t vision_token_count(ImageSize in, const VisionPreprocessConfig& config);

}  // namespace kexa
