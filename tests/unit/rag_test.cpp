#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <cstdlib>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "rag/analyze.h"
#include "rag/ingest.h"
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

// The store tests run on every backend: SQLite (a file in a temporary folder) always, and
// PostgreSQL when KEXA_TEST_PG_HOST names the socket folder of a server that accepts the user
// postgres (tests/conformance/rag_pg.sh starts one and runs these tests against it). Each store
// gets a fresh database there.
class RagStore : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres" && !pg_host())
      GTEST_SKIP() << "KEXA_TEST_PG_HOST not set (tests/conformance/rag_pg.sh runs these on a real server)";
  }
  static const char* pg_host() {
    const char* h = std::getenv("KEXA_TEST_PG_HOST");
    return h && *h ? h : nullptr;
  }
  // A new, empty store location named `name`.
  std::string fresh_store(const TempDir& t, const std::string& name) {
    if (GetParam() == "sqlite") return (t.dir / (name + ".db")).string();
    std::string db = "kexa_rag_test_" + std::to_string(::getpid()) + "_" + std::to_string(++created_) + "_" + name;
    std::string admin = std::string("postgresql://postgres@/postgres?host=") + pg_host();
    PGconn* c = PQconnectdb(admin.c_str());
    EXPECT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    for (std::string sql : {"DROP DATABASE IF EXISTS " + db, "CREATE DATABASE " + db}) {
      PGresult* r = PQexec(c, sql.c_str());
      EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(c);
      PQclear(r);
    }
    PQfinish(c);
    return "postgresql://postgres@/" + db + "?host=" + pg_host();
  }
  // Runs SQL on a store's database behind the Store's back (to fake an older store).
  static void raw_sql(const std::string& store, const std::string& sql) {
    if (store.rfind("postgresql://", 0) == 0) {
      PGconn* c = PQconnectdb(store.c_str());
      PGresult* r = PQexec(c, sql.c_str());
      EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQerrorMessage(c);
      PQclear(r);
      PQfinish(c);
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

 private:
  int created_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, RagStore, testing::Values("sqlite", "postgres"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace

TEST(RagAnalyze, KoreanBigramsMatchAcrossParticles) {
  auto a = analyze("대통령은 서울에");
  EXPECT_TRUE(has(a, "대통"));
  EXPECT_TRUE(has(a, "통령"));
  EXPECT_FALSE(has(a, "령은"));  // bigrams stop at the particle
  EXPECT_TRUE(has(a, "=대통령"));  // the eojeol without its particle
  EXPECT_TRUE(has(a, "서울"));
  auto b = analyze("대통령이");
  EXPECT_TRUE(has(b, "대통") && has(b, "통령") && has(b, "=대통령"));
  // Two syllables stay whole ("나이" is not 나 + 이); numbers keep their counter.
  EXPECT_TRUE(has(analyze("나이"), "=나이"));
  auto n = analyze("1990년에 2번");
  EXPECT_TRUE(has(n, "#1990년") && has(n, "#2번") && has(n, "1990"));
  // A one-syllable run is kept as a unigram.
  EXPECT_TRUE(has(analyze("물 한 잔"), "물"));
}

TEST(RagAnalyze, QueriesDropKoreanInterrogatives) {
  auto q = analyze_query("반기문이 졸업한 중학교의 이름은 무엇인가?");
  EXPECT_TRUE(has(q, "=반기문") && has(q, "중학") && has(q, "=이름"));
  for (const char* gone : {"무엇", "엇인", "=무엇인", "=무엇"}) EXPECT_FALSE(has(q, gone)) << gone;
  // Documents keep them: a passage may be about "무엇".
  EXPECT_TRUE(has(analyze("무엇인가"), "무엇"));
  // The rest of an eojeol after an interrogative is kept; one ending or particle alone is not.
  auto r = analyze_query("서울대 어느학과에 입학했나? 누구와 몇 명이");
  EXPECT_TRUE(has(r, "학과") && has(r, "=학과")) << r.size();
  for (const char* gone : {"어느", "느학", "누구", "=누구", "몇"}) EXPECT_FALSE(has(r, gone)) << gone;
  EXPECT_TRUE(has(r, "=명이") || has(r, "명이"));
  // Without interrogatives query and document analysis agree.
  EXPECT_EQ(analyze_query("대한민국의 수도 Seoul 1990년"), analyze("대한민국의 수도 Seoul 1990년"));
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

TEST_P(RagStore, Bm25RanksTheRightDocumentAndReingestIsIdempotent) {
  TempDir t;
  t.write("docs/seoul.txt", "서울특별시는 대한민국의 수도이다. 한강이 도시를 가로지른다.");
  t.write("docs/busan.txt", "부산광역시는 대한민국 제2의 도시이자 최대의 항구 도시이다.");
  t.write("docs/jeju.md", "# 제주도\n\n제주도는 화산섬이다. 한라산이 섬 가운데에 있다.");
  t.write("docs/en.txt", "The Normans gave their name to Normandy, a region in France.");
  t.write("docs/notes.bin", "ignored");
  t.write("docs/rec.jsonl", "{\"name\": \"kimchi\", \"desc\": \"fermented cabbage\"}\n{\"name\": \"bibimbap\", \"desc\": \"mixed rice\"}\n");
  std::string store = fresh_store(t, "s");
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

TEST_P(RagStore, OlderAnalysisIsReindexedFromStoredChunks) {
  TempDir t;
  t.write("docs/a.txt", "서울특별시는 대한민국의 수도이다. 한강이 도시를 가로지른다.");
  t.write("docs/b.txt", "The Normans gave their name to Normandy, a region in France.");
  std::string docs = (t.dir / "docs").string();
  std::string fresh = fresh_store(t, "fresh"), old = fresh_store(t, "old");
  Store(fresh).ingest({docs});
  Store(old).ingest({docs});
  // `old` now looks like a store indexed by an earlier analysis: none of today's terms, no version.
  std::string pre = GetParam() == "sqlite" ? "" : "kexa_rag_";
  raw_sql(old, "DELETE FROM " + pre + "posting; DELETE FROM " + pre + "term; UPDATE " + pre +
                   "chunk SET len = 1; DELETE FROM " + (pre.empty() ? "kexa_" : pre) + "meta WHERE key = 'analysis'");
  const std::string q = "대한민국의 수도는? Normandy region";
  EXPECT_TRUE(Store(old, true).search(q, 5).empty());
  Store s(old);
  IngestStats st = s.ingest({docs});  // files unchanged: only the re-index touches them
  EXPECT_EQ(st.unchanged, 2u);
  auto got = s.search(q, 5), want = Store(fresh, true).search(q, 5);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].path, want[i].path);
    EXPECT_DOUBLE_EQ(got[i].score, want[i].score);
  }
  EXPECT_EQ(s.stats().terms, Store(fresh, true).stats().terms);
}

TEST_P(RagStore, BadInputGivesNamedErrors) {
  TempDir t;
  if (GetParam() == "sqlite") {
    std::string junk = t.write("junk.db", "this is not a database at all, just text padding padding padding");
    try {
      Store s(junk);
      FAIL() << "opened a non-store";
    } catch (const kexa::Error& e) {
      EXPECT_NE(std::string(e.what()).find("junk.db"), std::string::npos) << e.what();
    }
    EXPECT_THROW(Store((t.dir / "missing.db").string(), true), kexa::Error);
  } else {
    std::string missing = std::string("postgresql://postgres@/kexa_rag_no_such_db?host=") + pg_host();
    try {
      Store s(missing);
      FAIL() << "opened a missing database";
    } catch (const kexa::Error& e) {
      EXPECT_NE(std::string(e.what()).find("kexa_rag_no_such_db"), std::string::npos) << e.what();
    }
  }
  // An existing but empty database (or file) is not a store for readers.
  std::string empty = fresh_store(t, "empty");
  if (GetParam() == "sqlite") t.write("empty.db", "");  // a valid, empty SQLite database
  try {
    Store s(empty, true);
    FAIL() << "read an empty database as a store";
  } catch (const kexa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a kexa document store"), std::string::npos) << e.what();
  }
  Store s(fresh_store(t, "s"));
  std::string bad = t.write("bad.jsonl", "{\"a\": 1}\n{broken\n");
  try {
    s.ingest({bad});
    FAIL();
  } catch (const kexa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.stats().documents, 0);
  EXPECT_THROW(s.ingest({t.write("x.pdf", "%PDF")}), kexa::Error);
  // In a folder, unreadable files are reported and the others still ingested.
  t.write("mixed/good.txt", "좋은 문서이다.");
  t.write("mixed/bad.json", "[1, 2");
  t.write("mixed/broken.pdf", "%PDF-1.4\ngarbage");
  IngestStats st = s.ingest({(t.dir / "mixed").string()});
  EXPECT_EQ(st.added, 1u);
  ASSERT_EQ(st.failed.size(), 2u);
  EXPECT_NE(st.failed[0].first.find("bad.json"), std::string::npos);
  EXPECT_NE(st.failed[0].second.find("not valid JSON"), std::string::npos) << st.failed[0].second;
  EXPECT_NE(st.failed[1].second.find("broken.pdf"), std::string::npos) << st.failed[1].second;
  EXPECT_EQ(s.stats().documents, 1);
}

TEST(RagIngest, HtmlVisibleTextWithHeadingsAsSections) {
  std::string text = html_to_text(
      "<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style>"
      "<script>var hidden = 'script text';</script></head><body><nav>Menu</nav>"
      "<h1>서울의  역사</h1><p>서울은 조선의\n   수도였다. <b>한양</b>이라고 불렸다.</p>"
      "<h2>Modern <i>era</i></h2><p>Seoul hosted the 1988 Olympics.</p><ul><li>one</li><li>two</li></ul>"
      "<pre>  a\n  b</pre><noscript>enable js</noscript></body></html>");
  EXPECT_EQ(text,
            "# 서울의 역사\n\n서울은 조선의 수도였다. 한양이라고 불렸다.\n\n## Modern era\n\n"
            "Seoul hosted the 1988 Olympics.\n\none\ntwo\n\n  a\n  b");
  // A declared legacy charset is converted to UTF-8.
  EXPECT_EQ(html_to_text("<html><head><meta charset=\"iso-8859-1\"></head><body><p>caf\xe9</p></body></html>"),
            "caf\xc3\xa9");
  // Without a declaration UTF-8 is assumed (libxml2 alone would read Latin-1).
  EXPECT_EQ(html_to_text("<p>한국어</p>"), "한국어");

  // Chunks: the h2 starts a new chunk whose heading is the h2 title; spans index the extracted text.
  ChunkOptions opt;
  auto chunks = extract_chunks("x.html", "<h1>One</h1><p>First part.</p><h2>Two</h2><p>Second part.</p>", opt);
  ASSERT_EQ(chunks.size(), 2u);
  std::string all = html_to_text("<h1>One</h1><p>First part.</p><h2>Two</h2><p>Second part.</p>");
  for (const auto& c : chunks) {
    EXPECT_EQ(c.unit, "text");
    EXPECT_EQ(all.substr(static_cast<std::size_t>(c.begin), static_cast<std::size_t>(c.end - c.begin)), c.text);
  }
  EXPECT_EQ(chunks[1].heading, "Two");
  EXPECT_EQ(chunks[1].text, "## Two\n\nSecond part.");
}

TEST(RagIngest, CsvAndJsonRecordsKeepFieldNames) {
  ChunkOptions opt;
  std::string csv = "name,city\r\n\"Kim, Minsu\",Seoul\r\nLee,\"Bu\"\"san\"\r\n";
  auto c = extract_chunks("t.csv", csv, opt);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].text, "name: Kim, Minsu\ncity: Seoul\n");
  EXPECT_EQ(csv.substr(static_cast<std::size_t>(c[0].begin), static_cast<std::size_t>(c[0].end - c[0].begin)),
            "\"Kim, Minsu\",Seoul");
  EXPECT_EQ(c[1].text, "name: Lee\ncity: Bu\"san\n");
  auto j = extract_chunks("t.json", R"([{"a": 1, "b": {"c": "x"}}, {"a": 2}])", opt);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0].unit, "record");
  EXPECT_EQ(j[0].text, "a: 1\nb.c: x\n");
  EXPECT_EQ(j[1].begin, 1);
  auto l = extract_chunks("t.jsonl", "{\"q\": \"one\"}\r\n\n{\"q\": \"two\"}", opt);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[1].begin, 15);
  EXPECT_EQ(l[0].end, 12);  // the CR is not part of the record
  EXPECT_TRUE(readable_type("A.PDF") && readable_type("x.htm") && !readable_type("x.docx"));
}

