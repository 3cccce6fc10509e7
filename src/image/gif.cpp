// GIF through giflib, record by record up to the first image only (DGifSlurp would decode every
// frame of an animation). The first frame is drawn on a black canvas of the logical screen's
// size; its transparent pixels stay black, as stb_image (llama.cpp's loader) leaves them.
#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "image/decoders.h"
#include "util/error.h"

namespace kexa::image::detail {

namespace {

struct Source {
  const uint8_t* data;
  size_t left;
};

int read_bytes(GifFileType* g, GifByteType* buf, int n) {
  auto* s = static_cast<Source*>(g->UserData);
  const size_t k = std::min(static_cast<size_t>(std::max(n, 0)), s->left);
  std::memcpy(buf, s->data, k);
  s->data += k;
  s->left -= k;
  return static_cast<int>(k);
}

class Reader {
 public:
  explicit Reader(std::string_view b) : src_{reinterpret_cast<const uint8_t*>(b.data()), b.size()} {
    int error = 0;
    gif_ = DGifOpen(&src_, read_bytes, &error);
    if (gif_ == nullptr) fail("GIF: ", text(error));
  }
  ~Reader() {
    int error = 0;
    DGifCloseFile(gif_, &error);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  GifFileType* operator->() const { return gif_; }
  GifFileType* get() const { return gif_; }
  [[noreturn]] void error() const { fail("GIF: ", text(gif_->Error)); }

 private:
  static const char* text(int code) {
    if (code == D_GIF_ERR_READ_FAILED) return "truncated (the data ends early)";
    const char* s = GifErrorString(code);
    return s != nullptr ? s : "unreadable data";
  }
  Source src_;
  GifFileType* gif_ = nullptr;
};

}  // namespace

Info gif_info(std::string_view bytes) {
  Reader g(bytes);
  return {Format::Gif, static_cast<uint32_t>(std::max(g->SWidth, 0)), static_cast<uint32_t>(std::max(g->SHeight, 0))};
}

Decoded gif_decode(std::string_view bytes, const Limits& limits) {
  Reader g(bytes);
  const uint32_t width = static_cast<uint32_t>(std::max(g->SWidth, 0));
  const uint32_t height = static_cast<uint32_t>(std::max(g->SHeight, 0));
  check_size(Format::Gif, width, height, limits);
  int transparent = -1;
  for (;;) {
    GifRecordType type = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(g.get(), &type) == GIF_ERROR) g.error();
    if (type == TERMINATE_RECORD_TYPE) fail("GIF: the file holds no image");
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(g.get(), &code, &ext) == GIF_ERROR) g.error();
      if (code == GRAPHICS_EXT_FUNC_CODE && ext != nullptr && ext[0] >= 4) transparent = (ext[1] & 1) ? ext[4] : -1;
      while (ext != nullptr)
        if (DGifGetExtensionNext(g.get(), &ext) == GIF_ERROR) g.error();
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(g.get()) == GIF_ERROR) g.error();
    const GifImageDesc& frame = g->Image;
    if (frame.Width <= 0 || frame.Height <= 0 || frame.Left < 0 || frame.Top < 0) fail("GIF: the first frame is empty");
    // The frame's own size bounds the decoding work, whatever the canvas.
    check_size(Format::Gif, static_cast<uint64_t>(frame.Width), static_cast<uint64_t>(frame.Height), limits);
    const ColorMapObject* map = frame.ColorMap != nullptr ? frame.ColorMap : g->SColorMap;
    if (map == nullptr || map->Colors == nullptr) fail("GIF: the first frame has no color table");
    Decoded d;
    RgbImage& img = d.image;
    img.width = width;
    img.height = height;
    img.rgb.assign(static_cast<size_t>(width) * height * 3, 0);
    std::vector<GifPixelType> line(static_cast<size_t>(frame.Width));
    auto draw = [&](int row) {
      const int64_t y = static_cast<int64_t>(frame.Top) + row;
      if (y >= height) return;
      for (int x = 0; x < frame.Width; ++x) {
        const int64_t cx = static_cast<int64_t>(frame.Left) + x;
        const int index = line[static_cast<size_t>(x)];
        if (cx >= width || index == transparent || index >= map->ColorCount) continue;
        uint8_t* p = &img.rgb[(static_cast<size_t>(y) * width + static_cast<size_t>(cx)) * 3];
        p[0] = map->Colors[index].Red;
        p[1] = map->Colors[index].Green;
        p[2] = map->Colors[index].Blue;
      }
    };
    if (frame.Interlace) {
      static constexpr int start[] = {0, 4, 2, 1}, step[] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4; ++pass)
        for (int row = start[pass]; row < frame.Height; row += step[pass]) {
          if (DGifGetLine(g.get(), line.data(), frame.Width) == GIF_ERROR) g.error();
          draw(row);
        }
    } else {
      for (int row = 0; row < frame.Height; ++row) {
        if (DGifGetLine(g.get(), line.data(), frame.Width) == GIF_ERROR) g.error();
        draw(row);
      }
    }
    return d;
  }
}

}  // namespace kexa::image::detail
