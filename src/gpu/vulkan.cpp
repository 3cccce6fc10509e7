// The Vulkan runtime (see vulkan.h): loader, function table, devices, memory, pipelines, and the
// recorded command buffers the operations replay.
#include "gpu/vulkan.h"

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/quant_blocks.h"
#include "util/error.h"

namespace kexa::gpu {

namespace {

// SPIR-V compiled from src/gpu/shaders by glslc (CMake writes this file).
#include "gpu_shaders.inc"

// ---- Loader and function table -------------------------------------------------------------------
// Written out by hand: the loader is opened with dlopen, never linked, and only these are used.

#define KEXA_VK_INSTANCE_FNS(X)                                                                     \
  X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)               \
  X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceMemoryProperties)                          \
  X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkCreateDevice) X(vkGetDeviceProcAddr)

#define KEXA_VK_DEVICE_FNS(X)                                                                       \
  X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer)                       \
  X(vkGetBufferMemoryRequirements) X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory)        \
  X(vkMapMemory) X(vkUnmapMemory) X(vkCreateShaderModule) X(vkDestroyShaderModule)                  \
  X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreatePipelineLayout)          \
  X(vkDestroyPipelineLayout) X(vkCreateComputePipelines) X(vkDestroyPipeline)                       \
  X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkResetDescriptorPool)                     \
  X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) X(vkCreateCommandPool)                      \
  X(vkDestroyCommandPool) X(vkResetCommandPool) X(vkAllocateCommandBuffers) X(vkFreeCommandBuffers) \
  X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets)     \
  X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer)                 \
  X(vkCreateFence) X(vkDestroyFence) X(vkResetFences) X(vkWaitForFences) X(vkQueueSubmit)           \
  X(vkDeviceWaitIdle)

struct Fns {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  PFN_vkCreateInstance vkCreateInstance = nullptr;
#define X(f) PFN_##f f = nullptr;
  KEXA_VK_INSTANCE_FNS(X)
  KEXA_VK_DEVICE_FNS(X)
#undef X
};

std::string library_name() {
  const char* env = std::getenv("KEXA_VULKAN_LIBRARY");
  return env != nullptr && *env != '\0' ? env : "libvulkan.so.1";
}

const char* result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    default: return "VkResult error";
  }
}

void check(VkResult r, const char* what) {
  if (r != VK_SUCCESS) fail("Vulkan: ", what, " failed (", result_name(r), " ", static_cast<int>(r), ")");
}

// The loader and one instance, shared by every context of the process (never unloaded: drivers
// may keep threads that run code from it).
struct Instance {
  Fns fn;
  VkInstance instance = VK_NULL_HANDLE;
  std::string error;  // why there is none
};

Instance& instance() {
  static Instance* inst = [] {
    auto* in = new Instance();
    const std::string lib = library_name();
    void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* why = dlerror();
      in->error = concat("Vulkan: the loader library ", lib, " could not be opened (", why != nullptr ? why : "?",
                         "); install the Vulkan loader (Debian: libvulkan1) and a driver (mesa-vulkan-drivers)");
      return in;
    }
    in->fn.vkGetInstanceProcAddr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(h, "vkGetInstanceProcAddr"));
    if (in->fn.vkGetInstanceProcAddr == nullptr) {
      in->error = concat("Vulkan: ", lib, " has no vkGetInstanceProcAddr (not a Vulkan loader)");
      return in;
    }
    in->fn.vkCreateInstance =
        reinterpret_cast<PFN_vkCreateInstance>(in->fn.vkGetInstanceProcAddr(VK_NULL_HANDLE, "vkCreateInstance"));
    if (in->fn.vkCreateInstance == nullptr) {
      in->error = concat("Vulkan: ", lib, " does not provide vkCreateInstance");
      return in;
    }
    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "kexa";
    app.pEngineName = "kexa";
    app.apiVersion = VK_API_VERSION_1_1;  // subgroup operations
    VkInstanceCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    ci.pApplicationInfo = &app;
    const VkResult r = in->fn.vkCreateInstance(&ci, nullptr, &in->instance);
    if (r != VK_SUCCESS) {
      in->error = concat("Vulkan: vkCreateInstance failed (", result_name(r),
                         "): the loader found no driver supporting Vulkan 1.1 (Debian: mesa-vulkan-drivers)");
      in->instance = VK_NULL_HANDLE;
      return in;
    }
#define X(f) in->fn.f = reinterpret_cast<PFN_##f>(in->fn.vkGetInstanceProcAddr(in->instance, #f));
    KEXA_VK_INSTANCE_FNS(X)
