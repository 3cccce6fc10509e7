// Writes the small test pictures of tests/data/images (committed; rerun only to change them):
//   g++ -std=c++20 -O1 tests/data/images/make_images.cpp -o /tmp/make_images \
//       $(pkg-config --cflags --libs libpng libjpeg libwebp libwebpmux libgif zlib) && /tmp/make_images tests/data/images
// Most are "blocks": 24 x 16 pixels in six solid 8 x 8 blocks (red, green, blue / yellow,
// magenta, cyan), so that a decoder's output and any orientation can be checked block by block
// (JPEG keeps solid 8 x 8 blocks nearly exact at quality 100 without chroma subsampling).
#include <cstdio>  // before jpeglib.h, which uses FILE

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <webp/mux.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr int W = 24, H = 16;
const uint8_t kColors[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {255, 0, 255}, {0, 255, 255}};
std::string dir;

int block_of(int x, int y) { return (y / 8) * 3 + x / 8; }

std::vector<uint8_t> blocks_rgb() {
  std::vector<uint8_t> rgb(W * H * 3);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) std::memcpy(&rgb[(y * W + x) * 3], kColors[block_of(x, y)], 3);
  return rgb;
}

void save(const std::string& name, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
  std::printf("%-24s %6zu bytes\n", name.c_str(), bytes.size());
}

// A TIFF structure holding one tag, Orientation = o (big-endian), as EXIF blocks carry it.
std::string tiff_orientation(int o) {
  const unsigned char t[] = {'M', 'M', 0, 42, 0, 0, 0, 8,  // header, IFD at 8
                             0, 1,                          // one entry
                             0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, static_cast<unsigned char>(o), 0, 0,
                             0, 0, 0, 0};  // no next IFD
  return std::string(reinterpret_cast<const char*>(t), sizeof t);
}

// --- PNG ---
void png_append(png_structp p, png_bytep d, size_t n) {
  static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<char*>(d), n);
}

void png_write(const std::string& name, int w, int h, int color_type, int depth, const std::vector<uint8_t>& rows_data,
               int interlace = PNG_INTERLACE_NONE, const std::vector<png_color>& palette = {},
               const std::vector<png_byte>& trans = {}, int exif_orientation = 0) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, png_append, nullptr);
  png_set_IHDR(png, info, w, h, depth, color_type, interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!trans.empty()) png_set_tRNS(png, info, trans.data(), static_cast<int>(trans.size()), nullptr);
  std::string exif;
  if (exif_orientation) {
    exif = tiff_orientation(exif_orientation);
    png_set_eXIf_1(png, info, static_cast<png_uint_32>(exif.size()), reinterpret_cast<png_bytep>(exif.data()));
  }
  png_write_info(png, info);
  const size_t stride = rows_data.size() / h;
  std::vector<png_bytep> rows(h);
  for (int y = 0; y < h; ++y) rows[y] = const_cast<png_bytep>(&rows_data[y * stride]);
  png_write_image(png, rows.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  save(name, out);
}

// --- JPEG ---
std::string jpeg_bytes(int w, int h, const std::vector<uint8_t>& px, J_COLOR_SPACE space, int comps, bool progressive) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = comps;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  for (int i = 0; i < c.num_components; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(&px[c.next_scanline * w * comps]);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string out(reinterpret_cast<char*>(buf), size);
  std::free(buf);
  return out;
}

// --- GIF ---
int gif_out(GifFileType* g, const GifByteType* d, int n) {
  static_cast<std::string*>(g->UserData)->append(reinterpret_cast<const char*>(d), n);
  return n;
}

void gif_write(const std::string& name, bool interlaced) {
  std::string out;
  int err = 0;
  GifFileType* g = EGifOpen(&out, gif_out, &err);
  GifColorType colors[8] = {};
  for (int i = 0; i < 6; ++i) colors[i] = {kColors[i][0], kColors[i][1], kColors[i][2]};
  colors[7] = {255, 255, 255};  // the transparent index
  ColorMapObject* map = GifMakeMapObject(8, colors);
  EGifSetGifVersion(g, true);
  EGifPutScreenDesc(g, W, H, 8, 0, map);
  const GifByteType gce[4] = {1 /*transparent*/, 10, 0, 7};
  EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, 4, gce);
  EGifPutImageDesc(g, 0, 0, W, H, interlaced, nullptr);
  std::vector<GifPixelType> rows(W * H);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) rows[y * W + x] = static_cast<GifPixelType>(block_of(x, y));
  rows[0] = 7;  // the top-left pixel is transparent
  if (interlaced) {
    const int start[] = {0, 4, 2, 1}, step[] = {8, 8, 4, 2};
    for (int p = 0; p < 4; ++p)
      for (int y = start[p]; y < H; y += step[p]) EGifPutLine(g, &rows[y * W], W);
  } else {
    for (int y = 0; y < H; ++y) EGifPutLine(g, &rows[y * W], W);
  }
  // A second frame (all cyan) that a first-frame decoder must not show.
  EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, 4, gce);
  EGifPutImageDesc(g, 0, 0, W, H, false, nullptr);
  std::vector<GifPixelType> cyan(W, 5);
  for (int y = 0; y < H; ++y) EGifPutLine(g, cyan.data(), W);
  EGifCloseFile(g, &err);
  GifFreeMapObject(map);
  save(name, out);
}

