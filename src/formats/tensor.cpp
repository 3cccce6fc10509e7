#include "formats/tensor.h"

#include <sstream>

#include "util/error.h"

namespace kexa {

namespace {

// Block sizes and byte counts as ggml defines them (QK_K = 256 for the K-quants).
struct TypeRow {
  DType type;
  DTypeInfo info;
};

constexpr TypeRow kTypes[] = {
    {DType::F32, {"F32", 1, 4}},        {DType::F16, {"F16", 1, 2}},
    {DType::BF16, {"BF16", 1, 2}},      {DType::Q4_0, {"Q4_0", 32, 18}},
    {DType::Q4_1, {"Q4_1", 32, 20}},    {DType::Q5_0, {"Q5_0", 32, 22}},
    {DType::Q5_1, {"Q5_1", 32, 24}},    {DType::Q8_0, {"Q8_0", 32, 34}},
    {DType::Q8_1, {"Q8_1", 32, 36}},    {DType::Q2_K, {"Q2_K", 256, 84}},
    {DType::Q3_K, {"Q3_K", 256, 110}},  {DType::Q4_K, {"Q4_K", 256, 144}},
    {DType::Q5_K, {"Q5_K", 256, 176}},  {DType::Q6_K, {"Q6_K", 256, 210}},
    {DType::Q8_K, {"Q8_K", 256, 292}},  {DType::I8, {"I8", 1, 1}},
    {DType::I16, {"I16", 1, 2}},        {DType::I32, {"I32", 1, 4}},
    {DType::I64, {"I64", 1, 8}},        {DType::F64, {"F64", 1, 8}},
};

}  // namespace

const DTypeInfo* dtype_info(DType type) {
  for (const TypeRow& row : kTypes) {
    if (row.type == type) return &row.info;
  }
  return nullptr;
}

const DTypeInfo* dtype_info_by_id(uint32_t ggml_type_id) {
  return dtype_info(static_cast<DType>(ggml_type_id));
}

std::string dtype_name(DType type) {
  const DTypeInfo* info = dtype_info(type);
  return info != nullptr ? info->name : concat("type#", static_cast<uint32_t>(type));
}

size_t dtype_bytes(DType type, int64_t n) {
  const DTypeInfo* info = dtype_info(type);
  if (info == nullptr) fail("unknown tensor type id ", static_cast<uint32_t>(type));
  if (n < 0 || n % info->block_size != 0) {
    fail(info->name, ": ", n, " elements is not a multiple of the block size ", info->block_size);
  }
  return static_cast<size_t>(n / info->block_size) * info->block_bytes;
}

std::string TensorView::shape_string() const {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

}  // namespace kexa