#undef X
#define X(f)                                                    \
  if (in->fn.f == nullptr) {                                    \
    in->error = concat("Vulkan: the loader lacks " #f);         \
    return in;                                                  \
  }
    KEXA_VK_INSTANCE_FNS(X)
#undef X
    return in;
  }();
  if (!inst->error.empty()) throw Error(inst->error);
  return *inst;
}

std::string version_string(uint32_t v) {
  return concat(VK_API_VERSION_MAJOR(v), ".", VK_API_VERSION_MINOR(v), ".", VK_API_VERSION_PATCH(v));
}

uint64_t memory_cap() {
  const char* env = std::getenv("KEXA_VULKAN_MEMORY");
  if (env == nullptr || *env == '\0') return UINT64_MAX;
  return static_cast<uint64_t>(std::strtoull(env, nullptr, 10)) << 20;
}

std::vector<VkPhysicalDevice> physical_devices(Instance& in) {
  uint32_t n = 0;
  check(in.fn.vkEnumeratePhysicalDevices(in.instance, &n, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devs(n);
  if (n > 0) check(in.fn.vkEnumeratePhysicalDevices(in.instance, &n, devs.data()), "vkEnumeratePhysicalDevices");
  devs.resize(n);
  if (devs.empty()) fail("Vulkan: the loader (", library_name(), ") reports no device; install a driver (Debian: mesa-vulkan-drivers)");
  return devs;
}

int compute_queue_family(Instance& in, VkPhysicalDevice pd) {
  uint32_t n = 0;
  in.fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> fams(n);
  in.fn.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, fams.data());
  for (uint32_t i = 0; i < n; ++i) {
    if ((fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT) != 0) return static_cast<int>(i);
  }
  return -1;
}

DeviceInfo describe(Instance& in, VkPhysicalDevice pd, int index) {
  VkPhysicalDeviceSubgroupProperties sub{};
  sub.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
  VkPhysicalDeviceProperties2 props{};
  props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  props.pNext = &sub;
  in.fn.vkGetPhysicalDeviceProperties2(pd, &props);
  VkPhysicalDeviceMemoryProperties mem{};
  in.fn.vkGetPhysicalDeviceMemoryProperties(pd, &mem);

  DeviceInfo d;
  d.index = index;
  d.name = props.properties.deviceName;
  switch (props.properties.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: d.type = "discrete GPU"; d.is_gpu = true; break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: d.type = "integrated GPU"; d.is_gpu = true; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: d.type = "virtual GPU"; d.is_gpu = true; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: d.type = "CPU"; break;
    default: d.type = "other"; break;
  }
  d.api_version = version_string(props.properties.apiVersion);
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i) {
    if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0) {
      d.memory_bytes = std::max<uint64_t>(d.memory_bytes, mem.memoryHeaps[i].size);
    }
  }
  d.memory_bytes = std::min(d.memory_bytes, memory_cap());
  d.subgroup_size = sub.subgroupSize;
  const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
  if (props.properties.apiVersion < VK_API_VERSION_1_1) {
    d.why_unusable = "Vulkan 1.1 is required";
  } else if (compute_queue_family(in, pd) < 0) {
    d.why_unusable = "no compute queue";
  } else if ((sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) == 0 || (sub.supportedOperations & need) != need) {
    d.why_unusable = "no subgroup arithmetic in compute shaders";
  }
  d.usable = d.why_unusable.empty();
  return d;
}

int64_t fail_allocation_at() {
  const char* env = std::getenv("KEXA_VULKAN_FAIL_ALLOC");
  return env != nullptr && *env != '\0' ? std::strtoll(env, nullptr, 10) : 0;
}

struct Buffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  uint64_t size = 0;
  uint64_t allocated = 0;  // bytes of device memory behind it
  uint8_t* mapped = nullptr;  // host-visible buffers stay mapped
};

enum Pipe : int {
  kMatvecF32, kMatvecF16, kMatvecBF16, kMatvecQ8_0, kMatvecQ4_0, kMatvecQ4_K, kMatvecQ5_K, kMatvecQ6_K,
  kRmsNorm, kSwiglu, kResidual, kPipeCount
};

struct Shader {
  const unsigned char* code;
  size_t size;
};

Shader shader_of(int p) {
  switch (p) {
    case kMatvecF32: return {kSpvMatvecF32, sizeof(kSpvMatvecF32)};
    case kMatvecF16: return {kSpvMatvecF16, sizeof(kSpvMatvecF16)};
    case kMatvecBF16: return {kSpvMatvecBF16, sizeof(kSpvMatvecBF16)};
    case kMatvecQ8_0: return {kSpvMatvecQ8_0, sizeof(kSpvMatvecQ8_0)};
    case kMatvecQ4_0: return {kSpvMatvecQ4_0, sizeof(kSpvMatvecQ4_0)};
    case kMatvecQ4_K: return {kSpvMatvecQ4_K, sizeof(kSpvMatvecQ4_K)};
    case kMatvecQ5_K: return {kSpvMatvecQ5_K, sizeof(kSpvMatvecQ5_K)};
    case kMatvecQ6_K: return {kSpvMatvecQ6_K, sizeof(kSpvMatvecQ6_K)};
    case kRmsNorm: return {kSpvRmsnorm, sizeof(kSpvRmsnorm)};
    case kSwiglu: return {kSpvSwiglu, sizeof(kSpvSwiglu)};
    default: return {kSpvResidual, sizeof(kSpvResidual)};
  }
}

