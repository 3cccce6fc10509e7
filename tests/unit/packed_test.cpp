// Packed (16-row interleaved) weights: the layout round-trips to the file's bytes, llama.cpp's own
// quantized tensors dequantize to llama.cpp's floats through the packed layout, and the packed
// kernels agree with the file-layout kernels and with a double-precision product.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "kernels/quant_matmul.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa {
namespace {

const DType kPackedTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

struct Quantized {
  std::vector<float> dequant;
  std::vector<uint8_t> file, packed;
  kernels::Weight file_view, packed_view;
};

// rows x cols random weights quantized to `type`, in the file's layout and packed.
Quantized make(DType type, int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> wf(rows * cols);
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = normal(rng) * (i % 97 == 0 ? 0.5f : 0.05f);
  Quantized q;
  q.file.resize(dtype_bytes(type, rows * cols));
  kernels::quantize(type, wf.data(), rows * cols, q.file.data());
  q.dequant.resize(wf.size());
  kernels::dequantize(type, q.file.data(), rows * cols, q.dequant.data());
  q.packed = q.file;
  kernels::pack_rows(type, rows, cols, q.packed.data());
  q.file_view = TensorView{"test.weight", type, {rows, cols}, q.file.data(), q.file.size()};
  q.packed_view = TensorView{"test.weight", type, {rows, cols}, q.packed.data(), q.packed.size()};
  q.packed_view.row_group = kernels::kPackRows;
  return q;
}

class Packed : public ::testing::TestWithParam<DType> {};

// The paths of this CPU that run packed tensors of `type` through packed kernels.
std::vector<kernels::CpuPath> packed_paths(DType type) {
  std::vector<kernels::CpuPath> out;
  for (kernels::CpuPath path : {kernels::CpuPath::Avx2, kernels::CpuPath::Avx512})
    if (kernels::packed_kernel(path, type)) out.push_back(path);
  return out;
}

std::string name_of(const ::testing::TestParamInfo<DType>& info) { return dtype_name(info.param); }

TEST_P(Packed, UnpackGivesBackTheFileRows) {
  const DType type = GetParam();
  const int64_t rows = 48, cols = 512;
  Quantized q = make(type, rows, cols, 1);
  EXPECT_NE(q.packed, q.file);  // the layout really changed
  const size_t row_bytes = dtype_bytes(type, cols);
  std::vector<uint8_t> row(row_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    kernels::unpack_row(q.packed_view, r, row.data());
    ASSERT_EQ(0, std::memcmp(row.data(), q.file.data() + row_bytes * r, row_bytes)) << "row " << r;
  }
}

// llama.cpp's own quantized tensors (tests/data/quant, written by llama-quantize) read through the
// packed layout give llama.cpp's floats bit for bit.
TEST_P(Packed, LlamaCppTensorsDequantizeExactlyThroughThePackedLayout) {
  const DType type = GetParam();
  const std::string dir = KEXA_SOURCE_DIR "/tests/data/quant/";
  auto file = gguf::File::open(dir + dtype_name(type) + ".gguf");
  std::ifstream in(dir + dtype_name(type) + ".f32", std::ios::binary);
  ASSERT_TRUE(in.good());
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> want(raw.size() / 4);
  std::memcpy(want.data(), raw.data(), want.size() * 4);
  size_t pos = 0;
  int packed_tensors = 0;
  for (const TensorView& t : file->tensors()) {
    if (t.dtype == DType::F32) continue;
    const size_t n = static_cast<size_t>(t.numel());
    if (kernels::packable(t)) {
      std::vector<uint8_t> bytes(t.data, t.data + dtype_bytes(t.dtype, t.numel()));
      kernels::pack_rows(t.dtype, t.rows(), t.cols(), bytes.data());
      kernels::Weight p = t;
      p.data = bytes.data();
      p.row_group = kernels::kPackRows;
      std::vector<float> got(n);
      kernels::to_f32(p, 0, t.numel(), got.data());
      ASSERT_EQ(0, std::memcmp(got.data(), want.data() + pos, n * 4)) << t.name;
      // A range that starts and ends inside rows (an embedding lookup does whole rows).
      const int64_t off = t.cols() + dtype_info(t.dtype)->block_size, len = t.cols();
      std::vector<float> part(static_cast<size_t>(len));
      kernels::to_f32(p, off, len, part.data());
      ASSERT_EQ(0, std::memcmp(part.data(), want.data() + pos + off, static_cast<size_t>(len) * 4)) << t.name;
      ++packed_tensors;
    }
    pos += n;
  }
  EXPECT_GT(packed_tensors, 0);
}

// Packed kernels against a double-precision product of the dequantized weights (bounded by the
// int8 activation rounding, as in quant_test), and against the file-layout kernels on the same
// path, which compute the same integer block sums and differ only in float summation order.
TEST_P(Packed, MatmulMatchesFileLayoutAndDouble) {
  const std::vector<kernels::CpuPath> paths = packed_paths(GetParam());
  if (paths.empty()) GTEST_SKIP() << "CPU has no packed kernels (AVX2 or AVX-512 VNNI)";
  for (kernels::CpuPath path : paths) {
    SCOPED_TRACE(kernels::path_name(path));
    const DType type = GetParam();
    const int64_t rows = 64, cols = 1024;
    Quantized q = make(type, rows, cols, 2);
    const int64_t block = type == DType::Q8_0 ? 32 : 256;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.f, 1.f);
    ThreadPool pool(2);
    for (int64_t n_tokens : {1, 2, 7, 8, 9, 70}) {
      std::vector<float> x(n_tokens * cols);
      for (float& v : x) v = normal(rng);
      x[3] = 30.f;
      std::vector<float> y_file(n_tokens * rows), y_packed(n_tokens * rows, -1.f);
      kernels::matmul(q.file_view, x.data(), n_tokens, y_file.data(), pool, path);
      kernels::matmul(q.packed_view, x.data(), n_tokens, y_packed.data(), pool, path);
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          double s = 0, b = 0, mag = 0;
          for (int64_t c0 = 0; c0 < cols; c0 += block) {
            double amax = 0, wabs = 0;
            for (int64_t c = c0; c < c0 + block; ++c) {
              s += double(q.dequant[r * cols + c]) * x[t * cols + c];
              amax = std::max(amax, double(std::fabs(x[t * cols + c])));
              wabs += std::fabs(q.dequant[r * cols + c]);
              mag += std::fabs(q.dequant[r * cols + c] * x[t * cols + c]);
            }
            b += wabs * amax / 254.0 * 1.001 + wabs * amax * 1e-6;
          }
          const size_t i = static_cast<size_t>(t * rows + r);
          ASSERT_LE(std::fabs(y_packed[i] - s), b + 1e-6) << "tokens " << n_tokens << " t " << t << " row " << r;
          ASSERT_NEAR(y_packed[i], y_file[i], 2e-6 * mag + 1e-6) << "tokens " << n_tokens << " t " << t << " row " << r;
        }
      }
    }
  }
}

