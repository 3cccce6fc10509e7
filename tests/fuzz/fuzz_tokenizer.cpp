// libFuzzer target: the tokenizer.json loader and the encoder/decoder.
// Input layout: first byte selects the mode.
//   even: the rest is a tokenizer.json; if it loads, encode a fixed mixed-script text with it.
//   odd:  the rest is text, encoded with a small fixed byte-level tokenizer (SuperBPE regex +
//         NFC + added tokens with lstrip/rstrip/single_word) and decoded; the round trip of the
//         decoded bytes must not crash, and StreamDecoder must only emit valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace {

std::unique_ptr<kexa::Tokenizer> fixed_tokenizer() {
  // Byte alphabet + a few merges, built as JSON so the loader path is the real one.
  std::string vocab = "{";
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    kexa::append_utf8(ch, kexa::tok::byte_to_unicode(uint8_t(b)));
    std::string esc;
    for (char c : ch) {
      if (c == '"' || c == '\\') esc += '\\';
      esc += c;
    }
    vocab += "\"" + esc + "\": " + std::to_string(b) + ",";
  }
  vocab += "\"he\": 256, \"ll\": 257, \"hell\": 258, \"\xC4\xA0w\": 259, \"hello\": 260, \"\xC4\xA0wo\": 261}";
  const std::string json = R"({
    "added_tokens": [
      {"id": 300, "content": "<|user|>", "special": true, "normalized": false, "rstrip": true},
      {"id": 301, "content": "<mask>", "special": true, "normalized": true, "lstrip": true},
      {"id": 302, "content": "hi there", "special": false, "normalized": true, "single_word": true}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated"},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": )" + vocab + R"(, "merges": ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]}})";
  return kexa::Tokenizer::from_json(json, "fuzz-fixed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 1 << 16) return 0;  // bounded: large inputs add time, not coverage
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) == 0) {
    try {
      auto tok = kexa::Tokenizer::from_json(rest, "fuzz");
      auto ids = tok->encode("Hello wörld 123 한국어 \xF0\x9F\xA6\x99 <s>\r\n  x");
      (void)tok->decode(ids);
    } catch (const kexa::Error&) {
    }
    return 0;
  }
  static const std::unique_ptr<kexa::Tokenizer> tok = fixed_tokenizer();
  auto ids = tok->encode(rest);
  const std::string back = tok->decode(ids);
  if (kexa::tok::first_invalid_utf8(rest) == std::string_view::npos &&
      rest.find('<') == std::string_view::npos && kexa::tok::normalize(rest, kexa::tok::NormForm::NFC) == rest &&
      back != rest)
    std::abort();  // byte-level BPE must give the text back (NFC, no lstrip/rstrip token involved)
  kexa::StreamDecoder sd(*tok);
  std::string streamed;
  for (int32_t id : ids) streamed += sd.push(id);
  streamed += sd.finish();
  if (kexa::tok::first_invalid_utf8(streamed) != std::string::npos) std::abort();
  return 0;
}
