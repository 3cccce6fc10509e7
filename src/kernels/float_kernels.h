// Internal to src/kernels: the per-instruction-set pieces of the float matmul (F32, F16, BF16
// weights) and of the element-wise kernels. Each instruction-set file compiles its functions with
// a target attribute, so nothing here may be inlined across files; everything takes raw pointers.
#pragma once

#include <cstdint>

#include "util/half.h"

namespace kexa::kernels::detail {

// One matmul: y[t][r] = sum_k W[r][k] * x[t][k].
struct MatmulArgs {
  const void* w;  // rows x cols weights, row-major, in the weight dtype
  int64_t rows;
  int64_t cols;
  const void* x;  // [n_tokens][cols] prepared activations (f32, or bf16 bits for dpbf16)
  int64_t n_tokens;
  float* y;  // [n_tokens][rows]
};

// Computes rows [r0, r1) of y for every token. `scratch` holds kPanelRows * cols floats (used
// to widen F16/BF16 weight panels when several tokens share them); it may be null when
// n_tokens == 1.
using RowRangeFn = void (*)(const MatmulArgs& args, int64_t r0, int64_t r1, float* scratch);

// Rows processed as one unit of work; a multiple of every micro-kernel's row count.
constexpr int64_t kPanelRows = 16;

// Activation preparation: x is [n] floats.
// f32 -> bf16 bits, round to nearest even.
using ToBf16Fn = void (*)(const float* x, int64_t n, uint16_t* out);
// f32 -> f32 rounded to bf16 precision (for paths that multiply widened bf16 in f32).
using RoundBf16Fn = void (*)(const float* x, int64_t n, float* out);

struct FloatKernelSet {
  RowRangeFn f32;
  RowRangeFn f16;
  RowRangeFn bf16;
  // True when `bf16` wants activations as bf16 bits (ToBf16Fn), false for rounded f32.
  bool bf16_takes_bf16_x;
  ToBf16Fn to_bf16;
  RoundBf16Fn round_bf16;

  void (*rmsnorm)(const float* x, const float* w, int64_t n, double eps, float* out);
  void (*swiglu)(const float* gate, const float* up, int64_t n, float* out);
  void (*softmax)(float* x, int64_t n);
  void (*f16_to_f32)(const uint16_t* in, int64_t n, float* out);
  // Round to nearest even, as util/half.h's f32_to_f16 (what F16C's vcvtps2ph does).
  void (*f32_to_f16)(const float* in, int64_t n, uint16_t* out);
  // Grouped-query forms, as kernels::dot_rows / kernels::accumulate_rows.
  void (*dot_rows)(const float* q, int64_t n_q, int64_t q_stride, const float* rows, int64_t stride,
                   int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride);
  void (*accumulate_rows)(const float* p, int64_t n_q, int64_t p_stride, const float* rows,
                          int64_t stride, int64_t n, int64_t dim, float* out, int64_t out_stride);
  // The same over IEEE half rows, widening each element as it is loaded; the results equal the
  // f32 forms' on the widened rows bit for bit. Null: kernels::dot_rows_f16 widens a block of
  // rows with f16_to_f32 and calls the f32 form.
  void (*dot_rows_f16)(const float* q, int64_t n_q, int64_t q_stride, const uint16_t* rows, int64_t stride,
                       int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride);
  void (*accumulate_rows_f16)(const float* p, int64_t n_q, int64_t p_stride, const uint16_t* rows,
                              int64_t stride, int64_t n, int64_t dim, float* out, int64_t out_stride);
  // kernels::exp_sum.
  double (*exp_sum)(const float* x, int64_t n, double shift, double scale, double* out);
};

// kernels::exp_sum, one element at a time (the portable path, and the tails of the vector ones).
// Every path performs exactly these IEEE operations, unfused, in this order.
namespace exp_detail {
constexpr double kLog2e = 1.4426950408889634074;
constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 32 trailing zero bits: k * kLn2Hi is exact
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kShifter = 0x1.8p52;  // v * log2(e) + kShifter rounds to an integer k in the low bits
constexpr double kMinArg = -708.39641853226410622;  // exp(kMinArg) = 2^-1022, the least normal
// 1/i! for i = 13 down to 0: the Taylor polynomial of exp on |r| <= ln(2)/2 (error < 1e-17).
constexpr double kCoef[14] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                              1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,      1.0 / 720.0,
                              1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,         0.5,
                              1.0,                1.0};
// Bits added to t = v * log2(e) + kShifter (whose low bits hold k) to give 2^k's exponent field
// after a shift by 52.
constexpr int64_t kExponentBias = 1023 - 0x4338000000000000;
}  // namespace exp_detail

double exp_sum_portable(const float* x, int64_t n, double shift, double scale, double* out);
// exp((x - shift) * scale) of one element, as every path computes it.
double exp_one(float x, double shift, double scale);

const FloatKernelSet& portable_kernels();
// Only valid to call when the CPU supports the instruction set.
const FloatKernelSet& avx2_kernels();
const FloatKernelSet& avx512_kernels();
// Arm Advanced SIMD (every aarch64 CPU); with_bf16 selects the bfdot BF16 kernel (only valid when
// the CPU has the BF16 extension).
const FloatKernelSet& neon_kernels(bool with_bf16);

// Scalar conversions shared by all paths (exact, IEEE semantics).
using kexa::bf16_to_f32;
using kexa::f16_to_f32;
using kexa::f32_to_bf16;
using kexa::f32_to_f16;

}  // namespace kexa::kernels::detail
