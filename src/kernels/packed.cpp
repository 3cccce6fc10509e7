// Packing and unpacking of row-interleaved weights (layouts in packed.h). Plain C++: it runs once
// per tensor at load, and unpack_row serves embedding lookups and the paths without packed kernels.
#include "kernels/packed.h"
#include "kernels/packed_blocks.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa::kernels {

using namespace quant;

namespace {

using namespace packed;

// The 256 levels of a Q6_K block (0..63, stored +32) in value order, and back.
void q6_k_levels(const BlockQ6_K& b, uint8_t lv[256]) {
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    for (int l = 0; l < 32; ++l) {
      lv[128 * n + l] = static_cast<uint8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
      lv[128 * n + l + 32] = static_cast<uint8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
      lv[128 * n + l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      lv[128 * n + l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}
void q6_k_store(const uint8_t lv[256], BlockQ6_K& b) {
  for (int n = 0; n < 2; ++n) {
    uint8_t* ql = b.ql + 64 * n;
    uint8_t* qh = b.qh + 32 * n;
    for (int l = 0; l < 32; ++l) {
      const uint8_t a = lv[128 * n + l], c = lv[128 * n + l + 32], e = lv[128 * n + l + 64], f = lv[128 * n + l + 96];
      ql[l] = static_cast<uint8_t>((a & 0xF) | ((e & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((c & 0xF) | ((f & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((f >> 4) << 6));
    }
  }
}

// Where value k (0..255) of row r sits in a packed K-quant group: 64-byte chunk and byte.
inline int step_byte(int r, int k) { return r * 4 + (k & 3); }

inline uint32_t word_at(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}
inline void put_word(uint8_t* p, uint32_t w) { std::memcpy(p, &w, 4); }

// The Q4_K part shared with Q5_K: scales, minimums and the low four bits of every value.
template <class Packed, class Block>
void pack_k4(const uint8_t* rows_in, size_t row_bytes, Packed& p) {
  constexpr uint32_t kLow = 0x0F0F0F0Fu;
  for (int r = 0; r < R; ++r) {
    const auto& b = *reinterpret_cast<const Block*>(rows_in + row_bytes * r);
    p.d[r] = b.d;
    p.dmin[r] = b.dmin;
    for (int i = 0; i < 12; ++i) p.scales[i][r] = b.scales[i];
    // Sub-block j (values 32j ..) is nibble j % 2 of the file's qs[32 (j / 2) ..].
    for (int j = 0; j < 8; ++j) {
      const uint8_t* src = b.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int q = 0; q < 4; ++q) {
        const uint32_t lo = (word_at(src + 4 * q) >> shift) & kLow;       // step 8j+q
        const uint32_t hi = (word_at(src + 4 * q + 16) >> shift) & kLow;  // step 8j+q+4
        put_word(p.sub[j].qs[q] + 4 * r, lo | (hi << 4));
      }
    }
  }
}

// One block column of a group: 16 file blocks -> one packed block. Works on 4-byte words (4
// values of one row per step), which is what a packed step holds per row.
void pack_block(DType type, const uint8_t* rows_in, size_t row_bytes, uint8_t* out) {
  constexpr uint32_t kLow = 0x0F0F0F0Fu, kTwo = 0x03030303u;
  switch (type) {
    case DType::Q8_0: {
      auto& p = *reinterpret_cast<PackedQ8_0*>(out);
      for (int r = 0; r < R; ++r) {
        const auto& b = *reinterpret_cast<const BlockQ8_0*>(rows_in + row_bytes * r);
        p.d[r] = b.d;
        const auto* q = reinterpret_cast<const uint8_t*>(b.qs);
        for (int s = 0; s < 8; ++s) put_word(p.q[s] + 4 * r, word_at(q + 4 * s) ^ 0x80808080u);  // + 128
      }
      return;
    }
    case DType::Q4_0: {
      // Step s (values 4s .. 4s+3) is the low nibbles of the file's bytes 4s .. 4s+3 and step
      // s + 4 (values 16 + 4s ..) their high nibbles: the bytes move as they are.
      auto& p = *reinterpret_cast<PackedQ4_0*>(out);
      for (int r = 0; r < R; ++r) {
        const auto& b = *reinterpret_cast<const BlockQ4_0*>(rows_in + row_bytes * r);
        p.d[r] = b.d;
        for (int s = 0; s < 4; ++s) put_word(p.qs[s] + 4 * r, word_at(b.qs + 4 * s));
      }
      return;
    }
    case DType::Q4_K:
      return pack_k4<PackedQ4_K, BlockQ4_K>(rows_in, row_bytes, *reinterpret_cast<PackedQ4_K*>(out));
    case DType::Q5_K: {
      auto& p = *reinterpret_cast<PackedQ5_K*>(out);
      pack_k4<PackedQ5_K, BlockQ5_K>(rows_in, row_bytes, p);
      for (auto& sub : p.sub) std::memset(sub.qh, 0, sizeof sub.qh);
      for (int r = 0; r < R; ++r) {
        const auto& b = *reinterpret_cast<const BlockQ5_K*>(rows_in + row_bytes * r);
        // The file keeps value 32j + l's fifth bit in bit j of qh[l].
        for (int j = 0; j < 8; ++j)
          for (int l = 0; l < 32; ++l)
            p.sub[j].qh[step_byte(r, l)] |= static_cast<uint8_t>(((b.qh[l] >> j) & 1) << (l / 4));
      }
      return;
    }
    case DType::Q6_K: {
      auto& p = *reinterpret_cast<PackedQ6_K*>(out);
      uint8_t lv[256];
      for (int r = 0; r < R; ++r) {
        const auto& b = *reinterpret_cast<const BlockQ6_K*>(rows_in + row_bytes * r);
        p.d[r] = b.d;
        for (int g = 0; g < 16; ++g) p.scales[g][r] = b.scales[g];
        q6_k_levels(b, lv);
        for (int g = 0; g < 16; ++g) {
          uint32_t L[4];
          for (int sub = 0; sub < 4; ++sub) L[sub] = word_at(lv + 16 * g + 4 * sub);
          put_word(p.g[g].ql[0] + 4 * r, (L[0] & kLow) | ((L[1] & kLow) << 4));
          put_word(p.g[g].ql[1] + 4 * r, (L[2] & kLow) | ((L[3] & kLow) << 4));
          uint32_t h = 0;
          for (int sub = 0; sub < 4; ++sub) h |= ((L[sub] >> 4) & kTwo) << (2 * sub);
          put_word(p.g[g].qh + 4 * r, h);
        }
      }
      return;
    }
    default:
      fail("pack_rows: ", dtype_name(type), " has no packed layout");
  }
}

template <class Packed, class Block>
void unpack_k4(const Packed& p, int r, Block& b) {
  b.d = p.d[r];
  b.dmin = p.dmin[r];
  for (int i = 0; i < 12; ++i) b.scales[i] = p.scales[i][r];
  uint8_t lv[256];
  for (int k = 0; k < 256; ++k) {
    const int s = k / 4, j = s / 8, within = s % 8;
    lv[k] = (p.sub[j].qs[within % 4][step_byte(r, k)] >> (within >= 4 ? 4 : 0)) & 0xF;
  }
  for (int n = 0; n < 4; ++n)
    for (int l = 0; l < 32; ++l) b.qs[32 * n + l] = static_cast<uint8_t>(lv[64 * n + l] | (lv[64 * n + 32 + l] << 4));
}

void unpack_block(DType type, const uint8_t* in, int r, uint8_t* out) {
  switch (type) {
    case DType::Q8_0: {
      const auto& p = *reinterpret_cast<const PackedQ8_0*>(in);
      auto& b = *reinterpret_cast<BlockQ8_0*>(out);
      b.d = p.d[r];
      for (int k = 0; k < 32; ++k) b.qs[k] = static_cast<int8_t>(p.q[k / 4][step_byte(r, k)] - 128);
      return;
    }
    case DType::Q4_0: {
      const auto& p = *reinterpret_cast<const PackedQ4_0*>(in);
      auto& b = *reinterpret_cast<BlockQ4_0*>(out);
      b.d = p.d[r];
      for (int s = 0; s < 4; ++s) put_word(b.qs + 4 * s, word_at(p.qs[s] + 4 * r));
      return;
    }
    case DType::Q4_K:
      return unpack_k4(*reinterpret_cast<const PackedQ4_K*>(in), r, *reinterpret_cast<BlockQ4_K*>(out));
    case DType::Q5_K: {
      const auto& p = *reinterpret_cast<const PackedQ5_K*>(in);
      auto& b = *reinterpret_cast<BlockQ5_K*>(out);
      unpack_k4(p, r, b);
      for (int l = 0; l < 32; ++l) {
        uint8_t h = 0;
        for (int j = 0; j < 8; ++j) h |= static_cast<uint8_t>(((p.sub[j].qh[step_byte(r, l)] >> (l / 4)) & 1) << j);
        b.qh[l] = h;
      }
      return;
    }
    case DType::Q6_K: {
      const auto& p = *reinterpret_cast<const PackedQ6_K*>(in);
      auto& b = *reinterpret_cast<BlockQ6_K*>(out);
      b.d = p.d[r];
      for (int g = 0; g < 16; ++g) b.scales[g] = p.scales[g][r];
      uint8_t lv[256];
      for (int k = 0; k < 256; ++k) {
        const int s = k / 4, g = s / 4, sub = s % 4;
        const int low = (p.g[g].ql[sub / 2][step_byte(r, k)] >> (sub % 2 ? 4 : 0)) & 0xF;
        const int high = (p.g[g].qh[step_byte(r, k)] >> (2 * sub)) & 3;
        lv[k] = static_cast<uint8_t>(low | (high << 4));
      }
      q6_k_store(lv, b);
      return;
    }
    default:
      fail("unpack_row: ", dtype_name(type), " has no packed layout");
  }
}

}  // namespace

bool packable(const Weight& W) {
  if (W.shape.size() != 2 || W.rows() % R != 0 || W.rows() <= 0) return false;
  if (W.dtype != DType::Q8_0 && W.dtype != DType::Q4_0 && W.dtype != DType::Q4_K && W.dtype != DType::Q5_K &&
      W.dtype != DType::Q6_K)
    return false;
  return W.cols() % dtype_info(W.dtype)->block_size == 0 && W.data != nullptr &&
         W.nbytes >= dtype_bytes(W.dtype, W.numel());
}

bool packed_path(CpuPath path) {
  if (!path_supported(path)) return false;
  return path == CpuPath::Avx2 || (path == CpuPath::Avx512 && packed_kernels_supported());
}

bool packed_kernel(CpuPath path, DType type) {
  return packed_path(path) && (type != DType::Q4_0 || path == CpuPath::Avx2);
}

bool should_pack(const Weight& W) {
  if (W.row_group != 1 || !packable(W)) return false;
  if (!packed_kernel(active_path(), W.dtype)) return false;
  const char* env = std::getenv("KEXA_PACK");
  return env == nullptr || std::string(env) != "0";
}

void pack_rows(DType type, int64_t rows, int64_t cols, uint8_t* bytes, ThreadPool* pool) {
  const size_t row_bytes = dtype_bytes(type, cols);
  const int64_t block = dtype_info(type)->block_size;
  const size_t block_bytes = dtype_info(type)->block_bytes;
  if (rows % R != 0) fail("pack_rows: ", rows, " rows is not a multiple of ", R);
  auto pack_groups = [&](int64_t g0, int64_t g1) {
    std::vector<uint8_t> group(row_bytes * R);
    for (int64_t g = g0; g < g1; ++g) {
      uint8_t* dst = bytes + row_bytes * R * static_cast<size_t>(g);
      std::memcpy(group.data(), dst, group.size());
      for (int64_t b = 0; b < cols / block; ++b)
        pack_block(type, group.data() + block_bytes * static_cast<size_t>(b), row_bytes,
                   dst + block_bytes * R * static_cast<size_t>(b));
    }
  };
  if (pool != nullptr && pool->size() > 1)
    pool->parallel_for(rows / R, pack_groups);
  else
    pack_groups(0, rows / R);
}

void unpack_row(const Weight& W, int64_t row, uint8_t* out) {
  if (W.row_group != R) fail("unpack_row: ", W.name, " is not packed");
  if (row < 0 || row >= W.rows()) fail("unpack_row: row ", row, " is outside ", W.name, " ", W.shape_string());
  const int64_t block = dtype_info(W.dtype)->block_size;
  const size_t block_bytes = dtype_info(W.dtype)->block_bytes;
  const uint8_t* group = W.data + packed_group_bytes(W) * static_cast<size_t>(row / R);
  for (int64_t b = 0; b < W.cols() / block; ++b)
    unpack_block(W.dtype, group + block_bytes * R * static_cast<size_t>(b), static_cast<int>(row % R),
                 out + block_bytes * static_cast<size_t>(b));
}

}  // namespace kexa::kernels
