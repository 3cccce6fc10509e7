// Quantized matmul driver: quantizes the activations once per call, then splits the weight rows
// over the thread pool. Rows are walked in panels; within a panel each weight row is unpacked
// once for up to kMaxTokens tokens, so prefill reads the weights from memory once per panel while
// the (small) activation rows stay in cache.
#include "kernels/quant_matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/packed.h"
#include "kernels/quant_blocks.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa::kernels {

using namespace quant;

namespace {

const DotKernels& dots_for(CpuPath path) {
  if (!path_supported(path))
    fail("quantized matmul: CPU path ", path_name(path), " is not supported by this CPU");
  switch (path) {
    case CpuPath::Avx512:
      // The AVX-512 dot kernels need VNNI, the same CPU test as the packed kernels.
      return packed_kernels_supported() ? avx512_dots() : avx2_dots();
    case CpuPath::Avx2:
      return avx2_dots();
    case CpuPath::Neon:
      return neon_dots(0);
    case CpuPath::NeonDotprod:
      return neon_dots(1);
    case CpuPath::NeonI8mm:
      return neon_dots(2);
    case CpuPath::Portable:
      break;
  }
  return portable_dots();
}

// Rows per unit of work: enough that the activation blocks of a token group are reused across
// many weight rows, small enough that two threads split a 2048-row matrix evenly.
constexpr int64_t kPanelRows = 16;

// Tokens per pass over a packed matrix in prefill: their activation blocks (~75 KiB for 2048
// columns of K-quant blocks) stay in L2 while every row group of the thread's share goes by.
constexpr int64_t kPackedChunkTokens = 64;

bool use_packed_kernels(const Weight& W, CpuPath path) {
  return W.row_group == kPackRows && packed_kernel(path, W.dtype);
}

void packed_groups(const Weight& W, const uint8_t* act, size_t act_stride, int64_t n_tok, int64_t g0, int64_t g1,
                   float* y, int64_t y_stride, CpuPath path) {
  if (path == CpuPath::Avx512)
    packed_matmul_groups(W, act, act_stride, n_tok, g0, g1, y, y_stride);
  else
    packed_matmul_groups_avx2(W, act, act_stride, n_tok, g0, g1, y, y_stride);
}

// A weight row in the file's layout: in place, or unpacked into `buf` for a packed tensor on a
// path without the packed kernels.
const uint8_t* file_row(const Weight& W, int64_t r, size_t row_bytes, std::vector<uint8_t>& buf) {
  if (W.row_group == 1) return W.data + row_bytes * static_cast<size_t>(r);
  buf.resize(row_bytes);
  unpack_row(W, r, buf.data());
  return buf.data();
}

}  // namespace

void matmul_quantized(const Weight& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool) {
  matmul_quantized(W, x, n_tokens, y, pool, active_path());
}

void check_quantized(const Weight& W) {
  if (!is_quantized(W.dtype))
    fail("quantized matmul: ", W.name, ": weight type ", dtype_name(W.dtype),
         " is not a supported quantized type");
  if (W.shape.size() != 2)
    fail("quantized matmul: weight ", W.name, " must be 2-D, got shape ", W.shape_string());
  const int64_t rows = W.rows(), cols = W.cols();
  const DTypeInfo* info = dtype_info(W.dtype);
  if (cols % info->block_size != 0)
    fail("quantized matmul: ", W.name, " ", W.shape_string(), " ", info->name,
         ": row length is not a multiple of the block size ", info->block_size);
  const size_t row_bytes = dtype_bytes(W.dtype, cols);
  if (W.row_group != 1 && (W.row_group != kPackRows || !packable(W)))
    fail("quantized matmul: ", W.name, " ", W.shape_string(), " ", info->name, ": no packed layout for row groups of ",
         W.row_group);
  if (W.data == nullptr || W.nbytes < row_bytes * static_cast<size_t>(rows))
    fail("quantized matmul: ", W.name, " needs ", row_bytes * static_cast<size_t>(rows),
         " bytes, view has ", W.nbytes);
}

void QuantizedInput::prepare(const float* x, int64_t cols) {
  x_ = x;
  cols_ = cols;
  have32_ = have256_ = false;
}

