// One .safetensors file: 8-byte little-endian header length, JSON header, raw tensor bytes.
// Mapped read-only; every offset and size is checked against the file before use.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"
#include "util/mapped_file.h"

namespace kexa::safetensors {

class File : public TensorSource {
 public:
  // Throws kexa::Error naming the file (and tensor) on any structural problem, and on dtypes
  // other than F32, F16 and BF16.
  static std::unique_ptr<File> open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  // The "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensors in ascending data offset order.
  const std::vector<TensorView>& tensors() const { return tensors_; }

  const TensorView* find(std::string_view name) const override;
  std::vector<std::string> names() const override;
  std::string file_of(std::string_view) const override { return file_.path(); }

 private:
  explicit File(MappedFile file) : file_(std::move(file)) {}
  void parse();

  MappedFile file_;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Writes a safetensors file (tensors in the order given, header padded to 8 bytes) atomically.
struct WriteTensor {
  std::string name;
  DType dtype = DType::F32;   // F32, F16 or BF16
  std::vector<int64_t> shape;  // outermost-first
  // Fills exactly dtype_bytes(dtype, numel) bytes.
  std::function<void(uint8_t* out, size_t nbytes)> produce;
};
void write(const std::string& path, const std::vector<WriteTensor>& tensors,
           const std::map<std::string, std::string>& metadata = {});

// "F32" / "F16" / "BF16" <-> DType; nullptr / error for anything else.
const char* dtype_to_string(DType type);

}  // namespace kexa::safetensors
