// Float kernels on every instruction-set path this CPU has, against double-precision references
// written independently here (conversions use the compiler's half type and frexp-based rounding,
// not the kernels' bit tricks), and the thread pool.
#include "kernels/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "formats/tensor.h"
#include "kernels/amx.h"
#include "kernels/float_kernels.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa {
namespace {

using kernels::CpuPath;

// The compiler's own IEEE half type: _Float16 (GCC 12 has it in C++ on x86-64 only), or Arm's
// __fp16 on aarch64.
#if defined(__aarch64__)
using CompilerHalf = __fp16;
#else
using CompilerHalf = _Float16;
#endif

std::vector<CpuPath> available_paths() {
  std::vector<CpuPath> out;
  for (CpuPath p : kernels::all_paths())
    if (kernels::path_supported(p)) out.push_back(p);
  return out;
}

// bf16 rounding to nearest, ties to even, computed with frexp/nearbyint (independent of the
// kernels' integer trick). Inputs here are normal numbers.
float ref_round_bf16(float v) {
  if (v == 0.0f || !std::isfinite(v)) return v;
  int e;
  double m = std::frexp(static_cast<double>(v), &e);  // v = m * 2^e, 0.5 <= |m| < 1
  double scaled = std::nearbyint(std::ldexp(m, 8));   // 8 significant bits
  return static_cast<float>(std::ldexp(scaled, e - 8));
}

float bf16_bits_value(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<double> values;  // exact value of each stored element
  TensorView view;
};

Weights make_weights(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Weights w;
  const int64_t n = rows * cols;
  w.values.resize(static_cast<size_t>(n));
  const size_t esize = dtype == DType::F32 ? 4 : 2;
  w.bytes.resize(static_cast<size_t>(n) * esize);
  for (int64_t i = 0; i < n; ++i) {
    float v = dist(rng);
    if (dtype == DType::F32) {
      std::memcpy(&w.bytes[i * 4], &v, 4);
      w.values[i] = v;
    } else if (dtype == DType::F16) {
      CompilerHalf h = static_cast<CompilerHalf>(v);
      std::memcpy(&w.bytes[i * 2], &h, 2);
      w.values[i] = static_cast<double>(static_cast<float>(h));
    } else {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      uint16_t bits = static_cast<uint16_t>(u >> 16);  // truncation: any bf16 value will do
      std::memcpy(&w.bytes[i * 2], &bits, 2);
      w.values[i] = bf16_bits_value(bits);
    }
  }
  w.view.name = "test.weight";
  w.view.dtype = dtype;
  w.view.shape = {rows, cols};
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

struct Case {
  DType dtype;
  int64_t rows, cols, tokens;
};

void check_matmul(const Case& c, CpuPath path, ThreadPool& pool, std::mt19937& rng) {
  Weights w = make_weights(c.dtype, c.rows, c.cols, rng);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.tokens * c.cols));
  for (float& v : x) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(c.tokens * c.rows), std::nanf(""));
  kernels::matmul(w.view, x.data(), c.tokens, y.data(), pool, path);

  const std::string where = dtype_name(c.dtype) + " " + kernels::path_name(path) + " rows " +
                            std::to_string(c.rows) + " cols " + std::to_string(c.cols) +
                            " tokens " + std::to_string(c.tokens);
  int bad = 0;
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t r = 0; r < c.rows; ++r) {
      double sum = 0, abs_sum = 0;
      for (int64_t k = 0; k < c.cols; ++k) {
        double xv = x[t * c.cols + k];
        if (c.dtype == DType::BF16) xv = ref_round_bf16(static_cast<float>(xv));
        double p = w.values[r * c.cols + k] * xv;
        sum += p;
        abs_sum += std::fabs(p);
      }
      // Only f32 summation error remains (products of f16/bf16 values with f32 or bf16
      // activations are exact in the reference); 4e-6 relative to sum|w*x| allows a few ulps
      // per addition level yet is far below any single product.
      const double tol = 4e-6 * abs_sum + 1e-30;
      const double got = y[t * c.rows + r];
      if (!(std::fabs(got - sum) <= tol) && ++bad <= 5)
        ADD_FAILURE() << where << ": y[" << t << "][" << r << "] = " << got << ", expected " << sum
                      << " (tol " << tol << ")";
    }
  }
  EXPECT_EQ(bad, 0) << where;
}