namespace {

// A minimal PDF (Type1 Helvetica, one text line per entry) so Poppler has real input.
std::string make_pdf(const std::vector<std::vector<std::string>>& pages) {
  std::vector<std::string> objs = {"<< /Type /Catalog /Pages 2 0 R >>", "",
                                   "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"};
  std::string kids;
  for (const auto& lines : pages) {
    std::size_t page_id = objs.size() + 1;
    std::string stream = "BT /F1 12 Tf 72 720 Td 14 TL\n";
    for (const auto& l : lines) stream += "(" + l + ") Tj T*\n";
    stream += "ET";
    objs.push_back("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                   " /Contents " + std::to_string(page_id + 1) + " 0 R >>");
    objs.push_back("<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream + "\nendstream");
    kids += std::to_string(page_id) + " 0 R ";
  }
  objs[1] = "<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages.size()) + " >>";
  std::string out = "%PDF-1.4\n";
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < objs.size(); ++i) {
    offsets.push_back(out.size());
    out += std::to_string(i + 1) + " 0 obj\n" + objs[i] + "\nendobj\n";
  }
  std::size_t xref = out.size();
  out += "xref\n0 " + std::to_string(objs.size() + 1) + "\n0000000000 65535 f \n";
  for (auto o : offsets) {
    char line[32];
    std::snprintf(line, sizeof line, "%010zu 00000 n \n", o);
    out += line;
  }
  out += "trailer\n<< /Size " + std::to_string(objs.size() + 1) + " /Root 1 0 R >>\nstartxref\n" +
         std::to_string(xref) + "\n%%EOF\n";
  return out;
}

}  // namespace

TEST(RagIngest, PdfChunksKeepPageNumbers) {
  std::string pdf = make_pdf({{"Kexa reads PDF files.", "The first page is about apples."},
                              {"The second page is about the Zugspitze.", "It is high."}});
  auto pages = pdf_pages(pdf, "t.pdf");
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0], "Kexa reads PDF files.\nThe first page is about apples.");
  auto chunks = extract_chunks("t.pdf", pdf, ChunkOptions{});
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[1].unit, "page");
  EXPECT_EQ(chunks[1].page, 2);
  EXPECT_EQ(pages[1].substr(static_cast<std::size_t>(chunks[1].begin),
                            static_cast<std::size_t>(chunks[1].end - chunks[1].begin)),
            chunks[1].text);
  // Poppler's own diagnostics go into the error, not onto stderr.
  testing::internal::CaptureStderr();
  std::string err;
  try {
    pdf_pages("%PDF-1.4\ngarbage", "broken.pdf");
  } catch (const kexa::Error& e) {
    err = e.what();
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_NE(err.find("broken.pdf"), std::string::npos) << err;
  EXPECT_NE(err.find("Poppler: "), std::string::npos) << err;

  TempDir t;
  t.write("docs/a.pdf", pdf);
  Store s((t.dir / "s.db").string());
  s.ingest({(t.dir / "docs").string()});
  auto hits = s.search("Zugspitze", 1);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].page, 2);
  EXPECT_EQ(hits[0].unit, "page");
}

