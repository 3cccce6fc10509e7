// A weight matrix as the kernels read it: a file's tensor (formats/tensor.h: bytes, dtype,
// shape) plus the row layout its bytes are in. The layout is the kernels' business; formats/
// only maps the bytes and, on request, lets a caller rewrite them (TensorSource::rewrite_in_place).
#pragma once

#include <utility>

#include "formats/tensor.h"

namespace kexa::kernels {

struct Weight : TensorView {
  // 1: rows as the file stores them. kPackRows (16): rearranged in groups of 16 rows for the
  // AVX-512 kernels (kernels/packed.h); same bytes in all, only the kernels and to_f32 read them.
  int row_group = 1;

  Weight() = default;
  // A tensor in the file's layout. Implicit so that a plain TensorView can be multiplied; a view
  // whose bytes were rearranged must come with its row_group.
  Weight(TensorView view, int row_group_ = 1) : TensorView(std::move(view)), row_group(row_group_) {}
};

}  // namespace kexa::kernels
