// GGUF v2/v3 reader and writer (the container llama.cpp uses): typed metadata plus tensors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "formats/tensor.h"
#include "util/mapped_file.h"

namespace kexa::gguf {

enum class ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// One metadata value. Scalars keep their GGUF type for round-tripping; arrays are stored by
// element kind (integers widened to int64, floats to double) because token tables are large.
struct Value {
  ValueType type = ValueType::UINT32;
  ValueType elem_type = ValueType::UINT32;  // for ARRAY
  std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, std::vector<double>,
               std::vector<std::string>>
      data;

  // Throw kexa::Error naming `key` when the value has another type.
  int64_t as_int(std::string_view key = {}) const;
  double as_float(std::string_view key = {}) const;
  bool as_bool(std::string_view key = {}) const;
  const std::string& as_string(std::string_view key = {}) const;
  const std::vector<int64_t>& as_ints(std::string_view key = {}) const;  // also bool arrays
  const std::vector<double>& as_floats(std::string_view key = {}) const;
  const std::vector<std::string>& as_strings(std::string_view key = {}) const;
  bool is_array() const { return type == ValueType::ARRAY; }

  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value str(std::string v);
  static Value strings(std::vector<std::string> v);
  static Value ints(ValueType elem, std::vector<int64_t> v);  // INT32, UINT32, BOOL, ...
  static Value floats(ValueType elem, std::vector<double> v);  // FLOAT32 or FLOAT64
};

// A GGUF file mapped read-only. Every offset, count and size is validated against the file;
// failures throw kexa::Error naming the file and the offending key or tensor.
// True when `path` is a readable file that starts with the GGUF magic.
bool has_magic(const std::string& path);

class File : public TensorSource {
 public:
  static std::unique_ptr<File> open(const std::string& path);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::string& path() const { return file_.path(); }

  const Value* get(std::string_view key) const;  // nullptr when absent
  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  std::string architecture() const;  // general.architecture, or error

  const TensorView* find(std::string_view name) const override;
  std::vector<std::string> names() const override;  // file order
  std::string file_of(std::string_view) const override { return file_.path(); }
  // In the process's copy of the file (never written back).
  bool rewrite_in_place(std::string_view name, const std::function<void(const TensorView&, uint8_t*)>& rewrite) override;
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  explicit File(MappedFile file) : file_(std::move(file)) {}
  void parse();

  MappedFile file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file. Tensor data is copied (or produced) at write time through the callback
// so a converter never holds a whole model in memory.
class Writer {
 public:
  void set(std::string key, Value value);  // replaces an existing key, keeps first position
  // shape outermost-first, as everywhere in kexa. `produce` must write exactly
  // dtype_bytes(dtype, numel) bytes into the buffer it is given.
  using Producer = std::function<void(uint8_t* out, size_t nbytes)>;
  void add_tensor(std::string name, DType dtype, std::vector<int64_t> shape, Producer produce);
  // Writes to `path` atomically (temporary file, then rename); throws kexa::Error on I/O failure.
  void write(const std::string& path, size_t alignment = 32) const;

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    Producer produce;
  };
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace kexa::gguf
