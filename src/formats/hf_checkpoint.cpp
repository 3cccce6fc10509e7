#include "formats/hf_checkpoint.h"

#include <sys/stat.h>

#include <map>

#include "formats/json_file.h"
#include "formats/safetensors.h"
#include "util/error.h"

namespace kexa {

struct HFCheckpoint::Impl {
  std::vector<std::unique_ptr<safetensors::File>> shards;
  // name -> (shard index, tensor) in a stable, sorted order.
  std::map<std::string, std::pair<size_t, const TensorView*>, std::less<>> tensors;
};

HFCheckpoint::~HFCheckpoint() = default;

std::unique_ptr<HFCheckpoint> HFCheckpoint::open(const std::string& dir_in) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) fail(dir, ": no such model folder");
  if (!S_ISDIR(st.st_mode)) fail(dir, ": expected a Hugging Face model folder, got a file");

  std::unique_ptr<HFCheckpoint> ck(new HFCheckpoint());
  ck->dir_ = dir;
  ck->impl_ = std::make_unique<Impl>();
  const std::string config_path = dir + "/config.json";
  if (!regular_file_exists(config_path)) fail(dir, ": missing config.json");
  ck->config_ = read_json_file(config_path);
  if (!ck->config_.is_object()) fail(config_path, ": expected a JSON object");

  Impl& im = *ck->impl_;
  const std::string single = dir + "/model.safetensors";
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (regular_file_exists(single)) {
    im.shards.push_back(safetensors::File::open(single));
    for (const TensorView& t : im.shards[0]->tensors()) im.tensors[t.name] = {0, &t};
  } else if (regular_file_exists(index_path)) {
    nlohmann::json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      fail(index_path, ": missing object 'weight_map'");
    }
    const nlohmann::json& wm = index["weight_map"];
    std::map<std::string, size_t> shard_of_file;
    for (auto it = wm.begin(); it != wm.end(); ++it) {
      if (!it.value().is_string()) {
        fail(index_path, ": weight_map entry for '", it.key(), "' is not a file name");
      }
      const std::string shard = it.value().get<std::string>();
      // Shards must be plain names inside the folder; anything else escapes the checkpoint.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        fail(index_path, ": weight_map names shard '", shard, "' for tensor '", it.key(),
             "'; expected a file name inside ", dir);
      }
      if (!shard_of_file.count(shard)) {
        const std::string shard_path = dir + "/" + shard;
        if (!regular_file_exists(shard_path)) {
          fail(index_path, ": shard '", shard, "' (holding tensor '", it.key(), "') is missing");
        }
        shard_of_file[shard] = im.shards.size();
        im.shards.push_back(safetensors::File::open(shard_path));
      }
    }
    for (auto it = wm.begin(); it != wm.end(); ++it) {
      size_t s = shard_of_file.at(it.value().get<std::string>());
      const TensorView* t = im.shards[s]->find(it.key());
      if (t == nullptr) {
        fail(im.shards[s]->path(), ": missing tensor '", it.key(), "' that ", index_path,
             " places in this shard");
      }
      im.tensors[it.key()] = {s, t};
    }
    // A tensor stored in two shards means the index and the data disagree about which is real.
    std::map<std::string, size_t> seen;
    for (size_t s = 0; s < im.shards.size(); ++s) {
      for (const TensorView& t : im.shards[s]->tensors()) {
        auto [pos, inserted] = seen.emplace(t.name, s);
        if (!inserted) {
          fail(dir, ": duplicate tensor '", t.name, "' in shards ", im.shards[pos->second]->path(),
               " and ", im.shards[s]->path());
        }
        if (!im.tensors.count(t.name)) {
          fail(im.shards[s]->path(), ": tensor '", t.name, "' is not listed in ", index_path);
        }
      }
    }
  } else {
    fail(dir, ": no model.safetensors or model.safetensors.index.json");
  }
  return ck;
}

const TensorView* HFCheckpoint::find(std::string_view name) const {
  auto it = impl_->tensors.find(name);
  return it == impl_->tensors.end() ? nullptr : it->second.second;
}

std::vector<std::string> HFCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->tensors.size());
  for (const auto& kv : impl_->tensors) out.push_back(kv.first);
  return out;
}

std::string HFCheckpoint::file_of(std::string_view name) const {
  auto it = impl_->tensors.find(name);
  if (it == impl_->tensors.end()) return dir_;
  return impl_->shards[it->second.first]->path();
}

}  // namespace kexa
