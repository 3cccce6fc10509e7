// A Hugging Face model folder: config.json plus model.safetensors or sharded safetensors with
// model.safetensors.index.json. Tensors are mapped, never copied.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/tensor.h"

namespace kexa {

class HFCheckpoint : public TensorSource {
 public:
  // Validates config.json, the index, every shard header, offsets and dtypes; throws kexa::Error
  // naming the file (and tensor) on any problem.
  static std::unique_ptr<HFCheckpoint> open(const std::string& dir);
  ~HFCheckpoint() override;

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }

  const TensorView* find(std::string_view name) const override;
  std::vector<std::string> names() const override;
  std::string file_of(std::string_view name) const override;

 private:
  HFCheckpoint() = default;
  struct Impl;
  std::string dir_;
  nlohmann::json config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kexa
