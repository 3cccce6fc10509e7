#include <libexif/exif-data.h>

#include <cstring>
#include <memory>

#include "image/decoders.h"
#include "util/error.h"

namespace kexa::image {

const char* format_name(Format f) {
  switch (f) {
    case Format::Png: return "PNG";
    case Format::Jpeg: return "JPEG";
    case Format::WebP: return "WebP";
    case Format::Gif: return "GIF";
    case Format::Bmp: return "BMP";
    case Format::Unknown: break;
  }
  return "unknown";
}

const char* mime_type(Format f) {
  switch (f) {
    case Format::Png: return "image/png";
    case Format::Jpeg: return "image/jpeg";
    case Format::WebP: return "image/webp";
    case Format::Gif: return "image/gif";
    case Format::Bmp: return "image/bmp";
    case Format::Unknown: break;
  }
  return "";
}

Format detect_format(std::string_view b) {
  auto starts = [&](std::string_view magic, size_t at = 0) {
    return b.size() >= at + magic.size() && b.substr(at, magic.size()) == magic;
  };
  if (starts("\x89PNG\r\n\x1a\n")) return Format::Png;
  if (starts("\xff\xd8\xff")) return Format::Jpeg;
  if (starts("RIFF") && starts("WEBP", 8)) return Format::WebP;
  if (starts("GIF87a") || starts("GIF89a")) return Format::Gif;
  if (starts("BM")) return Format::Bmp;
  return Format::Unknown;
}

namespace {

std::string hex_head(std::string_view b) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < b.size() && i < 8; ++i) {
    const auto c = static_cast<unsigned char>(b[i]);
    if (i) out += ' ';
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

Info info_of(Format f, std::string_view bytes) {
  switch (f) {
    case Format::Png: return detail::png_info(bytes);
    case Format::Jpeg: return detail::jpeg_info(bytes);
    case Format::WebP: return detail::webp_info(bytes);
    case Format::Gif: return detail::gif_info(bytes);
    case Format::Bmp: return detail::bmp_info(bytes);
    case Format::Unknown: break;
  }
  return {};
}

}  // namespace

Info probe(std::string_view bytes, const Limits& limits) {
  if (bytes.empty()) fail("the image is empty (0 bytes)");
  if (bytes.size() > limits.max_bytes)
    fail("the image is ", bytes.size(), " bytes, more than the limit of ", limits.max_bytes, " bytes");
  const Format f = detect_format(bytes);
  if (f == Format::Unknown)
    fail("not an image in a supported format (PNG, JPEG, WebP, GIF, BMP): the bytes start with ", hex_head(bytes));
  Info info = info_of(f, bytes);
  info.format = f;
  detail::check_size(f, info.width, info.height, limits);
  return info;
}

RgbImage decode(std::string_view bytes, const Limits& limits) {
  const Info info = probe(bytes, limits);
  detail::Decoded d;
  switch (info.format) {
    case Format::Png: d = detail::png_decode(bytes, limits); break;
    case Format::Jpeg: d = detail::jpeg_decode(bytes, limits); break;
    case Format::WebP: d = detail::webp_decode(bytes, limits); break;
    case Format::Gif: d = detail::gif_decode(bytes, limits); break;
    case Format::Bmp: d = detail::bmp_decode(bytes, limits); break;
    case Format::Unknown: break;
  }
  if (d.image.width == 0 || d.image.height == 0 ||
      d.image.rgb.size() != static_cast<size_t>(d.image.width) * d.image.height * 3)
    fail(format_name(info.format), ": the decoder returned no picture");
  return detail::apply_orientation(std::move(d.image), detail::exif_orientation(d.exif));
}

namespace detail {

void check_size(Format f, uint64_t width, uint64_t height, const Limits& limits) {
  if (width == 0 || height == 0) fail(format_name(f), ": the header declares an empty picture (", width, " x ", height, ")");
  if (width > limits.max_side || height > limits.max_side)
    fail(format_name(f), ": ", width, " x ", height, " pixels has a side longer than the limit of ", limits.max_side);
  if (width * height > limits.max_pixels)
    fail(format_name(f), ": ", width, " x ", height, " pixels is more than the limit of ", limits.max_pixels, " pixels");
}

RgbImage from_rgba(uint32_t width, uint32_t height, const uint8_t* rgba) {
  RgbImage img;
  img.width = width;
  img.height = height;
  const size_t n = static_cast<size_t>(width) * height;
  img.rgb.resize(n * 3);
  for (size_t i = 0; i < n; ++i) std::memcpy(&img.rgb[i * 3], rgba + i * 4, 3);
  return img;
}

int exif_orientation(const std::string& exif) {
  if (exif.empty()) return 1;
  std::unique_ptr<ExifData, void (*)(ExifData*)> data(exif_data_new(), exif_data_unref);
  if (!data) return 1;
  // Only the orientation is wanted: no maker notes, no fixing up of the tags.
  exif_data_unset_option(data.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_set_option(data.get(), EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
  exif_data_load_data(data.get(), reinterpret_cast<const unsigned char*>(exif.data()),
                      static_cast<unsigned int>(exif.size()));
  ExifEntry* e = exif_content_get_entry(data->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
  if (e == nullptr || e->format != EXIF_FORMAT_SHORT || e->components < 1 || e->size < 2 || e->data == nullptr)
    return 1;
  const int o = exif_get_short(e->data, exif_data_get_byte_order(data.get()));
  return o >= 1 && o <= 8 ? o : 1;
}

RgbImage apply_orientation(RgbImage img, int o) {
  if (o < 2 || o > 8) return img;
  const size_t w = img.width, h = img.height;
  const bool swap = o >= 5;
  RgbImage out;
  out.width = swap ? img.height : img.width;
  out.height = swap ? img.width : img.height;
  out.rgb.resize(img.rgb.size());
  const size_t ow = out.width;
  for (size_t sy = 0; sy < h; ++sy) {
    for (size_t sx = 0; sx < w; ++sx) {
      size_t dx = sx, dy = sy;
      switch (o) {
        case 2: dx = w - 1 - sx; break;                      // mirrored left-right
        case 3: dx = w - 1 - sx; dy = h - 1 - sy; break;     // turned 180
        case 4: dy = h - 1 - sy; break;                      // mirrored top-bottom
        case 5: dx = sy; dy = sx; break;                     // transposed
        case 6: dx = h - 1 - sy; dy = sx; break;             // turned 90 clockwise to view
        case 7: dx = h - 1 - sy; dy = w - 1 - sx; break;     // transversed
        case 8: dx = sy; dy = w - 1 - sx; break;             // turned 90 counter-clockwise to view
      }
      std::memcpy(&out.rgb[(dy * ow + dx) * 3], &img.rgb[(sy * w + sx) * 3], 3);
    }
  }
  return out;
}

}  // namespace detail

}  // namespace kexa::image
