// BMP through Leptonica (pixReadMemBmp). The size is read here from the BITMAPINFOHEADER (or the
// OS/2 core header) so that the limits hold before Leptonica allocates; everything else (depths,
// palettes, bounds) is Leptonica's. Its diagnostics go to a handler that keeps the last one per
// thread for the error message instead of stderr.
#include <leptonica/allheaders.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "image/decoders.h"
#include "util/error.h"

namespace kexa::image::detail {

namespace {

thread_local std::string last_message;

void keep_message(const char* msg) {
  last_message = msg != nullptr ? msg : "";
  while (!last_message.empty() && (last_message.back() == '\n' || last_message.back() == ' ')) last_message.pop_back();
}

// Leptonica 1.82 hands back 32-bit BMPs with red and blue exchanged. Whether the library at hand
// does is measured once on a one-pixel blue picture, so a fixed Leptonica needs no change here.
bool swaps_32_bit_red_blue() {
  static const unsigned char blue[] = {'B', 'M', 58, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,  // file header
                                       40, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0,
                                       4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                       255, 0, 0, 255};  // one pixel: B, G, R, A
  PIX* pix = pixReadMemBmp(blue, sizeof blue);
  if (pix == nullptr) return false;
  l_int32 r = 0, g = 0, b = 0;
  pixGetRGBPixel(pix, 0, 0, &r, &g, &b);
  pixDestroy(&pix);
  return r == 255 && b == 0;
}

uint32_t le(std::string_view b, size_t at, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<size_t>(i)]);
  return v;
}

}  // namespace

Info bmp_info(std::string_view b) {
  if (b.size() < 26) fail("BMP: truncated header (", b.size(), " bytes)");
  const uint32_t header = le(b, 14, 4);
  Info info{Format::Bmp, 0, 0};
  if (header == 12) {
    info.width = le(b, 18, 2);
    info.height = le(b, 20, 2);
  } else if (header >= 40) {
    const auto w = static_cast<int32_t>(le(b, 18, 4));
    const auto h = static_cast<int32_t>(le(b, 22, 4));  // negative: rows stored top-down
    if (w <= 0 || h == 0 || h == INT32_MIN) fail("BMP: the header declares an invalid size (", w, " x ", h, ")");
    info.width = static_cast<uint32_t>(w);
    info.height = static_cast<uint32_t>(h < 0 ? -h : h);
  } else {
    fail("BMP: unknown header size ", header);
  }
  return info;
}

Decoded bmp_decode(std::string_view bytes, const Limits& limits) {
  const Info info = bmp_info(bytes);
  check_size(Format::Bmp, info.width, info.height, limits);
  static std::once_flag once;
  static bool swapped = false;
  std::call_once(once, [] {
    leptSetStderrHandler(keep_message);
    swapped = swaps_32_bit_red_blue();
  });
  const size_t bits_at = le(bytes, 14, 4) == 12 ? 24 : 28;
  const bool swap = swapped && bytes.size() >= bits_at + 2 && le(bytes, bits_at, 2) == 32;
  last_message.clear();
  PIX* pix = pixReadMemBmp(reinterpret_cast<const l_uint8*>(bytes.data()), bytes.size());
  if (pix == nullptr) fail("BMP: ", last_message.empty() ? "unreadable data" : last_message);
  PIX* rgb = pixConvertTo32(pix);
  pixDestroy(&pix);
  if (rgb == nullptr) fail("BMP: cannot convert to RGB", last_message.empty() ? "" : ": " + last_message);
  const auto w = static_cast<uint32_t>(pixGetWidth(rgb)), h = static_cast<uint32_t>(pixGetHeight(rgb));
  const int wpl = pixGetWpl(rgb);
  const l_uint32* data = pixGetData(rgb);
  Decoded d;
  if (w == info.width && h == info.height && data != nullptr && wpl >= static_cast<int>(w)) {
    d.image.width = w;
    d.image.height = h;
    d.image.rgb.resize(static_cast<size_t>(w) * h * 3);
    for (uint32_t y = 0; y < h; ++y) {
      const l_uint32* line = data + static_cast<size_t>(y) * static_cast<size_t>(wpl);
      for (uint32_t x = 0; x < w; ++x) {
        uint8_t* p = &d.image.rgb[(static_cast<size_t>(y) * w + x) * 3];
        p[swap ? 2 : 0] = static_cast<uint8_t>(line[x] >> L_RED_SHIFT);
        p[1] = static_cast<uint8_t>(line[x] >> L_GREEN_SHIFT);
        p[swap ? 0 : 2] = static_cast<uint8_t>(line[x] >> L_BLUE_SHIFT);
      }
    }
  }
  pixDestroy(&rgb);
  if (d.image.rgb.empty()) fail("BMP: the decoded picture does not match its header (", info.width, " x ", info.height, ")");
  return d;
}

}  // namespace kexa::image::detail
