// A Vulkan compute runtime for the decoder's operations (model/backend_vulkan.cpp adapts it to
// the model's Backend seam).
//
// The Vulkan loader is opened at run time (dlopen of libvulkan.so.1, or KEXA_VULKAN_LIBRARY), so
// kexa runs on machines without one; every failure to find a loader, an instance or a device is a
// kexa::Error that names what is missing. Shaders are GLSL compute compiled to SPIR-V at build time
// (src/gpu/shaders) and embedded. A build without Vulkan (KEXA_VULKAN=OFF) has the same API,
// whose every entry point reports that (vulkan_absent.cpp).
//
// Testing hooks (environment): KEXA_VULKAN_LIBRARY=<path> loads that file as the loader;
// KEXA_VULKAN_FAIL_ALLOC=N makes the N-th device memory allocation of each context (from 1)
// fail as if the device were out of memory; KEXA_VULKAN_STAGING=1 uploads through a staging buffer
// even where device memory is host-visible; KEXA_VULKAN_MEMORY=<MiB> caps the device memory the
// runtime believes it has.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/tensor.h"

namespace kexa::gpu {

struct DeviceInfo {
  int index = 0;            // position in list_devices()
  std::string name;         // "NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string type;         // "discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"
  bool is_gpu = false;      // discrete, integrated or virtual GPU (a CPU device such as lavapipe is not)
  std::string api_version;  // "1.3.230"
  uint64_t memory_bytes = 0;  // the largest device-local heap (after KEXA_VULKAN_MEMORY)
  uint32_t subgroup_size = 0;
  bool usable = false;      // has a compute queue and subgroup arithmetic in compute shaders
  std::string why_unusable;
};

// Whether this build has the Vulkan runtime (KEXA_VULKAN).
bool built_with_vulkan();
// Every device the loader reports. Throws kexa::Error naming what is missing: the loader library
// (and the name tried), vkCreateInstance's failure, or that the loader reports no device.
std::vector<DeviceInfo> list_devices();

// Matrix weight types the matvec shaders read in their file layout.
bool supports_matrix(DType type);

class Context {
 public:
  // Opens the device list_devices()[index]; throws kexa::Error naming the problem.
  static std::unique_ptr<Context> open(int index);
  virtual ~Context() = default;

  virtual const DeviceInfo& info() const = 0;
  // Device memory this context holds, in bytes.
  virtual uint64_t allocated_bytes() const = 0;

  // A [rows, cols] matrix of `type` (supports_matrix) in device memory. `fill(first, count, dst)`
  // writes rows [first, first + count) in the file's block layout into dst (which may be mapped
  // device memory or a staging buffer). Returns the matrix's id.
  virtual uint32_t upload_matrix(DType type, int64_t rows, int64_t cols,
                                 const std::function<void(int64_t first, int64_t count, uint8_t* dst)>& fill) = 0;
  // A vector of n floats in device memory, uploaded on the first call for `data` and reused (the
  // caller guarantees `data` keeps its address and contents: norm weights).
  virtual uint32_t vector(const float* data, int64_t n) = 0;

  struct Product {
    uint32_t matrix;
    float* y;  // [n][rows]
  };
  // y = W x for each product on the same x ([n][cols], every matrix having `cols` columns), in
  // one submission. Every row of a batch is computed as it is alone.
  virtual void matmul(std::span<const Product> products, const float* x, int64_t n) = 0;
  // out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w (w = 0: no weight); out may be x.
  virtual void rmsnorm(const float* x, uint32_t w, int64_t n, int64_t width, float eps, float* out) = 0;
  // gate = silu(gate) * up over count floats.
  virtual void swiglu(float* gate, const float* up, int64_t count) = 0;
  // d[t] = rmsnorm(d[t]) * w when w != 0, then x[t] += d[t].
  virtual void add_residual(float* x, float* d, uint32_t w, int64_t n, int64_t width, float eps) = 0;
};

}  // namespace kexa::gpu
