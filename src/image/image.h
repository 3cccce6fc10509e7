// Pictures from untrusted bytes: PNG, JPEG, WebP, GIF (first frame) and BMP decoded by their
// Debian libraries (libpng, libjpeg-turbo, libwebp, giflib, Leptonica for BMP) into the engine's
// RgbImage (util/rgb_image.h). The format comes from the bytes' magic, never from a file name or
// a declared MIME type. The size limits are checked against the header BEFORE any pixel buffer is
// allocated (a PNG declaring 100000 x 100000 pixels is refused at once). EXIF orientation (JPEG
// APP1, PNG eXIf, WebP EXIF) is applied. Alpha is dropped, not composited (as the reference
// preprocessors do: PIL's convert("RGB"), llama.cpp's stb_image with 3 channels).
//
//   kexa::RgbImage img = kexa::image::decode(bytes);            // default limits
//   kexa::image::Info i = kexa::image::probe(bytes, limits);    // format and size, no pixels
//
// Every failure is a kexa::Error whose message names the format and the problem: "not an image
// in a supported format (PNG, JPEG, WebP, GIF, BMP): the bytes start with 3c 68 74 6d",
// "PNG: 100000 x 100000 pixels is more than the limit of 40000000 pixels", "JPEG: truncated
// (Premature end of JPEG file)", "GIF: ...". Thread-safe (no shared state but Leptonica's message
// handler, installed once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "util/rgb_image.h"

namespace kexa::image {

enum class Format { Unknown, Png, Jpeg, WebP, Gif, Bmp };

const char* format_name(Format f);  // "PNG", "JPEG", "WebP", "GIF", "BMP", "unknown"
const char* mime_type(Format f);    // "image/png", ... ("" for Unknown)
// The format the bytes announce (magic numbers only; Unknown when none matches).
Format detect_format(std::string_view bytes);

struct Limits {
  std::size_t max_bytes = 32u << 20;    // encoded size
  std::uint64_t max_pixels = 40000000;  // width x height as the header declares it
  std::uint32_t max_side = 16384;       // either side
};

struct Info {
  Format format = Format::Unknown;
  std::uint32_t width = 0;   // as stored (before orientation)
  std::uint32_t height = 0;
};

// The format and the declared size, checked against `limits`; reads headers only. Throws
// kexa::Error for an unknown format, an unreadable header or a size over the limits.
Info probe(std::string_view bytes, const Limits& limits = {});

// The picture, orientation applied. Throws kexa::Error as probe() does, and for corrupt or
// truncated data.
RgbImage decode(std::string_view bytes, const Limits& limits = {});

}  // namespace kexa::image
