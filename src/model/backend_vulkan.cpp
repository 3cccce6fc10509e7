// The Vulkan backend: the decoder's matrix products, norms, SwiGLU and residual updates on a
// gpu::Context, weights uploaded once at load in their file types. Operations the device has no
// shader for (weight types other than gpu::supports_matrix) run on the CPU kernels.
#include <cstring>
#include <map>
#include <set>

#include "gpu/vulkan.h"
#include "kernels/packed.h"
#include "model/backend.h"
#include "model/weights.h"
#include "util/error.h"

namespace kexa::model_detail {

namespace {

class VulkanBackend final : public Backend {
 public:
  VulkanBackend(std::unique_ptr<gpu::Context> ctx, ThreadPool& pool, int64_t gpu_layers)
      : ctx_(std::move(ctx)), cpu_(make_cpu_backend(pool)), gpu_layers_(gpu_layers) {}

  std::string name() const override { return concat("vulkan (", ctx_->info().name, ")"); }

  void prepare(const ModelWeights& w) override {
    // Every matrix a forward pass multiplies on the device: the layers it holds (projections,
    // MoE routers, shared and routed experts), and with all of them the output matrix (the
    // embedding when tied; an untied embedding is only read by row lookups, on the CPU) and the
    // MTP block.
    const int64_t n_layers = static_cast<int64_t>(w.layers.size());
    all_layers_ = gpu_layers_ < 0 || gpu_layers_ >= n_layers;
    std::vector<const kernels::Weight*> all;
    std::set<const kernels::Weight*> seen;
    auto add = [&](const kernels::Weight* t) {
      if (t != nullptr && gpu::supports_matrix(t->dtype) && seen.insert(t).second) all.push_back(t);
    };
    auto add_layer = [&](const LayerWeights& l) {
      for (const kernels::Weight* t : {l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down}) add(t);
      if (l.moe == nullptr) return;
      add(&l.moe->router);
      for (const kernels::Weight* t : {l.moe->shared_gate, l.moe->shared_up, l.moe->shared_down}) add(t);
      for (const auto* list : {&l.moe->gate, &l.moe->up, &l.moe->down}) {
        for (const kernels::Weight& e : *list) add(&e);
      }
    };
    for (int64_t i = 0; i < n_layers; ++i) {
      if (all_layers_ || i < gpu_layers_) add_layer(w.layers[static_cast<size_t>(i)]);
    }
    if (all_layers_) {
      add(w.output);
      if (w.mtp != nullptr) {
        add(w.mtp->fc);
        add_layer(w.mtp->layer);
      }
    }

    uint64_t need = 0;
    for (const kernels::Weight* t : all) need += dtype_bytes(t->dtype, t->numel());
    const gpu::DeviceInfo& dev = ctx_->info();
    if (need > dev.memory_bytes) {
      fail("the model's weights need ", need >> 20, " MiB of device memory; the Vulkan device ", dev.name, " has ",
           dev.memory_bytes >> 20, " MiB (keep layers on the CPU with --gpu-layers, or run with --device cpu)");
    }
    for (const kernels::Weight* t : all) {
      const uint32_t id = ctx_->upload_matrix(t->dtype, t->rows(), t->cols(), [&](int64_t first, int64_t count, uint8_t* dst) {
        const size_t row_bytes = dtype_bytes(t->dtype, t->cols());
        if (t->row_group == 1) {
          std::memcpy(dst, t->data + first * row_bytes, static_cast<size_t>(count) * row_bytes);
          return;
        }
        // Packed for the CPU's kernels: the shaders read the file's row layout.
        for (int64_t r = 0; r < count; ++r) kernels::unpack_row(*t, first + r, dst + r * row_bytes);
      });
      ids_.emplace(t, id);
    }
  }

  void begin_layer(int64_t layer) override {
    on_device_ = layer < 0 ? all_layers_ : (all_layers_ || layer < gpu_layers_);
  }

  void matmul(const kernels::Weight& W, const float* x, int64_t n, float* y, bool exact_rows) override {
    const uint32_t id = find(W);
    if (id == 0) return cpu_->matmul(W, x, n, y, exact_rows);
    // Every row of a device product is computed as it is alone, so exact_rows holds as it is.
    const gpu::Context::Product p{id, y};
    ctx_->matmul({&p, 1}, x, n);
  }

