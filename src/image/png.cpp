// PNG through libpng's full reading API, with the transforms that give the stored sample values
// as 8-bit RGB (palette expanded, 16-bit samples cut to their high byte, alpha stripped, no gamma
// correction): what PIL and stb_image hand to the reference preprocessors. The simplified API
// (png_image_*) would treat 16-bit data as linear and re-encode it.
// libpng reports errors through on_error, which must not return: it longjmps back into run().
// Only libpng's C frames and the trivial callbacks are skipped by that jump; every C++ object of
// run() is constructed before its setjmp.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "image/decoders.h"
#include "util/error.h"

namespace kexa::image::detail {

namespace {

struct State {
  const unsigned char* data;
  size_t size;
  size_t pos;
  std::jmp_buf jump;
  char message[256];
};

void on_error(png_structp png, png_const_charp msg) {
  auto* s = static_cast<State*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", msg != nullptr ? msg : "unreadable data");
  std::longjmp(s->jump, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, size_t n) {
  auto* s = static_cast<State*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "truncated (the data ends early)");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

struct Reader {
  State state;
  png_structp png = nullptr;
  png_infop info = nullptr;
  explicit Reader(std::string_view b) {
    std::memset(&state, 0, sizeof state);
    state.data = reinterpret_cast<const unsigned char*>(b.data());
    state.size = b.size();
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
    if (png != nullptr) info = png_create_info_struct(png);
    if (png == nullptr || info == nullptr) {
      png_destroy_read_struct(&png, &info, nullptr);
      fail("PNG: cannot start libpng");
    }
    png_set_read_fn(png, &state, on_read);
  }
  ~Reader() { png_destroy_read_struct(&png, &info, nullptr); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
};

struct Output {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
  std::vector<png_bytep> rows;
  std::string exif;
};

// Reads the header (and with `limits`, the pixels) into `out`. False with the message in
// r.state.message when libpng failed. check_size may throw from here: an ordinary C++ exception,
// raised outside any libpng call.
bool run(Reader& r, const Limits* limits, Output& out) {
  png_structp png = r.png;
  png_infop info = r.info;
  if (setjmp(r.state.jump)) return false;
  if (limits != nullptr) png_set_user_limits(png, limits->max_side, limits->max_side);
  png_read_info(png, info);
  out.width = png_get_image_width(png, info);
  out.height = png_get_image_height(png, info);
  if (limits == nullptr) return true;
  check_size(Format::Png, out.width, out.height, *limits);
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  (void)png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(out.width) * 3) {
    std::snprintf(r.state.message, sizeof r.state.message, "unexpected row layout");
    return false;
  }
  out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
  out.rows.resize(out.height);
  for (uint32_t y = 0; y < out.height; ++y) out.rows[y] = out.rgb.data() + static_cast<size_t>(y) * out.width * 3;
  png_read_image(png, out.rows.data());
  png_read_end(png, info);
  png_uint_32 exif_size = 0;
  png_bytep exif = nullptr;
  if (png_get_eXIf_1(png, info, &exif_size, &exif) != 0 && exif != nullptr && exif_size > 0) {
    out.exif.assign("Exif\0\0", 6);
    out.exif.append(reinterpret_cast<const char*>(exif), exif_size);
  }
  return true;
}

}  // namespace

Info png_info(std::string_view bytes) {
  Reader r(bytes);
  Output out;
  if (!run(r, nullptr, out)) fail("PNG: ", r.state.message);
  return {Format::Png, out.width, out.height};
}

Decoded png_decode(std::string_view bytes, const Limits& limits) {
  Reader r(bytes);
  Output out;
  if (!run(r, &limits, out)) fail("PNG: ", r.state.message);
  Decoded d;
  d.image.width = out.width;
  d.image.height = out.height;
  d.image.rgb = std::move(out.rgb);
  d.exif = std::move(out.exif);
  return d;
}

}  // namespace kexa::image::detail
