#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"
#include "util/error.h"
#include "fixtures.h"

namespace kexa::bpe {
namespace {

namespace fs = std::filesystem;

std::string shared_dir() {
  const char* env = std::getenv("KEXA_SHARED");
  return env ? env : KEXA_SOURCE_DIR "/../shared";
}

std::string temp_path(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / "kexa_trainer_test";
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string write_temp(const std::string& name, const std::string& text) {
  std::string p = temp_path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string read_prefix(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), std::streamsize(n));
  s.resize(size_t(in.gcount()));
  // Cut at a line break so no UTF-8 character is split.
  auto nl = s.rfind('\n');
  if (nl != std::string::npos) s.resize(nl + 1);
  return s;
}

std::vector<std::string> merge_strings(const TrainedBpe& bpe) {
  std::vector<std::string> out;
  for (const auto& m : bpe.merges) out.push_back(bpe.vocab[m[0]] + " " + bpe.vocab[m[1]]);
  return out;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::vector<std::string> pre_tokens(const tok::PreTokenizer& pre, std::string_view text) {
  tok::Pieces pieces;
  pre.run(text, true, pieces);
  std::vector<std::string> out;
  for (const auto& p : pieces.items) out.emplace_back(p.text);
  return out;
}

// The trainer counts the pieces of the tokenizer's own pre-tokenizers.
TEST(TrainerPreTokens, SuperwordRegexCrossesSingleSpaces) {
  std::vector<std::string> want = {" hello world foo", ",", " ", "2", "0", "2", "4",
                                   "년", " ", " ok", "\n"};
  EXPECT_EQ(pre_tokens(tok::PreTokenizer::superbpe(), " hello world foo, 2024년  ok\n"), want);
  EXPECT_EQ(pre_tokens(tok::PreTokenizer::gpt2(), " hello world foo, 2024"),
            (std::vector<std::string>{" hello", " world", " foo", ",", " 2024"}));
}

TEST(Trainer, TinyCorpusGivesHandCheckedMerges) {
  // "aaabdaaabac": pairs aa=4 → merge 1. Then (aa,a)=2 and (a,b)=2 tie; "a" sorts before "aa",
  // so (a,b). Then (aa,ab)=2. The rest occur once; with min frequency 1 the tie goes to the
  // smallest left string: (a,c).
  TrainOptions opt;
  opt.corpus = {write_temp("tiny.txt", "aaabdaaabac\n")};
  opt.min_frequency = 1;
  opt.specials = {"<s>"};
  opt.vocab_size = 261;
  auto bpe = train(opt);
  EXPECT_EQ(merge_strings(bpe), (std::vector<std::string>{"a a", "a b", "aa ab", "a c"}));
  EXPECT_EQ(bpe.vocab[0], "<s>");
  EXPECT_EQ(bpe.vocab[1 + 'a'], "a");
  EXPECT_EQ(bpe.vocab.size(), 261u);
  EXPECT_EQ(bpe.vocab.back(), "ac");
  EXPECT_FALSE(bpe.stats.saturated);

  // With the default minimum frequency of 2, learning stops after the three repeated pairs.
  opt.min_frequency = 2;
  auto sat = train(opt);
  EXPECT_EQ(merge_strings(sat).size(), 3u);
  EXPECT_TRUE(sat.stats.saturated);
}

TEST(Trainer, SuperwordStageLearnsMultiWordTokens) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "new york city is big. the new york times.\n";
  TrainOptions opt;
  opt.corpus = {write_temp("superword.txt", text)};
  opt.vocab_size = 256 + 40;
  opt.superword = true;
  opt.transition_merges = 20;
  auto bpe = train(opt);
  EXPECT_EQ(bpe.stats.merges_stage1, 20u);
  EXPECT_GT(bpe.stats.merges_stage2, 0u);
  bool multiword = false;
  for (const auto& t : bpe.vocab) {
    auto inner = t.find(' ', 1);
    if (inner != std::string::npos && inner + 1 < t.size()) multiword = true;
  }
  EXPECT_TRUE(multiword) << "no token spans two words";
  // Plain BPE on the same text never does.
  opt.superword = false;
  opt.transition_merges = -1;
  for (const auto& t : train(opt).vocab) {
    auto inner = t.find(' ', 1);
    EXPECT_FALSE(inner != std::string::npos && inner + 1 < t.size()) << t;
  }
  // The written file names the cross-space regex and an NFC normalizer.
  opt.superword = true;
  std::string json = tokenizer_json(train(opt));
  EXPECT_NE(json.find("\"type\": \"NFC\""), std::string::npos);
  EXPECT_NE(json.find("(?: \\\\p{L}\\\\p{M}*)*"), std::string::npos);
}

TEST(Trainer, SameCorpusSameBytesAnyThreadCount) {
  std::string shared = shared_dir();
  std::string ko = shared + "/fixtures/korean-chatbot-data/ChatbotData.csv";
  std::string en = shared + "/fixtures/tinyshakespeare/input.txt";
  KEXA_REQUIRE_FIXTURE(ko);
  KEXA_REQUIRE_FIXTURE(en);
  std::string corpus = read_prefix(ko, 120000) + read_prefix(en, 120000);
  TrainOptions opt;
  opt.corpus = {write_temp("det.txt", corpus)};
  opt.vocab_size = 1500;
  opt.superword = true;
  opt.transition_merges = 900;
  opt.block_bytes = 8192;  // many blocks, so threads really interleave
  opt.specials = {"<|endofturn|>"};
  opt.threads = 1;
  std::string one = tokenizer_json(train(opt));
  opt.threads = 3;
  std::string three = tokenizer_json(train(opt));
  EXPECT_EQ(one, three);
  opt.threads = 2;
  EXPECT_EQ(one, tokenizer_json(train(opt)));

  // The memory budget prunes rare pre-tokens; the result must still not depend on threads.
  opt.max_pretokens = 2000;
  opt.threads = 1;
  auto pruned1 = train(opt);
  opt.threads = 4;
  auto pruned4 = train(opt);
  EXPECT_GT(pruned1.stats.pruned, 0u);
  EXPECT_EQ(tokenizer_json(pruned1), tokenizer_json(pruned4));
}

TEST(Trainer, OverlongLinesAndInvalidUtf8AreStreamed) {
  // Lines far longer than a block are cut (at a character boundary) instead of held whole;
  // runs of stray continuation bytes must not stall the reader.
  std::string text;
  for (int i = 0; i < 400; ++i) text += "한국어 문장 ";
  text += std::string(3000, '\x80') + "tail\n";
  TrainOptions opt;
  opt.corpus = {write_temp("overlong.txt", text)};
  opt.vocab_size = 280;
  opt.block_bytes = 64;
  opt.superword = true;
  auto bpe = train(opt);
  EXPECT_EQ(bpe.vocab.size(), 280u);
  EXPECT_EQ(bpe.stats.invalid_utf8, 3000u);
}

TEST(Trainer, WrittenFilesLoadIntoTheEncoder) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "한국어 문장을 토큰으로 나눕니다. Tokens, tokens!\n";
  TrainOptions opt;
  opt.corpus = {write_temp("enc.txt", text)};
  opt.vocab_size = 300;
  opt.superword = true;
  opt.specials = {"<pad>", "<|endofturn|>"};
  auto bpe = train(opt);
  std::string dir = temp_path("enc_out");
  write_tokenizer_files(bpe, dir);
  for (const char* f : {"tokenizer.json", "vocab.json", "merges.txt"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f;
  }
  auto tok = Tokenizer::load(dir);
  EXPECT_EQ(size_t(tok->vocab_size()), bpe.vocab.size());
  std::string sample = "한국어 문장을<|endofturn|> tokens!";
  std::vector<int32_t> ids = tok->encode(sample, false, true);
  std::string back;
  for (int32_t id : ids) back += tok->token_piece(id);
  EXPECT_EQ(back, sample);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 1), ids.end());  // the special token
  EXPECT_LT(ids.size(), sample.size() / 2);
}

