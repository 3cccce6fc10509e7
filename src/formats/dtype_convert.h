// Element conversions between the plain float types kexa stores (F32, F16, BF16).
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/tensor.h"
#include "util/half.h"

namespace kexa {

// Converts `n` elements from `src` (type `from`) into `dst` (type `to`); both F32/F16/BF16.
// Rounds to nearest even as PyTorch's .to(float16/bfloat16) does; every NaN written as F16 is
// PyTorch's canonical quiet NaN (sign kept), overflow gives infinity.
// Source bytes may be unaligned (safetensors data is not aligned). Throws kexa::Error for other
// types.
void convert_elements(DType from, const uint8_t* src, DType to, uint8_t* dst, size_t n);

}  // namespace kexa
