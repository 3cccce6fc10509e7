// The 64-bit Arm kernels (NEON, dot product, i8mm, BF16) against the portable reference, on every
// Arm path this CPU (or qemu's CPU model) has. Quantized types: the integer dot products are exact
// and the float steps are the portable ones, so results must be equal bit for bit, for any number
// of tokens. Float weights: the NEON kernels sum in another order (and bfdot rounds its pair sums),
// so each output may differ from the portable one by at most 2 * K * 2^-24 * sum_k |w_k x_k|
// (twice the classical bound on the rounding error of a K-term f32 sum), and batched rows must
// still equal single rows bit for bit. On x86-64 there is no Arm path: the tests skip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/quant_matmul.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace kexa {
namespace {

using kernels::CpuPath;

std::vector<CpuPath> arm_paths() {
  std::vector<CpuPath> out;
  for (CpuPath p : {CpuPath::Neon, CpuPath::NeonDotprod, CpuPath::NeonI8mm})
    if (kernels::path_supported(p)) out.push_back(p);
  return out;
}

TEST(ArmKernels, QuantizedEqualPortableBitForBit) {
  const std::vector<CpuPath> paths = arm_paths();
  if (paths.empty()) GTEST_SKIP() << "not an Arm CPU";
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  ThreadPool pool(2);
  for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q4_1,
                     DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K})
    for (int64_t cols : {256, 768}) {
      const int64_t rows = 21;
      std::vector<float> wf(rows * cols);
      for (float& v : wf) v = normal(rng);
      std::vector<uint8_t> wq(dtype_bytes(type, rows * cols));
      kernels::quantize(type, wf.data(), rows * cols, wq.data());
      const TensorView W{"w", type, {rows, cols}, wq.data(), wq.size()};
      for (int64_t n_tokens : {1, 2, 3, 5, 9}) {
        std::vector<float> x(n_tokens * cols);
        for (float& v : x) v = 2.f * normal(rng);
        std::vector<float> want(n_tokens * rows);
        kernels::matmul_quantized(W, x.data(), n_tokens, want.data(), pool, CpuPath::Portable);
        for (CpuPath path : paths) {
          std::vector<float> got(n_tokens * rows, -1.f);
          kernels::matmul_quantized(W, x.data(), n_tokens, got.data(), pool, path);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(0, std::memcmp(&got[i], &want[i], sizeof(float)))
                << dtype_name(type) << " " << kernels::path_name(path) << " cols " << cols << " tokens "
                << n_tokens << " output " << i << ": " << got[i] << " vs portable " << want[i];
        }
      }
    }
}

float weight_value(DType type, const std::vector<uint8_t>& w, int64_t i) {
  uint16_t h;
  if (type == DType::F32) {
    float v;
    std::memcpy(&v, w.data() + 4 * i, 4);
    return v;
  }
  std::memcpy(&h, w.data() + 2 * i, 2);
  return type == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

TEST(ArmKernels, FloatWithinSummationBoundAndBatchEqualsSingle) {
  const std::vector<CpuPath> paths = arm_paths();
  if (paths.empty()) GTEST_SKIP() << "not an Arm CPU";
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.f, 1.f);
  ThreadPool pool(2);
  for (DType type : {DType::F32, DType::F16, DType::BF16})
    for (int64_t cols : {7, 64, 1000}) {
      const int64_t rows = 19, n_tokens = 5;
      std::vector<uint8_t> w(dtype_bytes(type, rows * cols));
      for (int64_t i = 0; i < rows * cols; ++i) {
        const float v = normal(rng);
        if (type == DType::F32) {
          std::memcpy(w.data() + 4 * i, &v, 4);
        } else {
          const uint16_t h = type == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
          std::memcpy(w.data() + 2 * i, &h, 2);
        }
      }
      const TensorView W{"w", type, {rows, cols}, w.data(), w.size()};
      std::vector<float> x(n_tokens * cols);
      for (float& v : x) v = normal(rng);
      std::vector<float> want(n_tokens * rows);
      kernels::matmul(W, x.data(), n_tokens, want.data(), pool, CpuPath::Portable);
      for (CpuPath path : paths) {
        std::vector<float> got(n_tokens * rows);
        kernels::matmul(W, x.data(), n_tokens, got.data(), pool, path);
        for (int64_t t = 0; t < n_tokens; ++t) {
          std::vector<float> one(rows);
          kernels::matmul(W, x.data() + t * cols, 1, one.data(), pool, path);
          for (int64_t r = 0; r < rows; ++r) {
            double mag = 0;
            for (int64_t k = 0; k < cols; ++k) {
              // BF16 weights multiply activations rounded to bf16 on every path.
              const float xk = type == DType::BF16 ? bf16_to_f32(f32_to_bf16(x[t * cols + k])) : x[t * cols + k];
              mag += std::fabs(static_cast<double>(weight_value(type, w, r * cols + k)) * xk);
            }
            const double bound = 2.0 * static_cast<double>(cols) * std::ldexp(1.0, -24) * mag;
            const float g = got[t * rows + r], p = want[t * rows + r];
            ASSERT_LE(std::fabs(static_cast<double>(g) - p), bound)
                << dtype_name(type) << " " << kernels::path_name(path) << " cols " << cols << " token " << t
                << " row " << r;
            ASSERT_EQ(0, std::memcmp(&one[r], &g, sizeof(float)))
                << dtype_name(type) << " " << kernels::path_name(path) << ": batched row differs from single";
          }
        }
      }
    }
}

TEST(ArmKernels, RequestedPathsAreArmOnly) {
  if (arm_paths().empty()) GTEST_SKIP() << "not an Arm CPU";
  EXPECT_FALSE(kernels::path_supported(CpuPath::Avx2));
  EXPECT_FALSE(kernels::path_supported(CpuPath::Avx512));
  EXPECT_TRUE(kernels::path_supported(CpuPath::Neon));  // every aarch64 CPU has Advanced SIMD
}

}  // namespace
}  // namespace kexa
