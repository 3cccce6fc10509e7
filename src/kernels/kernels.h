// CPU compute kernels. Weights stay in their stored type (mapped from the file); activations are
// f32. The instruction set (AVX-512 BF16/VNNI, AVX2+FMA, or portable C++) is chosen at run time.
#pragma once

#include <cstdint>
#include <string>

#include "formats/tensor.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::kernels {

enum class CpuPath { Portable, Avx2, Avx512 };
// The best path this CPU supports, unless the environment variable KEXA_CPU=portable|avx2|avx512
// asks for a lower one (used to test every path on one machine).
CpuPath active_path();
std::string path_name(CpuPath path);

// y[t][r] = sum_c W[r][c] * x[t][c] for t < n_tokens, r < W.rows(). W is 2-D of any supported
// dtype; x is [n_tokens][W.cols()] and y is [n_tokens][W.rows()], both f32 row-major.
void matmul(const TensorView& W, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

// Converts `n` elements starting at element `offset` of a tensor to f32 (offset and n multiples
// of the block size). Used for embedding rows and small vectors such as norm weights.
void to_f32(const TensorView& t, int64_t offset, int64_t n, float* out);

// out = x / sqrt(mean(x^2) + eps) * w (w may be nullptr for no weight); out may alias x.
void rmsnorm(const float* x, const float* w, int64_t n, double eps, float* out);

// NEOX (rotate-half) rotary embedding of one head vector in place: pairs (i, i + hd/2).
void rope_neox(float* head, int64_t head_dim, const float* inv_freq, int64_t position);

// x[i] = silu(gate[i]) * up[i]
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// In-place numerically stable softmax.
void softmax(float* x, int64_t n);

}  // namespace kexa::kernels
