// Matrix products on GGUF block-quantized weights (Q4_0 ... Q6_K), activations quantized on the
// fly to int8. Called by kernels::matmul for every non-float dtype.
#pragma once

#include <cstdint>

#include "formats/tensor.h"
#include "kernels/kernels.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::kernels {

// Same contract as kernels::matmul (on active_path()). Throws kexa::Error naming the tensor and
// dtype when unsupported.
void matmul_quantized(const TensorView& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool);
// The same on a given path (tests, benchmarks); throws when the CPU lacks the path.
void matmul_quantized(const TensorView& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool, CpuPath path);

// Whether `type` is one of the block-quantized types handled here.
bool is_quantized(DType type);

// Dequantizes n elements (a multiple of the block size) of a quantized tensor's row data,
// bit-exactly as llama.cpp does.
void dequantize(DType type, const uint8_t* blocks, int64_t n, float* out);

// Quantizes n floats (a multiple of the block size) into dtype_bytes(type, n) bytes with the same
// algorithm as llama.cpp's reference (non-imatrix) quantizers.
void quantize(DType type, const float* x, int64_t n, uint8_t* out);

}  // namespace kexa::kernels
