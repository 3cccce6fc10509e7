#include "util/json_string.h"

#include <cstdint>
#include <cstdio>

#include "util/escape.h"
#include "util/utf8.h"

namespace kexa {

namespace {

constexpr CharEscape kShortEscapes[] = {{'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\r', "\\r"},
                                        {'\t', "\\t"},  {'\b', "\\b"},  {'\f', "\\f"}};

void escape(std::string& out, uint32_t c) {
  if (const char* e = find_escape(kShortEscapes, c)) {
    out += e;
    return;
  }
  char buf[16];
  if (c >= 0x10000) {
    const uint32_t v = c - 0x10000;
    std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800u | (v >> 10), 0xDC00u | (v & 0x3FFu));
  } else {
    std::snprintf(buf, sizeof buf, "\\u%04x", c);
  }
  out += buf;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x20 && b != '"' && b != '\\' && (b < 0x7F || !ensure_ascii)) {
      out.push_back(s[i++]);
      continue;
    }
    if (b < 0x80) {
      escape(out, b);
      ++i;
      continue;
    }
    const Utf8Char c = decode_utf8(s, i);
    escape(out, c.cp == kInvalidUtf8 ? 0xFFFDu : c.cp);
    i += c.len;
  }
  out.push_back('"');
}

std::string json_string(std::string_view s, bool ensure_ascii) {
  std::string out;
  append_json_string(out, s, ensure_ascii);
  return out;
}

}  // namespace kexa
