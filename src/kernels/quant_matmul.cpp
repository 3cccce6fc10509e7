// Quantized matmul driver: quantizes the activations once per call, then splits the weight rows
// over the thread pool. Rows are walked in panels; within a panel each weight row is unpacked
// once for up to kMaxTokens tokens, so prefill reads the weights from memory once per panel while
// the (small) activation rows stay in cache.
#include "kernels/quant_matmul.h"

#include <algorithm>
#include <atomic>
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

bool runs_packed(const Weight& W, CpuPath path) {
  return is_quantized(W.dtype) && path_supported(path) && use_packed_kernels(W, path);
}

void matmul_packed_many(std::span<const MatmulOut> outs, const float* x, int64_t n_tokens, ThreadPool& pool,
                        CpuPath path) {
  if (outs.empty() || n_tokens <= 0) return;
  const int64_t cols = outs[0].w->cols();
  for (const MatmulOut& o : outs) {
    check_quantized(*o.w);
    if (!use_packed_kernels(*o.w, path))
      fail("quantized matmul: ", o.w->name, " is not in a packed layout this CPU path runs");
    if (o.w->cols() != cols)
      fail("matmul: weight ", o.w->name, " ", o.w->shape_string(), " does not take the ", cols,
           " input columns of the other weights in the same call");
    if (o.y == nullptr || x == nullptr) fail("matmul: null activation or output buffer for ", o.w->name);
  }
  // Activations of each format the weights dot with, quantized once for every product; per
  // calling thread so that batched decode does not allocate.
  struct Scratch {
    std::vector<uint8_t> act32, act256;
  };
  thread_local Scratch scratch_of_caller;
  Scratch& scratch = scratch_of_caller;  // lambdas below run on other threads too
  bool need32 = false, need256 = false;
  for (const MatmulOut& o : outs) (act_kind(o.w->dtype) == ActKind::Block256 ? need256 : need32) = true;
  const size_t stride32 = static_cast<size_t>(cols / kQK) * sizeof(ActBlock32);
  const size_t stride256 = need256 ? static_cast<size_t>(cols / kQKK) * sizeof(ActBlock256) : 0;
  if (need32) scratch.act32.resize(stride32 * static_cast<size_t>(n_tokens));
  if (need256) scratch.act256.resize(stride256 * static_cast<size_t>(n_tokens));
  auto quantize_tokens = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      if (need256)
        quantize_act256(x + t * cols, cols,
                        reinterpret_cast<ActBlock256*>(scratch.act256.data() + stride256 * static_cast<size_t>(t)));
      if (need32)
        quantize_act32(x + t * cols, cols,
                       reinterpret_cast<ActBlock32*>(scratch.act32.data() + stride32 * static_cast<size_t>(t)));
    }
  };
  if (n_tokens >= 4)
    pool.parallel_for(n_tokens, quantize_tokens);
  else
    quantize_tokens(0, n_tokens);

  // Units of work: (token chunk, a few row groups of one product), claimed from a shared counter
  // in token-chunk order, so every product of the call shares one join and a thread that starts
  // late or is slowed by another process leaves its share to the others instead of holding up
  // the join. A row group's outputs do not depend on which unit or thread computes it.
  struct Task {
    const Weight* w;
    float* y;
    const uint8_t* act;
    size_t stride;
    int64_t groups, per_unit, first_unit;
  };
  thread_local std::vector<Task> tasks_of_caller;
  std::vector<Task>& tasks = tasks_of_caller;
  tasks.clear();
  const int threads = pool.size();
  int64_t units_per_chunk = 0;
  for (const MatmulOut& o : outs) {
    const bool k256 = act_kind(o.w->dtype) == ActKind::Block256;
    Task t{o.w, o.y, k256 ? scratch.act256.data() : scratch.act32.data(), k256 ? stride256 : stride32,
           o.w->rows() / kPackRows, 1, units_per_chunk};
    // About 64 KiB of weights per unit, and at least 8 units per thread.
    const int64_t by_bytes = std::max<int64_t>(1, (64 * 1024) / static_cast<int64_t>(packed_group_bytes(*o.w)));
    t.per_unit = std::clamp<int64_t>(t.groups / (8 * threads), 1, by_bytes);
    units_per_chunk += (t.groups + t.per_unit - 1) / t.per_unit;
    tasks.push_back(t);
  }
  const int64_t n_chunks = (n_tokens + kPackedChunkTokens - 1) / kPackedChunkTokens;
  const int64_t n_units = n_chunks * units_per_chunk;
  auto run_unit = [&](int64_t u) {
    const int64_t c = u / units_per_chunk, k = u % units_per_chunk;
    size_t i = 0;
    while (i + 1 < tasks.size() && tasks[i + 1].first_unit <= k) ++i;
    const Task& t = tasks[i];
    const int64_t g0 = (k - t.first_unit) * t.per_unit, g1 = std::min(t.groups, g0 + t.per_unit);
    const int64_t t0 = c * kPackedChunkTokens, nt = std::min(kPackedChunkTokens, n_tokens - t0);
    const int64_t rows = t.w->rows();
    packed_groups(*t.w, t.act + t.stride * static_cast<size_t>(t0), t.stride, nt, g0, g1, t.y + t0 * rows, rows,
                  path);
  };
  if (threads == 1 || n_units == 1) {
    for (int64_t u = 0; u < n_units; ++u) run_unit(u);
    return;
  }
  std::atomic<int64_t> next{0};
  pool.run([&](int, int) {
    for (int64_t u = next.fetch_add(1, std::memory_order_relaxed); u < n_units;
         u = next.fetch_add(1, std::memory_order_relaxed))
      run_unit(u);
  });
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
  if (use_packed_kernels(W, path)) {
    const MatmulOut out{&W, y};
    matmul_packed_many(std::span<const MatmulOut>(&out, 1), x, n_tokens, pool, path);
    return;
  }
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
