// Quantized formats against llama.cpp: tests/data/quant/<TYPE>.gguf were written by llama.cpp's
// llama-quantize from source_f32.gguf (our own seeded weights) and <TYPE>.f32 holds llama.cpp's
// own dequantization of every quantized tensor (see tests/data/quant/README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa {
namespace {

const std::string kDataDir = KEXA_SOURCE_DIR "/tests/data/quant/";

const DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                        DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ADD_FAILURE() << "cannot open " << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

class PerType : public ::testing::TestWithParam<DType> {};

std::string type_param_name(const ::testing::TestParamInfo<DType>& info) {
  return dtype_name(info.param);
}

// Every quantized tensor of the llama.cpp file dequantizes to exactly llama.cpp's floats.
TEST_P(PerType, DequantizeIsBitExactWithLlamaCpp) {
  const DType type = GetParam();
  auto file = gguf::File::open(kDataDir + dtype_name(type) + ".gguf");
  const std::vector<float> want = read_f32(kDataDir + dtype_name(type) + ".f32");
  size_t pos = 0;
  int n_tensors = 0;
  for (const TensorView& t : file->tensors()) {
    if (t.dtype == DType::F32) continue;
    ASSERT_EQ(t.dtype, type) << t.name;
    ++n_tensors;
    std::vector<float> got(static_cast<size_t>(t.numel()));
    kernels::dequantize(type, t.data, t.numel(), got.data());
    ASSERT_LE(pos + got.size(), want.size()) << t.name;
    size_t mismatches = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::memcmp(&got[i], &want[pos + i], 4) != 0 && mismatches++ == 0) first = i;
    }
    EXPECT_EQ(mismatches, 0u) << t.name << ": first at " << first << " kexa " << got[first]
                              << " llama.cpp " << want[pos + first];
    pos += got.size();
  }
  EXPECT_EQ(n_tensors, 2);
  EXPECT_EQ(pos, want.size());
}

// kexa's quantizer reproduces llama-quantize's bytes from the same F32 source.
TEST_P(PerType, QuantizeMatchesLlamaQuantize) {
  const DType type = GetParam();
  auto src = gguf::File::open(kDataDir + "source_f32.gguf");
  auto ref = gguf::File::open(kDataDir + dtype_name(type) + ".gguf");
  for (const TensorView& t : ref->tensors()) {
    if (t.dtype == DType::F32) continue;
    const TensorView* s = src->find(t.name);
    ASSERT_NE(s, nullptr) << t.name;
    ASSERT_EQ(s->dtype, DType::F32);
    ASSERT_EQ(s->shape, t.shape);
    const size_t nbytes = dtype_bytes(type, t.numel());
    std::vector<uint8_t> got(nbytes);
    kernels::quantize(type, reinterpret_cast<const float*>(s->data), t.numel(), got.data());
    const size_t block = dtype_info(type)->block_bytes;
    size_t bad_blocks = 0, first = 0;
    for (size_t b = 0; b < nbytes / block; ++b) {
      if (std::memcmp(got.data() + b * block, t.data + b * block, block) != 0 && bad_blocks++ == 0)
        first = b;
    }
    EXPECT_EQ(bad_blocks, 0u) << t.name << " of " << nbytes / block << " blocks, first " << first;
  }
}

