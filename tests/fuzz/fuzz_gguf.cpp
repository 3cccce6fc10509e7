// libFuzzer target: the GGUF reader must reject any input with a kexa::Error (bad magic, lengths,
// counts, types, offsets) and never read outside the file or allocate absurd amounts.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/gguf.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = ::memfd_create("kexa-fuzz-gguf", 0);
  if (fd < 0) return 0;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  try {
    auto f = kexa::gguf::File::open("/proc/self/fd/" + std::to_string(fd));
    volatile uint8_t sink = 0;
    for (const kexa::TensorView& t : f->tensors()) {
      if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
    }
    (void)sink;
    // Exercise the typed accessors; a wrong type must be an Error, not a crash.
    for (const auto& [key, value] : f->metadata()) {
      try {
        if (value.is_array()) {
          (void)value.as_strings(key);
        } else {
          (void)value.as_int(key);
        }
      } catch (const kexa::Error&) {
      }
    }
    (void)f->architecture();
  } catch (const kexa::Error&) {
  }
  ::close(fd);
  return 0;
}
