// A whole file as read-only memory, released on destruction: a file mapping, or for large files
// that fit comfortably in RAM a copy in transparent huge pages (faster to stream on VMs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kexa {

class MappedFile {
 public:
  // Auto: a file that fits comfortably in RAM is read into huge-page memory, larger ones are
  // mapped. Mapped: always a file mapping, so pages never touched (idle MoE experts) are never
  // read; make_resident() can still upgrade it once the caller knows what the file holds.
  enum class Load { Auto, Mapped };
  // Throws kexa::Error naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path, Load load = Load::Auto);
  // Whether Auto would have read this file into memory; if so, does it now (the data pointer
  // changes: views into the old mapping become invalid). Returns whether it did.
  bool make_resident();
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  // Makes [p, p + n) (inside data()) writable, runs fn on it and makes it read-only again. A file
  // mapping is private, so writes make private copies of the pages and never reach the file.
  // Throws kexa::Error when the range is outside the file or the protection cannot change.
  template <typename Fn>
  void write_range(const uint8_t* p, size_t n, Fn&& fn) {
    set_writable(p, n, true);
    try {
      fn(const_cast<uint8_t*>(p));
    } catch (...) {
      set_writable(p, n, false);
      throw;
    }
    set_writable(p, n, false);
  }

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  static constexpr size_t kResidentThreshold = size_t{256} << 20;
  static bool fits_in_memory(size_t bytes);
  void set_writable(const uint8_t* p, size_t n, bool writable);
  void load_resident(int fd);

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;  // length of the mapping to release
};

}  // namespace kexa