namespace {

// A deterministic stand-in for an embedding model: letter counts, so "similar" is checkable.
std::vector<float> letter_counts(std::string_view t) {
  std::vector<float> v(26, 0.0f);
  for (char c : t)
    if (c >= 'a' && c <= 'z') v[static_cast<std::size_t>(c - 'a')] += 1;
  return v;
}

}  // namespace

TEST_P(RagStore, DenseVectorsStoredFusedAndKeptInStepWithDocuments) {
  TempDir t;
  std::string a = t.write("docs/a.txt", "zzz zzz zzz quiet words");
  t.write("docs/b.txt", "apple banana cherry");
  t.write("docs/c.txt", "kiwi kiwi kiwi lemon");
  std::string db = fresh_store(t, "s");
  {
    Store s(db);
    s.ingest({(t.dir / "docs").string()});  // no model yet: BM25 only
    EXPECT_EQ(s.stats().vectors, 0);
    s.set_embedder(letter_counts, "letters-v1");
    s.ingest({(t.dir / "docs").string()});  // unchanged files get their missing vectors
    EXPECT_EQ(s.stats().vectors, s.stats().chunks);
    // Dense: "zzzz" shares no word with any document but its letters match a.txt.
    auto d = s.search_dense("zzzz", 3);
    ASSERT_EQ(d.size(), 3u);
    EXPECT_NE(d[0].path.find("a.txt"), std::string::npos);
    EXPECT_GT(d[0].score, 0.9);  // a.txt's letters are mostly z
    EXPECT_LT(d[1].score, 0.1);
    EXPECT_TRUE(s.search_bm25("zzzz", 3).empty());
    // Fusion: reciprocal ranks (k = 60) of the two lists, recomputed here.
    std::string q = "kiwi apple zzz";
    auto bm = s.search_bm25(q, 100), de = s.search_dense(q, 100);
    std::map<std::int64_t, double> want;
    for (std::size_t r = 0; r < bm.size(); ++r) want[bm[r].chunk_id] += 1.0 / (61.0 + static_cast<double>(r));
    for (std::size_t r = 0; r < de.size(); ++r) want[de[r].chunk_id] += 1.0 / (61.0 + static_cast<double>(r));
    auto fused = s.search(q, 3);
    ASSERT_EQ(fused.size(), 3u);
    for (std::size_t i = 0; i < fused.size(); ++i) {
      EXPECT_DOUBLE_EQ(fused[i].score, want[fused[i].chunk_id]);
      if (i) {
        EXPECT_GE(fused[i - 1].score, fused[i].score);
      }
    }
    // Changing a document replaces its vectors; deleting removes them.
    t.write("docs/a.txt", "now this file is about lemons and kiwis instead");
    s.ingest({(t.dir / "docs").string()});
    EXPECT_EQ(s.stats().vectors, s.stats().chunks);
    s.remove(a);
    EXPECT_EQ(s.stats().vectors, s.stats().chunks);
    EXPECT_EQ(s.stats().documents, 2);
  }
  {
    // Another model's query vectors are never compared with stored ones.
    Store s(db, true);
    s.set_embedder(letter_counts, "other-model");
    EXPECT_THROW(s.search("kiwi", 3), kexa::Error);
  }
  {
    // Ingesting with another model re-embeds everything under it.
    Store s(db);
    s.set_embedder([](std::string_view x) { return letter_counts(x); }, "other-model");
    s.ingest({(t.dir / "docs").string()});
    EXPECT_EQ(s.stats().vectors, s.stats().chunks);
    EXPECT_EQ(s.stats().documents, 3);  // a.txt is back: its file still exists
    auto k = s.search("kiwi", 3);
    ASSERT_EQ(k.size(), 3u);
    EXPECT_NE(k[0].path.find("c.txt"), std::string::npos);
  }
}
