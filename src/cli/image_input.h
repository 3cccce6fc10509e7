// Pictures named on the command line (kexa run --image FILE, kexa chat's /image PATH), read and
// decoded by image/ with its default limits, for TurnRequest::images.
#pragma once

#include <string>

#include "util/rgb_image.h"

namespace kexa::cli {

// Throws kexa::Error "PATH: <problem>" (unreadable, unsupported format, corrupt, over the limits),
// and in an engine-only build (KEXA_APPS=OFF, no image library) that pictures are not supported.
RgbImage load_image_file(const std::string& path);

}  // namespace kexa::cli
