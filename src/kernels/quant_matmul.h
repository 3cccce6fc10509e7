// Matrix products on GGUF block-quantized weights (Q4_0 ... Q6_K), activations quantized on the
// fly to int8. Called by kernels::matmul for every non-float dtype.
#pragma once

#include <cstdint>

#include "formats/tensor.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::kernels {

// Same contract as kernels::matmul. Throws kexa::Error naming the dtype when unsupported.
void matmul_quantized(const TensorView& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool);

// Dequantizes n elements (a multiple of the block size) of a quantized tensor's row data.
void dequantize(DType type, const uint8_t* blocks, int64_t n, float* out);

}  // namespace kexa::kernels