// Speculative verification needs a batch's rows bit for bit equal to one-token products.
TEST_P(Packed, BatchRowsEqualSingleTokenProductsBitwise) {
  const std::vector<kernels::CpuPath> paths = packed_paths(GetParam());
  if (paths.empty()) GTEST_SKIP() << "CPU has no packed kernels (AVX2 or AVX-512 VNNI)";
  for (kernels::CpuPath path : paths) {
    SCOPED_TRACE(kernels::path_name(path));
    const DType type = GetParam();
    const int64_t rows = 32, cols = 512;
    Quantized q = make(type, rows, cols, 3);
    ThreadPool pool(2);
    // Every tile size (1 to 8 tokens; 11 = a full tile and a tile of 3).
    for (int64_t n_tokens : {2, 3, 4, 5, 6, 7, 11}) {
      std::mt19937 rng(7 + static_cast<unsigned>(n_tokens));
      std::normal_distribution<float> normal(0.f, 1.f);
      std::vector<float> x(n_tokens * cols);
      for (float& v : x) v = normal(rng);
      std::vector<float> batch(n_tokens * rows), one(rows);
      kernels::matmul(q.packed_view, x.data(), n_tokens, batch.data(), pool, path);
      for (int64_t t = 0; t < n_tokens; ++t) {
        kernels::matmul(q.packed_view, x.data() + t * cols, 1, one.data(), pool, path);
        ASSERT_EQ(0, std::memcmp(one.data(), batch.data() + t * rows, rows * sizeof(float)))
            << n_tokens << " tokens, token " << t;
      }
    }
  }
}

