#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "formats/dtype_convert.h"
#include "util/half.h"
#include "util/json_string.h"
#include "util/utf8.h"

namespace kexa {
namespace {

TEST(JsonString, QuotesLikePythonJsonDumps) {
  // json.dumps("a\"\\\b\f\n\r\t\x01\x7f한😀", ensure_ascii=False / True)
  const std::string s = "a\"\\\b\f\n\r\t\x01\x7f\xED\x95\x9C\xF0\x9F\x98\x80";
  EXPECT_EQ(json_string(s), "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\x7f\xED\x95\x9C\xF0\x9F\x98\x80\"");
  EXPECT_EQ(json_string(s, true),
            "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u007f\\ud55c\\ud83d\\ude00\"");
  // Invalid bytes: copied without ensure_ascii, one U+FFFD each with it.
  EXPECT_EQ(json_string("x\xff\xc3"), "\"x\xff\xc3\"");
  EXPECT_EQ(json_string("x\xff\xc3", true), "\"x\\ufffd\\ufffd\"");
}

TEST(Utf8, SanitizeCountsEveryInvalidByte) {
  size_t bad = 0;
  // A surrogate (ED A0 80) is three invalid bytes; a cut 4-byte sequence at the end is three.
  std::string out = sanitize_utf8("a\xED\xA0\x80" "b\xF0\x9F\x98", &bad);
  EXPECT_EQ(bad, 6u);
  std::string want = "a";
  for (int i = 0; i < 3; ++i) want += "\xEF\xBF\xBD";
  want += "b";
  for (int i = 0; i < 3; ++i) want += "\xEF\xBF\xBD";
  EXPECT_EQ(out, want);
  std::string enc;
  for (uint32_t cp : {0x41u, 0x7FFu, 0xFFFFu, 0x10FFFFu}) append_utf8(enc, cp);
  EXPECT_EQ(enc, "A\xDF\xBF\xEF\xBF\xBF\xF4\x8F\xBF\xBF");
  EXPECT_EQ(decode_utf8(enc, 1).cp, 0x7FFu);
  EXPECT_EQ(decode_utf8("\xC0\x80", 0).cp, kInvalidUtf8);  // overlong
}

TEST(Half, NanPayloadsFollowTheCaller) {
  uint32_t bits = 0x7fc12345u;
  float nan;
  std::memcpy(&nan, &bits, 4);
  // Kernels: F16C semantics (quiet, top payload bits kept).
  EXPECT_EQ(f32_to_f16(nan), uint16_t(0x7e00 | (0x12345 >> 13)));
  // Converter: PyTorch's canonical NaN.
  uint16_t h = 0;
  convert_elements(DType::F32, reinterpret_cast<const uint8_t*>(&nan), DType::F16,
                   reinterpret_cast<uint8_t*>(&h), 1);
  EXPECT_EQ(h, 0x7e00);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
}

}  // namespace
}  // namespace kexa