TEST(Kernels, PathsAreOrdered) {
  EXPECT_TRUE(kernels::path_supported(CpuPath::Portable));
  EXPECT_TRUE(kernels::path_supported(kernels::active_path()));
  EXPECT_LE(static_cast<int>(kernels::active_path()), static_cast<int>(kernels::best_path()));
  EXPECT_FALSE(kernels::path_name(kernels::best_path()).empty());
}

TEST(Kernels, MatmulEveryPathDtypeAndShape) {
  std::mt19937 rng(1234);
  ThreadPool pool(2);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {1, 1},     {5, 7},     {37, 33},   {19, 100}, {16, 64},
      {131, 257}, {45, 1000}, {700, 520}, {9, 2100},  // these two span several work chunks and
                                                      // several K blocks
      {48, 96},   {272, 320}, {96, 2048}};  // whole 16-row and 32-column tiles (the AMX kernels)
  for (CpuPath path : available_paths())
    for (DType dtype : {DType::F32, DType::F16, DType::BF16})
      for (auto [rows, cols] : shapes)
        for (int64_t tokens : {1, 3, 17, 64}) {
          // Keeps the double-precision reference affordable (also under ASan).
          if (rows * cols * tokens > 3'000'000 && tokens != 17) continue;
          check_matmul({dtype, rows, cols, tokens}, path, pool, rng);
        }
}

// The AMX tile kernel on row sub-ranges and ragged token counts: every row of the range and
// every token right, nothing written outside them (y starts as NaN).
TEST(Kernels, AmxBf16RowRangesAndTokenTails) {
  if (!kernels::amx::available()) GTEST_SKIP() << "no AMX on this CPU (or KEXA_AMX=0)";
  std::mt19937 rng(77);
  const int64_t rows = 112, cols = 96;
  Weights w = make_weights(DType::BF16, rows, cols, rng);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t tokens : {1, 15, 16, 17, 33, 40})
    for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, 112}, {16, 48}, {32, 112}, {96, 112}}) {
      std::vector<float> x(static_cast<size_t>(tokens * cols));
      std::vector<uint16_t> xb(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        x[i] = ref_round_bf16(dist(rng));
        uint32_t u;
        std::memcpy(&u, &x[i], 4);
        xb[i] = static_cast<uint16_t>(u >> 16);
      }
      std::vector<uint16_t> packed(kernels::amx::bf16_packed_elems(tokens, cols));
      kernels::amx::bf16_pack_activations(xb.data(), tokens, cols, packed.data());
      std::vector<float> y(static_cast<size_t>(tokens * rows), std::nanf(""));
      kernels::amx::bf16_rows(w.bytes.data(), cols, packed.data(), tokens, r0, r1, y.data(), rows);
      int bad = 0;
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          const float got = y[t * rows + r];
          if (r < r0 || r >= r1) {
            if (!std::isnan(got) && ++bad <= 5)
              ADD_FAILURE() << "tokens " << tokens << " rows [" << r0 << ", " << r1 << "): y[" << t
                            << "][" << r << "] written";
            continue;
          }
          double sum = 0, abs_sum = 0;
          for (int64_t k = 0; k < cols; ++k) {
            const double p = w.values[r * cols + k] * x[t * cols + k];
            sum += p;
            abs_sum += std::fabs(p);
          }
          if (!(std::fabs(got - sum) <= 4e-6 * abs_sum + 1e-30) && ++bad <= 5)
            ADD_FAILURE() << "tokens " << tokens << ": y[" << t << "][" << r << "] = " << got
                          << ", expected " << sum;
        }
      EXPECT_EQ(bad, 0) << "tokens " << tokens << " rows [" << r0 << ", " << r1 << ")";
    }
}

