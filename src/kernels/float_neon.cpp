// Float matmul kernels (F32, F16, BF16 weights) for 64-bit Arm Advanced SIMD, built only for
// aarch64; BF16 weights use the BF16 extension's bfdot when the CPU has it (neon_kernels(true)).
// The element-wise kernels are the portable ones (the compiler vectorizes them for NEON).
#include <arm_neon.h>

#include <cstring>

#include "kernels/float_kernels.h"

namespace kexa::kernels::detail {
namespace {

// Weight rows come from mapped files without alignment guarantees: vld1 needs none.
struct LoadF32 {
  static constexpr size_t kBytes = 4;
  static float32x4_t at(const uint8_t* row, int64_t k) { return vld1q_f32(reinterpret_cast<const float*>(row) + k); }
  static float scalar(const uint8_t* row, int64_t k) {
    float v;
    std::memcpy(&v, row + 4 * k, 4);
    return v;
  }
};
struct LoadF16 {
  static constexpr size_t kBytes = 2;
  static float32x4_t at(const uint8_t* row, int64_t k) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + k)));
  }
  static float scalar(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return f16_to_f32(h);
  }
};
struct LoadBF16 {
  static constexpr size_t kBytes = 2;
  static float32x4_t at(const uint8_t* row, int64_t k) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(row) + k), 16));
  }
  static float scalar(const uint8_t* row, int64_t k) {
    uint16_t h;
    std::memcpy(&h, row + 2 * k, 2);
    return bf16_to_f32(h);
  }
};

// Sixteen lanes of partial sums (four independent FMA chains), then the tail in scalar.
template <typename Load>
float dot_row(const uint8_t* row, const float* x, int64_t K) {
  float32x4_t acc[4] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f), vdupq_n_f32(0.f)};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int j = 0; j < 4; ++j) acc[j] = vfmaq_f32(acc[j], Load::at(row, k + 4 * j), vld1q_f32(x + k + 4 * j));
  for (; k + 4 <= K; k += 4) acc[0] = vfmaq_f32(acc[0], Load::at(row, k), vld1q_f32(x + k));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; k < K; ++k) s += Load::scalar(row, k) * x[k];
  return s;
}

// Each row is read once per token from cache for a few tokens; for many tokens a 16-bit row is
// widened once into `scratch` so the conversion is not repeated.
template <typename Load>
void rows(const MatmulArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const auto* x = static_cast<const float*>(a.x);
  const int64_t K = a.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * K * Load::kBytes;
    if (Load::kBytes != 4 && scratch != nullptr && a.n_tokens > 2) {
      int64_t k = 0;
      for (; k + 4 <= K; k += 4) vst1q_f32(scratch + k, Load::at(row, k));
      for (; k < K; ++k) scratch[k] = Load::scalar(row, k);
      for (int64_t t = 0; t < a.n_tokens; ++t)
        a.y[t * a.rows + r] = dot_row<LoadF32>(reinterpret_cast<const uint8_t*>(scratch), x + t * K, K);
      continue;
    }
    for (int64_t t = 0; t < a.n_tokens; ++t) a.y[t * a.rows + r] = dot_row<Load>(row, x + t * K, K);
  }
}

}  // namespace
}  // namespace kexa::kernels::detail

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+bf16")
#endif
namespace kexa::kernels::detail {
namespace {

// BF16 weights times bf16 activations with bfdot (pairs of products summed into f32 lanes).
void rows_bfdot(const MatmulArgs& a, int64_t r0, int64_t r1, float*) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const auto* x = static_cast<const uint16_t*>(a.x);
  const int64_t K = a.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = reinterpret_cast<const uint16_t*>(w + static_cast<size_t>(r) * K * 2);
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const uint16_t* xt = x + t * K;
      float32x4_t acc[2] = {vdupq_n_f32(0.f), vdupq_n_f32(0.f)};
      int64_t k = 0;
      for (; k + 16 <= K; k += 16)
        for (int j = 0; j < 2; ++j)
          acc[j] = vbfdotq_f32(acc[j], vreinterpretq_bf16_u16(vld1q_u16(row + k + 8 * j)),
                               vreinterpretq_bf16_u16(vld1q_u16(xt + k + 8 * j)));
      float s = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
      for (; k < K; ++k) {
        uint16_t h;
        std::memcpy(&h, row + k, 2);
        s += bf16_to_f32(h) * bf16_to_f32(xt[k]);
      }
      a.y[t * a.rows + r] = s;
    }
  }
}

}  // namespace
}  // namespace kexa::kernels::detail
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace kexa::kernels::detail {

const FloatKernelSet& neon_kernels(bool with_bf16) {
  static const FloatKernelSet plain = [] {
    FloatKernelSet s = portable_kernels();
    s.f32 = rows<LoadF32>;
    s.f16 = rows<LoadF16>;
    s.bf16 = rows<LoadBF16>;  // multiplies activations rounded to bf16 (round_bf16), widened
    s.bf16_takes_bf16_x = false;
    return s;
  }();
  static const FloatKernelSet bf16 = [] {
    FloatKernelSet s = plain;
    s.bf16 = rows_bfdot;
    s.bf16_takes_bf16_x = true;
    return s;
  }();
  return with_bf16 ? bf16 : plain;
}

}  // namespace kexa::kernels::detail
