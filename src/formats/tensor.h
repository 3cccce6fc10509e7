// Tensor element types and non-owning views of tensor bytes (usually inside a mapped file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kexa {

// Values equal ggml's type ids so GGUF files map without a table.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeInfo {
  const char* name;    // "F32", "Q4_K", ... as llama.cpp prints them
  int64_t block_size;  // elements per block (1 for plain types)
  size_t block_bytes;  // bytes per block
};

// Returns nullptr for ids kexa does not know.
const DTypeInfo* dtype_info(DType type);
const DTypeInfo* dtype_info_by_id(uint32_t ggml_type_id);
std::string dtype_name(DType type);
// Bytes of `n` consecutive elements; n must be a multiple of the block size.
size_t dtype_bytes(DType type, int64_t n);

// A tensor's bytes and shape. Shapes are outermost-first (PyTorch order): a linear layer's weight
// is {out_features, in_features} and each of its rows is contiguous. GGUF's ne[] is reversed on
// read and on write so the rest of kexa sees one convention.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t rows() const { return shape.size() < 2 ? 1 : numel() / shape.back(); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  std::string shape_string() const;  // "[2048, 4096]"
};

// A set of named tensors read from one or more files.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // nullptr when absent.
  virtual const TensorView* find(std::string_view name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // The file a tensor lives in, for error messages.
  virtual std::string file_of(std::string_view name) const = 0;
  // Lets `rewrite` change a tensor's bytes in place (same size). The view keeps its dtype and
  // shape: what the new bytes mean is known only to the caller, which must be the only reader of
  // this tensor from then on. Returns false, changing nothing, when the source cannot write its
  // memory (the caller then keeps the stored bytes).
  virtual bool rewrite_in_place(std::string_view name,
                                const std::function<void(const TensorView&, uint8_t*)>& rewrite) {
    (void)name;
    (void)rewrite;
    return false;
  }
};

}  // namespace kexa
