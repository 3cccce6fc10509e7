// The Vulkan runtime's operations (src/gpu) against the CPU kernels and double-precision
// references, on whatever Vulkan device the machine has (lavapipe in CI). Without a usable device
// the tests skip, naming why, unless KEXA_REQUIRE_VULKAN=1 (scripts/test sets it in CI when the
// build has Vulkan), which turns the skip into a failure.
#include "gpu/vulkan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "util/error.h"
#include "util/half.h"

namespace kexa {
namespace {

// The first usable device's index, or -1 with `why` set.
int vulkan_device(std::string& why) {
  if (!gpu::built_with_vulkan()) {
    why = "built without Vulkan";
    return -1;
  }
  try {
    for (const gpu::DeviceInfo& d : gpu::list_devices()) {
      if (d.usable) return d.index;
      why = d.name + ": " + d.why_unusable;
    }
  } catch (const Error& e) {
    why = e.what();
  }
  return -1;
}

#define KEXA_REQUIRE_VULKAN(index)                                                                  \
  std::string why_;                                                                                 \
  const int index = vulkan_device(why_);                                                            \
  if (index < 0) {                                                                                  \
    const char* req = std::getenv("KEXA_REQUIRE_VULKAN");                                           \
    if (req != nullptr && std::strcmp(req, "1") == 0) {                                            \
      FAIL() << "no Vulkan device: " << why_;                                                       \
    }                                                                                               \
    GTEST_SKIP() << "no Vulkan device: " << why_;                                                   \
  }

std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

float round_bf16(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  b = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&v, &b, 4);
  return v;
}

// The matrix in `type`'s file bytes, and the values those bytes stand for.
struct Stored {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

Stored store(DType type, const std::vector<float>& w) {
  Stored s;
  const int64_t n = static_cast<int64_t>(w.size());
  s.values.resize(w.size());
  if (type == DType::F32) {
    s.bytes.resize(w.size() * 4);
    std::memcpy(s.bytes.data(), w.data(), s.bytes.size());
    s.values = w;
  } else if (type == DType::F16 || type == DType::BF16) {
    s.bytes.resize(w.size() * 2);
    for (size_t i = 0; i < w.size(); ++i) {
      uint16_t h;
      if (type == DType::F16) {
        h = f32_to_f16(w[i]);
        s.values[i] = f16_to_f32(h);
      } else {
        const float r = round_bf16(w[i]);
        uint32_t b;
        std::memcpy(&b, &r, 4);
        h = static_cast<uint16_t>(b >> 16);
        s.values[i] = r;
      }
      std::memcpy(s.bytes.data() + 2 * i, &h, 2);
    }
  } else {
    s.bytes.resize(dtype_bytes(type, n));
    kernels::quantize(type, w.data(), n, s.bytes.data());
    kernels::dequantize(type, s.bytes.data(), n, s.values.data());
  }
  return s;
}

uint32_t upload(gpu::Context& ctx, DType type, int64_t rows, int64_t cols, const Stored& s) {
  return ctx.upload_matrix(type, rows, cols, [&](int64_t first, int64_t count, uint8_t* dst) {
    const size_t rb = dtype_bytes(type, cols);
    std::memcpy(dst, s.bytes.data() + first * rb, static_cast<size_t>(count) * rb);
  });
}

// The activations a weight type multiplies, as the CPU kernels round them: f32, bf16 for BF16
// weights, the int8 blocks of kernels/quant_blocks.h for the quantized types.
std::vector<float> effective_x(DType type, const std::vector<float>& x, int64_t cols) {
  std::vector<float> out(x.size());
  const int64_t n = static_cast<int64_t>(x.size()) / cols;
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x.data() + t * cols;
    float* o = out.data() + t * cols;
    if (type == DType::Q8_0 || type == DType::Q4_0) {
      std::vector<kernels::quant::ActBlock32> a(static_cast<size_t>(cols / 32));
      kernels::quant::quantize_act32_ref(xt, cols, a.data());
      for (int64_t c = 0; c < cols; ++c) o[c] = a[c / 32].qs[c % 32] * a[c / 32].d;
    } else if (type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K) {
      std::vector<kernels::quant::ActBlock256> a(static_cast<size_t>(cols / 256));
      kernels::quant::quantize_act256_ref(xt, cols, a.data());
      for (int64_t c = 0; c < cols; ++c) o[c] = a[c / 256].qs[c % 256] * a[c / 256].d;
    } else {
      for (int64_t c = 0; c < cols; ++c) o[c] = type == DType::BF16 ? round_bf16(xt[c]) : xt[c];
    }
  }
  return out;
}

// Every weight type's matvec against the dequantised weights times the CPU's rounding of the
// activations, in double precision (the shader must read the block formats exactly as
// kernels/quant_ref.cpp defines them), batched over 3 tokens, with 2 matrices in one submission.
// Tolerance: 2e-5 of sum |w||x| per output.
TEST(Vulkan, MatvecEveryTypeMatchesDequantisedReference) {
  KEXA_REQUIRE_VULKAN(dev);
  std::unique_ptr<gpu::Context> ctx = gpu::Context::open(dev);
  const int64_t rows = 37, cols = 512, n = 3;
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K,
                     DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(type));
    ASSERT_TRUE(gpu::supports_matrix(type));
    const Stored a = store(type, random_floats(rows * cols, 1 + static_cast<uint64_t>(type), 0.5f));
    const Stored b = store(type, random_floats(5 * cols, 99, 0.5f));
    const uint32_t ia = upload(*ctx, type, rows, cols, a), ib = upload(*ctx, type, 5, cols, b);
    const std::vector<float> x = random_floats(n * cols, 7);
    const std::vector<float> xe = effective_x(type, x, cols);
    std::vector<float> ya(n * rows, NAN), yb(n * 5, NAN);
    const gpu::Context::Product products[] = {{ia, ya.data()}, {ib, yb.data()}};
    ctx->matmul(products, x.data(), n);
    auto check = [&](const Stored& s, int64_t r_count, const std::vector<float>& y) {
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < r_count; ++r) {
          double want = 0, mag = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const double xv = xe[t * cols + c];
            want += s.values[r * cols + c] * xv;
            mag += std::fabs(s.values[r * cols + c] * xv);
          }
          ASSERT_NEAR(y[t * r_count + r], want, 2e-5 * mag + 1e-6) << "token " << t << " row " << r;
        }
      }
    };
    check(a, rows, ya);
    check(b, 5, yb);
  }
}

