// The per-format halves of image/image.h: each reads its header (size only) and decodes. Shared
// here: the limit check, the EXIF orientation, and the RGBA -> RGB copy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "image/image.h"

namespace kexa::image::detail {

// Throws "FORMAT: W x H pixels is more than ..." when the declared size breaks the limits (or is 0).
void check_size(Format f, uint64_t width, uint64_t height, const Limits& limits);

// The decoded pixels plus the EXIF block found in the file ("" when none), in the form libexif
// reads: "Exif\0\0" followed by the TIFF structure.
struct Decoded {
  RgbImage image;
  std::string exif;
};

Info png_info(std::string_view bytes);
Decoded png_decode(std::string_view bytes, const Limits& limits);
Info jpeg_info(std::string_view bytes);
Decoded jpeg_decode(std::string_view bytes, const Limits& limits);
Info webp_info(std::string_view bytes);
Decoded webp_decode(std::string_view bytes, const Limits& limits);
Info gif_info(std::string_view bytes);
Decoded gif_decode(std::string_view bytes, const Limits& limits);
Info bmp_info(std::string_view bytes);
Decoded bmp_decode(std::string_view bytes, const Limits& limits);

// An RgbImage from `n` pixels of 4 bytes each (alpha dropped).
RgbImage from_rgba(uint32_t width, uint32_t height, const uint8_t* rgba);

// EXIF orientation 1..8 of an "Exif\0\0"+TIFF block (1 when absent or unreadable).
int exif_orientation(const std::string& exif);
// The picture as it is meant to be seen under EXIF orientation `o` (1..8; other values: as is).
RgbImage apply_orientation(RgbImage img, int o);

}  // namespace kexa::image::detail
