#include "formats/dtype_convert.h"

#include <cmath>
#include <cstring>

#include "util/error.h"

namespace kexa {

namespace {

float load(DType t, const uint8_t* p) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

void store(DType t, float f, uint8_t* p) {
  if (t == DType::F32) {
    std::memcpy(p, &f, 4);
    return;
  }
  uint16_t h;
  if (t == DType::BF16) {
    h = f32_to_bf16(f);
  } else if (std::isnan(f)) {
    h = std::signbit(f) ? 0xfe00 : 0x7e00;  // PyTorch drops the payload
  } else {
    h = f32_to_f16(f);
  }
  std::memcpy(p, &h, 2);
}

size_t width(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: case DType::BF16: return 2;
    default: fail("cannot convert elements of type ", dtype_name(t), " (only F32, F16, BF16)");
  }
}

}  // namespace

void convert_elements(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n) {
  const size_t ws = width(from), wd = width(to);
  if (from == to) {
    std::memcpy(dst, src, n * ws);
    return;
  }
  for (size_t i = 0; i < n; ++i) store(to, load(from, src + i * ws), dst + i * wd);
}

}  // namespace kexa