TEST(Kernels, MatmulSameResultForAnyThreadCount) {
  std::mt19937 rng(99);
  for (CpuPath path : available_paths())
    for (DType dtype : {DType::F32, DType::F16, DType::BF16})
      for (int64_t tokens : {1, 7, 40}) {
        Weights w = make_weights(dtype, 600, 300, rng);
        std::normal_distribution<float> dist;
        std::vector<float> x(static_cast<size_t>(tokens * 300));
        for (float& v : x) v = dist(rng);
        std::vector<std::vector<float>> results;
        for (int threads : {1, 2, 3, 5}) {
          ThreadPool pool(threads);
          std::vector<float> y(static_cast<size_t>(tokens * 600));
          kernels::matmul(w.view, x.data(), tokens, y.data(), pool, path);
          results.push_back(std::move(y));
        }
        for (size_t i = 1; i < results.size(); ++i)
          EXPECT_EQ(0, std::memcmp(results[0].data(), results[i].data(),
                                   results[0].size() * sizeof(float)))
              << dtype_name(dtype) << " " << kernels::path_name(path) << " tokens " << tokens;
      }
}

// safetensors gives no alignment guarantee, so weights may start at any byte.
TEST(Kernels, MatmulMisalignedWeights) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  for (CpuPath path : available_paths())
    for (DType dtype : {DType::F32, DType::F16, DType::BF16})
      for (int64_t tokens : {1, 5}) {
        Weights w = make_weights(dtype, 37, 70, rng);
        std::vector<uint8_t> shifted(w.bytes.size() + 1);
        std::memcpy(shifted.data() + 1, w.bytes.data(), w.bytes.size());
        TensorView odd = w.view;
        odd.data = shifted.data() + 1;
        std::vector<float> x(static_cast<size_t>(tokens * 70), 0.25f);
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) - 6.0f;
        std::vector<float> a(static_cast<size_t>(tokens * 37)), b(a.size());
        kernels::matmul(w.view, x.data(), tokens, a.data(), pool, path);
        kernels::matmul(odd, x.data(), tokens, b.data(), pool, path);
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4))
            << dtype_name(dtype) << " " << kernels::path_name(path);
      }
}

TEST(Kernels, MatmulRejectsBadViews) {
  ThreadPool pool(1);
  std::vector<uint8_t> bytes(10 * 8 * 4);
  TensorView v{"blk.0.ffn_up.weight", DType::F32, {10, 8}, bytes.data(), bytes.size() - 4};
  std::vector<float> x(8), y(10);
  try {
    kernels::matmul(v, x.data(), 1, y.data(), pool);
    FAIL() << "short view accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_up.weight"), std::string::npos) << e.what();
  }
  TensorView v3{"w3", DType::F32, {2, 5, 8}, bytes.data(), bytes.size()};
  EXPECT_THROW(kernels::matmul(v3, x.data(), 1, y.data(), pool), Error);
}

