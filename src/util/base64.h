// Base64 (RFC 4648): bytes to text, and text to bytes: the standard and the URL-safe alphabet, '=' padding and line
// breaks ignored. For uploads in JSON bodies and data: URLs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kexa {

// `bytes` in the standard alphabet with '=' padding.
std::string encode_base64(std::string_view bytes);
// The decoded bytes, or nullopt when `text` holds a character outside both alphabets.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace kexa
