// An in-memory TensorSource for model tests: tensors by name, added as f32 values (kept, so tests
// can build references from them) or as raw bytes of any dtype; matrices can be re-stored as
// BF16 the way real checkpoints are.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor.h"

namespace kexa::test {

class MemorySource : public TensorSource {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
    Entry& e = entries_[name];
    e.values.clear();
    e.bytes = std::move(bytes);
    e.view.name = name;
    e.view.dtype = dtype;
    e.view.shape = std::move(shape);
    e.view.data = e.bytes.data();
    e.view.nbytes = e.bytes.size();
  }
  void add_f32(const std::string& name, std::vector<int64_t> shape, std::vector<float> values) {
    std::vector<uint8_t> bytes(values.size() * sizeof(float));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    add(name, DType::F32, std::move(shape), std::move(bytes));
    entries_[name].values = std::move(values);
  }
  void remove(const std::string& name) { entries_.erase(name); }
  // The f32 values a tensor was added with (add_f32 only).
  const std::vector<float>& data(const std::string& name) const { return entries_.at(name).values; }
  // Stores every 2-D f32 tensor as BF16 (round to nearest even).
  void matrices_to_bf16() {
    for (auto& [name, e] : entries_) {
      if (e.view.shape.size() != 2 || e.view.dtype != DType::F32) continue;
      e.bytes.resize(e.values.size() * 2);
      for (size_t i = 0; i < e.values.size(); ++i) {
        uint32_t u;
        std::memcpy(&u, &e.values[i], 4);
        const uint16_t b = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        std::memcpy(e.bytes.data() + 2 * i, &b, 2);
      }
      e.view.dtype = DType::BF16;
      e.view.data = e.bytes.data();
      e.view.nbytes = e.bytes.size();
    }
  }
  bool rewrite_in_place(std::string_view name, const std::function<void(const TensorView&, uint8_t*)>& rewrite) override {
    auto it = entries_.find(std::string(name));
    if (it == entries_.end()) return false;
    rewrite(it->second.view, it->second.bytes.data());
    return true;
  }
  const TensorView* find(std::string_view name) const override {
    auto it = entries_.find(std::string(name));
    return it == entries_.end() ? nullptr : &it->second.view;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [n, e] : entries_) out.push_back(n);
    return out;
  }
  std::string file_of(std::string_view) const override { return "memory"; }

 private:
  struct Entry {
    std::vector<float> values;
    std::vector<uint8_t> bytes;
    TensorView view;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace kexa::test