// --- BMP (written by hand: the format is a header and rows) ---
void put16(std::string& s, uint32_t v) { s += static_cast<char>(v & 255); s += static_cast<char>((v >> 8) & 255); }
void put32(std::string& s, uint32_t v) { put16(s, v & 0xffff); put16(s, v >> 16); }

void bmp_write(const std::string& name, int bits, bool top_down) {
  const std::vector<uint8_t> rgb = blocks_rgb();
  const int bpp = bits / 8;
  const int stride = (W * bpp + 3) & ~3;
  const int palette = bits == 8 ? 256 * 4 : 0;
  std::string s = "BM";
  put32(s, 14 + 40 + palette + stride * H);
  put32(s, 0);
  put32(s, 14 + 40 + palette);
  put32(s, 40);
  put32(s, W);
  put32(s, top_down ? static_cast<uint32_t>(-H) : H);
  put16(s, 1);
  put16(s, bits);
  put32(s, 0);  // BI_RGB
  put32(s, stride * H);
  put32(s, 2835);
  put32(s, 2835);
  put32(s, bits == 8 ? 256 : 0);
  put32(s, 0);
  if (bits == 8)
    for (int i = 0; i < 256; ++i) {
      const uint8_t* c = kColors[i % 6];
      s += static_cast<char>(c[2]); s += static_cast<char>(c[1]); s += static_cast<char>(c[0]); s += '\0';
    }
  for (int r = 0; r < H; ++r) {
    const int y = top_down ? r : H - 1 - r;
    std::string row;
    for (int x = 0; x < W; ++x) {
      const uint8_t* p = &rgb[(y * W + x) * 3];
      if (bits == 8) { row += static_cast<char>(block_of(x, y)); continue; }
      row += static_cast<char>(p[2]); row += static_cast<char>(p[1]); row += static_cast<char>(p[0]);
      if (bits == 32) row += '\xff';
    }
    row.resize(stride, '\0');
    s += row;
  }
  save(name, s);
}

// A PNG whose header declares 100000 x 100000 pixels (30 GB as RGB) and carries almost nothing.
void png_bomb() {
  std::vector<uint8_t> one_row(3 * 16, 0);
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, png_append, nullptr);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_set_IHDR(png, info, 100000, 100000, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_destroy_write_struct(&png, &info);
  // One IDAT with the first rows (all zero): a decoder that trusted the header would allocate
  // the whole picture before finding out the data is short.
  std::vector<uint8_t> raw(4 * (1 + 3 * 100000), 0);
  uLongf size = compressBound(raw.size());
  std::vector<uint8_t> z(size);
  compress2(z.data(), &size, raw.data(), raw.size(), 9);
  auto chunk = [&](const char* type, const uint8_t* data, uint32_t n) {
    const uint8_t len[4] = {uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
    out.append(reinterpret_cast<const char*>(len), 4);
    std::string body = std::string(type, 4) + std::string(reinterpret_cast<const char*>(data), n);
    out += body;
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size()));
    const uint8_t c[4] = {uint8_t(crc >> 24), uint8_t(crc >> 16), uint8_t(crc >> 8), uint8_t(crc)};
    out.append(reinterpret_cast<const char*>(c), 4);
  };
  chunk("IDAT", z.data(), static_cast<uint32_t>(size));
  chunk("IEND", nullptr, 0);
  save("bomb.png", out);
}

}  // namespace

