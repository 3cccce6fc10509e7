// The web chat UI's files, compiled into the binary so `kexa serve` works offline: web/ bundled
// with its npm libraries at build time (cmake/bundle_web.mjs), plus licenses.txt for those.
#pragma once

#include <cstddef>
#include <span>

namespace kexa::server {

struct WebAsset {
  const char* path;          // URL path, e.g. "/" or "/app.js"
  const char* content_type;
  const char* data;
  size_t size;
};

std::span<const WebAsset> web_assets();

}  // namespace kexa::server