// Rows past the 65535 workgroups of one dispatch dimension, and the staging upload path.
TEST(Vulkan, ManyRowsAndStagedUpload) {
  KEXA_REQUIRE_VULKAN(dev);
  setenv("KEXA_VULKAN_STAGING", "1", 1);
  std::unique_ptr<gpu::Context> ctx = gpu::Context::open(dev);
  unsetenv("KEXA_VULKAN_STAGING");
  const int64_t rows = 65535 + 40, cols = 32;
  const Stored w = store(DType::F32, random_floats(rows * cols, 3));
  const uint32_t id = upload(*ctx, DType::F32, rows, cols, w);
  const std::vector<float> x = random_floats(cols, 4);
  std::vector<float> y(rows, NAN);
  const gpu::Context::Product p{id, y.data()};
  ctx->matmul({&p, 1}, x.data(), 1);
  for (int64_t r : {int64_t{0}, int64_t{65534}, int64_t{65535}, rows - 1}) {
    double want = 0;
    for (int64_t c = 0; c < cols; ++c) want += static_cast<double>(w.values[r * cols + c]) * x[c];
    EXPECT_NEAR(y[r], want, 1e-4) << "row " << r;
  }
}

// RMSNorm, SwiGLU and the residual update against the CPU kernels (relative 1e-5: the shader sums
// squares in f32 over a different order and uses inversesqrt).
TEST(Vulkan, NormSwigluResidualMatchCpuKernels) {
  KEXA_REQUIRE_VULKAN(dev);
  std::unique_ptr<gpu::Context> ctx = gpu::Context::open(dev);
  const int64_t n = 3, width = 200;
  const float eps = 1e-5f;
  const std::vector<float> x = random_floats(n * width, 11, 2.0f), w = random_floats(width, 12);
  auto expect_rel = [](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << what << " at " << i;
    }
  };
  std::vector<float> want(n * width), got(n * width);
  for (int64_t t = 0; t < n; ++t) kernels::rmsnorm(x.data() + t * width, w.data(), width, eps, want.data() + t * width);
  ctx->rmsnorm(x.data(), ctx->vector(w.data(), width), n, width, eps, got.data());
  expect_rel(got, want, "rmsnorm");
  for (int64_t t = 0; t < n; ++t) kernels::rmsnorm(x.data() + t * width, nullptr, width, eps, want.data() + t * width);
  ctx->rmsnorm(x.data(), 0, n, width, eps, got.data());
  expect_rel(got, want, "rmsnorm without weight");

  const std::vector<float> up = random_floats(n * width, 13);
  kernels::swiglu(x.data(), up.data(), n * width, want.data());
  got = x;
  ctx->swiglu(got.data(), up.data(), n * width);
  expect_rel(got, want, "swiglu");

  for (bool norm : {false, true}) {
    std::vector<float> xc = random_floats(n * width, 14), dc = random_floats(n * width, 15);
    std::vector<float> xg = xc, dg = dc;
    for (int64_t t = 0; t < n; ++t) {
      float* dt = dc.data() + t * width;
      if (norm) kernels::rmsnorm(dt, w.data(), width, eps, dt);
      for (int64_t i = 0; i < width; ++i) xc[t * width + i] += dt[i];
    }
    ctx->add_residual(xg.data(), dg.data(), norm ? ctx->vector(w.data(), width) : 0, n, width, eps);
    expect_rel(xg, xc, norm ? "residual with post-norm" : "residual");
  }
}

