// UTF-8 checks, the character classes the pre-tokenizer regexes use, Unicode normalization and
// the GPT-2 byte<->character alphabet. Character data comes from utf8proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/utf8.h"

namespace kexa::tok {

// Decoding and encoding live in util/utf8.h; kInvalid is its kInvalidUtf8.
inline constexpr uint32_t kInvalid = kInvalidUtf8;
// Offset of the first invalid byte, or npos when `s` is valid UTF-8.
size_t first_invalid_utf8(std::string_view s);
// Length of the prefix that does not end inside a multi-byte sequence that could still be
// completed by more bytes.
size_t complete_utf8_prefix(std::string_view s);

// General-category classes as regexes see them (\p{L}, \p{N}, \p{M}, \s = White_Space).
enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kMark = 3, kSpace = 4 };
CharClass char_class(uint32_t cp);  // kInvalid -> kOther
bool is_word_char(uint32_t cp);     // Rust regex \w: letters, marks, numbers, connector punct.

enum class NormForm { NFC, NFD, NFKC, NFKD };
// Normalizes the valid UTF-8 runs of `s`; invalid bytes pass through unchanged.
std::string normalize(std::string_view s, NormForm form);
std::string to_lower(std::string_view s);

// GPT-2's reversible byte -> printable character map.
uint32_t byte_to_unicode(uint8_t b);
// Inverse; returns -1 when cp is not in the alphabet.
int unicode_to_byte(uint32_t cp);
// Maps every character of `s` back to its byte; false if some character is outside the alphabet.
bool unmap_byte_level(std::string_view s, std::string& out);
std::string map_byte_level(std::string_view bytes);

}  // namespace kexa::tok
