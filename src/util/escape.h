// Escaping by table: the JSON string writer (util/json_string) and Jinja's HTML escape
// (chat/jinja) replace a few characters by fixed texts and copy the rest.
#pragma once

#include <cstdint>
#include <span>

namespace kexa {

struct CharEscape {
  char c;
  const char* text;
};

// The text that replaces `c` in `table`, or nullptr when `c` is copied as is.
constexpr const char* find_escape(std::span<const CharEscape> table, uint32_t c) {
  for (const CharEscape& e : table)
    if (static_cast<unsigned char>(e.c) == c) return e.text;
  return nullptr;
}

}  // namespace kexa