// KEXA_VULKAN_FAIL_ALLOC=N fails the context's N-th allocation: an error naming it, no crash, and
// the context keeps working.
TEST(Vulkan, AllocationFailureIsAnError) {
  KEXA_REQUIRE_VULKAN(dev);
  setenv("KEXA_VULKAN_FAIL_ALLOC", "2", 1);
  std::unique_ptr<gpu::Context> ctx = gpu::Context::open(dev);
  unsetenv("KEXA_VULKAN_FAIL_ALLOC");
  const Stored w = store(DType::F32, random_floats(64, 1));
  const uint32_t first = upload(*ctx, DType::F32, 2, 32, w);
  try {
    upload(*ctx, DType::F32, 2, 32, w);
    FAIL() << "the second allocation should fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KEXA_VULKAN_FAIL_ALLOC"), std::string::npos) << e.what();
  }
  const uint32_t third = upload(*ctx, DType::F32, 2, 32, w);
  std::vector<float> x(32, 1.0f), y1(2), y3(2);
  const gpu::Context::Product p[] = {{first, y1.data()}, {third, y3.data()}};
  ctx->matmul(p, x.data(), 1);
  EXPECT_EQ(y1, y3);
}

TEST(Vulkan, DevicesAreDescribed) {
  if (!gpu::built_with_vulkan()) {
    EXPECT_THROW(gpu::list_devices(), Error);
    return;
  }
  // The loader is opened once per process; a fresh process sees KEXA_VULKAN_LIBRARY (tested
  // end to end by tests/conformance/vulkan.sh). Here: the devices listed are described.
  std::string why;
  if (vulkan_device(why) < 0) GTEST_SKIP() << why;
  for (const gpu::DeviceInfo& d : gpu::list_devices()) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_FALSE(d.type.empty());
    if (d.usable) {
      EXPECT_GT(d.subgroup_size, 0u);
    }
  }
}

}  // namespace
}  // namespace kexa