TEST(Kernels, ToF32AllF16BitPatternsAndBf16) {
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  TensorView v{"h", DType::F16, {65536}, reinterpret_cast<const uint8_t*>(all.data()), 131072};
  std::vector<float> out(65536);
  kernels::to_f32(v, 0, 65536, out.data());
  for (int i = 0; i < 65536; ++i) {
    CompilerHalf h;
    std::memcpy(&h, &all[i], 2);
    float expect = static_cast<float>(h);
    if (std::isnan(expect)) {
      EXPECT_TRUE(std::isnan(out[i])) << i;
    } else {
      uint32_t a, b;
      std::memcpy(&a, &expect, 4);
      std::memcpy(&b, &out[i], 4);
      ASSERT_EQ(a, b) << "f16 bits " << i;
    }
  }
  TensorView b{"b", DType::BF16, {65536}, reinterpret_cast<const uint8_t*>(all.data()), 131072};
  kernels::to_f32(b, 100, 300, out.data());
  for (int i = 0; i < 300; ++i) {
    float e = bf16_bits_value(static_cast<uint16_t>(100 + i));
    EXPECT_EQ(0, std::memcmp(&e, &out[i], 4)) << i;
  }
  std::vector<float> f = {1.5f, -2.0f, 3.25f};
  TensorView fv{"f", DType::F32, {3}, reinterpret_cast<const uint8_t*>(f.data()), 12};
  kernels::to_f32(fv, 1, 2, out.data());
  EXPECT_EQ(out[0], -2.0f);
  EXPECT_EQ(out[1], 3.25f);
  EXPECT_THROW(kernels::to_f32(fv, 2, 2, out.data()), Error);
}

// The element-wise kernels of one path; the public functions run the active path's.
struct Elementwise {
  std::string name;
  void (*rmsnorm)(const float*, const float*, int64_t, double, float*);
  void (*swiglu)(const float*, const float*, int64_t, float*);
  void (*softmax)(float*, int64_t);
  void (*dot_rows)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float, float*,
                   int64_t);
  void (*accumulate_rows)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*,
                          int64_t);
  void (*f16_to_f32)(const uint16_t*, int64_t, float*);
  void (*f32_to_f16)(const float*, int64_t, uint16_t*);
  // Over f16 rows; null where the path widens blocks through kernels::dot_rows_f16's fallback.
  void (*dot_rows_f16)(const float*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, int64_t, float, float*,
                       int64_t);
  void (*accumulate_rows_f16)(const float*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, int64_t, float*,
                              int64_t);
  double (*exp_sum)(const float*, int64_t, double, double, double*);
};

std::vector<Elementwise> elementwise_paths() {
  std::vector<Elementwise> out = {{"public", kernels::rmsnorm, kernels::swiglu, kernels::softmax,
                                   kernels::dot_rows, kernels::accumulate_rows, kernels::f16_array_to_f32,
                                   kernels::f32_array_to_f16, kernels::dot_rows_f16, kernels::accumulate_rows_f16,
                                   kernels::exp_sum}};
  for (CpuPath p : available_paths()) {
    const kernels::detail::FloatKernelSet& ks =
        p == CpuPath::Avx512 ? kernels::detail::avx512_kernels()
        : p == CpuPath::Avx2 ? kernels::detail::avx2_kernels()
        : p == CpuPath::NeonI8mm ? kernels::detail::neon_kernels(kernels::arm_bf16_supported())
        : p == CpuPath::Neon || p == CpuPath::NeonDotprod ? kernels::detail::neon_kernels(false)
                             : kernels::detail::portable_kernels();
    out.push_back({kernels::path_name(p), ks.rmsnorm, ks.swiglu, ks.softmax, ks.dot_rows,
                   ks.accumulate_rows, ks.f16_to_f32, ks.f32_to_f16, ks.dot_rows_f16, ks.accumulate_rows_f16,
                   ks.exp_sum});
  }
  return out;
}

