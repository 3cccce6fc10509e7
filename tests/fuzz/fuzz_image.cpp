// Fuzzes the picture decoders (image/image.h), the entry point for every image a client sends:
// any bytes must give an RgbImage that keeps its contract (sizes > 0, rgb.size() == w * h * 3,
// within the limits after orientation) or throw kexa::Error -- no crash, no other exception, no
// allocation beyond what the limits allow (libFuzzer's -rss_limit_mb catches one). The limits are
// small so that each input decodes fast. Inputs starting with "data:" go through the data: URL
// parser and the declared-type check first, as the server reads them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "image/data_url.h"
#include "image/image.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  kexa::image::Limits limits;
  limits.max_bytes = 1u << 20;
  limits.max_pixels = 1u << 20;
  limits.max_side = 4096;
  try {
    std::string bytes(input);
    if (input.substr(0, 5) == "data:") {
      kexa::image::DataUrl url = kexa::image::parse_data_url(input, limits.max_bytes);
      kexa::image::check_declared_type(url.media_type, kexa::image::detect_format(url.bytes));
      bytes = std::move(url.bytes);
    }
    const kexa::RgbImage img = kexa::image::decode(bytes, limits);
    const uint64_t pixels = uint64_t{img.width} * img.height;
    if (img.width == 0 || img.height == 0 || img.rgb.size() != pixels * 3 || pixels > limits.max_pixels ||
        img.width > limits.max_side || img.height > limits.max_side)
      std::abort();
  } catch (const kexa::Error&) {
  }
  return 0;
}
