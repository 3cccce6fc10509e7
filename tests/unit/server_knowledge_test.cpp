#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "rag/answer.h"
#include "server/knowledge.h"
#include "util/error.h"

namespace kexa::server {
namespace {

namespace fs = std::filesystem;

TEST(DocumentsName, AcceptsPlainFileNamesOfKnownTypes) {
  for (const char* ok : {"notes.md", "FAQ.TXT", "한강.md", "report 2024.pdf", "rows.jsonl", "t.csv", "page.htm"}) {
    EXPECT_NO_THROW(Documents::check_name(ok)) << ok;
  }
}

TEST(DocumentsName, RejectsPathsHiddenFilesControlCharactersAndUnknownTypes) {
  for (const char* bad : {"", "../evil.md", "a/b.md", "a\\b.md", "C:x.md", ".hidden.md", "tab\t.md", "tool.exe", "noext"}) {
    EXPECT_THROW(Documents::check_name(bad), Error) << bad;
  }
  EXPECT_THROW(Documents::check_name(std::string(201, 'a') + ".md"), Error);
}

// The requirement /v1/rag/query applies with require_citation (it lives with rag::answer).
TEST(CitationRequirement, EndsOnlyAfterAMarkerNamingARealSource) {
  rag::CitationRequirement c(2);
  EXPECT_FALSE(c.complete());
  c.advance("Seoul has bridges ");
  EXPECT_FALSE(c.complete());
  c.advance("[3]");  // there is no source 3
  EXPECT_FALSE(c.complete());
  c.advance("[0]");
  EXPECT_FALSE(c.complete());
  c.advance("[");
  EXPECT_EQ(c.min_completion(), 2u);  // "1]"
  c.advance("2");
  EXPECT_EQ(c.min_completion(), 1u);  // "]"
  c.advance("]");
  EXPECT_TRUE(c.complete());
  EXPECT_EQ(c.min_completion(), 0u);
}

TEST(CitationRequirement, BudgetForcesTheMarker) {
  rag::CitationRequirement c(1);
  EXPECT_EQ(c.min_completion(), 3u);  // "[1]"
  EXPECT_TRUE(c.accepts("word", 3));
  EXPECT_FALSE(c.accepts("word", 2));
  EXPECT_TRUE(c.accepts("[", 2));
  EXPECT_TRUE(c.accepts("[1]", 0));
  EXPECT_FALSE(c.accepts("[1", 0));
  EXPECT_FALSE(c.accepts("", 10));
}

class DocumentsStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kexa_docs_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DocumentsStore, UploadListSearchRemove) {
  Documents docs((dir_ / "store.db").string(), "", 1 << 16);
  EXPECT_TRUE(fs::is_directory(docs.uploads_dir()));
  const std::string text =
      "# Gyeongbokgung\n\nGyeongbokgung Palace was built in 1395 in Seoul.\n\n"
      "# 한강\n\n한강은 서울을 가로질러 흐르는 강이다.\n";
  nlohmann::json up = docs.upload("palace.md", text);
  EXPECT_EQ(up["document"]["name"], "palace.md");
  EXPECT_GE(up["ingest"]["chunks"].get<int64_t>(), 1);
  docs.upload("river.txt", "The Han River flows through Seoul; twenty-seven bridges cross it.\n");

  // The file on disk is exactly what was uploaded.
  std::ifstream in(fs::path(docs.uploads_dir()) / "palace.md", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), text);

  nlohmann::json list = docs.list();
  ASSERT_EQ(list["data"].size(), 2u);
  EXPECT_EQ(list["data"][0]["name"], "palace.md");
  EXPECT_EQ(list["data"][0]["bytes"], text.size());
  EXPECT_EQ(list["store"]["documents"], 2);

  std::vector<rag::Hit> hits = docs.search("When was Gyeongbokgung Palace built?", 3);
  ASSERT_FALSE(hits.empty());
  EXPECT_NE(hits[0].path.find("palace.md"), std::string::npos);
  // A hit's span points at its text in the uploaded file.
  ASSERT_EQ(hits[0].unit, "byte");
  EXPECT_EQ(text.substr(static_cast<size_t>(hits[0].begin), static_cast<size_t>(hits[0].end - hits[0].begin)), hits[0].text);
  nlohmann::json hj = Documents::hit_json(hits[0], 1);
  EXPECT_EQ(hj["number"], 1);
  EXPECT_EQ(hj["name"], "palace.md");

  EXPECT_TRUE(docs.remove("palace.md"));
  EXPECT_FALSE(docs.remove("palace.md"));
  EXPECT_FALSE(fs::exists(fs::path(docs.uploads_dir()) / "palace.md"));
  for (const rag::Hit& h : docs.search("Gyeongbokgung Palace", 5)) EXPECT_EQ(h.path.find("palace.md"), std::string::npos);
  EXPECT_EQ(docs.list()["data"].size(), 1u);
}

TEST_F(DocumentsStore, RefusesOversizedAndUnreadableDocuments) {
  Documents docs((dir_ / "store.db").string(), (dir_ / "up").string(), 100);
  EXPECT_THROW(docs.upload("big.txt", std::string(101, 'a')), Error);
  EXPECT_THROW(docs.upload("../x.txt", "hello"), Error);
  // A PDF that is not one: the store cannot read it, and the file does not stay in the list.
  EXPECT_THROW(docs.upload("fake.pdf", "not a pdf at all"), Error);
  EXPECT_EQ(docs.list()["data"].size(), 0u);
}

}  // namespace
}  // namespace kexa::server
