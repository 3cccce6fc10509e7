// UTF-8 encoding and decoding shared by the tokenizer, the chat templates and the RAG analyzer.
// Validity follows the Unicode standard (what utf8proc and HF tokenizers accept): no overlong
// forms, no surrogates, nothing above U+10FFFF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kexa {

// A decoded character. Invalid UTF-8 yields one byte at a time with cp == kInvalidUtf8, so every
// input byte belongs to exactly one "character" and no input is ever dropped.
inline constexpr uint32_t kInvalidUtf8 = 0xFFFFFFFFu;
struct Utf8Char {
  uint32_t cp;
  uint32_t len;
};
// The character starting at byte i (i < s.size()).
Utf8Char decode_utf8(std::string_view s, size_t i);

// Appends the encoding of a code point (cp <= 0x10FFFF; surrogates are encoded as they are).
void append_utf8(std::string& out, uint32_t cp);

// Replaces every invalid byte with U+FFFD; `replaced` (if given) receives how many.
std::string sanitize_utf8(std::string_view s, size_t* replaced = nullptr);

}  // namespace kexa
