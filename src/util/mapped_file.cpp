#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "util/error.h"

namespace kexa {

MappedFile::MappedFile(const std::string& path, Load load) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, ": cannot stat: ", std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail(path, ": is a directory, expected a file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (load == Load::Auto && size_ >= kResidentThreshold && fits_in_memory(size_) &&
      std::getenv("KEXA_MMAP") == nullptr) {
    // Weights are streamed once per token; on VMs page-cache mappings (4 KiB pages) read several
    // times slower than huge-page anonymous memory, so a model that fits comfortably in RAM is
    // read into transparent huge pages (KEXA_MMAP=1 keeps the file mapping, as larger ones do).
    load_resident(fd);
    ::close(fd);
    return;
  }
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail(path, ": cannot map: ", std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
    mapped_bytes_ = size_;
  }
  ::close(fd);
}

bool MappedFile::make_resident() {
  if (data_ == nullptr || mapped_bytes_ != size_ || size_ < kResidentThreshold || !fits_in_memory(size_) ||
      std::getenv("KEXA_MMAP") != nullptr) {
    return false;  // empty, already resident, small or large: stays as it is
  }
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path_, ": cannot open: ", std::strerror(errno));
  const uint8_t* old = data_;
  const size_t old_bytes = mapped_bytes_;
  try {
    load_resident(fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  ::munmap(const_cast<uint8_t*>(old), old_bytes);
  return true;
}

void MappedFile::set_writable(const uint8_t* p, size_t n, bool writable) {
  if (p < data_ || n > size_ || static_cast<size_t>(p - data_) > size_ - n)
    fail(path_, ": write range is outside the file");
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGE_SIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
  if (::mprotect(reinterpret_cast<void*>(begin), end - begin, writable ? PROT_READ | PROT_WRITE : PROT_READ) != 0)
    fail(path_, ": cannot change memory protection: ", std::strerror(errno));
}

bool MappedFile::fits_in_memory(size_t bytes) {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return false;
  return bytes < static_cast<size_t>(pages) * static_cast<size_t>(page_size) / 2;
}

void MappedFile::load_resident(int fd) {
  constexpr size_t kHuge = size_t{2} << 20;
  size_t rounded = (size_ + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(path_, ": cannot allocate ", size_, " bytes: ", std::strerror(errno));
  ::madvise(p, rounded, MADV_HUGEPAGE);
  auto* dst = static_cast<uint8_t*>(p);
  size_t done = 0;
  while (done < size_) {
    ssize_t got = ::pread(fd, dst + done, std::min<size_t>(size_ - done, size_t{64} << 20),
                          static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      int err = got < 0 ? errno : EIO;
      ::munmap(p, rounded);
      fail(path_, ": read failed after ", done, " bytes: ", std::strerror(err));
    }
    done += static_cast<size_t>(got);
  }
  ::mprotect(p, rounded, PROT_READ);
  data_ = dst;
  mapped_bytes_ = rounded;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), mapped_bytes_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)), mapped_bytes_(std::exchange(other.mapped_bytes_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), mapped_bytes_);
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
  }
  return *this;
}

}  // namespace kexa