  void matmul_many(std::span<const kernels::MatmulOut> outs, const float* x, int64_t n, bool exact_rows) override {
    std::vector<gpu::Context::Product> products;
    for (const kernels::MatmulOut& o : outs) {
      const uint32_t id = find(*o.w);
      if (id == 0) {
        cpu_->matmul(*o.w, x, n, o.y, exact_rows);
      } else {
        products.push_back({id, o.y});
      }
    }
    ctx_->matmul(products, x, n);
  }

  void rmsnorm(const float* x, const float* w, int64_t n, int64_t width, double eps, float* out) override {
    if (!on_device_) return cpu_->rmsnorm(x, w, n, width, eps, out);
    ctx_->rmsnorm(x, w != nullptr ? ctx_->vector(w, width) : 0, n, width, static_cast<float>(eps), out);
  }

  void swiglu(float* gate, const float* up, int64_t n, int64_t width) override {
    if (!on_device_) return cpu_->swiglu(gate, up, n, width);
    ctx_->swiglu(gate, up, n * width);
  }

  void add_residual(float* x, float* d, const float* norm, int64_t n, int64_t width, double eps) override {
    if (!on_device_) return cpu_->add_residual(x, d, norm, n, width, eps);
    ctx_->add_residual(x, d, norm != nullptr ? ctx_->vector(norm, width) : 0, n, width, static_cast<float>(eps));
  }

 private:
  uint32_t find(const kernels::Weight& W) const {
    auto it = ids_.find(&W);
    return it == ids_.end() ? 0 : it->second;
  }

  std::unique_ptr<gpu::Context> ctx_;
  std::unique_ptr<Backend> cpu_;
  std::map<const kernels::Weight*, uint32_t> ids_;
  int64_t gpu_layers_ = -1;
  bool all_layers_ = true;
  bool on_device_ = true;  // the current layer's norms, SwiGLU and residuals run on the device
};

}  // namespace

std::unique_ptr<Backend> make_backend(const LoadOptions& options, ThreadPool& pool, std::string& note) {
  note.clear();
  if (options.device == Device::Cpu) return make_cpu_backend(pool);
  const bool asked = options.device == Device::Vulkan;
  std::vector<gpu::DeviceInfo> devices;
  try {
    devices = gpu::list_devices();
  } catch (const Error& e) {
    if (asked) note = concat(e.what(), "; running on the CPU");
    return make_cpu_backend(pool);
  }
  // --device vulkan: the first usable GPU, else the first usable device (lavapipe);
  // auto: the first usable GPU only.
  const gpu::DeviceInfo* pick = nullptr;
  for (const gpu::DeviceInfo& d : devices) {
    if (d.usable && d.is_gpu) {
      pick = &d;
      break;
    }
  }
  if (pick == nullptr && asked) {
    for (const gpu::DeviceInfo& d : devices) {
      if (d.usable) {
        pick = &d;
        break;
      }
    }
  }
  if (pick == nullptr) {
    if (asked) {
      std::string why;
      for (const gpu::DeviceInfo& d : devices) why += concat(why.empty() ? "" : "; ", d.name, ": ", d.why_unusable);
      note = concat("Vulkan: no usable device (", why, "); running on the CPU");
    }
    return make_cpu_backend(pool);
  }
  std::unique_ptr<gpu::Context> ctx;
  try {
    ctx = gpu::Context::open(pick->index);
  } catch (const Error& e) {
    note = concat(e.what(), "; running on the CPU");
    return make_cpu_backend(pool);
  }
  return std::make_unique<VulkanBackend>(std::move(ctx), pool, options.gpu_layers);
}

void check_gpu_layers(const LoadOptions& options, int64_t n_layers) {
  if (options.gpu_layers < -1 || options.gpu_layers > n_layers) {
    fail("--gpu-layers ", options.gpu_layers, " is outside [0, ", n_layers, "] (the model has ", n_layers,
         " layers; -1 = all)");
  }
}

}  // namespace kexa::model_detail

namespace kexa {

std::optional<Device> parse_device(std::string_view name) {
  if (name == "cpu") return Device::Cpu;
  if (name == "vulkan") return Device::Vulkan;
  if (name == "auto") return Device::Auto;
  return std::nullopt;
}

}  // namespace kexa