int matvec_pipe(DType t) {
  switch (t) {
    case DType::F32: return kMatvecF32;
    case DType::F16: return kMatvecF16;
    case DType::BF16: return kMatvecBF16;
    case DType::Q8_0: return kMatvecQ8_0;
    case DType::Q4_0: return kMatvecQ4_0;
    case DType::Q4_K: return kMatvecQ4_K;
    case DType::Q5_K: return kMatvecQ5_K;
    case DType::Q6_K: return kMatvecQ6_K;
    default: return -1;
  }
}

struct Matrix {
  Buffer buf;
  int pipe = 0;
  uint32_t rows = 0, cols = 0, row_bytes = 0;
};

// Push constants of every pipeline (words; the shaders declare a prefix of them).
constexpr uint32_t kPushWords = 5;
// Tokens per matvec workgroup (TT in matvec.comp).
constexpr int64_t kTokenTile = 8;

// What a matvec pipeline reads as activations: f32 rows, or the CPU kernels' int8 blocks.
enum Act { kActF32, kAct32, kAct256 };
static_assert(sizeof(kernels::quant::ActBlock32) == 40 && sizeof(kernels::quant::ActBlock256) == 292,
              "matvec.comp reads the activation blocks at these strides");

Act act_of(int pipe) {
  switch (pipe) {
    case kMatvecQ8_0: case kMatvecQ4_0: return kAct32;
    case kMatvecQ4_K: case kMatvecQ5_K: case kMatvecQ6_K: return kAct256;
    default: return kActF32;
  }
}

// Host-visible buffers every operation stages its activations through: 0 = input, 1 = second
// input or ActBlock32 activations, 2 = output, 3 = ActBlock256 activations.
constexpr int kSlots = 4;

