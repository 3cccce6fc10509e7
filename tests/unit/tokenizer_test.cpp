// Tokenizer unit tests. The bulk of the HF comparison lives in tests/conformance/tokenizer.sh;
// here: llama.cpp's own GGUF test vectors, error reporting, streaming and invalid input.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "fixtures.h"

namespace kexa {
namespace {

std::string shared_dir() {
  if (const char* s = std::getenv("KEXA_SHARED")) return s;
  return KEXA_SOURCE_DIR "/../shared";
}
std::string fixture(const std::string& rel) { return shared_dir() + "/fixtures/" + rel; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// llama.cpp's test-tokenizer-0 format: inputs separated by "\n__ggml_vocab_test__\n", one line
// of expected ids per input; encoded without BOS and without parsing special tokens.
void check_llamacpp_vectors(const std::string& name) {
  const std::string base = fixture("llamacpp-vocab-gguf/ggml-vocab-" + name + ".gguf");
  KEXA_REQUIRE_FIXTURE(base);
  auto tok = Tokenizer::load(base);
  const std::string raw = slurp(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(slurp(base + ".out"));
  std::vector<std::vector<int32_t>> expected;
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    expected.push_back(ids);
  }
  ASSERT_EQ(inputs.size(), expected.size());
  size_t bad = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto got = tok->encode(inputs[i], /*add_special_tokens=*/false, /*parse_special=*/false);
    if (got != expected[i]) {
      ++bad;
      ADD_FAILURE() << name << " input " << i << " '" << inputs[i] << "'";
    }
  }
  EXPECT_EQ(bad, 0u) << "of " << inputs.size();
}

TEST(TokenizerGguf, LlamaCppGpt2Vectors) { check_llamacpp_vectors("gpt-2"); }
TEST(TokenizerGguf, LlamaCppLlamaSpmVectors) { check_llamacpp_vectors("llama-spm"); }

TEST(TokenizerGguf, LlamaSpmAddsBosAndDecodes) {
  auto tok = Tokenizer::load(fixture("llamacpp-vocab-gguf/ggml-vocab-llama-spm.gguf"));
  ASSERT_TRUE(tok->bos_id().has_value());
  auto ids = tok->encode("Hello world");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], *tok->bos_id());
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), "Hello world");
  EXPECT_EQ(tok->decode(tok->encode("naïve 日本 \xF0\x9F\xA6\x99", false)), "naïve 日本 \xF0\x9F\xA6\x99");
}

TEST(TokenizerGguf, UnsupportedModelIsNamed) {
  try {
    Tokenizer::load(fixture("llamacpp-vocab-gguf/ggml-vocab-bert-bge.gguf"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bert"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, Exaone4Basics) {
  auto tok = Tokenizer::load(fixture("exaone4-tokenizer"));
  EXPECT_EQ(tok->vocab_size(), 102400);
  EXPECT_EQ(tok->token_id("[|endofturn|]"), 361);
  EXPECT_EQ(tok->token_id("[|user|]"), 360);
  EXPECT_TRUE(tok->is_special(361));
  EXPECT_FALSE(tok->adds_bos());  // add_bos_token: false
  auto eos = tok->eos_ids();
  EXPECT_NE(std::find(eos.begin(), eos.end(), 361), eos.end());
  // Special tokens are atomic when parsed, plain text otherwise.
  auto with = tok->encode("[|user|]hi", true, true);
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(with[0], 360);
  auto without = tok->encode("[|user|]hi", true, false);
  EXPECT_EQ(std::find(without.begin(), without.end(), 360), without.end());
  EXPECT_EQ(tok->decode(without), "[|user|]hi");
  EXPECT_EQ(tok->decode(with, /*skip_special=*/true), "hi");
}

TEST(Tokenizer, Exaone3SplitsDigitsExaone4DoesNot) {
  auto t3 = Tokenizer::load(fixture("exaone35-tokenizer"));
  auto t4 = Tokenizer::load(fixture("exaone4-tokenizer"));
  // Spec §6: 3.x isolates every digit, 4.0 keeps " ?\p{N}+" runs (which BPE may then merge).
  auto a = t3->encode("x 2024", false);
  auto b = t4->encode("x 2024", false);
  EXPECT_EQ(t3->decode(a), "x 2024");
  EXPECT_EQ(t4->decode(b), "x 2024");
  // In 3.x the space before the number is its own piece.
  ASSERT_GE(a.size(), 6u);
  EXPECT_EQ(t3->token_piece(a[1]), " ");
}

TEST(Tokenizer, StreamDecoderNeverSplitsCharacters) {
  auto tok = Tokenizer::load(fixture("exaone4-tokenizer"));
  const std::string text = "한국의 수도는 서울입니다. 🦙👨‍👩‍👧 emoji and ñ!";
  auto ids = tok->encode(text, false);
  StreamDecoder sd(*tok);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    EXPECT_EQ(tok::first_invalid_utf8(piece), std::string::npos);
    all += piece;
  }
  all += sd.finish();
  EXPECT_EQ(all, text);
}

TEST(Tokenizer, StreamDecoderByteTokens) {
  // Feed the bytes of a 4-byte emoji as single-byte tokens: nothing comes out until it is whole.
  auto tok = Tokenizer::load(fixture("exaone4-tokenizer"));
  const std::string emoji = "\xF0\x9F\xA6\x99";
  StreamDecoder sd(*tok);
  std::string out;
  for (size_t i = 0; i < emoji.size(); ++i) {
    auto ids = tok->encode(emoji.substr(i, 1), false);
    ASSERT_EQ(ids.size(), 1u);
    std::string piece = sd.push(ids[0]);
    if (i + 1 < emoji.size()) {
      EXPECT_EQ(piece, "");
    }
    out += piece;
  }
  out += sd.finish();
  EXPECT_EQ(out, emoji);
  // A cut-off sequence followed by ASCII comes out as U+FFFD, never as a partial sequence.
  StreamDecoder sd2(*tok);
  std::string out2 = sd2.push(tok->encode("\xF0", false)[0]);
  out2 += sd2.push(tok->encode("a", false)[0]);
  out2 += sd2.finish();
  EXPECT_EQ(out2, "\xEF\xBF\xBD" "a");
}

TEST(Tokenizer, InvalidUtf8IsEncodedAsBytes) {
  auto tok = Tokenizer::load(fixture("exaone4-tokenizer"));
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string s;
    const int len = int(rng() % 40);
    for (int i = 0; i < len; ++i) s += char(rng() % 256);
    auto ids = tok->encode(s, false, false);
    EXPECT_EQ(tok->decode(ids), s);
  }
}

TEST(Tokenizer, BatchEqualsSequential) {
  auto tok = Tokenizer::load(fixture("exaone35-tokenizer"));
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("line " + std::to_string(i * 7919) + " 한국어 text\t" + std::string(size_t(i % 9), ' ') + "end");
  auto batch = tok->encode_batch(texts);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(batch[i], tok->encode(texts[i]));
}

TEST(Tokenizer, ErrorsNameTheProblem) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "kexa_tok_bad";
  fs::create_directories(dir);
  {
    std::ofstream(dir / "vocab.json") << R"({"a": 0, "b": 1, "ab": 2})";
    std::ofstream(dir / "merges.txt") << "#version: 0.2\na b\na c\n";
  }
  try {
    Tokenizer::load(dir.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("merges.txt"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;
  }
  {
    std::ofstream(dir / "merges.txt") << "#version: 0.2\nabc\n";
  }
  try {
    Tokenizer::load(dir.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merges.txt:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::from_json("{not json", "bad.json"), Error);
  EXPECT_THROW(Tokenizer::from_json(R"({"model": {"type": "Unigram", "vocab": []}})"), Error);
  EXPECT_THROW(Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})"), Error);
  EXPECT_THROW(Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}}})"), Error);
  // Values of the wrong JSON type (found by fuzzing: a list as model.type escaped as a raw
  // nlohmann exception) are kexa errors that name the file.
  for (const char* wrong_type : {
           R"({"model": {"type": []}})",
           R"({"model": []})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "post_processor": {"type": 7}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": 1}]}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": {"type": {}}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Split", "pattern": []}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "decoder": {"type": "Replace", "content": 3}})"}) {
    try {
      Tokenizer::from_json(wrong_type, "wrong-type.json");
      ADD_FAILURE() << "accepted " << wrong_type;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("wrong-type.json"), std::string::npos) << e.what();
    }
  }
}

