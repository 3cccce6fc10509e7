// The pictures of a chat request (image_url content parts, server/request.h) decoded for the
// turn: data: URLs always; http(s) URLs only when the operator turned fetching on
// (--image-fetch), through the web fetcher (address policy with --web-allow, no robots.txt since
// a person asked for this one picture, the size and time limits below). The format comes from
// the bytes' magic; a declared type (the data: URL's or the response's Content-Type) that names
// another format is refused. Every problem is a 400 naming the part's field.
#pragma once

#include <vector>

#include "server/request.h"
#include "util/rgb_image.h"

namespace kexa::server {

struct ServerOptions;

// BadRequest for: more parts than options.max_images, a URL that is neither data: nor http(s),
// http(s) while fetching is off, a failed fetch, a type that is not an image or disagrees with
// the bytes, and any decoding error (unsupported format, corrupt, truncated, over the limits).
std::vector<RgbImage> load_images(const ServerOptions& options, const std::vector<ImagePart>& parts);

}  // namespace kexa::server