TEST(Trainer, BadInputGivesNamedErrors) {
  TrainOptions opt;
  opt.vocab_size = 1000;
  opt.corpus = {write_temp("empty.txt", "")};
  EXPECT_NE(error_of([&] { train(opt); }).find("empty corpus"), std::string::npos);

  std::string empty_dir = temp_path("empty_dir");
  fs::create_directories(empty_dir);
  opt.corpus = {empty_dir};
  EXPECT_NE(error_of([&] { train(opt); }).find("empty corpus"), std::string::npos);

  opt.corpus = {"/nonexistent/kexa-corpus.txt"};
  std::string missing = error_of([&] { train(opt); });
  EXPECT_NE(missing.find("/nonexistent/kexa-corpus.txt"), std::string::npos) << missing;

  opt.corpus = {write_temp("ok.txt", "some text\n")};
  opt.vocab_size = 200;
  std::string small = error_of([&] { train(opt); });
  EXPECT_NE(small.find("vocab size 200"), std::string::npos) << small;
  EXPECT_NE(small.find("256"), std::string::npos) << small;
  opt.vocab_size = 257;
  opt.specials = {"<a>", "<b>"};
  EXPECT_NE(error_of([&] { train(opt); }).find("2 special tokens"), std::string::npos);
  opt.specials.clear();

  opt.vocab_size = 300;
  opt.superword = true;
  opt.transition_merges = 100;
  EXPECT_NE(error_of([&] { train(opt); }).find("--transition-at 100"), std::string::npos);

  if (geteuid() != 0) {
    std::string locked = write_temp("locked.txt", "text\n");
    chmod(locked.c_str(), 0);
    opt = TrainOptions{};
    opt.vocab_size = 300;
    opt.corpus = {locked};
    std::string err = error_of([&] { train(opt); });
    EXPECT_NE(err.find("cannot read corpus file"), std::string::npos) << err;
    EXPECT_NE(err.find(locked), std::string::npos) << err;
  } else {
    // root reads any file; a directory entry that cannot be opened stands in for it.
    opt = TrainOptions{};
    opt.vocab_size = 300;
    std::string dangling = temp_path("dangling.txt");
    fs::remove(dangling);
    fs::create_symlink("/nonexistent/target", dangling);
    opt.corpus = {dangling};
    std::string err = error_of([&] { train(opt); });
    EXPECT_NE(err.find(dangling), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace kexa::bpe
