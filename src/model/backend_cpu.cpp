// The CPU backend: the kernels of src/kernels on the model's thread pool.
#include <vector>

#include "model/backend.h"
#include "model/exact_matmul.h"
#include "util/thread_pool.h"

namespace kexa::model_detail {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(ThreadPool& pool) : pool_(pool) {}

  std::string name() const override { return "cpu"; }
  void prepare(const ModelWeights&) override {}
  void begin_layer(int64_t) override {}

  void matmul(const kernels::Weight& W, const float* x, int64_t n, float* y, bool exact_rows) override {
    if (exact_rows && n > 1) {
      matmul_rows_exact(W, x, n, y, pool_, inline_pools_);
    } else {
      kernels::matmul(W, x, n, y, pool_);
    }
  }

  void matmul_many(std::span<const kernels::MatmulOut> outs, const float* x, int64_t n, bool exact_rows) override {
    if (exact_rows && n > 1) {
      for (const kernels::MatmulOut& o : outs) matmul_rows_exact(*o.w, x, n, o.y, pool_, inline_pools_);
    } else {
      kernels::matmul_many(outs, x, n, pool_);
    }
  }

  void rmsnorm(const float* x, const float* w, int64_t n, int64_t width, double eps, float* out) override {
    for_rows(n, [&](int64_t t) { kernels::rmsnorm(x + t * width, w, width, eps, out + t * width); });
  }

  void swiglu(float* gate, const float* up, int64_t n, int64_t width) override {
    for_rows(n, [&](int64_t t) { kernels::swiglu(gate + t * width, up + t * width, width, gate + t * width); });
  }

  void add_residual(float* x, float* d, const float* norm, int64_t n, int64_t width, double eps) override {
    for_rows(n, [&](int64_t t) {
      float* dt = d + t * width;
      if (norm != nullptr) kernels::rmsnorm(dt, norm, width, eps, dt);
      float* xt = x + t * width;
      for (int64_t i = 0; i < width; ++i) xt[i] += dt[i];
    });
  }

 private:
  // Inline for a few rows (decode), spread over the pool otherwise.
  template <typename Fn>
  void for_rows(int64_t n, Fn&& fn) {
    if (n < 4 || pool_.size() == 1) {
      for (int64_t t = 0; t < n; ++t) fn(t);
      return;
    }
    pool_.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) fn(t);
    });
  }

  ThreadPool& pool_;
  std::vector<std::unique_ptr<ThreadPool>> inline_pools_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(ThreadPool& pool) { return std::make_unique<CpuBackend>(pool); }

}  // namespace kexa::model_detail