class VulkanContext final : public Context {
 public:
  explicit VulkanContext(int index) : in_(instance()) {
    std::vector<VkPhysicalDevice> devs = physical_devices(in_);
    if (index < 0 || static_cast<size_t>(index) >= devs.size()) {
      fail("Vulkan: no device ", index, " (the loader reports ", devs.size(), ")");
    }
    pd_ = devs[static_cast<size_t>(index)];
    info_ = describe(in_, pd_, index);
    if (!info_.usable) fail("Vulkan: device ", index, " (", info_.name, ") is not usable: ", info_.why_unusable);
    in_.fn.vkGetPhysicalDeviceMemoryProperties(pd_, &mem_);
    family_ = static_cast<uint32_t>(compute_queue_family(in_, pd_));
    fail_at_ = fail_allocation_at();
    force_staging_ = std::getenv("KEXA_VULKAN_STAGING") != nullptr;

    const float prio = 1.0f;
    VkDeviceQueueCreateInfo qci{};
    qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    qci.queueFamilyIndex = family_;
    qci.queueCount = 1;
    qci.pQueuePriorities = &prio;
    VkDeviceCreateInfo dci{};
    dci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    check(in_.fn.vkCreateDevice(pd_, &dci, nullptr, &dev_), "vkCreateDevice");
#define X(f)                                                                                \
  fn_.f = reinterpret_cast<PFN_##f>(in_.fn.vkGetDeviceProcAddr(dev_, #f));                  \
  if (fn_.f == nullptr) {                                                                   \
    in_.fn.vkDestroyDevice(dev_, nullptr);                                                  \
    fail("Vulkan: the driver of ", info_.name, " lacks " #f);                               \
  }
    KEXA_VK_DEVICE_FNS(X)
#undef X
    try {
      init();
    } catch (...) {
      destroy();
      throw;
    }
  }

  ~VulkanContext() override { destroy(); }

  const DeviceInfo& info() const override { return info_; }
  uint64_t allocated_bytes() const override { return allocated_; }

  uint32_t upload_matrix(DType type, int64_t rows, int64_t cols,
                         const std::function<void(int64_t, int64_t, uint8_t*)>& fill) override {
    const int pipe = matvec_pipe(type);
    if (pipe < 0) fail("Vulkan: no shader for ", dtype_name(type), " matrices");
    const uint64_t row_bytes = dtype_bytes(type, cols);
    const uint64_t bytes = row_bytes * static_cast<uint64_t>(rows);
    if (rows > UINT32_MAX || bytes > UINT32_MAX) fail("Vulkan: a ", rows, " x ", cols, " matrix exceeds 4 GiB");
    if (act_of(pipe) == kAct256 && cols % 256 != 0) fail("Vulkan: ", dtype_name(type), " rows of ", cols, " values");
    Matrix m;
    m.pipe = pipe;
    m.rows = static_cast<uint32_t>(rows);
    m.cols = static_cast<uint32_t>(cols);
    m.row_bytes = static_cast<uint32_t>(row_bytes);
    m.buf = upload(bytes, [&](uint8_t* dst, uint64_t) { fill(0, rows, dst); });
    matrices_.push_back(m);
    return static_cast<uint32_t>(matrices_.size());
  }

  uint32_t vector(const float* data, int64_t n) override {
    auto it = vectors_.find(data);
    if (it != vectors_.end()) return it->second;
    const uint64_t bytes = static_cast<uint64_t>(n) * sizeof(float);
    Buffer b = upload(bytes, [&](uint8_t* dst, uint64_t) { std::memcpy(dst, data, bytes); });
    Matrix m;
    m.buf = b;
    matrices_.push_back(m);
    const uint32_t id = static_cast<uint32_t>(matrices_.size());
    vectors_.emplace(data, id);
    return id;
  }

  void matmul(std::span<const Product> products, const float* x, int64_t n) override {
    if (products.empty() || n <= 0) return;
    const Matrix& m0 = matrix(products[0].matrix);
    uint64_t out_floats = 0;
    for (const Product& p : products) out_floats += static_cast<uint64_t>(matrix(p.matrix).rows) * n;
    const uint64_t in_bytes = static_cast<uint64_t>(n) * m0.cols * sizeof(float);
    bool uses[3] = {false, false, false};
    for (const Product& p : products) uses[act_of(matrix(p.matrix).pipe)] = true;
    // Quantized weights multiply the same int8 activation blocks as the CPU kernels (one
    // quantisation per token and block format, shared by every product).
    using kernels::quant::ActBlock256;
    using kernels::quant::ActBlock32;
    const uint64_t a32 = uses[kAct32] ? static_cast<uint64_t>(n) * (m0.cols / 32) * sizeof(ActBlock32) : 4;
    const uint64_t a256 = uses[kAct256] ? static_cast<uint64_t>(n) * (m0.cols / 256) * sizeof(ActBlock256) : 4;
    ensure_slots(in_bytes, a32, out_floats * sizeof(float), a256);
    if (uses[kActF32]) std::memcpy(slots_[0].mapped, x, in_bytes);
    for (int64_t t = 0; t < n; ++t) {
      if (uses[kAct32]) {
        kernels::quant::quantize_act32(x + t * m0.cols, m0.cols,
                                       reinterpret_cast<ActBlock32*>(slots_[1].mapped) + t * (m0.cols / 32));
      }
      if (uses[kAct256]) {
        kernels::quant::quantize_act256(x + t * m0.cols, m0.cols,
                                        reinterpret_cast<ActBlock256*>(slots_[3].mapped) + t * (m0.cols / 256));
      }
    }
    // One recorded command buffer per (matrices, rows): decode replays the same ones every token.
    std::vector<uint64_t> key{1, static_cast<uint64_t>(n)};
    for (const Product& p : products) key.push_back(p.matrix);
    VkCommandBuffer cb = recorded(key, [&](VkCommandBuffer c) {
      uint32_t y_off = 0;
      for (const Product& p : products) {
        const Matrix& m = matrix(p.matrix);
        if (m.cols != m0.cols) fail("Vulkan: matmul of matrices with different column counts");
        const uint32_t push[kPushWords] = {m.rows, m.cols, m.row_bytes, y_off, static_cast<uint32_t>(n)};
        const uint32_t gx = std::min<uint32_t>(m.rows, 65535u), gz = (m.rows + 65534u) / 65535u;
        const Buffer* in = act_of(m.pipe) == kAct32 ? &slots_[1] : act_of(m.pipe) == kAct256 ? &slots_[3] : &slots_[0];
        dispatch(c, m.pipe, {&m.buf, in, &slots_[2]}, push, gx, static_cast<uint32_t>((n + kTokenTile - 1) / kTokenTile), gz);
        y_off += m.rows * static_cast<uint32_t>(n);
      }
    });
    submit(cb);
    const float* out = reinterpret_cast<const float*>(slots_[2].mapped);
    for (const Product& p : products) {
      const size_t cnt = static_cast<size_t>(matrix(p.matrix).rows) * static_cast<size_t>(n);
      std::memcpy(p.y, out, cnt * sizeof(float));
      out += cnt;
    }
  }

  void rmsnorm(const float* x, uint32_t w, int64_t n, int64_t width, float eps, float* out) override {
    if (n <= 0) return;
    const uint64_t bytes = static_cast<uint64_t>(n * width) * sizeof(float);
    ensure_slots(bytes, 4, 4);
    std::memcpy(slots_[0].mapped, x, bytes);
    run_rows(2, kRmsNorm, w, slots_[1], slots_[0], n, width, eps);
    std::memcpy(out, slots_[0].mapped, bytes);
  }

  void swiglu(float* gate, const float* up, int64_t count) override {
    if (count <= 0) return;
    const uint64_t bytes = static_cast<uint64_t>(count) * sizeof(float);
    ensure_slots(bytes, bytes, 4);
    std::memcpy(slots_[0].mapped, gate, bytes);
    std::memcpy(slots_[1].mapped, up, bytes);
    const uint32_t push[kPushWords] = {static_cast<uint32_t>(count), 0, 0, 0, 0};
    const uint64_t groups = (static_cast<uint64_t>(count) + 63) / 64;
    const uint32_t gx = static_cast<uint32_t>(std::min<uint64_t>(groups, 65535)), gy =
        static_cast<uint32_t>((groups + 65534) / 65535);
    VkCommandBuffer cb = recorded({3, static_cast<uint64_t>(count)}, [&](VkCommandBuffer c) {
      dispatch(c, kSwiglu, {&slots_[1], &slots_[1], &slots_[0]}, push, gx, gy, 1);
    });
    submit(cb);
    std::memcpy(gate, slots_[0].mapped, bytes);
  }

  void add_residual(float* x, float* d, uint32_t w, int64_t n, int64_t width, float eps) override {
    if (n <= 0) return;
    const uint64_t bytes = static_cast<uint64_t>(n * width) * sizeof(float);
    ensure_slots(bytes, bytes, 4);
    std::memcpy(slots_[0].mapped, x, bytes);
    std::memcpy(slots_[1].mapped, d, bytes);
    run_rows(4, kResidual, w, slots_[2], slots_[1], n, width, eps);
    std::memcpy(x, slots_[0].mapped, bytes);
    if (w != 0) std::memcpy(d, slots_[1].mapped, bytes);
  }

 private:
  const Matrix& matrix(uint32_t id) const {
    if (id == 0 || id > matrices_.size()) fail("Vulkan: unknown buffer id ", id);
    return matrices_[id - 1];
  }

  // The row-wise norms (rmsnorm; residual add + norm): one workgroup per row of `width`, reading
  // `src` and writing slot 0, scaled by matrix `w` (0: none, `spare` is bound in its place).
  // `op` keys the recorded command buffer.
  void run_rows(uint64_t op, Pipe pipe, uint32_t w, const Buffer& spare, const Buffer& src, int64_t n,
                int64_t width, float eps) {
    uint32_t push[kPushWords] = {static_cast<uint32_t>(width), 0, w != 0 ? 1u : 0u, 0, 0};
    std::memcpy(&push[1], &eps, 4);
    const Buffer* wb = w != 0 ? &matrix(w).buf : &spare;
    VkCommandBuffer cb = recorded({op, static_cast<uint64_t>(n), static_cast<uint64_t>(width), w, push[1]},
                                  [&](VkCommandBuffer c) {
                                    dispatch(c, pipe, {wb, &src, &slots_[0]}, push, static_cast<uint32_t>(n), 1, 1);
                                  });
    submit(cb);
  }

  void init() {
    VkDescriptorSetLayoutBinding b[3]{};
    for (uint32_t i = 0; i < 3; ++i) {
      b[i].binding = i;
      b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      b[i].descriptorCount = 1;
      b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo lci{};
    lci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
    lci.bindingCount = 3;
    lci.pBindings = b;
    check(fn_.vkCreateDescriptorSetLayout(dev_, &lci, nullptr, &dsl_), "vkCreateDescriptorSetLayout");
    VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, 4 * kPushWords};
    VkPipelineLayoutCreateInfo plci{};
    plci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
    plci.setLayoutCount = 1;
    plci.pSetLayouts = &dsl_;
    plci.pushConstantRangeCount = 1;
    plci.pPushConstantRanges = &pcr;
    check(fn_.vkCreatePipelineLayout(dev_, &plci, nullptr, &layout_), "vkCreatePipelineLayout");
    for (int p = 0; p < kPipeCount; ++p) {
      const Shader s = shader_of(p);
      std::vector<uint32_t> words((s.size + 3) / 4);
      std::memcpy(words.data(), s.code, s.size);
      VkShaderModuleCreateInfo sci{};
      sci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
      sci.codeSize = s.size;
      sci.pCode = words.data();
      VkShaderModule mod = VK_NULL_HANDLE;
      check(fn_.vkCreateShaderModule(dev_, &sci, nullptr, &mod), "vkCreateShaderModule");
      VkComputePipelineCreateInfo cpci{};
      cpci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
      cpci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
      cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
      cpci.stage.module = mod;
      cpci.stage.pName = "main";
      cpci.layout = layout_;
      const VkResult r = fn_.vkCreateComputePipelines(dev_, VK_NULL_HANDLE, 1, &cpci, nullptr, &pipes_[p]);
      fn_.vkDestroyShaderModule(dev_, mod, nullptr);
      check(r, "vkCreateComputePipelines");
    }
    VkCommandPoolCreateInfo cpi{};
    cpi.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    cpi.queueFamilyIndex = family_;
    check(fn_.vkCreateCommandPool(dev_, &cpi, nullptr, &cmd_pool_), "vkCreateCommandPool");
    VkFenceCreateInfo fci{};
    fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    check(fn_.vkCreateFence(dev_, &fci, nullptr, &fence_), "vkCreateFence");
    fn_.vkGetDeviceQueue(dev_, family_, 0, &queue_);
    new_descriptor_pool();
  }

  void destroy() {
    if (dev_ == VK_NULL_HANDLE) return;
    fn_.vkDeviceWaitIdle(dev_);
    drop_recorded();
    for (VkDescriptorPool p : desc_pools_) fn_.vkDestroyDescriptorPool(dev_, p, nullptr);
    desc_pools_.clear();
    for (Buffer& b : slots_) release(b);
    for (Matrix& m : matrices_) release(m.buf);
    matrices_.clear();
    if (fence_ != VK_NULL_HANDLE) fn_.vkDestroyFence(dev_, fence_, nullptr);
    if (cmd_pool_ != VK_NULL_HANDLE) fn_.vkDestroyCommandPool(dev_, cmd_pool_, nullptr);
    for (VkPipeline& p : pipes_) {
      if (p != VK_NULL_HANDLE) fn_.vkDestroyPipeline(dev_, p, nullptr);
    }
    if (layout_ != VK_NULL_HANDLE) fn_.vkDestroyPipelineLayout(dev_, layout_, nullptr);
    if (dsl_ != VK_NULL_HANDLE) fn_.vkDestroyDescriptorSetLayout(dev_, dsl_, nullptr);
    fn_.vkDestroyDevice(dev_, nullptr);
    dev_ = VK_NULL_HANDLE;
  }

  void new_descriptor_pool() {
    VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 3 * kSetsPerPool};
    VkDescriptorPoolCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
    ci.maxSets = kSetsPerPool;
    ci.poolSizeCount = 1;
    ci.pPoolSizes = &size;
    VkDescriptorPool pool = VK_NULL_HANDLE;
    check(fn_.vkCreateDescriptorPool(dev_, &ci, nullptr, &pool), "vkCreateDescriptorPool");
    desc_pools_.push_back(pool);
    sets_left_ = kSetsPerPool;
  }

