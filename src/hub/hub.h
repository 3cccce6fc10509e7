// Models by name from the Hugging Face Hub (or a mirror), cached in Hugging Face's own layout so
// huggingface-cli, transformers and kexa share one cache.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kexa::hub {

// "ORG/REPO" or "ORG/REPO:QUANT" (QUANT picks a GGUF, e.g. Q4_K_M).
struct ModelRef {
  std::string repo;
  std::string quant;
};

// nullopt when `spec` does not have the ORG/REPO[:QUANT] shape. Callers check for an existing
// local path first, so "models/x" on disk is never taken for a repo.
std::optional<ModelRef> parse_model_ref(std::string_view spec);

struct Options {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string token;                                 // HF_TOKEN or $HF_HOME/token
  std::string cache_dir;                             // HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub
  std::string revision = "main";
  std::vector<std::string> include;  // extra glob patterns (fnmatch) of files to fetch
  bool offline = false;              // HF_HUB_OFFLINE=1
  int parallel = 4;                  // concurrent file downloads
  bool progress = true;
  bool verify_existing = true;       // re-hash cached blobs (kexa pull); -m lookups skip it
};

// Options from the environment (HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE).
Options options_from_env();

// Makes the files of `ref` present in the cache (downloading what is missing, resuming partial
// downloads, verifying hashes) and returns the path to hand to a loader: the snapshot folder for
// a safetensors repo, or the (first) GGUF file for a GGUF repo. Offline, only the cache is used.
// Throws kexa::Error saying what is missing and how to get it.
std::string pull(const ModelRef& ref, const Options& options);

// If `spec` is not an existing path but an ORG/REPO[:QUANT] name, pulls it and returns the local
// path; otherwise returns `spec` unchanged. Used for every -m argument.
std::string resolve_model_path(const std::string& spec);

}  // namespace kexa::hub