// The f16 KV cache's conversions on every path, against the compiler's own IEEE half type:
// every half widens exactly; floats narrow rounding to nearest even (ties, subnormals, overflow
// to infinity, signed zeros) and NaN stays NaN. Odd lengths exercise the vector loops' tails.
TEST(Kernels, HalfArraysEveryPath) {
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> floats = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.0f, 65520.0f, -65520.0f, 1e9f,
                               std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(), 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-10f,
                               6.1e-5f, 6.0e-5f, -3.0e-6f};
  // Exact ties between neighbouring halves (odd and even lower neighbour), then random values
  // across the half range.
  for (int m = 0; m < 64; ++m) floats.push_back(1.0f + (2 * m + 1) * 0x1p-11f);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-26, 16);
  while (floats.size() < 4099) floats.push_back(std::ldexp(dist(rng), exponent(rng)));
  for (const Elementwise& e : elementwise_paths()) {
    std::vector<float> wide(all.size());
    e.f16_to_f32(all.data(), static_cast<int64_t>(all.size()), wide.data());
    for (int i = 0; i < 65536; ++i) {
      CompilerHalf h;
      std::memcpy(&h, &all[static_cast<size_t>(i)], 2);
      const float expect = static_cast<float>(h);
      if (std::isnan(expect)) {
        ASSERT_TRUE(std::isnan(wide[static_cast<size_t>(i)])) << e.name << " bits " << i;
      } else {
        ASSERT_EQ(0, std::memcmp(&expect, &wide[static_cast<size_t>(i)], 4)) << e.name << " bits " << i;
      }
    }
    std::vector<uint16_t> narrow(floats.size(), 0xdead);
    e.f32_to_f16(floats.data(), static_cast<int64_t>(floats.size()), narrow.data());
    for (size_t i = 0; i < floats.size(); ++i) {
      const CompilerHalf expect = static_cast<CompilerHalf>(floats[i]);
      if (std::isnan(floats[i])) {
        const float back = f16_to_f32(narrow[i]);
        ASSERT_TRUE(std::isnan(back)) << e.name << " NaN became " << back;
        continue;
      }
      uint16_t bits;
      std::memcpy(&bits, &expect, 2);
      ASSERT_EQ(narrow[i], bits) << e.name << " value " << floats[i] << " (index " << i << ")";
    }
  }
}

