// PLACEHOLDER: replaced by the owner of quantized kernels.
#include "kernels/quant_matmul.h"

#include "util/error.h"

namespace kexa::kernels {

void matmul_quantized(const TensorView& W, const float*, int64_t, float*, ThreadPool&) {
  fail(W.name, ": weight type ", dtype_name(W.dtype), " is not supported yet");
}

void dequantize(DType type, const uint8_t*, int64_t, float*) {
  fail("dequantize: type ", dtype_name(type), " is not supported yet");
}

}  // namespace kexa::kernels
