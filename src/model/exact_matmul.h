// Batched matrix products whose every row is bit for bit the single-row result.
//
// kernels::matmul uses different kernels (and summation orders) for one token and for several,
// so a row evaluated in a batch can differ from the same row evaluated alone in the last bits,
// which can flip a greedy argmax or a router's top-k. Speculative decoding must reproduce plain
// decoding exactly, so its verification forward multiplies through matmul_rows_exact: the rows of
// W are cut into chunks that stay in the L2 cache, and every token runs the single-token kernel
// over a chunk before the next chunk is read, so W still streams from memory once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/weight.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::model_detail {

// y[t] = W x[t] for t < n (x: [n][W.cols()], y: [n][W.rows()]), each row equal to
// kernels::matmul(W, x[t], 1, ...). `inline_pools` holds one single-thread pool per thread of
// `pool` (created on first use and kept by the caller).
void matmul_rows_exact(const kernels::Weight& W, const float* x, int64_t n, float* y, ThreadPool& pool,
                       std::vector<std::unique_ptr<ThreadPool>>& inline_pools);

}  // namespace kexa::model_detail
