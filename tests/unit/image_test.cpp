// image/: every decoder on the committed pictures of tests/data/images (made by make_images.cpp:
// "blocks" is 24 x 16 pixels in six solid 8 x 8 blocks), EXIF orientations 1-8, the size limits
// checked before decoding (the PNG bomb), truncated / corrupt / unsupported inputs, data: URLs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "image/data_url.h"
#include "image/image.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/read_file.h"

using namespace kexa;
using namespace kexa::image;

namespace {

const uint8_t kColors[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {255, 0, 255}, {0, 255, 255}};

std::string picture(const std::string& name) { return read_file(KEXA_SOURCE_DIR "/tests/data/images/" + name); }

std::string error_of(const std::string& bytes, const Limits& limits = {}) {
  try {
    decode(bytes, limits);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

// Checks that the picture is `cols` x `rows` blocks of 8 x 8 whose colours are the source blocks
// `order` (row by row), each block's centre within `tolerance` of the colour.
void expect_blocks(const RgbImage& img, int cols, int rows, std::vector<int> order, int tolerance, const std::string& what) {
  ASSERT_EQ(img.width, static_cast<uint32_t>(cols * 8)) << what;
  ASSERT_EQ(img.height, static_cast<uint32_t>(rows * 8)) << what;
  ASSERT_EQ(img.rgb.size(), size_t{img.width} * img.height * 3) << what;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      for (int dy : {3, 4})
        for (int dx : {3, 4}) {
          const size_t at = (static_cast<size_t>(r * 8 + dy) * img.width + static_cast<size_t>(c * 8 + dx)) * 3;
          const uint8_t* want = kColors[order[static_cast<size_t>(r * cols + c)]];
          for (int ch = 0; ch < 3; ++ch)
            EXPECT_NEAR(img.rgb[at + static_cast<size_t>(ch)], want[ch], tolerance)
                << what << ": block (" << c << ", " << r << ") channel " << ch;
        }
}

const std::vector<int> kUpright = {0, 1, 2, 3, 4, 5};

// blocks.jpg with an APP1 EXIF segment (big-endian TIFF, one Orientation tag) after SOI.
std::string jpeg_with_orientation(int o) {
  const std::string jpeg = picture("blocks.jpg");
  const unsigned char tiff[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                                0, static_cast<unsigned char>(o), 0, 0, 0, 0, 0, 0};
  std::string body = std::string("Exif\0\0", 6) + std::string(reinterpret_cast<const char*>(tiff), sizeof tiff);
  const size_t len = body.size() + 2;
  std::string app1 = "\xff\xe1";
  app1 += static_cast<char>(len >> 8);
  app1 += static_cast<char>(len & 255);
  return jpeg.substr(0, 2) + app1 + body + jpeg.substr(2);
}

}  // namespace

TEST(ImageDecode, EveryFormatGivesTheBlocks) {
  struct Case {
    const char* file;
    Format format;
    int tolerance;
  };
  const Case cases[] = {
      {"blocks.png", Format::Png, 0},          {"blocks_interlaced.png", Format::Png, 0},
      {"blocks_alpha.png", Format::Png, 0},    {"blocks_palette.png", Format::Png, 0},
      {"blocks.jpg", Format::Jpeg, 6},         {"blocks_progressive.jpg", Format::Jpeg, 6},
      {"blocks_cmyk.jpg", Format::Jpeg, 6},    {"blocks.webp", Format::WebP, 0},
      {"blocks_alpha.webp", Format::WebP, 0},  {"blocks_lossy.webp", Format::WebP, 24},
      {"anim.webp", Format::WebP, 0},  // the first of two frames (the second is all cyan)
      {"blocks.gif", Format::Gif, 0},          {"blocks_interlaced.gif", Format::Gif, 0},
      {"blocks.bmp", Format::Bmp, 0},          {"blocks_topdown32.bmp", Format::Bmp, 0},
      {"blocks_palette8.bmp", Format::Bmp, 0},
  };
  for (const Case& c : cases) {
    const std::string bytes = picture(c.file);
    EXPECT_EQ(detect_format(bytes), c.format) << c.file;
    const Info info = probe(bytes);
    EXPECT_EQ(info.format, c.format) << c.file;
    EXPECT_EQ(info.width, 24u) << c.file;
    EXPECT_EQ(info.height, 16u) << c.file;
    expect_blocks(decode(bytes), 3, 2, kUpright, c.tolerance, c.file);
  }
}

TEST(ImageDecode, AlphaIsDroppedNotComposited) {
  // blocks_alpha has alpha 0..255 over the same colours: the colours come through unchanged.
  for (const char* f : {"blocks_alpha.png", "blocks_alpha.webp"}) {
    const RgbImage img = decode(picture(f));
    const RgbImage plain = decode(picture("blocks.png"));
    EXPECT_EQ(img.rgb, plain.rgb) << f;
  }
}

TEST(ImageDecode, GifShowsTheFirstFrameWithTransparencyAsBlack) {
  for (const char* f : {"blocks.gif", "blocks_interlaced.gif"}) {
    const RgbImage img = decode(picture(f));
    EXPECT_EQ(img.rgb[0] + img.rgb[1] + img.rgb[2], 0) << f << ": the transparent top-left pixel";
    EXPECT_EQ(img.rgb[3], 255) << f;  // its neighbour is red (the second frame is all cyan)
    EXPECT_EQ(img.rgb[4], 0) << f;
  }
}

TEST(ImageDecode, SixteenBitAndGreySamples) {
  const RgbImage g = decode(picture("gray16.png"));
  ASSERT_EQ(g.width, 4u);
  ASSERT_EQ(g.height, 2u);
  const uint8_t want[8] = {0x12, 0xff, 0x00, 0x80, 0x00, 0xff, 0x7f, 0x01};  // the high byte, no gamma
  for (int i = 0; i < 8; ++i)
    for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(g.rgb[static_cast<size_t>(i * 3 + ch)], want[i]) << i;
  const RgbImage j = decode(picture("blocks_gray.jpg"));
  ASSERT_EQ(j.width, 24u);
  const size_t centre_red = (4 * 24 + 4) * 3;  // (255*3)/10 = 76
  EXPECT_NEAR(j.rgb[centre_red], 76, 4);
  EXPECT_EQ(j.rgb[centre_red], j.rgb[centre_red + 1]);
  EXPECT_EQ(j.rgb[centre_red], j.rgb[centre_red + 2]);
}

TEST(ImageDecode, ExifOrientationOneToEight) {
  // For each orientation, the source blocks (0 1 2 / 3 4 5) as they must appear, row by row.
  struct Case {
    int orientation, cols, rows;
    std::vector<int> order;
  };
  const Case cases[] = {
      {1, 3, 2, {0, 1, 2, 3, 4, 5}}, {2, 3, 2, {2, 1, 0, 5, 4, 3}}, {3, 3, 2, {5, 4, 3, 2, 1, 0}},
      {4, 3, 2, {3, 4, 5, 0, 1, 2}}, {5, 2, 3, {0, 3, 1, 4, 2, 5}}, {6, 2, 3, {3, 0, 4, 1, 5, 2}},
      {7, 2, 3, {5, 2, 4, 1, 3, 0}}, {8, 2, 3, {2, 5, 1, 4, 0, 3}},
  };
  for (const Case& c : cases) {
    const RgbImage img = decode(jpeg_with_orientation(c.orientation));
    expect_blocks(img, c.cols, c.rows, c.order, 6, "JPEG orientation " + std::to_string(c.orientation));
  }
  // Out-of-range values leave the picture as stored.
  expect_blocks(decode(jpeg_with_orientation(9)), 3, 2, kUpright, 6, "orientation 9");
  expect_blocks(decode(jpeg_with_orientation(0)), 3, 2, kUpright, 6, "orientation 0");
  // PNG's eXIf chunk and WebP's EXIF chunk are honoured too.
  expect_blocks(decode(picture("orient6.png")), 2, 3, {3, 0, 4, 1, 5, 2}, 0, "orient6.png");
  expect_blocks(decode(picture("orient6.webp")), 2, 3, {3, 0, 4, 1, 5, 2}, 0, "orient6.webp");
}

TEST(ImageDecode, PngBombIsRefusedFromItsHeader) {
  const std::string bomb = picture("bomb.png");
  EXPECT_LT(bomb.size(), 2000u);  // declares 30 GB of RGB
  const std::string e = error_of(bomb);
  EXPECT_NE(e.find("PNG: 100000 x 100000 pixels has a side longer than the limit of 16384"), std::string::npos) << e;
  // With the side limit out of the way, the pixel count stops it (before any allocation).
  Limits wide;
  wide.max_side = 1u << 20;
  const std::string e2 = error_of(bomb, wide);
  EXPECT_NE(e2.find("PNG: 100000 x 100000 pixels is more than the limit of 40000000 pixels"), std::string::npos) << e2;
  EXPECT_THROW(probe(bomb), Error);
}

TEST(ImageDecode, DeclaredSizesOverTheLimitsAreRefusedForEveryFormat) {
  Limits small;
  small.max_pixels = 24 * 16 - 1;
  for (const char* f : {"blocks.png", "blocks.jpg", "blocks.webp", "blocks.gif", "blocks.bmp"}) {
    const std::string e = error_of(picture(f), small);
    EXPECT_NE(e.find("24 x 16 pixels is more than the limit of 383 pixels"), std::string::npos) << f << ": " << e;
  }
  // Headers patched to declare huge sizes.
  std::string gif = picture("blocks.gif");
  gif[6] = gif[7] = gif[8] = gif[9] = '\xff';  // logical screen 65535 x 65535
  EXPECT_NE(error_of(gif).find("GIF: 65535 x 65535 pixels has a side longer"), std::string::npos) << error_of(gif);
  std::string bmp = picture("blocks.bmp");
  bmp[18] = bmp[22] = '\x00';
  bmp[19] = bmp[23] = '\x00';
  bmp[20] = bmp[24] = '\x10';  // 0x100000 x 0x100000
  EXPECT_NE(error_of(bmp).find("BMP: 1048576 x 1048576 pixels"), std::string::npos) << error_of(bmp);
  std::string jpeg = picture("blocks.jpg");
  const size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  jpeg[sof + 5] = jpeg[sof + 7] = '\xfd';  // height and width 0xfdxx
  EXPECT_NE(error_of(jpeg).find("JPEG: "), std::string::npos);
  EXPECT_NE(error_of(jpeg).find("has a side longer than the limit"), std::string::npos) << error_of(jpeg);
  Limits tiny_bytes;
  tiny_bytes.max_bytes = 50;
  EXPECT_NE(error_of(picture("blocks.png"), tiny_bytes).find("99 bytes, more than the limit of 50 bytes"), std::string::npos);
}

TEST(ImageDecode, TruncatedAndCorruptInputsAreNamedErrors) {
  for (const char* f : {"blocks.png", "blocks_interlaced.png", "blocks.jpg", "blocks_progressive.jpg", "blocks.webp",
                        "blocks_lossy.webp", "blocks.gif", "blocks.bmp", "blocks_palette8.bmp", "orient6.webp"}) {
    const std::string bytes = picture(f);
    // Every prefix: an Error or (for a few lucky cuts) a picture, never a crash.
    for (size_t n = 0; n < bytes.size(); n += 1 + bytes.size() / 64) {
      try {
        decode(bytes.substr(0, n));
      } catch (const Error&) {
      }
    }
    const std::string e = error_of(bytes.substr(0, bytes.size() * 2 / 3));
    EXPECT_FALSE(e.empty()) << f << " cut to two thirds decoded";
    // Flipped bytes after the header: never a crash.
    for (size_t at = 20; at < bytes.size(); at += 7) {
      std::string bad = bytes;
      bad[at] = static_cast<char>(bad[at] ^ 0x5a);
      try {
        decode(bad);
      } catch (const Error&) {
      }
    }
  }
  EXPECT_NE(error_of(picture("blocks.jpg").substr(0, 640)).find("JPEG: truncated"), std::string::npos);
  EXPECT_NE(error_of(picture("blocks.png").substr(0, 80)).find("PNG: "), std::string::npos);
  std::string crc = picture("blocks.png");
  crc[crc.find("IDAT") + 6] ^= 1;  // deflate data changed: the chunk's CRC no longer matches
  EXPECT_NE(error_of(crc).find("PNG: "), std::string::npos) << error_of(crc);
}

TEST(ImageDecode, UnsupportedFormatsAreRefusedByMagic) {
  EXPECT_EQ(error_of(""), "the image is empty (0 bytes)");
  EXPECT_EQ(error_of(std::string("II*\0\x08\0\0\0", 8)),
            "not an image in a supported format (PNG, JPEG, WebP, GIF, BMP): the bytes start with 49 49 2a 00 08 00 00 00");
  EXPECT_NE(error_of("<html><body>hello</body></html>").find("start with 3c 68 74 6d"), std::string::npos);
  EXPECT_EQ(detect_format("BM"), Format::Bmp);
  EXPECT_NE(error_of("BM").find("BMP: truncated header"), std::string::npos);
}

TEST(ImageDataUrl, ParsesAndChecksTheDeclaredType) {
  const std::string png = picture("blocks.png");
  const std::string b64 = encode_base64(png);
  EXPECT_EQ(encode_base64("ab"), "YWI=");
  EXPECT_EQ(encode_base64("abc"), "YWJj");
  EXPECT_EQ(encode_base64("a"), "YQ==");
  EXPECT_EQ(decode_base64(b64), png);
  const DataUrl d = parse_data_url("data:Image/PNG;base64," + b64, 1000);
  EXPECT_EQ(d.media_type, "image/png");
  EXPECT_EQ(d.bytes, png);
  check_declared_type(d.media_type, detect_format(d.bytes));
  EXPECT_EQ(parse_data_url("data:;base64," + b64, 1000).media_type, "");

  auto refusal = [](auto fn) {
    try {
      fn();
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(refusal([&] { parse_data_url("http://x/a.png", 1000); }), "not a data: URL");
  EXPECT_EQ(refusal([&] { parse_data_url("data:image/png;base64", 1000); }), "the data: URL has no ',' before its data");
  EXPECT_EQ(refusal([&] { parse_data_url("data:image/png,abc", 1000); }),
            "the data: URL is not base64 (';base64,' expected before the data)");
  EXPECT_EQ(refusal([&] { parse_data_url("data:image/png;base64,ab*c", 1000); }), "the data: URL's data is not base64");
  EXPECT_NE(refusal([&] { parse_data_url("data:image/png;base64," + b64, 50); }).find("more than the limit of 50 bytes"),
            std::string::npos);
  EXPECT_EQ(refusal([&] { check_declared_type("image/png", Format::Jpeg); }),
            "the image is declared as image/png but its bytes are a JPEG image");
  EXPECT_EQ(refusal([&] { check_declared_type("text/plain", Format::Png); }), "the declared type text/plain is not an image type");
  EXPECT_EQ(refusal([&] { check_declared_type("image/tiff", Format::Png); }),
            "the declared type image/tiff is not a supported image format (PNG, JPEG, WebP, GIF, BMP)");
  for (const char* ok : {"image/jpg", "image/jpeg", "IMAGE/JPEG", "image/*", "application/octet-stream", ""})
    EXPECT_EQ(refusal([&] { check_declared_type(ok, Format::Jpeg); }), "") << ok;
}