double rel_rms_error(DType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(dtype_bytes(type, static_cast<int64_t>(x.size())));
  std::vector<float> back(x.size());
  kernels::quantize(type, x.data(), static_cast<int64_t>(x.size()), q.data());
  kernels::dequantize(type, q.data(), static_cast<int64_t>(x.size()), back.data());
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (back[i] - x[i]) * double(back[i] - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

// Round trip of Gaussian weights: relative RMS error within the format's expected precision
// (about 2^-bits of the block range for the uniform grids).
TEST_P(PerType, RoundTripErrorBound) {
  const DType type = GetParam();
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> x(256 * 64);
  for (float& v : x) v = normal(rng);
  double bound = 0;
  switch (type) {
    case DType::Q8_0: bound = 0.0065; break;
    case DType::Q6_K: bound = 0.02; break;
    case DType::Q5_0: case DType::Q5_1: case DType::Q5_K: bound = 0.045; break;
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: bound = 0.095; break;
    case DType::Q3_K: bound = 0.2; break;
    case DType::Q2_K: bound = 0.4; break;
    default: FAIL();
  }
  const double e = rel_rms_error(type, x);
  EXPECT_LT(e, bound) << dtype_name(type);
  EXPECT_GT(e, bound / 20) << dtype_name(type) << ": suspiciously exact";
}

// Quantized matmul on every CPU path this machine has against a double-precision product of the
// dequantized weights. The only approximation is the int8 activation rounding, so the error of
// each output is bounded by sum |w_i| * (block max |x| / 254) (plus float rounding).
TEST_P(PerType, MatmulMatchesDequantizedOnEveryPath) {
  const DType type = GetParam();
  const int64_t rows = 37, cols = 512;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> wf(rows * cols);
  for (float& v : wf) v = normal(rng) * 0.05f;
  std::vector<uint8_t> wq(dtype_bytes(type, rows * cols));
  kernels::quantize(type, wf.data(), rows * cols, wq.data());
  std::vector<float> wd(rows * cols);
  kernels::dequantize(type, wq.data(), rows * cols, wd.data());
  TensorView W{"test.weight", type, {rows, cols}, wq.data(), wq.size()};

  const int64_t block = (type == DType::Q2_K || type == DType::Q3_K || type == DType::Q4_K ||
                         type == DType::Q5_K || type == DType::Q6_K)
                            ? 256
                            : 32;
  ThreadPool pool(2);
  for (int64_t n_tokens : {1, 3, 4, 9}) {
    std::vector<float> x(n_tokens * cols);
    for (float& v : x) v = normal(rng);
    x[5] = 40.f;  // one outlier stretches its activation block's scale
    std::vector<double> ref(n_tokens * rows), bound(n_tokens * rows);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0, b = 0;
        for (int64_t c0 = 0; c0 < cols; c0 += block) {
          double amax = 0, wabs = 0;
          for (int64_t c = c0; c < c0 + block; ++c) {
            s += double(wd[r * cols + c]) * x[t * cols + c];
            amax = std::max(amax, double(std::fabs(x[t * cols + c])));
            wabs += std::fabs(wd[r * cols + c]);
          }
          b += wabs * amax / 254.0 * 1.001 + wabs * amax * 1e-6;
        }
        ref[t * rows + r] = s;
        bound[t * rows + r] = b + 1e-6;
      }
    }
    for (kernels::CpuPath path : kernels::all_paths()) {
      if (!kernels::path_supported(path)) continue;
      std::vector<float> y(n_tokens * rows, -1.f);
      kernels::matmul_quantized(W, x.data(), n_tokens, y.data(), pool, path);
      for (int64_t i = 0; i < n_tokens * rows; ++i) {
        ASSERT_LE(std::fabs(y[i] - ref[i]), bound[i])
            << dtype_name(type) << " path " << kernels::path_name(path) << " tokens " << n_tokens
            << " output " << i << ": got " << y[i] << " want " << ref[i];
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Quant, PerType, ::testing::ValuesIn(kTypes), type_param_name);

// All paths compute the same integer dot products, so they agree far more tightly than the
// activation-rounding bound: catches a SIMD unpacking error that stays inside that bound.
TEST(Quant, PathsAgreeWithPortable) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  ThreadPool pool(2);
  for (DType type : kTypes) {
    const int64_t rows = 20, cols = 1024, n_tokens = 5;
    std::vector<float> wf(rows * cols), x(n_tokens * cols);
    for (float& v : wf) v = normal(rng);
    for (float& v : x) v = normal(rng);
    std::vector<uint8_t> wq(dtype_bytes(type, rows * cols));
    kernels::quantize(type, wf.data(), rows * cols, wq.data());
    TensorView W{"w", type, {rows, cols}, wq.data(), wq.size()};
    std::vector<float> y0(n_tokens * rows);
    kernels::matmul_quantized(W, x.data(), n_tokens, y0.data(), pool, kernels::CpuPath::Portable);
    for (kernels::CpuPath path : kernels::all_paths()) {
      if (path == kernels::CpuPath::Portable || !kernels::path_supported(path)) continue;
      std::vector<float> y(n_tokens * rows);
      kernels::matmul_quantized(W, x.data(), n_tokens, y.data(), pool, path);
      for (int64_t i = 0; i < n_tokens * rows; ++i)
        ASSERT_NEAR(y[i], y0[i], 1e-4 * (1 + std::fabs(y0[i])))
            << dtype_name(type) << " " << kernels::path_name(path) << " output " << i;
    }
  }
}

// matmul_many shares the rows of several matrices of different types (as a layer's Q/K/V or
// gate/up) out over the pool in one parallel region: every output must equal a double-precision
// product of the dequantized weights and, bit for bit, the matrix's own matmul.
// The AVX2 and AVX-512 activation quantizers must give the scalar references' blocks bit for bit: random
// rows, rows whose extreme repeats with either sign (the Q8_K scale takes the first), values on
// rounding ties, zeros, a NaN and an infinity.
TEST(Quant, ActivationQuantizersMatchReferenceBitForBit) {
  if (!kernels::path_supported(kernels::CpuPath::Avx2)) GTEST_SKIP() << "no AVX2";
  const bool avx512 = kernels::path_supported(kernels::CpuPath::Avx512);
  std::mt19937 rng(2024);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  const int64_t n = 2048;
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = dist(rng);
    if (trial % 5 == 1) std::fill(x.begin() + 256, x.begin() + 512, 0.0f);
    if (trial % 5 == 2)
      for (int64_t i = 0; i < n; i += 32) x[i + 3] = -8.0f, x[i + 20] = 8.0f, x[i + 30] = -8.0f;
    if (trial % 5 == 3)  // 127 / 2.54 * k + 0.5 steps: products land on .5 ties
      for (int64_t i = 0; i < n; ++i) x[i] = (static_cast<float>(i % 64) - 32.0f + 0.5f) / 10.0f;
    if (trial == 4) x[100] = std::nanf("");
    if (trial == 9) x[700] = -INFINITY;
    std::vector<kernels::quant::ActBlock32> a(n / 32), b(n / 32);
    kernels::quant::quantize_act32_ref(x.data(), n, a.data());
    kernels::quant::quantize_act32_avx2(x.data(), n, b.data());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0]))) << "act32 avx2, trial " << trial;
    if (avx512) {
      kernels::quant::quantize_act32_avx512(x.data(), n, b.data());
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0]))) << "act32 avx512, trial " << trial;
    }
    std::vector<kernels::quant::ActBlock256> c(n / 256), d(n / 256);
    kernels::quant::quantize_act256_ref(x.data(), n, c.data());
    kernels::quant::quantize_act256_avx2(x.data(), n, d.data());
    EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size() * sizeof(c[0]))) << "act256 avx2, trial " << trial;
    if (avx512) {
      kernels::quant::quantize_act256_avx512(x.data(), n, d.data());
      EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size() * sizeof(c[0]))) << "act256 avx512, trial " << trial;
    }
  }
}

