#include "cli/device.h"

#include <cstdio>
#include <cstring>

#include "gpu/vulkan.h"
#include "util/error.h"

namespace kexa::cli {

void add_device_option(CLI::App& app, std::string& device, int64_t& gpu_layers) {
  app.add_option("--device", device,
                 "where the model runs: auto (a Vulkan GPU when present, else the CPU; default), vulkan (any "
                 "Vulkan device, CPU ones included), cpu, or list (print the Vulkan devices and exit)")
      ->check(CLI::IsMember({"auto", "vulkan", "cpu", "list"}));
  app.add_option("--gpu-layers", gpu_layers,
                 "on a Vulkan device: run the first N layers there and the rest on the CPU (the output "
                 "matrix stays on the CPU too); -1 = all (default)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20));
}

void add_cache_type_option(CLI::App& app, std::string& cache_type) {
  app.add_option("--cache-type", cache_type,
                 "element type of the KV cache: f32 (exact to the references; default) or f16 (half the memory "
                 "and the bytes attention reads, as llama.cpp's default cache)")
      ->check(CLI::IsMember({"f32", "f16"}));
}

KVType kv_type_of(const std::string& cache_type) { return parse_kv_type(cache_type).value_or(KVType::F32); }

void add_mmproj_option(CLI::App& app, std::string& mmproj) {
  app.add_option("--mmproj", mmproj,
                 "vision tower of a GGUF model (llama.cpp's mmproj file; default: mmproj-<model file name> beside it)")
      ->type_name("FILE");
}

std::optional<int> list_devices_if_asked(int argc, char** argv) {
  bool asked = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--device=list") == 0 || (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc &&
                                                        std::strcmp(argv[i + 1], "list") == 0)) {
      asked = true;
    }
  }
  if (!asked) return std::nullopt;
  try {
    for (const gpu::DeviceInfo& d : gpu::list_devices()) {
      std::printf("%d: %s | %s | Vulkan %s | %.0f MiB | subgroup %u | %s\n", d.index, d.name.c_str(), d.type.c_str(),
                  d.api_version.c_str(), static_cast<double>(d.memory_bytes) / (1 << 20), d.subgroup_size,
                  d.usable ? (d.is_gpu ? "usable (auto picks it)" : "usable with --device vulkan")
                           : ("not usable: " + d.why_unusable).c_str());
    }
  } catch (const Error& e) {
    std::printf("no Vulkan devices: %s\n", e.what());
    return 1;
  }
  return 0;
}

Device device_of(const std::string& device) { return parse_device(device).value_or(Device::Auto); }

void report_device(const Model& model) {
  if (!model.device_note().empty()) std::fprintf(stderr, "kexa: %s\n", model.device_note().c_str());
}

}  // namespace kexa::cli
