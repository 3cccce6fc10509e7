// Lookups shared by the tensor file readers (gguf.cpp, safetensors.cpp): each keeps its tensors in
// a vector, in its own order, with a name -> position index.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"

namespace kexa {

using TensorIndex = std::map<std::string, size_t, std::less<>>;

inline const TensorView* find_tensor(const std::vector<TensorView>& tensors, const TensorIndex& index,
                                     std::string_view name) {
  auto it = index.find(name);
  return it == index.end() ? nullptr : &tensors[it->second];
}

inline std::vector<std::string> tensor_names(const std::vector<TensorView>& tensors) {
  std::vector<std::string> out;
  out.reserve(tensors.size());
  for (const TensorView& t : tensors) out.push_back(t.name);
  return out;
}

// Whether any tensor name contains `part` (the files' expert-tensor markers: such files stay
// mapped so idle experts are never read).
inline bool any_tensor_named(const std::vector<TensorView>& tensors, std::string_view part) {
  for (const TensorView& t : tensors) {
    if (t.name.find(part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace kexa
