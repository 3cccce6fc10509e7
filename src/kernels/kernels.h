// CPU compute kernels. Weights stay in their stored type (mapped from the file); activations are
// f32. The instruction set (x86: AVX-512 BF16/VNNI, AVX2+FMA; 64-bit Arm: NEON, +dot product,
// +i8mm/BF16; or portable C++) is chosen at run time.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kernels/weight.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::kernels {

// Each architecture's paths are listed lowest first; a CPU supports Portable and the paths of its
// own architecture up to its best one. Arm: Neon = plain Advanced SIMD (every aarch64 CPU),
// NeonDotprod = + sdot (Armv8.2 dot product), NeonI8mm = + smmla (Armv8.6 int8 matrix multiply),
// with BF16 dot products (bfdot) for BF16 weights when the CPU also has them.
enum class CpuPath { Portable, Avx2, Avx512, Neon, NeonDotprod, NeonI8mm };
// Every path of every architecture (tests iterate it and skip the unsupported ones).
std::span<const CpuPath> all_paths();
// The best path this CPU supports, unless the environment variable KEXA_ISA (older name:
// KEXA_CPU) asks for a lower one of its architecture: portable|avx2|avx512 on x86-64,
// portable|neon|dotprod|i8mm on aarch64 (used to test every path on one machine). A path the CPU
// cannot run (a higher one, or another architecture's) gives the best path instead.
CpuPath active_path();
std::string path_name(CpuPath path);
// The best path of this CPU, ignoring KEXA_ISA / KEXA_CPU.
CpuPath best_path();
// Whether this CPU can run `path` (Portable, and its architecture's paths up to best_path()).
bool path_supported(CpuPath path);
// Whether the Avx512 path can use AVX512-BF16 dot products (vdpbf16ps) for BF16 weights.
bool avx512_bf16_supported();
// Whether the NeonI8mm path can use the Arm BF16 extension (bfdot) for BF16 weights.
bool arm_bf16_supported();

// y[t][r] = sum_c W[r][c] * x[t][c] for t < n_tokens, r < W.rows(). W is 2-D of any supported
// dtype; x is [n_tokens][W.cols()] and y is [n_tokens][W.rows()], both f32 row-major.
void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);
// The same on a given path (tests and benchmarks); throws kexa::Error if the CPU lacks it.
// BF16 weights multiply activations rounded to bf16 (as llama.cpp does) on every path.
void matmul(const Weight& W, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            CpuPath path);

// Several products of one input x ([n_tokens][cols], the same cols for every weight):
// outs[i].y = outs[i].w x, each with matmul's contract. For one token (decode) the activations are
// prepared once per format and all the matrices' rows are shared out in one parallel region, so a
// layer's Q/K/V (or gate/up) projections cost one thread join instead of several.
struct MatmulOut {
  const Weight* w;
  float* y;
};
void matmul_many(std::span<const MatmulOut> outs, const float* x, int64_t n_tokens, ThreadPool& pool);
void matmul_many(std::span<const MatmulOut> outs, const float* x, int64_t n_tokens, ThreadPool& pool,
                 CpuPath path);

// Converts `n` elements starting at element `offset` of a tensor to f32 (offset and n multiples
// of the block size). Used for embedding rows and small vectors such as norm weights.
void to_f32(const Weight& t, int64_t offset, int64_t n, float* out);

// out = x / sqrt(mean(x^2) + eps) * w (w may be nullptr for no weight); out may alias x.
void rmsnorm(const float* x, const float* w, int64_t n, double eps, float* out);

// NEOX (rotate-half) rotary embedding of one head vector in place: pairs (i, i + hd/2).
void rope_neox(float* head, int64_t head_dim, const float* inv_freq, int64_t position);
// The same split in two, so the cos/sin of one position (half = head_dim / 2 values each) are
// computed once and shared by every head and layer: rope_neox(h, hd, f, p) equals
// rope_cos_sin(f, hd / 2, p, c, s) then rope_neox_cs(h, hd, c, s).
void rope_cos_sin(const float* inv_freq, int64_t half, int64_t position, float* cos_out,
                  float* sin_out);
void rope_neox_cs(float* head, int64_t head_dim, const float* cos_v, const float* sin_v);

// x[i] = silu(gate[i]) * up[i]
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// In-place numerically stable softmax.
void softmax(float* x, int64_t n);

// out[i] = exp((x[i] - shift) * scale) in double, for a softmax over a vocabulary; returns the sum
// of out[0..n). The same IEEE operations, unfused, on every path, so every machine gets the same
// bits: a Cody-Waite reduction and a degree-13 Taylor polynomial (within 2 ulp of exp for
// arguments up to 709); arguments below -708.39 (results below 2^-1022) give 0. The sum is 8
// interleaved partial sums (i mod 8) added pairwise at the end.
double exp_sum(const float* x, int64_t n, double shift, double scale, double* out);

// IEEE half <-> float arrays (the f16 KV cache's rows). f32_to_f16 rounds to nearest even and
// overflows to infinity, identically on every path (util/half.h's f32_to_f16, F16C's vcvtps2ph).
void f16_array_to_f32(const uint16_t* in, int64_t n, float* out);
void f32_array_to_f16(const float* in, int64_t n, uint16_t* out);

// Attention building blocks over rows `stride` floats apart (one KV head's keys or values in an
// f32 KV cache), for the n_q query heads that share that KV head (grouped-query attention):
//   scores[h * scores_stride + j] = scale * dot(q + h * q_stride, rows + j * stride)
// over `dim` elements, for h < n_q, j < n. Every head's result is bit for bit what it gets alone
// (n_q = 1); together, each cached row is fetched once per group instead of once per head.
//
// A key's score does not depend on which call or block computed it, so callers may split the
// keys anywhere (the attention hands them over in blocks small enough to stay in L1).
void dot_rows(const float* q, int64_t n_q, int64_t q_stride, const float* rows, int64_t stride,
              int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride);
// out[h * out_stride + d] += sum_j p[h * p_stride + j] * rows[j * stride + d] for h < n_q,
// d < dim, j < n (out accumulates: zero it first). Same grouping and exactness as dot_rows.
void accumulate_rows(const float* p, int64_t n_q, int64_t p_stride, const float* rows, int64_t stride,
                     int64_t n, int64_t dim, float* out, int64_t out_stride);
// The same over rows of IEEE half values (an f16 KV cache), `stride` elements apart: equal bit
// for bit to the f32 forms on the rows widened to f32 (widening is exact).
void dot_rows_f16(const float* q, int64_t n_q, int64_t q_stride, const uint16_t* rows, int64_t stride,
                  int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride);
void accumulate_rows_f16(const float* p, int64_t n_q, int64_t p_stride, const uint16_t* rows, int64_t stride,
                         int64_t n, int64_t dim, float* out, int64_t out_stride);

}  // namespace kexa::kernels
