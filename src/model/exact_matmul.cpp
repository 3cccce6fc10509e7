#include "model/exact_matmul.h"

#include <algorithm>
#include <atomic>

#include "kernels/kernels.h"
#include "util/thread_pool.h"

namespace kexa::model_detail {

void matmul_rows_exact(const kernels::Weight& W, const float* x, int64_t n, float* y, ThreadPool& pool,
                       std::vector<std::unique_ptr<ThreadPool>>& inline_pools) {
  if (n <= 1 || W.row_group != 1) {
    // Packed weights: the batched kernels give every row the single-row result already
    // (kernels/packed.h), and row slices would cut through packed groups.
    kernels::matmul(W, x, n, y, pool);
    return;
  }
  const int64_t rows = W.rows(), cols = W.cols();
  const size_t row_bytes = dtype_bytes(W.dtype, cols);
  // About 128 KiB of weights per chunk, so the chunk stays in L2 while the n tokens pass over it.
  // Chunks start at multiples of 64 rows: the kernels group rows into tiles and panels (4 and 16
  // rows) from the start of the matrix they are given, and a row's summation can depend on its
  // place in a tile, so slices must keep the grouping that the whole matrix gets.
  const int64_t kAlign = 64;
  int64_t chunk_rows = static_cast<int64_t>((128 * 1024) / std::max<size_t>(row_bytes, 1));
  chunk_rows = std::max<int64_t>(kAlign, chunk_rows / kAlign * kAlign);
  const int64_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
  if (static_cast<int>(inline_pools.size()) < pool.size()) {
    inline_pools.resize(static_cast<size_t>(pool.size()));
    for (auto& p : inline_pools)
      if (!p) p = std::make_unique<ThreadPool>(1);
  }
  std::atomic<int64_t> next{0};
  auto work = [&](int thread) {
    ThreadPool& single = *inline_pools[static_cast<size_t>(thread)];
    kernels::Weight slice;
    slice.name = W.name;
    slice.dtype = W.dtype;
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) break;
      const int64_t r0 = c * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
      slice.shape = {r1 - r0, cols};
      slice.data = W.data + static_cast<size_t>(r0) * row_bytes;
      slice.nbytes = static_cast<size_t>(r1 - r0) * row_bytes;
      for (int64_t t = 0; t < n; ++t) kernels::matmul(slice, x + t * cols, 1, y + t * rows + r0, single);
    }
  };
  if (pool.size() == 1 || n_chunks == 1) {
    work(0);
    return;
  }
  pool.run([&](int thread, int) { work(thread); });
}

}  // namespace kexa::model_detail