TEST(Kernels, RmsnormSwigluSoftmax) {
  for (const Elementwise& k : elementwise_paths()) {
    SCOPED_TRACE(k.name);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    for (int64_t n : {1, 7, 64, 100, 2048, 4099}) {
      std::vector<float> x(n), w(n), out(n), up(n);
      for (auto& v : x) v = dist(rng);
      for (auto& v : w) v = dist(rng);
      for (auto& v : up) v = dist(rng);
      double ss = 0;
      for (float v : x) ss += static_cast<double>(v) * v;
      const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
      k.rmsnorm(x.data(), w.data(), n, 1e-5, out.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(out[i], x[i] * scale * w[i], 2e-6 * std::fabs(x[i] * scale * w[i]) + 1e-30);
      k.rmsnorm(x.data(), nullptr, n, 1e-5, out.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(out[i], x[i] * scale, 2e-6 * std::fabs(x[i] * scale) + 1e-30);
      std::vector<float> inplace = x;
      k.rmsnorm(inplace.data(), w.data(), n, 1e-5, inplace.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(inplace[i], x[i] * scale * w[i], 2e-6 * std::fabs(x[i] * scale * w[i]) + 1e-30);

      k.swiglu(x.data(), up.data(), n, out.data());
      for (int64_t i = 0; i < n; ++i) {
        double g = x[i];
        double e = g / (1 + std::exp(-g)) * up[i];
        ASSERT_NEAR(out[i], e, 4e-6 * std::fabs(e) + 1e-30) << "swiglu n " << n << " i " << i;
      }

      std::vector<float> s = x;
      for (auto& v : s) v *= 10;  // a wide range of exponents
      double mx = s[0];
      for (float v : s) mx = std::max<double>(mx, v);
      double z = 0;
      for (float v : s) z += std::exp(v - mx);
      std::vector<float> sm = s;
      k.softmax(sm.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        double e = std::exp(s[i] - mx) / z;
        ASSERT_NEAR(sm[i], e, 4e-6 * e + 1e-37) << "softmax n " << n << " i " << i;
      }
    }
    // Extreme inputs: large negative gates give 0, -inf logits give probability 0.
    std::vector<float> g = {-200.0f, 200.0f, 0.0f}, u = {1.0f, 1.0f, 1.0f}, o(3);
    k.swiglu(g.data(), u.data(), 3, o.data());
    EXPECT_NEAR(o[0], 0.0f, 1e-30);
    EXPECT_FLOAT_EQ(o[1], 200.0f);
    EXPECT_EQ(o[2], 0.0f);
    std::vector<float> l = {-INFINITY, 0.0f, -INFINITY};
    k.softmax(l.data(), 3);
    EXPECT_EQ(l[0], 0.0f);
    EXPECT_EQ(l[1], 1.0f);
  }
}

TEST(Kernels, AttentionRowKernels) {
  // Grouped-query form: n_q query heads over one KV head's rows. Each head must match a double
  // reference, and be bit for bit what the same kernel gives that head alone (n_q = 1), so that
  // grouping never changes a model's output.
  std::mt19937 rng(11);
  std::normal_distribution<float> dist;
  for (const Elementwise& k : elementwise_paths()) {
    SCOPED_TRACE(k.name);
    for (int64_t dim : {64, 128, 5, 40, 80}) {
      for (int64_t n : {1, 3, 4, 9, 33, 130}) {
        for (int64_t n_q : {1, 3, 4, 5, 8}) {
          const int64_t stride = dim * 3 + 1;  // rows interleaved with other heads' data
          const int64_t q_stride = dim + 3, s_stride = n + 5;
          std::vector<float> q(n_q * q_stride), rows(n * stride), p(n_q * s_stride);
          std::vector<float> scores(n_q * s_stride, -7.0f), out(n_q * dim), out0(n_q * dim);
          for (auto& v : q) v = dist(rng);
          for (auto& v : rows) v = dist(rng);
          for (auto& v : p) v = dist(rng);
          for (auto& v : out0) v = dist(rng);
          k.dot_rows(q.data(), n_q, q_stride, rows.data(), stride, n, dim, 0.125f, scores.data(), s_stride);
          out = out0;
          k.accumulate_rows(p.data(), n_q, s_stride, rows.data(), stride, n, dim, out.data(), dim);
          for (int64_t h = 0; h < n_q; ++h) {
            const float* qh = q.data() + h * q_stride;
            const float* ph = p.data() + h * s_stride;
            std::vector<float> alone_scores(n);
            std::vector<float> alone_out(out0.begin() + h * dim, out0.begin() + (h + 1) * dim);
            k.dot_rows(qh, 1, 0, rows.data(), stride, n, dim, 0.125f, alone_scores.data(), 0);
            k.accumulate_rows(ph, 1, 0, rows.data(), stride, n, dim, alone_out.data(), 0);
            for (int64_t j = 0; j < n; ++j) {
              double e = 0, a = 0;
              for (int64_t d = 0; d < dim; ++d) {
                e += static_cast<double>(qh[d]) * rows[j * stride + d];
                a += std::fabs(static_cast<double>(qh[d]) * rows[j * stride + d]);
              }
              const float got = scores[h * s_stride + j];
              ASSERT_NEAR(got, e * 0.125, 4e-6 * a * 0.125) << "dim " << dim << " n " << n << " head " << h;
              ASSERT_EQ(got, alone_scores[j]) << "dim " << dim << " n " << n << " head " << h;
            }
            for (int64_t j = n; j < s_stride; ++j) ASSERT_EQ(scores[h * s_stride + j], -7.0f) << "wrote past n";
            // A key's score must not depend on where the range began (callers split ranges at
            // key blocks and at the ring's end).
            for (int64_t from : {int64_t{1}, int64_t{2}, n / 2}) {
              if (from >= n) continue;
              std::vector<float> part(n - from);
              k.dot_rows(qh, 1, 0, rows.data() + from * stride, stride, n - from, dim, 0.125f, part.data(), 0);
              for (int64_t j = from; j < n; ++j)
                ASSERT_EQ(part[j - from], alone_scores[j]) << "dim " << dim << " n " << n << " from " << from;
            }
            for (int64_t d = 0; d < dim; ++d) {
              double e = out0[h * dim + d], a = std::fabs(out0[h * dim + d]);
              for (int64_t j = 0; j < n; ++j) {
                e += static_cast<double>(ph[j]) * rows[j * stride + d];
                a += std::fabs(static_cast<double>(ph[j]) * rows[j * stride + d]);
              }
              const float got = out[h * dim + d];
              ASSERT_NEAR(got, e, 4e-6 * a) << "dim " << dim << " n " << n << " head " << h;
              ASSERT_EQ(got, alone_out[d]) << "dim " << dim << " n " << n << " head " << h;
            }
          }
        }
      }
    }
  }
}

// Attention over an f16 KV cache's rows: each path's f16 forms (and the public ones, which widen
// blocks of rows when a path has none) equal the same path's f32 forms on the widened rows, bit
// for bit, for every head, head size and row count.
TEST(Kernels, AttentionRowKernelsOverHalfRows) {
  std::mt19937 rng(12);
  std::normal_distribution<float> dist;
  for (const Elementwise& k : elementwise_paths()) {
    if (k.dot_rows_f16 == nullptr) continue;
    SCOPED_TRACE(k.name);
    for (int64_t dim : {64, 128, 5, 40}) {
      for (int64_t n : {1, 3, 4, 9, 33, 70}) {
        for (int64_t n_q : {1, 2, 3, 4}) {
          const int64_t stride = dim * 2 + 3;  // rows interleaved with other data
          const int64_t q_stride = dim + 1, s_stride = n + 2;
          std::vector<float> q(n_q * q_stride), p(n_q * s_stride), wide(n * stride), out0(n_q * dim);
          std::vector<uint16_t> half(n * stride);
          for (auto& v : q) v = dist(rng);
          for (auto& v : p) v = dist(rng);
          for (auto& v : out0) v = dist(rng);
          for (size_t i = 0; i < half.size(); ++i) {
            half[i] = f32_to_f16(dist(rng));
            wide[i] = f16_to_f32(half[i]);
          }
          std::vector<float> s16(n_q * s_stride, -7.0f), s32(s16), o16(out0), o32(out0);
          k.dot_rows_f16(q.data(), n_q, q_stride, half.data(), stride, n, dim, 0.125f, s16.data(), s_stride);
          k.dot_rows(q.data(), n_q, q_stride, wide.data(), stride, n, dim, 0.125f, s32.data(), s_stride);
          k.accumulate_rows_f16(p.data(), n_q, s_stride, half.data(), stride, n, dim, o16.data(), dim);
          k.accumulate_rows(p.data(), n_q, s_stride, wide.data(), stride, n, dim, o32.data(), dim);
          const std::string where = concat("dim ", dim, " n ", n, " heads ", n_q);
          ASSERT_EQ(0, std::memcmp(s16.data(), s32.data(), s16.size() * 4)) << where;
          ASSERT_EQ(0, std::memcmp(o16.data(), o32.data(), o16.size() * 4)) << where;
        }
      }
    }
  }
}

// The sampler's softmax exponentials: within 2 ulp of the C library's exp, results below 2^-1022
// flushed to 0, and the same bits (values and sum) on every path as on the portable one.
TEST(Kernels, ExpSumEveryPathSameBitsNearLibm) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> logit(-60.0f, 20.0f);
  for (int64_t n : {1, 7, 8, 9, 1000, 102400 + 5}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = logit(rng);
    x[0] = 20.0f;  // the largest: exp(0) = 1 exactly
    if (n > 5) x[3] = -std::numeric_limits<float>::infinity(), x[4] = -1e30f, x[5] = 19.9999990f;
    for (double scale : {1.0, 1.0 / 0.7, 20.0}) {
      std::vector<double> want(x.size());
      const double want_sum = kernels::detail::portable_kernels().exp_sum(x.data(), n, 20.0, scale, want.data());
      for (int64_t i = 0; i < n; ++i) {
        const double v = (static_cast<double>(x[i]) - 20.0) * scale;
        const double e = std::exp(v);
        if (v < -708.3964185322641) {
          ASSERT_EQ(want[i], 0.0) << v;
        } else {
          ASSERT_NEAR(want[i], e, 4.5e-16 * e) << "exp(" << v << ")";
        }
      }
      EXPECT_EQ(want[0], 1.0);
      for (const Elementwise& k : elementwise_paths()) {
        std::vector<double> got(x.size(), -1.0);
        const double sum = k.exp_sum(x.data(), n, 20.0, scale, got.data());
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 8)) << k.name << " n " << n;
        ASSERT_EQ(sum, want_sum) << k.name << " n " << n;
      }
      double plain = 0;
      for (double e : want) plain += e;
      // Both are within n * eps of the exact sum (recursive summation's bound).
      EXPECT_NEAR(want_sum, plain, 2.0 * static_cast<double>(n) * 1.1e-16 * plain);
    }
  }
}