TEST(Tokenizer, StoriesStyleTokenizerJson) {
  // The schema kexa's converter writes for SentencePiece models: Prepend+Replace normalizer,
  // BPE with byte fallback, TemplateProcessing BOS, Replace/ByteFallback/Fuse/Strip decoder.
  const std::string json = R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true, "normalized": false},
                     {"id": 1, "content": "<s>", "special": true, "normalized": false}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
              "vocab": {"<unk>": 0, "<s>": 1, "<0xC3>": 2, "<0xA9>": 3, "▁": 4, "h": 5, "i": 6, "▁h": 7, "▁hi": 8},
              "merges": ["▁ h", "▁h i"]}})";
  auto tok = Tokenizer::from_json(json);
  EXPECT_EQ(tok->encode("hi hi"), (std::vector<int32_t>{1, 8, 8}));
  EXPECT_EQ(tok->encode("hé", false), (std::vector<int32_t>{7, 2, 3}));
  EXPECT_EQ(tok->decode(tok->encode("hi hé", false)), "hi hé");
  EXPECT_TRUE(tok->adds_bos());
}

TEST(PreTokenizer, Gpt2RegexPieces) {
  auto pieces = [](std::string_view s) {
    std::vector<tok::Span> m;
    tok::match_gpt2(s, m);
    std::vector<std::string> out;
    for (auto sp : m) out.emplace_back(s.substr(sp.begin, sp.end - sp.begin));
    return out;
  };
  // Hand-derived from the regex: '\s+(?!\S)' leaves the last space for the next word.
  EXPECT_EQ(pieces("   Hello"), (std::vector<std::string>{"  ", " Hello"}));
  EXPECT_EQ(pieces("I'm 42!"), (std::vector<std::string>{"I", "'m", " 42", "!"}));
  EXPECT_EQ(pieces("a\t\tb  "), (std::vector<std::string>{"a", "\t", "\t", "b", "  "}));
}

TEST(PreTokenizer, SuperBpePieces) {
  auto pieces = [](std::string_view s) {
    std::vector<tok::Span> m;
    tok::match_superbpe(s, m);
    std::vector<std::string> out;
    for (auto sp : m) out.emplace_back(s.substr(sp.begin, sp.end - sp.begin));
    return out;
  };
  // Letters continue across single spaces (the K-EXAONE fixture prompt is one piece).
  EXPECT_EQ(pieces("한국의 수도는"), (std::vector<std::string>{"한국의 수도는"}));
  EXPECT_EQ(pieces(" hello world  foo"), (std::vector<std::string>{" hello world", " ", " foo"}));
  EXPECT_EQ(pieces("It'S 2024.\n"), (std::vector<std::string>{"It", "'S", " ", "2", "0", "2", "4", ".\n"}));
  EXPECT_EQ(pieces("a \n\n  b"), (std::vector<std::string>{"a", " \n\n", " ", " b"}));
}

}  // namespace
}  // namespace kexa
