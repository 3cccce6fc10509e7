#include "model/vision_preprocess.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace kexa {

namespace {

constexpr int64_t kMaxSide = 65536;

// Pillow's separable resampling (what llama.cpp's clip resize reproduces): per output pixel a
// normalised bicubic kernel (a = -0.5) widened by the downscale factor, weights in fixed point
// with 22 fractional bits, rounding bias, clamp to [0, 255].
constexpr int kPrecisionBits = 22;

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Kernel {
  int ksize = 0;
  std::vector<int> bounds;       // [out][2]: first input index, count
  std::vector<int32_t> weights;  // [out][ksize]
};

Kernel make_kernel(int in_size, int out_size) {
  Kernel k;
  double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  k.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  std::vector<double> pre(static_cast<size_t>(out_size) * k.ksize);
  k.bounds.resize(static_cast<size_t>(out_size) * 2);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    double* row = pre.data() + static_cast<size_t>(xx) * k.ksize;
    int x = 0;
    for (; x < xmax; ++x) {
      row[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += row[x];
    }
    for (x = 0; x < xmax; ++x)
      if (ww != 0.0) row[x] /= ww;
    for (; x < k.ksize; ++x) row[x] = 0;
    k.bounds[static_cast<size_t>(xx) * 2] = xmin;
    k.bounds[static_cast<size_t>(xx) * 2 + 1] = xmax;
  }
  k.weights.resize(pre.size());
  const double fxp = std::ldexp(1.0, kPrecisionBits);
  for (size_t i = 0; i < pre.size(); ++i) {
    // Pillow adds +-0.5 and truncates (std::round would differ on exact halves).
    k.weights[i] = static_cast<int32_t>(pre[i] * fxp + (pre[i] < 0 ? -0.5 : 0.5));
  }
  return k;
}

uint8_t clip8(int32_t v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// Rows of `w` pixels (3 channels) -> rows of `out_w` pixels.
std::vector<uint8_t> resample_horizontal(const std::vector<uint8_t>& src, int w, int h, int out_w) {
  const Kernel k = make_kernel(w, out_w);
  std::vector<uint8_t> out(static_cast<size_t>(out_w) * h * 3);
  for (int y = 0; y < h; ++y) {
    const uint8_t* in_row = src.data() + static_cast<size_t>(y) * w * 3;
    uint8_t* out_row = out.data() + static_cast<size_t>(y) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = k.bounds[static_cast<size_t>(xx) * 2], cnt = k.bounds[static_cast<size_t>(xx) * 2 + 1];
      const int32_t* kw = k.weights.data() + static_cast<size_t>(xx) * k.ksize;
      int32_t s[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      const uint8_t* p = in_row + static_cast<size_t>(xmin) * 3;
      for (int x = 0; x < cnt; ++x, p += 3)
        for (int c = 0; c < 3; ++c) s[c] += p[c] * kw[x];
      for (int c = 0; c < 3; ++c) out_row[xx * 3 + c] = clip8(s[c] >> kPrecisionBits);
    }
  }
  return out;
}

std::vector<uint8_t> resample_vertical(const std::vector<uint8_t>& src, int w, int h, int out_h) {
  const Kernel k = make_kernel(h, out_h);
  const size_t row = static_cast<size_t>(w) * 3;
  std::vector<uint8_t> out(row * out_h);
  std::vector<int32_t> acc(row);
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = k.bounds[static_cast<size_t>(yy) * 2], cnt = k.bounds[static_cast<size_t>(yy) * 2 + 1];
    const int32_t* kw = k.weights.data() + static_cast<size_t>(yy) * k.ksize;
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < cnt; ++y) {
      const uint8_t* in_row = src.data() + static_cast<size_t>(ymin + y) * row;
      for (size_t i = 0; i < row; ++i) acc[i] += in_row[i] * kw[y];
    }
    uint8_t* out_row = out.data() + static_cast<size_t>(yy) * row;
    for (size_t i = 0; i < row; ++i) out_row[i] = clip8(acc[i] >> kPrecisionBits);
  }
  return out;
}

std::vector<uint8_t> resize_bicubic(const std::vector<uint8_t>& src, int w, int h, int out_w, int out_h) {
  std::vector<uint8_t> cur = src;
  if (out_w != w) cur = resample_horizontal(cur, w, h, out_w);
  if (out_h != h) cur = resample_vertical(cur, out_w, h, out_h);
  return cur;
}

}  // namespace