TEST(Kernels, RopeNeox) {
  const int64_t hd = 64;
  std::vector<float> inv(hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i)
    inv[i] = static_cast<float>(std::pow(1000000.0, -2.0 * i / hd));
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  for (int64_t pos : {0, 1, 17, 4095, 70000}) {
    std::vector<float> h(hd);
    for (auto& v : h) v = dist(rng);
    std::vector<float> a = h, b = h, c(hd / 2), s(hd / 2);
    kernels::rope_neox(a.data(), hd, inv.data(), pos);
    kernels::rope_cos_sin(inv.data(), hd / 2, pos, c.data(), s.data());
    kernels::rope_neox_cs(b.data(), hd, c.data(), s.data());
    for (int64_t i = 0; i < hd / 2; ++i) {
      double ang = static_cast<double>(static_cast<float>(pos) * inv[i]);
      double e0 = h[i] * std::cos(ang) - h[i + hd / 2] * std::sin(ang);
      double e1 = h[i + hd / 2] * std::cos(ang) + h[i] * std::sin(ang);
      EXPECT_NEAR(a[i], e0, 1e-5);
      EXPECT_NEAR(a[i + hd / 2], e1, 1e-5);
    }
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), hd * 4)) << pos;
  }
}

TEST(ThreadPool, EveryIndexRunsOnceAndJoins) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    std::vector<std::atomic<int>> hits(threads);
    for (int round = 0; round < 2000; ++round) {
      pool.run([&](int index, int n) {
        ASSERT_EQ(n, threads);
        hits[index].fetch_add(1, std::memory_order_relaxed);
      });
    }
    for (int i = 0; i < threads; ++i) EXPECT_EQ(hits[i].load(), 2000) << i;
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 3, 5, 100, 1001}) {
    std::vector<int> seen(static_cast<size_t>(n), 0);
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++seen[i];
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << n << " " << i;
  }
}

TEST(ThreadPool, ManySmallRunsAfterSleeping) {
  ThreadPool pool(2);
  int64_t total = 0;
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 20000; ++round) {
    pool.parallel_for(10, [&](int64_t b, int64_t e) {
      int64_t s = 0;
      for (int64_t i = b; i < e; ++i) s += i;
      sum.fetch_add(s);
    });
    total += 45;
    // Now and then let the workers fall asleep on the futex, then wake them again.
    if (round % 5000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(sum.load(), total);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run([](int index, int) {
    if (index == 1) throw std::runtime_error("worker failed");
  }),
               std::runtime_error);
  EXPECT_THROW(pool.run([](int index, int) {
    if (index == 0) throw std::runtime_error("caller failed");
  }),
               std::runtime_error);
  std::atomic<int> ok{0};
  pool.run([&](int, int) { ok.fetch_add(1); });
  EXPECT_EQ(ok.load(), 2);
}

}  // namespace
}  // namespace kexa
