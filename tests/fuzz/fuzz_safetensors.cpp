// libFuzzer target: the safetensors header and layout validation must reject any input with a
// kexa::Error and never read outside the file.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An anonymous in-memory file keeps the real open/mmap path without touching the disk.
  int fd = ::memfd_create("kexa-fuzz-safetensors", 0);
  if (fd < 0) return 0;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  try {
    auto f = kexa::safetensors::File::open("/proc/self/fd/" + std::to_string(fd));
    // Touch every tensor's first and last byte so ASan sees any out-of-bounds view.
    volatile uint8_t sink = 0;
    for (const kexa::TensorView& t : f->tensors()) {
      if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
      (void)f->find(t.name);
    }
    (void)sink;
  } catch (const kexa::Error&) {
  }
  ::close(fd);
  return 0;
}