TEST(Quant, MatmulManyMixedTypes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  const int64_t cols = 512;
  const std::vector<std::pair<DType, int64_t>> mats = {
      {DType::Q4_K, 300}, {DType::Q6_K, 70}, {DType::BF16, 45}, {DType::Q8_0, 129}, {DType::F32, 17}};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<std::vector<float>> deq;
  std::vector<kernels::Weight> views;
  for (auto [type, rows] : mats) {
    std::vector<float> wf(rows * cols);
    for (float& v : wf) v = normal(rng);
    std::vector<uint8_t> b(dtype_bytes(type, rows * cols));
    std::vector<float> d(rows * cols);
    if (type == DType::F32) {
      std::memcpy(b.data(), wf.data(), b.size());
      d = wf;
    } else if (type == DType::BF16) {
      for (int64_t i = 0; i < rows * cols; ++i) {
        uint32_t u;
        std::memcpy(&u, &wf[i], 4);
        const uint16_t h = static_cast<uint16_t>(u >> 16);  // truncation: any bf16 value will do
        std::memcpy(&b[2 * i], &h, 2);
        const uint32_t back = static_cast<uint32_t>(h) << 16;
        std::memcpy(&d[i], &back, 4);
      }
    } else {
      kernels::quantize(type, wf.data(), rows * cols, b.data());
      kernels::dequantize(type, b.data(), rows * cols, d.data());
    }
    bytes.push_back(std::move(b));
    deq.push_back(std::move(d));
  }
  for (size_t m = 0; m < mats.size(); ++m)
    views.push_back(TensorView{"w" + std::to_string(m), mats[m].first, {mats[m].second, cols},
                               bytes[m].data(), bytes[m].size()});
  std::vector<float> x(cols);
  for (float& v : x) v = normal(rng);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (kernels::CpuPath path : kernels::all_paths()) {
      if (!kernels::path_supported(path)) continue;
      std::vector<std::vector<float>> ys;
      std::vector<kernels::MatmulOut> outs;
      for (size_t m = 0; m < mats.size(); ++m) ys.emplace_back(mats[m].second, -1.f);
      for (size_t m = 0; m < mats.size(); ++m) outs.push_back({&views[m], ys[m].data()});
      kernels::matmul_many(outs, x.data(), 1, pool, path);
      for (size_t m = 0; m < mats.size(); ++m) {
        std::vector<float> single(mats[m].second, -2.f);
        kernels::matmul(views[m], x.data(), 1, single.data(), pool, path);
        ASSERT_EQ(0, std::memcmp(single.data(), ys[m].data(), single.size() * 4))
            << dtype_name(mats[m].first) << " " << kernels::path_name(path);
        for (int64_t r = 0; r < mats[m].second; ++r) {
          double ref = 0, mag = 0;
          for (int64_t c = 0; c < cols; ++c) {
            ref += double(deq[m][r * cols + c]) * x[c];
            mag += std::fabs(double(deq[m][r * cols + c]) * x[c]);
          }
          ASSERT_NEAR(ys[m][r], ref, 0.02 * mag + 1e-4)
              << dtype_name(mats[m].first) << " " << kernels::path_name(path) << " row " << r;
        }
      }
    }
  }
  // Every weight must take the same input width.
  ThreadPool pool(2);
  std::vector<uint8_t> other(dtype_bytes(DType::Q8_0, 4 * 64));
  kernels::Weight narrow(TensorView{"blk.0.ffn_up.weight", DType::Q8_0, {4, 64}, other.data(), other.size()});
  std::vector<float> y0(300), y1(4);
  const kernels::MatmulOut bad[] = {{&views[0], y0.data()}, {&narrow, y1.data()}};
  try {
    kernels::matmul_many(bad, x.data(), 1, pool);
    FAIL() << "mismatched widths accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_up.weight"), std::string::npos) << e.what();
  }
}

TEST(Quant, BadSizesAreErrors) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> f(1024);
  EXPECT_THROW(kernels::dequantize(DType::Q4_K, buf.data(), 100, f.data()), Error);
  EXPECT_THROW(kernels::quantize(DType::Q8_0, f.data(), 33, buf.data()), Error);
  EXPECT_THROW(kernels::dequantize(DType::F32, buf.data(), 32, f.data()), Error);
  ThreadPool pool(1);
  TensorView W{"blk.0.attn_q.weight", DType::Q4_0, {2, 48}, buf.data(), buf.size()};
  try {
    kernels::matmul_quantized(W, f.data(), 1, f.data(), pool);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kexa
