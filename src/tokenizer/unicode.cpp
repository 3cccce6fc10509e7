#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>

namespace kexa::tok {

size_t first_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalid) return i;
    i += c.len;
  }
  return std::string_view::npos;
}

size_t complete_utf8_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is cut off by the end of `s`.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xC2 && b <= 0xDF ? 2 : 1;
    if (need > back) {
      // Only hold back what could still become valid: check the bytes seen so far.
      std::string probe(s.substr(n - back));
      static constexpr char kFill[] = "\x80\x80\x80";
      probe.append(kFill, need - back);
      if (decode_utf8(probe, 0).cp != kInvalid) return n - back;
      // Lead bytes like E0/ED/F0/F4 restrict the second byte; any continuation fill may be
      // out of range, so also try the other extreme before giving up.
      probe = std::string(s.substr(n - back));
      static constexpr char kFill2[] = "\xBF\xBF\xBF";
      probe.append(kFill2, need - back);
      if (decode_utf8(probe, 0).cp != kInvalid) return n - back;
      probe = std::string(s.substr(n - back));
      static constexpr char kFill3[] = "\x90\x80\x80";
      probe.append(kFill3, need - back);
      if (decode_utf8(probe, 0).cp != kInvalid) return n - back;
    }
    return n;
  }
  return n;
}

namespace {

constexpr std::array<uint8_t, 128> make_ascii_classes() {
  std::array<uint8_t, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = kLetter;
    else if (c >= '0' && c <= '9') t[c] = kNumber;
    else if ((c >= 9 && c <= 13) || c == ' ') t[c] = kSpace;
    else t[c] = kOther;
  }
  return t;
}
constexpr std::array<uint8_t, 128> kAsciiClass = make_ascii_classes();

}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp < 128) return static_cast<CharClass>(kAsciiClass[cp]);
  if (cp == kInvalid) return kOther;
  if (cp == 0x85) return kSpace;  // NEL is White_Space although its category is Cc
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
      return kMark;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return kNumber;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
      return kSpace;
    default:
      return kOther;
  }
}

bool is_word_char(uint32_t cp) {
  if (cp == kInvalid) return false;
  if (cp == '_' || cp == 0x200C || cp == 0x200D) return true;
  CharClass c = char_class(cp);
  if (c == kLetter || c == kMark) return true;
  if (c == kNumber) {
    auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL;
  }
  return cp >= 128 && utf8proc_category(static_cast<utf8proc_int32_t>(cp)) == UTF8PROC_CATEGORY_PC;
}

namespace {

void normalize_valid(std::string_view s, NormForm form, std::string& out) {
  if (s.empty()) return;
  bool ascii = true;
  for (char c : s) ascii &= static_cast<uint8_t>(c) < 0x80;
  if (ascii) {  // ASCII is invariant under every normalization form
    out.append(s);
    return;
  }
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormForm::NFC: options |= UTF8PROC_COMPOSE; break;
    case NormForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &dst,
                                    static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    out.append(s);  // cannot happen for valid input; keep the text rather than lose it
  } else {
    out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  }
  std::free(dst);
}

}  // namespace

std::string normalize(std::string_view s, NormForm form) {
  std::string out;
  out.reserve(s.size());
  size_t run = 0, i = 0;
  while (i < s.size()) {
    Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalid) {
      normalize_valid(s.substr(run, i - run), form, out);
      out += s[i];
      run = i + 1;
    }
    i += c.len;
  }
  normalize_valid(s.substr(run), form, out);
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalid) {
      out += s[i];
    } else if (c.cp == 0x130) {  // Rust's full lowercase mapping: 'İ' -> "i\u0307"
      out += "i\xCC\x87";
    } else {
      append_utf8(out, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c.cp))));
    }
    i += c.len;
  }
  return out;
}

namespace {

constexpr bool keeps_own_code(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

constexpr std::array<uint16_t, 256> make_byte_map() {
  std::array<uint16_t, 256> m{};
  int next = 256;
  for (int b = 0; b < 256; ++b) m[b] = keeps_own_code(b) ? uint16_t(b) : uint16_t(next++);
  return m;
}
constexpr std::array<uint16_t, 256> kByteMap = make_byte_map();

constexpr std::array<int16_t, 324> make_unmap() {
  std::array<int16_t, 324> m{};
  for (auto& v : m) v = -1;
  for (int b = 0; b < 256; ++b) m[kByteMap[b]] = int16_t(b);
  return m;
}
constexpr std::array<int16_t, 324> kUnmap = make_unmap();

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return kByteMap[b]; }

int unicode_to_byte(uint32_t cp) { return cp < kUnmap.size() ? kUnmap[cp] : -1; }

bool unmap_byte_level(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size();) {
    Utf8Char c = decode_utf8(s, i);
    int b = c.cp == kInvalid ? -1 : unicode_to_byte(c.cp);
    if (b < 0) return false;
    out += char(b);
    i += c.len;
  }
  return true;
}

std::string map_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) append_utf8(out, byte_to_unicode(static_cast<uint8_t>(ch)));
  return out;
}

}  // namespace kexa::tok
