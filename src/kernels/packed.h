// Row-interleaved ("packed") weights for the AVX-512 VNNI and AVX2 kernels.
//
// A GGUF row stores its quantized values one row after another, so a dot kernel unpacks each
// block for one row and must re-unpack it for every group of tokens. Packing rearranges each
// group of kPackRows = 16 consecutive rows so that one 64-byte register holds 4 consecutive
// values of all 16 rows: one vpdpbusd with a broadcast activation word then does 16 rows x 4
// values, the accumulators are the 16 outputs themselves (no horizontal sums), and the per-row
// scales line up with the accumulator lanes. The packed form has exactly the size of the file's
// form (group g occupies the bytes of rows 16g .. 16g+15), so a model packs in place at load.
//
// Every layout is read front to back by the kernels (one forward stream for the hardware
// prefetcher: splitting a block's bits into distant regions halved the DRAM rate).
// Packed layouts, per group of 16 rows and per block column (r = row in the group, "step" s covers
// the 4 values 4s .. 4s+3 of the block, byte r*4+i of a 64-byte chunk is row r's value 4s+i):
//   Q8_0 (544 bytes = 16 x 34): u16 d[16]; u8 q[8][64]            q = value + 128
//   Q4_0 (288 = 16 x 18):       u16 d[16]; u8 qs[4][64], qs[s] holds step s in its low nibbles and
//                                step s + 4 in its high ones (the file's byte 4s + i of the row)
//   Q4_K (2304 = 16 x 144):     u16 d[16], dmin[16]; u8 scales[12][16] (the file's 12 scale
//                                bytes, byte-major); per sub-block j: u8 qs[4][64], qs[p] holds
//                                step 8j+p in its low nibbles and step 8j+p+4 in its high ones
//   Q5_K (2816 = 16 x 176):     as Q4_K with each sub-block's qs followed by u8 qh[64]: bit s of
//                                byte r*4+i is the fifth bit of step 8j+s's value i
//   Q6_K (3360 = 16 x 210):     u16 d[16]; i8 scales[16][16]; then per 16-value group g:
//                                u8 ql[2][64] (ql[h] holds steps 4g+2h in its low nibbles and
//                                4g+2h+1 in its high ones), u8 qh[64] (the two high bits of step
//                                4g+k at bits 2k, 2k+1)
#pragma once

#include <cstdint>

#include "kernels/weight.h"
#include "kernels/kernels.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::kernels {

constexpr int kPackRows = 16;

// Whether a 2-D weight of this dtype and shape has a packed form at all (Q4_0, Q4_K, Q5_K, Q6_K, Q8_0;
// rows a multiple of 16). Says nothing about the CPU.
bool packable(const Weight& W);
// Whether the model loader should pack W: packable, not packed yet, the active CPU path runs
// packed kernels for W's dtype (packed_kernel), and KEXA_PACK is not "0".
bool should_pack(const Weight& W);

// Rewrites `bytes` (the file's rows of a packable [rows, cols] tensor of `type`,
// dtype_bytes(type, rows * cols) bytes) into the packed layout, in place; on `pool` if given.
void pack_rows(DType type, int64_t rows, int64_t cols, uint8_t* bytes, ThreadPool* pool = nullptr);
// Row `row` of a packed tensor in the file's block layout (dtype_bytes(W.dtype, W.cols()) bytes).
void unpack_row(const Weight& W, int64_t row, uint8_t* out);

// Whether this CPU has the instructions of the AVX-512 packed kernels (AVX-512 with VNNI).
bool packed_kernels_supported();
// Whether `path` runs packed tensors through packed kernels on this CPU (AVX-512 with VNNI; AVX2).
bool packed_path(CpuPath path);
// Whether `path` has a packed kernel for `type` on this CPU: packed_path, and for Q4_0 the AVX2
// path only (a packed Q4_0 tensor on another path unpacks its rows).
bool packed_kernel(CpuPath path, DType type);

// The packed kernels (quant_packed_avx512.cpp; call only when packed_kernels_supported()):
// y[t * y_stride + 16 g + r] = row 16 g + r of W times token t, for groups g0 <= g < g1 and
// t < n_tok. `act` holds token 0's activation blocks (ActBlock32 for Q8_0, ActBlock256 for the
// K-quants), each next token's act_stride bytes later. Every token's result is computed with the
// same instructions in the same order whatever n_tok is, so a batch equals its rows one by one.
void packed_matmul_groups(const Weight& W, const uint8_t* act, size_t act_stride, int64_t n_tok,
                          int64_t g0, int64_t g1, float* y, int64_t y_stride);

// The same contract on AVX2 + FMA + F16C (quant_packed_avx2.cpp; call only when
// path_supported(CpuPath::Avx2)), Q4_0 (ActBlock32 activations) included. Its floats differ from
// the AVX-512 kernels' in rounding only.
void packed_matmul_groups_avx2(const Weight& W, const uint8_t* act, size_t act_stride, int64_t n_tok,
                               int64_t g0, int64_t g1, float* y, int64_t y_stride);

// Bytes of one packed group of 16 rows (= 16 file rows).
inline size_t packed_group_bytes(const Weight& W) {
  return dtype_bytes(W.dtype, W.cols()) * static_cast<size_t>(kPackRows);
}

}  // namespace kexa::kernels
