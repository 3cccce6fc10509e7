// Element conversions between the plain float types kexa stores (F32, F16, BF16).
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/tensor.h"

namespace kexa {

// Round-to-nearest-even, as PyTorch's .to(float16/bfloat16) does; NaN stays NaN, overflow -> inf.
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);

// Converts `n` elements from `src` (type `from`) into `dst` (type `to`); both F32/F16/BF16.
// Source bytes may be unaligned (safetensors data is not aligned). Throws kexa::Error for other
// types.
void convert_elements(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n);

}  // namespace kexa