  int memory_type(uint32_t bits, VkMemoryPropertyFlags want) const {
    for (uint32_t i = 0; i < mem_.memoryTypeCount; ++i) {
      if ((bits & (1u << i)) != 0 && (mem_.memoryTypes[i].propertyFlags & want) == want) return static_cast<int>(i);
    }
    return -1;
  }

  // A buffer in memory with `want` (falling back to `fallback` when no type has it).
  Buffer create(uint64_t size, VkBufferUsageFlags usage, VkMemoryPropertyFlags want, VkMemoryPropertyFlags fallback) {
    Buffer b;
    b.size = std::max<uint64_t>(size, 4);
    VkBufferCreateInfo bci{};
    bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
    bci.size = b.size;
    bci.usage = usage;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    check(fn_.vkCreateBuffer(dev_, &bci, nullptr, &b.buffer), "vkCreateBuffer");
    VkMemoryRequirements req{};
    fn_.vkGetBufferMemoryRequirements(dev_, b.buffer, &req);
    int type = memory_type(req.memoryTypeBits, want);
    if (type < 0) type = memory_type(req.memoryTypeBits, fallback);
    if (type < 0) {
      fn_.vkDestroyBuffer(dev_, b.buffer, nullptr);
      fail("Vulkan: ", info_.name, " has no suitable memory type for a buffer of ", size, " bytes");
    }
    const int64_t nth = ++allocations_;
    VkResult r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    if (fail_at_ == 0 || nth != fail_at_) {
      VkMemoryAllocateInfo ai{};
      ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
      ai.allocationSize = req.size;
      ai.memoryTypeIndex = static_cast<uint32_t>(type);
      r = fn_.vkAllocateMemory(dev_, &ai, nullptr, &b.memory);
    }
    if (r != VK_SUCCESS) {
      fn_.vkDestroyBuffer(dev_, b.buffer, nullptr);
      fail("Vulkan: allocating ", req.size, " bytes of device memory on ", info_.name, " failed (", result_name(r),
           nth == fail_at_ ? ", simulated by KEXA_VULKAN_FAIL_ALLOC" : "", "); ", allocated_ >> 20,
           " MiB were allocated, the device has ", info_.memory_bytes >> 20, " MiB");
    }
    check(fn_.vkBindBufferMemory(dev_, b.buffer, b.memory, 0), "vkBindBufferMemory");
    if ((mem_.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) != 0) {
      void* p = nullptr;
      check(fn_.vkMapMemory(dev_, b.memory, 0, VK_WHOLE_SIZE, 0, &p), "vkMapMemory");
      b.mapped = static_cast<uint8_t*>(p);
    }
    allocated_ += req.size;
    b.allocated = req.size;
    return b;
  }

