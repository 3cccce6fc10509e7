// Internal to src/model: the compute backend seam. The one decoder (model.cpp) runs every matrix
// product, norm, SwiGLU and residual update of its LayerPlan through a Backend; the CPU kernels
// are one implementation (backend_cpu.cpp), Vulkan another (backend_vulkan.cpp). Architectures
// stay tensor-name bindings: a backend sees weights and f32 activation rows, never tensor names.
//
// Contract shared by every operation: activations are f32 rows in host memory, row-major, `n`
// rows of the stated width; outputs may alias inputs only where stated. A backend that cannot run
// an operation (a weight type it has no shader for) runs it on the CPU kernels instead, so every
// backend gives a result for every model the CPU can run. Errors (a device lost, an allocation
// refused) are thrown as kexa::Error and end the current forward pass.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kernels/kernels.h"
#include "model/model.h"

namespace kexa {
class ThreadPool;
}

namespace kexa::model_detail {

struct ModelWeights;

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu", or "vulkan (<device name>)".
  virtual std::string name() const = 0;

  // Called once after the weights are bound (and packed for the CPU): a device backend uploads
  // them here. Throws kexa::Error naming the sizes when they do not fit.
  virtual void prepare(const ModelWeights& weights) = 0;
  // The decoder layer whose operations follow (-1: the embedding, output head and MTP block), so a
  // backend holding only some layers (LoadOptions::gpu_layers) runs the others on the CPU.
  virtual void begin_layer(int64_t layer) = 0;

  // y[t] = W x[t] for t < n (kernels::matmul's contract). exact_rows: every row bit for bit what
  // the same call with n = 1 gives (speculative verification, model/exact_matmul.h).
  virtual void matmul(const kernels::Weight& W, const float* x, int64_t n, float* y, bool exact_rows) = 0;
  // Several products of one input (kernels::matmul_many's contract), same exact_rows meaning.
  virtual void matmul_many(std::span<const kernels::MatmulOut> outs, const float* x, int64_t n,
                           bool exact_rows) = 0;
  // out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w for n rows of `width`; out may alias x.
  virtual void rmsnorm(const float* x, const float* w, int64_t n, int64_t width, double eps, float* out) = 0;
  // gate[t][i] = silu(gate[t][i]) * up[t][i] for n rows of `width`.
  virtual void swiglu(float* gate, const float* up, int64_t n, int64_t width) = 0;
  // The residual update of a sub-block: d[t] = rmsnorm(d[t]) * norm when norm is not null (the
  // post-norm placement), then x[t] += d[t], for n rows of `width`.
  virtual void add_residual(float* x, float* d, const float* norm, int64_t n, int64_t width, double eps) = 0;
};

// The CPU kernels (kernels/kernels.h) on `pool`.
std::unique_ptr<Backend> make_cpu_backend(ThreadPool& pool);
// The backend options.device asks for (backend_vulkan.cpp). When Vulkan is asked for but cannot
// be used (no loader, no device, built without Vulkan), returns the CPU backend and sets `note`
// to what is missing; Device::Auto sets it only when a GPU was found but failed to open.
std::unique_ptr<Backend> make_backend(const LoadOptions& options, ThreadPool& pool, std::string& note);
// Throws kexa::Error unless options.gpu_layers is -1 or in [0, n_layers].
void check_gpu_layers(const LoadOptions& options, int64_t n_layers);

}  // namespace kexa::model_detail