ImageSize vision_target_size(ImageSize in, const VisionPreprocessConfig& config) {
  if (in.width <= 0 || in.height <= 0) fail("image is empty (", in.width, "x", in.height, ")");
  const int f = static_cast<int>(config.patch_size * config.merge_size);
  const int width = static_cast<int>(in.width), height = static_cast<int>(in.height);
  // Float arithmetic as llama.cpp's calc_size_preserved_ratio, so rounding ties land alike.
  auto round_by = [f](float x) { return static_cast<int>(std::round(x / static_cast<float>(f))) * f; };
  auto ceil_by = [f](float x) { return static_cast<int>(std::ceil(x / static_cast<float>(f))) * f; };
  auto floor_by = [f](float x) { return static_cast<int>(std::floor(x / static_cast<float>(f))) * f; };
  int w_bar = std::max(f, round_by(static_cast<float>(width)));
  int h_bar = std::max(f, round_by(static_cast<float>(height)));
  const int max_pixels = static_cast<int>(config.max_pixels), min_pixels = static_cast<int>(config.min_pixels);
  if (max_pixels > 0 && static_cast<int64_t>(h_bar) * w_bar > max_pixels) {
    const float beta = std::sqrt(static_cast<float>(height) * static_cast<float>(width) / static_cast<float>(max_pixels));
    h_bar = std::max(f, floor_by(static_cast<float>(height) / beta));
    w_bar = std::max(f, floor_by(static_cast<float>(width) / beta));
  } else if (min_pixels > 0 && static_cast<int64_t>(h_bar) * w_bar < min_pixels) {
    const float beta = std::sqrt(static_cast<float>(min_pixels) / (static_cast<float>(height) * static_cast<float>(width)));
    h_bar = ceil_by(static_cast<float>(height) * beta);
    w_bar = ceil_by(static_cast<float>(width) * beta);
  }
  if (w_bar > kMaxSide || h_bar > kMaxSide) {
    fail("image of ", in.width, "x", in.height, " would be resized to ", w_bar, "x", h_bar,
         ", beyond 65536 pixels a side");
  }
  return {w_bar, h_bar};
}

int64_t vision_token_count(ImageSize in, const VisionPreprocessConfig& config) {
  const ImageSize t = vision_target_size(in, config);
  const int64_t f = config.patch_size * config.merge_size;
  return (t.width / f) * (t.height / f);
}

VisionInput vision_preprocess(const RgbImage& image, const VisionPreprocessConfig& config) {
  if (image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    fail("image buffer holds ", image.rgb.size(), " bytes, not ", image.width, "x", image.height, "x3");
  }
  const ImageSize t = vision_target_size({image.width, image.height}, config);
  const int sw = static_cast<int>(image.width), sh = static_cast<int>(image.height);
  const int tw = static_cast<int>(t.width), th = static_cast<int>(t.height);
  std::vector<uint8_t> canvas;
  if (sw == tw && sh == th) {
    canvas = image.rgb;
  } else {
    // Fit inside the target keeping the aspect ratio (ceil), centre it, pad with black.
    const float scale = std::min(static_cast<float>(tw) / static_cast<float>(sw), static_cast<float>(th) / static_cast<float>(sh));
    const int nw = std::min(static_cast<int>(std::ceil(static_cast<float>(sw) * scale)), tw);
    const int nh = std::min(static_cast<int>(std::ceil(static_cast<float>(sh) * scale)), th);
    const std::vector<uint8_t> resized = resize_bicubic(image.rgb, sw, sh, nw, nh);
    canvas.assign(static_cast<size_t>(tw) * th * 3, 0);
    const int ox = (tw - nw) / 2, oy = (th - nh) / 2;
    for (int y = 0; y < nh; ++y) {
      std::copy_n(resized.data() + static_cast<size_t>(y) * nw * 3, static_cast<size_t>(nw) * 3,
                  canvas.data() + (static_cast<size_t>(y + oy) * tw + ox) * 3);
    }
  }
  VisionInput out;
  out.width = tw;
  out.height = th;
  const size_t plane = static_cast<size_t>(tw) * th;
  out.pixels.resize(plane * 3);
  for (size_t i = 0; i < plane; ++i) {
    for (size_t c = 0; c < 3; ++c) {
      const float v = static_cast<float>(canvas[i * 3 + c]) / 255.0f;
      out.pixels[c * plane + i] = (v - config.mean[c]) / config.std[c];
    }
  }
  return out;
}

}  // namespace kexa