int main(int argc, char** argv) {
  dir = argc > 1 ? argv[1] : ".";
  const std::vector<uint8_t> rgb = blocks_rgb();
  png_write("blocks.png", W, H, PNG_COLOR_TYPE_RGB, 8, rgb);
  png_write("blocks_interlaced.png", W, H, PNG_COLOR_TYPE_RGB, 8, rgb, PNG_INTERLACE_ADAM7);
  std::vector<uint8_t> rgba(W * H * 4);
  for (int i = 0; i < W * H; ++i) {
    std::memcpy(&rgba[i * 4], &rgb[i * 3], 3);
    // Alpha varies; colour must come through as is (alpha 0 left out: WebP's encoder may
    // change the colour of invisible pixels).
    rgba[i * 4 + 3] = static_cast<uint8_t>(1 + i % 255);
  }
  png_write("blocks_alpha.png", W, H, PNG_COLOR_TYPE_RGBA, 8, rgba);
  std::vector<png_color> pal;
  for (auto& c : kColors) pal.push_back({c[0], c[1], c[2]});
  std::vector<uint8_t> idx(W * H);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) idx[y * W + x] = static_cast<uint8_t>(block_of(x, y));
  png_write("blocks_palette.png", W, H, PNG_COLOR_TYPE_PALETTE, 8, idx, PNG_INTERLACE_NONE, pal, {255, 0});
  // 16-bit grey 4 x 2: samples 0x1234, 0xff00, 0x00ff, 0x8080 / 0, 0xffff, 0x7f01, 0x0101 (big-endian).
  const uint16_t g16[8] = {0x1234, 0xff00, 0x00ff, 0x8080, 0, 0xffff, 0x7f01, 0x0101};
  std::vector<uint8_t> g16b;
  for (uint16_t v : g16) { g16b.push_back(v >> 8); g16b.push_back(v & 255); }
  png_write("gray16.png", 4, 2, PNG_COLOR_TYPE_GRAY, 16, g16b);
  png_write("orient6.png", W, H, PNG_COLOR_TYPE_RGB, 8, rgb, PNG_INTERLACE_NONE, {}, {}, 6);
  png_bomb();

  save("blocks.jpg", jpeg_bytes(W, H, rgb, JCS_RGB, 3, false));
  save("blocks_progressive.jpg", jpeg_bytes(W, H, rgb, JCS_RGB, 3, true));
  std::vector<uint8_t> gray(W * H);
  for (int i = 0; i < W * H; ++i) gray[i] = static_cast<uint8_t>((rgb[i * 3] * 3 + rgb[i * 3 + 1] * 6 + rgb[i * 3 + 2]) / 10);
  save("blocks_gray.jpg", jpeg_bytes(W, H, gray, JCS_GRAYSCALE, 1, false));
  std::vector<uint8_t> cmyk(W * H * 4);  // Adobe convention: stored inverted (255 = no ink)
  for (int i = 0; i < W * H; ++i) {
    for (int c = 0; c < 3; ++c) cmyk[i * 4 + c] = rgb[i * 3 + c];
    cmyk[i * 4 + 3] = 255;
  }
  save("blocks_cmyk.jpg", jpeg_bytes(W, H, cmyk, JCS_CMYK, 4, false));

  uint8_t* out = nullptr;
  size_t n = WebPEncodeLosslessRGB(rgb.data(), W, H, W * 3, &out);
  save("blocks.webp", std::string(reinterpret_cast<char*>(out), n));
  WebPFree(out);
  n = WebPEncodeLosslessRGBA(rgba.data(), W, H, W * 4, &out);
  save("blocks_alpha.webp", std::string(reinterpret_cast<char*>(out), n));
  WebPFree(out);
  n = WebPEncodeRGB(rgb.data(), W, H, W * 3, 90, &out);
  save("blocks_lossy.webp", std::string(reinterpret_cast<char*>(out), n));
  // orient6.webp: the lossless picture with an EXIF chunk (VP8X container) saying "turn 90 clockwise".
  {
    WebPData image{out, n};
    n = WebPEncodeLosslessRGB(rgb.data(), W, H, W * 3, &out);
    image = {out, n};
    WebPMux* mux = WebPMuxNew();
    WebPMuxSetImage(mux, &image, 1);
    const std::string tiff = tiff_orientation(6);
    WebPData exif{reinterpret_cast<const uint8_t*>(tiff.data()), tiff.size()};
    WebPMuxSetChunk(mux, "EXIF", &exif, 1);
    WebPData assembled;
    WebPMuxAssemble(mux, &assembled);
    save("orient6.webp", std::string(reinterpret_cast<const char*>(assembled.bytes), assembled.size));
    WebPDataClear(&assembled);
    WebPMuxDelete(mux);
    WebPFree(out);
  }

  // anim.webp: two frames, the blocks then all cyan; a first-frame decoder shows the blocks.
  {
    WebPAnimEncoderOptions ao;
    WebPAnimEncoderOptionsInit(&ao);
    WebPAnimEncoder* enc = WebPAnimEncoderNew(W, H, &ao);
    WebPConfig config;
    WebPConfigInit(&config);
    config.lossless = 1;
    std::vector<uint8_t> cyan(W * H * 3);
    for (int i = 0; i < W * H; ++i) std::memcpy(&cyan[i * 3], kColors[5], 3);
    int timestamp = 0;
    const std::vector<uint8_t>* frames[] = {&rgb, &cyan};
    for (const std::vector<uint8_t>* frame : frames) {
      WebPPicture pic;
      WebPPictureInit(&pic);
      pic.width = W;
      pic.height = H;
      pic.use_argb = 1;
      WebPPictureImportRGB(&pic, frame->data(), W * 3);
      WebPAnimEncoderAdd(enc, &pic, timestamp, &config);
      WebPPictureFree(&pic);
      timestamp += 100;
    }
    WebPAnimEncoderAdd(enc, nullptr, timestamp, nullptr);
    WebPData anim;
    WebPDataInit(&anim);
    WebPAnimEncoderAssemble(enc, &anim);
    save("anim.webp", std::string(reinterpret_cast<const char*>(anim.bytes), anim.size));
    WebPDataClear(&anim);
    WebPAnimEncoderDelete(enc);
  }

  gif_write("blocks.gif", false);
  gif_write("blocks_interlaced.gif", true);
  bmp_write("blocks.bmp", 24, false);
  bmp_write("blocks_topdown32.bmp", 32, true);
  bmp_write("blocks_palette8.bmp", 8, false);
  return 0;
}