  void release(Buffer& b) {
    allocated_ -= b.allocated;
    if (b.buffer != VK_NULL_HANDLE) fn_.vkDestroyBuffer(dev_, b.buffer, nullptr);
    if (b.memory != VK_NULL_HANDLE) fn_.vkFreeMemory(dev_, b.memory, nullptr);
    b = Buffer{};
  }

  // Device-local memory written once: directly where it is host-visible (integrated GPUs, lavapipe,
  // resizable BAR), through a host-visible staging buffer and a copy otherwise.
  Buffer upload(uint64_t bytes, const std::function<void(uint8_t*, uint64_t)>& write) {
    const VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    if (!force_staging_) {
      const int direct = [&] {
        for (uint32_t i = 0; i < mem_.memoryTypeCount; ++i) {
          const VkMemoryPropertyFlags f = mem_.memoryTypes[i].propertyFlags;
          if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) != 0 && (f & host) == host) return 1;
        }
        return 0;
      }();
      if (direct != 0) {
        Buffer b = create(bytes, usage, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | host, host);
        if (b.mapped != nullptr) {
          write(b.mapped, bytes);
          return b;
        }
        release(b);
      }
    }
    Buffer dst = create(bytes, usage, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    try {
      Buffer stage = create(bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, host, host);
      write(stage.mapped, bytes);
      VkCommandBuffer cb = begin_one_off();
      VkBufferCopy region{0, 0, bytes};
      fn_.vkCmdCopyBuffer(cb, stage.buffer, dst.buffer, 1, &region);
      end_and_submit(cb);
      fn_.vkFreeCommandBuffers(dev_, cmd_pool_, 1, &cb);
      release(stage);
    } catch (...) {
      release(dst);
      throw;
    }
    return dst;
  }

  VkCommandBuffer allocate_cb() {
    VkCommandBufferAllocateInfo ai{};
    ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    ai.commandPool = cmd_pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    VkCommandBuffer cb = VK_NULL_HANDLE;
    check(fn_.vkAllocateCommandBuffers(dev_, &ai, &cb), "vkAllocateCommandBuffers");
    return cb;
  }

  VkCommandBuffer begin_one_off() {
    VkCommandBuffer cb = allocate_cb();
    VkCommandBufferBeginInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check(fn_.vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer");
    return cb;
  }

  void end_and_submit(VkCommandBuffer cb) {
    check(fn_.vkEndCommandBuffer(cb), "vkEndCommandBuffer");
    submit(cb);
  }

  void submit(VkCommandBuffer cb) {
    VkSubmitInfo si{};
    si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cb;
    check(fn_.vkResetFences(dev_, 1, &fence_), "vkResetFences");
    check(fn_.vkQueueSubmit(queue_, 1, &si, fence_), "vkQueueSubmit");
    check(fn_.vkWaitForFences(dev_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  }

  // Grows the staging slots to at least the given sizes; recorded command buffers name the old
  // buffers, so they are dropped when any slot is replaced.
  void ensure_slots(uint64_t s0, uint64_t s1, uint64_t s2, uint64_t s3 = 4) {
    const uint64_t need[kSlots] = {s0, s1, s2, s3};
    for (int i = 0; i < kSlots; ++i) {
      if (slots_[i].size >= need[i]) continue;
      drop_recorded();
      const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      const uint64_t size = std::max<uint64_t>(need[i], slots_[i].size * 2);
      release(slots_[i]);
      // Cached host memory reads back faster; any coherent host-visible type works.
      slots_[i] = create(size, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, host);
    }
  }

  void drop_recorded() {
    if (recorded_.empty()) return;
    fn_.vkDeviceWaitIdle(dev_);
    for (auto& [key, cb] : recorded_) fn_.vkFreeCommandBuffers(dev_, cmd_pool_, 1, &cb);
    recorded_.clear();
    for (size_t i = 1; i < desc_pools_.size(); ++i) fn_.vkDestroyDescriptorPool(dev_, desc_pools_[i], nullptr);
    desc_pools_.resize(1);
    fn_.vkResetDescriptorPool(dev_, desc_pools_[0], 0);
    sets_left_ = kSetsPerPool;
  }

  VkDescriptorSet descriptor_set(std::initializer_list<const Buffer*> bufs) {
    if (sets_left_ == 0) new_descriptor_pool();
    VkDescriptorSetAllocateInfo ai{};
    ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
    ai.descriptorPool = desc_pools_.back();
    ai.descriptorSetCount = 1;
    ai.pSetLayouts = &dsl_;
    VkDescriptorSet set = VK_NULL_HANDLE;
    check(fn_.vkAllocateDescriptorSets(dev_, &ai, &set), "vkAllocateDescriptorSets");
    --sets_left_;
    VkDescriptorBufferInfo info[3]{};
    VkWriteDescriptorSet wr[3]{};
    uint32_t i = 0;
    for (const Buffer* b : bufs) {
      info[i] = {b->buffer, 0, VK_WHOLE_SIZE};
      wr[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      wr[i].dstSet = set;
      wr[i].dstBinding = i;
      wr[i].descriptorCount = 1;
      wr[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      wr[i].pBufferInfo = &info[i];
      ++i;
    }
    fn_.vkUpdateDescriptorSets(dev_, i, wr, 0, nullptr);
    return set;
  }

  void dispatch(VkCommandBuffer cb, int pipe, std::initializer_list<const Buffer*> bufs, const uint32_t push[kPushWords],
                uint32_t gx, uint32_t gy, uint32_t gz) {
    VkDescriptorSet set = descriptor_set(bufs);
    fn_.vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipes_[pipe]);
    fn_.vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout_, 0, 1, &set, 0, nullptr);
    fn_.vkCmdPushConstants(cb, layout_, VK_SHADER_STAGE_COMPUTE_BIT, 0, 4 * kPushWords, push);
    fn_.vkCmdDispatch(cb, gx, gy, gz);
  }

  // The command buffer recorded for `key`, recording it with `record` on first use. Each one
  // ends with a barrier that makes its shader writes visible to the host.
  template <typename Record>
  VkCommandBuffer recorded(const std::vector<uint64_t>& key, Record&& record) {
    auto it = recorded_.find(key);
    if (it != recorded_.end()) return it->second;
    // Batches of every size (a server's varying rows) would otherwise accumulate without bound.
    if (recorded_.size() >= kMaxRecorded) drop_recorded();
    VkCommandBuffer cb = allocate_cb();
    VkCommandBufferBeginInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    check(fn_.vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer");
    try {
      record(cb);
    } catch (...) {
      fn_.vkFreeCommandBuffers(dev_, cmd_pool_, 1, &cb);
      throw;
    }
    VkMemoryBarrier mb{};
    mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    fn_.vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                             nullptr, 0, nullptr);
    check(fn_.vkEndCommandBuffer(cb), "vkEndCommandBuffer");
    recorded_.emplace(key, cb);
    return cb;
  }

  static constexpr uint32_t kSetsPerPool = 256;
  static constexpr size_t kMaxRecorded = 4096;

  Instance& in_;
  Fns fn_;
  VkPhysicalDevice pd_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties mem_{};
  DeviceInfo info_;
  uint32_t family_ = 0;
  VkDevice dev_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout dsl_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipes_[kPipeCount]{};
  VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  std::vector<VkDescriptorPool> desc_pools_;
  uint32_t sets_left_ = 0;
  Buffer slots_[kSlots];
  std::vector<Matrix> matrices_;  // matrices and vectors; id = index + 1
  std::map<const float*, uint32_t> vectors_;
  std::map<std::vector<uint64_t>, VkCommandBuffer> recorded_;
  uint64_t allocated_ = 0;
  int64_t fail_at_ = 0;
  int64_t allocations_ = 0;  // counted for KEXA_VULKAN_FAIL_ALLOC
  bool force_staging_ = false;
};

}  // namespace

bool built_with_vulkan() { return true; }

std::vector<DeviceInfo> list_devices() {
  Instance& in = instance();
  std::vector<VkPhysicalDevice> devs = physical_devices(in);
  std::vector<DeviceInfo> out;
  for (size_t i = 0; i < devs.size(); ++i) out.push_back(describe(in, devs[i], static_cast<int>(i)));
  return out;
}

bool supports_matrix(DType type) { return matvec_pipe(type) >= 0; }

std::unique_ptr<Context> Context::open(int index) { return std::make_unique<VulkanContext>(index); }

}  // namespace kexa::gpu
