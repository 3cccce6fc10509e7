#include "cli/image_input.h"

#include "util/error.h"
#if !KEXA_ENGINE_ONLY
#include "image/image.h"
#include "util/read_file.h"
#endif

namespace kexa::cli {

RgbImage load_image_file(const std::string& path) {
#if KEXA_ENGINE_ONLY
  fail(path, ": this kexa was built without the application library (cmake -DKEXA_APPS=OFF), which decodes pictures");
#else
  const std::string bytes = read_file(path);
  try {
    return image::decode(bytes);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
#endif
}

}  // namespace kexa::cli