const uint8_t* QuantizedInput::blocks(DType type) {
  if (act_kind(type) == ActKind::Block256) {
    if (!have256_) {
      act256_.resize(static_cast<size_t>(cols_ / kQKK) * sizeof(ActBlock256));
      quantize_act256(x_, cols_, reinterpret_cast<ActBlock256*>(act256_.data()));
      have256_ = true;
    }
    return act256_.data();
  }
  if (!have32_) {
    act32_.resize(static_cast<size_t>(cols_ / kQK) * sizeof(ActBlock32));
    quantize_act32(x_, cols_, reinterpret_cast<ActBlock32*>(act32_.data()));
    have32_ = true;
  }
  return act32_.data();
}

void quantized_rows(const Weight& W, const uint8_t* act_blocks, float* y, int64_t r0, int64_t r1,
                    CpuPath path) {
  if (use_packed_kernels(W, path)) {
    if (r0 % kPackRows != 0 || r1 % kPackRows != 0)
      fail("quantized matmul: ", W.name, ": rows [", r0, ", ", r1, ") split a packed group of ", kPackRows);
    packed_groups(W, act_blocks, 0, 1, r0 / kPackRows, r1 / kPackRows, y, 0, path);
    return;
  }
  const RowDotFn dot = pick(dots_for(path), W.dtype);
  const int64_t cols = W.cols();
  const int64_t nb = cols / dtype_info(W.dtype)->block_size;
  const size_t row_bytes = dtype_bytes(W.dtype, cols);
  thread_local std::vector<uint8_t> unpacked;
  for (int64_t r = r0; r < r1; ++r) dot(file_row(W, r, row_bytes, unpacked), act_blocks, 0, 1, nb, y + r);
}

void matmul_quantized(const Weight& W, const float* x, int64_t n_tokens, float* y,
                      ThreadPool& pool, CpuPath path) {
  check_quantized(W);
  const int64_t rows = W.rows(), cols = W.cols();
  const DTypeInfo* info = dtype_info(W.dtype);
  const size_t row_bytes = dtype_bytes(W.dtype, cols);
  if (n_tokens <= 0) return;
  if (n_tokens == 1) {
    // Decode goes through the same chunked scheduler as kernels::matmul_many.
    kernels::matmul(W, x, n_tokens, y, pool, path);
    return;
  }

  const RowDotFn dot = pick(dots_for(path), W.dtype);
  const int64_t nb = cols / info->block_size;
  // Activations, quantized once per call; each token's blocks are contiguous.
  const bool k_quant = act_kind(W.dtype) == ActKind::Block256;
  const size_t act_stride = static_cast<size_t>(nb) * (k_quant ? sizeof(ActBlock256) : sizeof(ActBlock32));
  std::vector<uint8_t> act(act_stride * static_cast<size_t>(n_tokens));
  auto quantize_tokens = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* dst = act.data() + act_stride * static_cast<size_t>(t);
      if (k_quant)
        quantize_act256(x + t * cols, cols, reinterpret_cast<ActBlock256*>(dst));
      else
        quantize_act32(x + t * cols, cols, reinterpret_cast<ActBlock32*>(dst));
    }
  };
  if (n_tokens >= 4)
    pool.parallel_for(n_tokens, quantize_tokens);
  else
    quantize_tokens(0, n_tokens);

  if (use_packed_kernels(W, path)) {
    const int64_t groups = rows / kPackRows;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kPackedChunkTokens) {
      const int64_t nt = std::min(kPackedChunkTokens, n_tokens - t0);
      const uint8_t* a = act.data() + act_stride * static_cast<size_t>(t0);
      pool.parallel_for(groups, [&](int64_t g0, int64_t g1) {
        packed_groups(W, a, act_stride, nt, g0, g1, y + t0 * rows, rows, path);
      });
    }
    return;
  }

  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows;
  pool.parallel_for(n_panels, [&](int64_t p0, int64_t p1) {
    std::vector<uint8_t> unpacked;
    float out[kMaxTokens];
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kPanelRows, r1 = std::min(rows, r0 + kPanelRows);
      for (int64_t t0 = 0; t0 < n_tokens; t0 += kMaxTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kMaxTokens, n_tokens - t0));
        const uint8_t* a = act.data() + act_stride * static_cast<size_t>(t0);
        for (int64_t r = r0; r < r1; ++r) {
          dot(file_row(W, r, row_bytes, unpacked), a, act_stride, nt, nb, out);
          for (int t = 0; t < nt; ++t) y[(t0 + t) * rows + r] = out[t];
        }
      }
    }
  });
}

}  // namespace kexa::kernels
