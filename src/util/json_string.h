// JSON string literals written the way Python's json.dumps writes them (which is also what
// nlohmann::json and HF tokenizers write for valid UTF-8), so outputs compare byte for byte.
#pragma once

#include <string>
#include <string_view>

namespace kexa {

// Appends `s` quoted: '"' and '\\' and the controls \b \f \n \r \t get their short escapes, other
// bytes below 0x20 \u00xx (lowercase hex). Without ensure_ascii every other byte is copied as is
// (invalid UTF-8 included). With ensure_ascii every character outside 0x20-0x7E becomes \uxxxx
// (a surrogate pair above U+FFFF) and each invalid byte counts as U+FFFD.
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii = false);
std::string json_string(std::string_view s, bool ensure_ascii = false);

}  // namespace kexa
