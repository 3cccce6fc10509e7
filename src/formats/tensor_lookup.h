// What the tensor file readers (gguf.cpp, safetensors.cpp) share: each keeps its tensors in a
// vector, in its own order, with a name -> position index, and loads its file the same way.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"
#include "util/mapped_file.h"

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

// Opens the tensor file F at `path`: mapped, then parsed (`parse` builds an F around the mapping;
// `file` is F's MappedFile member). Unless a tensor name contains `expert_marker`, the file is
// then read into memory (MappedFile::make_resident) and parsed again, since its views moved;
// mixture-of-experts files stay mapped so idle experts are never read.
template <typename F>
std::unique_ptr<F> open_tensor_file(const std::string& path, std::string_view expert_marker,
                                    std::unique_ptr<F> (*parse)(MappedFile), MappedFile F::*file) {
  std::unique_ptr<F> f = parse(MappedFile(path, MappedFile::Load::Mapped));
  if (any_tensor_named(f->tensors(), expert_marker) || !((*f).*file).make_resident()) return f;
  return parse(std::move((*f).*file));
}

}  // namespace kexa
