// data: URLs carrying pictures (RFC 2397), as OpenAI's image_url content parts and the web UI
// send them: "data:image/png;base64,iVBOR...".
#pragma once

#include <string>
#include <string_view>

#include "image/image.h"

namespace kexa::image {

struct DataUrl {
  std::string media_type;  // lower case, parameters dropped; "" when the URL names none
  std::string bytes;
};

// Throws kexa::Error naming the problem: not a data: URL, no ',' before the data, not base64,
// more than max_bytes once decoded (checked on the text's length before decoding).
DataUrl parse_data_url(std::string_view url, std::size_t max_bytes);

// A declared type must agree with the format the bytes' magic shows: "image/png" on a JPEG is
// refused ("... declares image/png but holds a JPEG image"), as is a type that is not a picture
// ("text/plain"). "", "image/*" and "application/octet-stream" leave it to the magic; the usual
// aliases (image/jpg, image/x-ms-bmp, ...) are accepted.
void check_declared_type(std::string_view media_type, Format actual);

}  // namespace kexa::image
