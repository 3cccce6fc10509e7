// --device and --mmproj for the commands that run a model (run, chat, bench, serve).
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"

namespace kexa::cli {

// Adds --device auto|vulkan|cpu|list to `app`, stored in `device`, and --gpu-layers N.
void add_device_option(CLI::App& app, std::string& device, int64_t& gpu_layers);
// Adds --cache-type f32|f16 (the KV cache's element type, EngineOptions::kv_type) to `app`.
void add_cache_type_option(CLI::App& app, std::string& cache_type);
// The KVType of a validated --cache-type value.
KVType kv_type_of(const std::string& cache_type);
// Adds --mmproj FILE (the vision tower of a GGUF model, for EngineOptions::mmproj) to `app`.
void add_mmproj_option(CLI::App& app, std::string& mmproj);
// When argv asks for --device list: prints the Vulkan devices (or why there are none) and
// returns the exit code (0 when the loader lists devices, 1 otherwise). Checked before parsing,
// so a command's required options are not needed for it.
std::optional<int> list_devices_if_asked(int argc, char** argv);
// The Device of a validated --device value other than "list".
Device device_of(const std::string& device);
// Prints to stderr why the model does not run on the device asked for (Model::device_note).
void report_device(const Model& model);

}  // namespace kexa::cli
