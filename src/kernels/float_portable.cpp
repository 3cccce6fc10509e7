// Portable C++ versions of the float kernels: the reference path, and the fallback on CPUs
// without AVX2.
#include <cmath>
#include <cstring>

#include "kernels/float_kernels.h"

namespace kexa::kernels::detail {
namespace {

// Weight rows come straight from mapped files, where safetensors gives no alignment guarantee:
// elements are read with memcpy, which compiles to plain loads without assuming alignment.
struct LoadF32 {
  static float at(const void* row, int64_t k) {
    float v;
    std::memcpy(&v, static_cast<const uint8_t*>(row) + 4 * k, 4);
    return v;
  }
  static constexpr size_t kBytes = 4;
};
inline uint16_t load_u16(const void* row, int64_t k) {
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(row) + 2 * k, 2);
  return h;
}
struct LoadF16 {
  static float at(const void* row, int64_t k) { return f16_to_f32(load_u16(row, k)); }
  static constexpr size_t kBytes = 2;
};
struct LoadBF16 {
  static float at(const void* row, int64_t k) { return bf16_to_f32(load_u16(row, k)); }
  static constexpr size_t kBytes = 2;
};

// Eight partial sums keep the dependency chains short and let the compiler use SIMD registers
// even without reassociation flags.
float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[k + j] * b[k + j];
  for (; k < n; ++k) acc[k & 7] += a[k] * b[k];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

template <typename Load>
void rows_generic(const MatmulArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const auto* w = static_cast<const uint8_t*>(a.w);
  const auto* x = static_cast<const float*>(a.x);
  const int64_t K = a.cols;
  float local_row[256];
  for (int64_t r = r0; r < r1; ++r) {
    const void* row = w + static_cast<size_t>(r) * K * Load::kBytes;
    const float* wf;
    if (Load::kBytes == 4 && reinterpret_cast<uintptr_t>(row) % alignof(float) == 0) {
      wf = static_cast<const float*>(row);
    } else {
      // Widen the row once and reuse it for every token.
      float* buf = scratch != nullptr ? scratch : (K <= 256 ? local_row : nullptr);
      if (buf == nullptr) {
        for (int64_t t = 0; t < a.n_tokens; ++t) {
          float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          const float* xt = x + t * K;
          for (int64_t k = 0; k < K; ++k) acc[k & 7] += Load::at(row, k) * xt[k];
          a.y[t * a.rows + r] =
              ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        }
        continue;
      }
      for (int64_t k = 0; k < K; ++k) buf[k] = Load::at(row, k);
      wf = buf;
    }
    for (int64_t t = 0; t < a.n_tokens; ++t) a.y[t * a.rows + r] = dot(wf, x + t * K, K);
  }
}

void to_bf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

void round_bf16(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

void rmsnorm(const float* x, const float* w, int64_t n, double eps, float* out) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  if (w != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
  }
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void f16_to_f32_array(const uint16_t* in, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(in, i));
}

void f32_to_f16_array(const float* in, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

void dot_rows(const float* q, int64_t n_q, int64_t q_stride, const float* rows, int64_t stride,
              int64_t n, int64_t dim, float scale, float* scores, int64_t scores_stride) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t h = 0; h < n_q; ++h)
      scores[h * scores_stride + j] = dot(q + h * q_stride, rows + j * stride, dim) * scale;
}

void accumulate_rows(const float* p, int64_t n_q, int64_t p_stride, const float* rows, int64_t stride,
                     int64_t n, int64_t dim, float* out, int64_t out_stride) {
  for (int64_t j = 0; j < n; ++j) {
    const float* r = rows + j * stride;
    for (int64_t h = 0; h < n_q; ++h) {
      const float pj = p[h * p_stride + j];
      float* o = out + h * out_stride;
      for (int64_t d = 0; d < dim; ++d) o[d] += pj * r[d];
    }
  }
}

}  // namespace

double exp_one(float x, double shift, double scale) {
  using namespace exp_detail;
  const double v = (static_cast<double>(x) - shift) * scale;
  if (v < kMinArg) return 0.0;
  const double t = v * kLog2e + kShifter;
  const double k = t - kShifter;
  const double r = (v - k * kLn2Hi) - k * kLn2Lo;
  double p = kCoef[0];
  for (int i = 1; i < 14; ++i) p = p * r + kCoef[i];
  int64_t bits;
  std::memcpy(&bits, &t, 8);
  const uint64_t two_k_bits = static_cast<uint64_t>(bits + kExponentBias) << 52;
  double two_k;
  std::memcpy(&two_k, &two_k_bits, 8);
  return p * two_k;
}

double exp_sum_portable(const float* x, int64_t n, double shift, double scale, double* out) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) s[i % 8] += out[i] = exp_one(x[i], shift, scale);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

const FloatKernelSet& portable_kernels() {
  static const FloatKernelSet set = {
      rows_generic<LoadF32>,
      rows_generic<LoadF16>,
      rows_generic<LoadBF16>,
      false,
      to_bf16,
      round_bf16,
      rmsnorm,
      swiglu,
      softmax,
      f16_to_f32_array,
      f32_to_f16_array,
      dot_rows,
      accumulate_rows,
      nullptr,
      nullptr,
      exp_sum_portable,
  };
  return set;
}

}  // namespace kexa::kernels::detail
