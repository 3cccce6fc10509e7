// Matrix products on GGUF block-quantized weights (Q4_0 ... Q6_K), activations quantized on the
// fly to int8. Called by kernels::matmul for every non-float dtype.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/weight.h"
#include "kernels/kernels.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::kernels {

// Same contract as kernels::matmul (on active_path()). Throws kexa::Error naming the tensor and
// dtype when unsupported.
void matmul_quantized(const Weight& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool);
// The same on a given path (tests, benchmarks); throws when the CPU lacks the path.
void matmul_quantized(const Weight& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool, CpuPath path);

// Whether W goes through the packed kernels on `path` (a quantized weight in the packed layout
// that path runs).
bool runs_packed(const Weight& W, CpuPath path);
// y = W x for each of `outs` (all runs_packed on `path`, same column count), n_tokens rows of x:
// the activations are quantized once per format and every product shares one pass over the
// pool. Each output row is what matmul_quantized gives for that weight alone, bit for bit.
void matmul_packed_many(std::span<const MatmulOut> outs, const float* x, int64_t n_tokens, ThreadPool& pool,
                        CpuPath path);

// One token's activations quantized for the dot kernels, kept between calls so that several
// matrices multiplying the same input (kernels::matmul_many) quantize it once per format, and so
// that decode does not allocate per call. prepare() must be called before each new input.
class QuantizedInput {
 public:
  void prepare(const float* x, int64_t cols);
  // The activation blocks of the format that `type` dots with, quantized on first use.
  const uint8_t* blocks(DType type);

 private:
  const float* x_ = nullptr;
  int64_t cols_ = 0;
  std::vector<uint8_t> act32_, act256_;
  bool have32_ = false, have256_ = false;
};

// Rows [r0, r1) of y = W x for one token whose activations are in `in` (W checked by the caller
// with check_quantized). Any r0 < r1 <= rows may run on any thread.
void quantized_rows(const Weight& W, const uint8_t* act_blocks, float* y, int64_t r0, int64_t r1,
                    CpuPath path);
// Throws kexa::Error (naming the tensor) unless W can go through matmul_quantized.
void check_quantized(const Weight& W);

// Whether `type` is one of the block-quantized types handled here.
bool is_quantized(DType type);

// Dequantizes n elements (a multiple of the block size) of a quantized tensor's row data,
// bit-exactly as llama.cpp does.
void dequantize(DType type, const uint8_t* blocks, int64_t n, float* out);

// Quantizes n floats (a multiple of the block size) into dtype_bytes(type, n) bytes with the same
// algorithm as llama.cpp's reference (non-imatrix) quantizers.
void quantize(DType type, const float* x, int64_t n, uint8_t* out);

}  // namespace kexa::kernels
