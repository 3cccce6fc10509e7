// A decoded picture as the engine receives it: 8-bit RGB, row-major, no padding, orientation
// already applied (EXIF). The decoders (image/) produce it from file bytes; the vision
// preprocessing (model/) resizes and normalises it for a vision tower. Contract:
// rgb.size() == width * height * 3 and both sizes are > 0 once decoded.
#pragma once

#include <cstdint>
#include <vector>

namespace kexa {

struct RgbImage {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgb;
};

}  // namespace kexa
