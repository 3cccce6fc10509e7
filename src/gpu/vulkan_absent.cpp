// The gpu/ API in a build without Vulkan (KEXA_VULKAN=OFF): every entry point says so.
#include "gpu/vulkan.h"
#include "util/error.h"

namespace kexa::gpu {

namespace {
[[noreturn]] void absent() {
  fail("Vulkan: this kexa was built without Vulkan support (configure with -DKEXA_VULKAN=ON; needs glslc and "
       "the Vulkan headers, Debian: glslc libvulkan-dev)");
}
}  // namespace

bool built_with_vulkan() { return false; }
std::vector<DeviceInfo> list_devices() { absent(); }
bool supports_matrix(DType) { return false; }
std::unique_ptr<Context> Context::open(int) { absent(); }

}  // namespace kexa::gpu
