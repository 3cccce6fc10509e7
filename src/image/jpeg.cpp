// JPEG through libjpeg-turbo. libjpeg reports errors by calling error_exit, which must not
// return: it longjmps back into run() below. Only libjpeg's C frames and the trivial callbacks
// are skipped by that jump; every C++ object of run() is constructed before its setjmp.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>

#include "image/decoders.h"
#include "util/error.h"

namespace kexa::image::detail {

namespace {

// Progressive files can hold any number of scans, each a full pass over the coefficients: a
// tiny file with thousands of scans costs minutes. Real encoders write about ten.
constexpr int kMaxScans = 256;

struct ErrorState {
  jpeg_error_mgr mgr;  // first: libjpeg hands the callbacks a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  bool truncated;
};

void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorState*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings are not printed; running out of data is remembered (libjpeg pads the rest with grey).
void on_message(j_common_ptr c, int level) {
  auto* e = reinterpret_cast<ErrorState*>(c->err);
  if (level >= 0) return;
  ++c->err->num_warnings;
  if (c->err->msg_code == JWRN_JPEG_EOF) e->truncated = true;
}

void on_progress(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kMaxScans) {
    auto* e = reinterpret_cast<ErrorState*>(c->err);
    std::snprintf(e->message, sizeof e->message, "more than %d progressive scans", kMaxScans);
    std::longjmp(e->jump, 1);
  }
}

struct Decompressor {
  jpeg_decompress_struct cinfo;
  ErrorState err;
  jpeg_progress_mgr progress;
  Decompressor() {
    std::memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_error;
    err.mgr.emit_message = on_message;
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = on_progress;
    cinfo.progress = &progress;
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
};

struct Output {
  uint32_t width = 0, height = 0;
  bool cmyk = false, adobe = false;
  std::vector<uint8_t> pixels;  // 3 (RGB) or 4 (CMYK) bytes per pixel
  std::string exif;
};

// Reads the header (and with `limits`, the pixels) into `out`. False with d.err.message set when
// libjpeg failed. check_size may throw from here: that is an ordinary C++ exception, raised
// outside any libjpeg call.
bool run(Decompressor& d, std::string_view bytes, const Limits* limits, Output& out) {
  jpeg_decompress_struct* c = &d.cinfo;
  if (setjmp(d.err.jump)) return false;
  jpeg_mem_src(c, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  if (limits != nullptr) jpeg_save_markers(c, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(c, TRUE);
  out.width = c->image_width;
  out.height = c->image_height;
  if (limits == nullptr) return true;
  check_size(Format::Jpeg, c->image_width, c->image_height, *limits);
  for (jpeg_saved_marker_ptr m = c->marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      out.exif.assign(reinterpret_cast<const char*>(m->data), m->data_length);
      break;
    }
  }
  out.cmyk = c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK;
  out.adobe = c->saw_Adobe_marker;
  c->out_color_space = out.cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(c);
  const size_t channels = out.cmyk ? 4 : 3;
  if (c->output_components != static_cast<int>(channels) || c->output_width != out.width ||
      c->output_height != out.height) {
    std::snprintf(d.err.message, sizeof d.err.message, "unexpected output layout");
    return false;
  }
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * channels);
  while (c->output_scanline < c->output_height) {
    JSAMPROW row = out.pixels.data() + static_cast<size_t>(c->output_scanline) * out.width * channels;
    if (jpeg_read_scanlines(c, &row, 1) != 1) break;
  }
  if (c->output_scanline < c->output_height) d.err.truncated = true;
  if (!d.err.truncated) jpeg_finish_decompress(c);
  return true;
}

}  // namespace

Info jpeg_info(std::string_view bytes) {
  Decompressor d;
  Output out;
  if (!run(d, bytes, nullptr, out)) fail("JPEG: ", d.err.message);
  return {Format::Jpeg, out.width, out.height};
}

Decoded jpeg_decode(std::string_view bytes, const Limits& limits) {
  Decompressor d;
  Output out;
  if (!run(d, bytes, &limits, out)) fail("JPEG: ", d.err.message);
  if (d.err.truncated) fail("JPEG: truncated (the data ends before the last row)");
  Decoded r;
  r.exif = std::move(out.exif);
  if (!out.cmyk) {
    r.image.width = out.width;
    r.image.height = out.height;
    r.image.rgb = std::move(out.pixels);
    return r;
  }
  // CMYK: Adobe's files store the inks inverted (255 = no ink).
  const size_t n = static_cast<size_t>(out.width) * out.height;
  std::vector<uint8_t> rgba(n * 4);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &out.pixels[i * 4];
    const unsigned k = out.adobe ? p[3] : 255u - p[3];
    for (int ch = 0; ch < 3; ++ch) {
      const unsigned ink = out.adobe ? p[ch] : 255u - p[ch];
      rgba[i * 4 + ch] = static_cast<uint8_t>((ink * k + 127) / 255);
    }
  }
  r.image = from_rgba(out.width, out.height, rgba.data());
  return r;
}

}  // namespace kexa::image::detail
