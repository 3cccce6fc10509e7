#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "rag/analyze.h"
#include "rag/store.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace kexa::rag;

namespace {

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() / ("kexa_rag_test_" + std::to_string(::getpid()) + "_" +
                                       std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    fs::path p = dir / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

}  // namespace

TEST(RagAnalyze, KoreanBigramsMatchAcrossParticles) {
  auto a = analyze("대통령은 서울에");
  EXPECT_TRUE(has(a, "대통"));
  EXPECT_TRUE(has(a, "통령"));
  EXPECT_TRUE(has(a, "령은"));
  EXPECT_TRUE(has(a, "서울"));
  auto b = analyze("대통령이");
  EXPECT_TRUE(has(b, "대통") && has(b, "통령"));
  // A one-syllable run is kept as a unigram.
  EXPECT_TRUE(has(analyze("물 한 잔"), "물"));
}

TEST(RagAnalyze, EnglishFoldingAndNormalization) {
  auto a = analyze("The Normans' COUNTRIES, ｆｕｌｌ-width 2024");
  EXPECT_TRUE(has(a, "the"));
  EXPECT_TRUE(has(a, "norman"));    // Normans -> normans -> S-stemmed
  EXPECT_TRUE(has(a, "country"));   // countries -> country
  EXPECT_TRUE(has(a, "full"));      // NFKC folds full-width letters
  EXPECT_TRUE(has(a, "2024"));
  // Mixed scripts split at the boundary.
  auto m = analyze("GPU가");
  EXPECT_TRUE(has(m, "gpu"));
  EXPECT_TRUE(has(m, "가"));
  // Invalid UTF-8 does not throw and does not swallow neighbours.
  auto bad = analyze(std::string("abc\xff\xfe" "def"));
  EXPECT_TRUE(has(bad, "abc") && has(bad, "def"));
}

TEST(RagChunk, SpansPointAtSentencesAndHeadings) {
  std::string text =
      "# 제목\n\n서울은 한국의 수도이다. 인구는 약 천만 명이다.\n부산은 항구 도시다! 정말인가?\n\n"
      "## English part\nThis is one. This is two? Pi is 3.14 exactly.\n";
  ChunkOptions o;
  o.target_chars = 20;
  o.max_chars = 60;
  o.overlap_chars = 0;
  auto chunks = chunk_text(text, o);
  ASSERT_GE(chunks.size(), 4u);
  std::vector<std::string> got;
  for (const auto& c : chunks) {
    ASSERT_LE(c.span.end, text.size());
    got.push_back(text.substr(c.span.begin, c.span.end - c.span.begin));
  }
  // Every chunk starts at a sentence start and ends at a sentence end.
  for (const auto& g : got) {
    EXPECT_FALSE(g.empty());
    EXPECT_NE(g.front(), ' ');
    char last = g.back();
    EXPECT_TRUE(last == '.' || last == '?' || last == '!' || g.rfind("제목") != std::string::npos ||
                g.find("English part") != std::string::npos)
        << g;
  }
  // The decimal point in 3.14 does not end a sentence.
  bool pi_whole = std::any_of(got.begin(), got.end(), [](const std::string& g) { return g.find("Pi is 3.14 exactly.") != std::string::npos; });
  EXPECT_TRUE(pi_whole);
  // '다.' ends a sentence: the first chunk (heading + one sentence) closes right after it.
  EXPECT_EQ(got[0], "# 제목\n\n서울은 한국의 수도이다.");
  EXPECT_EQ(got[1].rfind("인구는", 0), 0u) << got[1];
  // Headings start chunks and are recorded for the chunks under them.
  auto eng = std::find_if(chunks.begin(), chunks.end(), [&](const ChunkSpan& c) { return c.heading == "English part"; });
  ASSERT_NE(eng, chunks.end());
  EXPECT_EQ(text.substr(eng->span.begin, 15), "## English part");
  EXPECT_EQ(chunks.back().heading, "English part");
}

TEST(RagChunk, OverlapRepeatsWholeSentences) {
  std::string text = "Alpha one two. Beta three four. Gamma five six. Delta seven eight. Epsilon nine ten.";
  ChunkOptions o;
  o.target_chars = 35;
  o.max_chars = 100;
  o.overlap_chars = 20;
  auto chunks = chunk_text(text, o);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_LT(chunks[1].span.begin, chunks[0].span.end);  // overlap
  EXPECT_EQ(chunks.back().span.end, text.size());
  EXPECT_EQ(chunks.front().span.begin, 0u);
}

TEST(RagStore, Bm25RanksTheRightDocumentAndReingestIsIdempotent) {
  TempDir t;
  t.write("docs/seoul.txt", "서울특별시는 대한민국의 수도이다. 한강이 도시를 가로지른다.");
  t.write("docs/busan.txt", "부산광역시는 대한민국 제2의 도시이자 최대의 항구 도시이다.");
  t.write("docs/jeju.md", "# 제주도\n\n제주도는 화산섬이다. 한라산이 섬 가운데에 있다.");
  t.write("docs/en.txt", "The Normans gave their name to Normandy, a region in France.");
  t.write("docs/notes.bin", "ignored");
  t.write("docs/rec.jsonl", "{\"name\": \"kimchi\", \"desc\": \"fermented cabbage\"}\n{\"name\": \"bibimbap\", \"desc\": \"mixed rice\"}\n");
  std::string store = (t.dir / "s.db").string();
  {
    Store s(store);
    IngestStats st = s.ingest({(t.dir / "docs").string()});
    EXPECT_EQ(st.added, 5u);
    EXPECT_EQ(st.skipped, 1u);
    auto hits = s.search("대한민국의 수도는 어디인가?", 3);
    ASSERT_FALSE(hits.empty());
    EXPECT_NE(hits[0].path.find("seoul.txt"), std::string::npos);
    EXPECT_NE(s.search("한라산은 어디에 있나", 1).at(0).path.find("jeju.md"), std::string::npos);
    EXPECT_NE(s.search("항구 도시", 1).at(0).path.find("busan.txt"), std::string::npos);
    auto en = s.search("Where is Normandy?", 1);
    ASSERT_EQ(en.size(), 1u);
    EXPECT_NE(en[0].path.find("en.txt"), std::string::npos);
    auto rec = s.search("fermented", 1);
    ASSERT_EQ(rec.size(), 1u);
    EXPECT_EQ(rec[0].begin, 0);  // the first JSONL line
    EXPECT_TRUE(s.search("zzzz qqqq", 5).empty());
    // The span points at the exact bytes of the chunk in the file.
    auto h = s.search("한강", 1).at(0);
    std::ifstream in(h.path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(all.substr(static_cast<std::size_t>(h.begin), static_cast<std::size_t>(h.end - h.begin)), h.text);
  }
  StoreStats before = Store(store).stats();
  {
    Store s(store);
    IngestStats st = s.ingest({(t.dir / "docs").string()});
    EXPECT_EQ(st.unchanged, 5u);
    EXPECT_EQ(st.added + st.updated, 0u);
    EXPECT_EQ(s.stats().chunks, before.chunks);
    // A changed file replaces its chunks.
    t.write("docs/busan.txt", "부산은 해운대 해수욕장으로 유명하다.");
    st = s.ingest({(t.dir / "docs").string()});
    EXPECT_EQ(st.updated, 1u);
    EXPECT_EQ(s.stats().documents, 5);
    EXPECT_TRUE(s.search("항구", 5).empty() || s.search("항구", 5)[0].path.find("busan") == std::string::npos);
    EXPECT_NE(s.search("해운대", 1).at(0).path.find("busan.txt"), std::string::npos);
    // Deletion of one file, then pruning of a vanished file.
    EXPECT_EQ(s.remove((t.dir / "docs/seoul.txt").string()), 1u);
    for (const auto& hit : s.search("대한민국의 수도", 10)) EXPECT_EQ(hit.path.find("seoul"), std::string::npos);
    fs::remove(t.dir / "docs/en.txt");
    st = s.ingest({(t.dir / "docs").string()}, /*prune=*/true);
    EXPECT_EQ(st.removed, 1u);
    EXPECT_EQ(st.added, 1u);  // seoul.txt comes back: it is still on disk
    EXPECT_EQ(s.stats().documents, 4);
    EXPECT_EQ(s.remove((t.dir / "docs").string()), 4u);
    EXPECT_EQ(s.stats().chunks, 0);
  }
}

TEST(RagStore, BadInputGivesNamedErrors) {
  TempDir t;
  std::string junk = t.write("junk.db", "this is not a database at all, just text padding padding padding");
  try {
    Store s(junk);
    FAIL() << "opened a non-store";
  } catch (const kexa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.db"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Store((t.dir / "missing.db").string(), true), kexa::Error);
  Store s((t.dir / "s.db").string());
  std::string bad = t.write("bad.jsonl", "{\"a\": 1}\n{broken\n");
  try {
    s.ingest({bad});
    FAIL();
  } catch (const kexa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.stats().documents, 0);
  EXPECT_THROW(s.ingest({t.write("x.pdf", "%PDF")}), kexa::Error);
}