// Several products of one input in one call (a batched decode step's q, k, v) share the
// quantized activations and the pool's work queue; every row stays the one-token product, also
// past the first chunk of tokens and with weights of another activation format beside them.
TEST_P(Packed, ManyProductsEqualSingleTokenProductsBitwise) {
  const DType type = GetParam();
  const int64_t cols = 512;
  Quantized a = make(type, 48, cols, 5), b = make(type, 32, cols, 6), c = make(DType::Q8_0, 16, cols, 8);
  ThreadPool pool(2);
  for (kernels::CpuPath path : packed_paths(type)) {
    SCOPED_TRACE(kernels::path_name(path));
    std::vector<const Quantized*> ws = {&a, &b};
    if (kernels::packed_kernel(path, DType::Q8_0)) ws.push_back(&c);
    for (int64_t n_tokens : {2, 8, 70}) {
      std::mt19937 rng(static_cast<unsigned>(n_tokens));
      std::normal_distribution<float> normal(0.f, 1.f);
      std::vector<float> x(n_tokens * cols);
      for (float& v : x) v = normal(rng);
      std::vector<std::vector<float>> ys;
      std::vector<kernels::MatmulOut> outs;
      for (const Quantized* w : ws) ys.emplace_back(n_tokens * w->packed_view.rows());
      for (size_t i = 0; i < ws.size(); ++i) outs.push_back({&ws[i]->packed_view, ys[i].data()});
      kernels::matmul_many(outs, x.data(), n_tokens, pool, path);
      for (size_t i = 0; i < ws.size(); ++i) {
        const int64_t rows = ws[i]->packed_view.rows();
        std::vector<float> one(rows);
        for (int64_t t = 0; t < n_tokens; ++t) {
          kernels::matmul(ws[i]->packed_view, x.data() + t * cols, 1, one.data(), pool, path);
          ASSERT_EQ(0, std::memcmp(one.data(), ys[i].data() + t * rows, rows * sizeof(float)))
              << "weight " << i << " of " << n_tokens << " tokens, token " << t;
        }
      }
    }
  }
}

// A packed tensor on a path without the packed kernels unpacks its rows and gives exactly what
// the file layout gives on that path.
TEST_P(Packed, OtherPathsUnpackRows) {
  const DType type = GetParam();
  const int64_t rows = 32, cols = 512;
  Quantized q = make(type, rows, cols, 4);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.f, 1.f);
  ThreadPool pool(2);
  for (kernels::CpuPath path : {kernels::CpuPath::Portable, kernels::CpuPath::Avx2, kernels::CpuPath::Avx512}) {
    if (!kernels::path_supported(path) || kernels::packed_kernel(path, type)) continue;
    for (int64_t n_tokens : {1, 5}) {
      std::vector<float> x(n_tokens * cols);
      for (float& v : x) v = normal(rng);
      std::vector<float> a(n_tokens * rows), b(n_tokens * rows);
      kernels::matmul(q.file_view, x.data(), n_tokens, a.data(), pool, path);
      kernels::matmul(q.packed_view, x.data(), n_tokens, b.data(), pool, path);
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << kernels::path_name(path);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, Packed, ::testing::ValuesIn(kPackedTypes), name_of);

TEST(Packed, OnlyWholeGroupsOfKnownTypesPack) {
  std::vector<uint8_t> bytes(dtype_bytes(DType::Q4_K, 40 * 256));
  TensorView odd{"w", DType::Q4_K, {40, 256}, bytes.data(), bytes.size()};
  EXPECT_FALSE(kernels::packable(odd));  // 40 rows: not whole groups of 16
  TensorView q3{"w", DType::Q3_K, {32, 256}, bytes.data(), bytes.size()};
  EXPECT_FALSE(kernels::packable(q3));
  kernels::Weight ok(TensorView{"w", DType::Q4_K, {32, 256}, bytes.data(), bytes.size()});
  EXPECT_TRUE(kernels::packable(ok));
  ok.row_group = 8;  // a layout nobody wrote
  std::vector<float> x(256), y(32);
  ThreadPool pool(1);
  EXPECT_THROW(kernels::matmul(ok, x.data(), 1, y.data(), pool), Error);
}

}  // namespace
}  // namespace kexa
