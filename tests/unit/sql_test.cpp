#include <sqlite3.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "sql/sql.h"

namespace {

// A small database written with the sqlite3 API directly (not through kexa), then opened by the
// executor read-only.
class SqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("kexa_sql_test_" + std::to_string(::getpid()) + ".sqlite")).string();
    std::filesystem::remove(path_);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const char* ddl =
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INT);"
        "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INT);"
        "CREATE TABLE singer_in_concert (concert_id INT REFERENCES concert(concert_id),"
        "  singer_id INT REFERENCES singer(singer_id));"
        "CREATE TABLE stadium (stadium_id INTEGER PRIMARY KEY, location TEXT, capacity INT);"
        "CREATE TABLE 직원 (번호 INTEGER PRIMARY KEY, 이름 TEXT, 부서 TEXT);"
        "INSERT INTO singer VALUES (1,'Joe','France',52),(2,'Ann','Korea',30),(3,'Li',NULL,2.5);"
        "INSERT INTO concert VALUES (1,'Auditions',2014),(2,'Week 1',2015);"
        "INSERT INTO singer_in_concert VALUES (1,1),(1,2),(2,3);"
        "INSERT INTO 직원 VALUES (1,'김철수','영업부');";
    ASSERT_EQ(sqlite3_exec(db, ddl, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_;
};

std::string reason_of(kexa::sql::SqliteExecutor& ex, const std::string& sql) {
  try {
    ex.execute(sql, {10, 300});
  } catch (const kexa::sql::Refused& e) {
    return e.reason();
  }
  return "ran";
}

TEST_F(SqlTest, RunsReadsWithTypedValues) {
  kexa::sql::SqliteExecutor ex(path_);
  auto r = ex.execute("SELECT name, age, country, x'00ff' FROM singer ORDER BY singer_id");
  ASSERT_EQ(r.columns.size(), 4u);
  EXPECT_EQ(r.columns[0], "name");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0][0], "Joe");
  EXPECT_EQ(r.rows[0][1], 52);
  EXPECT_TRUE(r.rows[2][2].is_null());
  EXPECT_DOUBLE_EQ(r.rows[2][1].get<double>(), 2.5);
  EXPECT_EQ(r.rows[0][3]["blob_hex"], "00ff");
  EXPECT_FALSE(r.truncated);
  // A trailing semicolon and comments are one statement.
  EXPECT_EQ(ex.execute("SELECT 1; -- done\n/* end */").rows.size(), 1u);
  auto joined = ex.execute(
      "WITH s AS (SELECT * FROM singer) SELECT count(*) FROM s JOIN singer_in_concert USING (singer_id)");
  EXPECT_EQ(joined.rows[0][0], 3);
}

TEST_F(SqlTest, RefusesWritesWithNamedReasons) {
  kexa::sql::SqliteExecutor ex(path_);
  EXPECT_EQ(reason_of(ex, "DELETE FROM singer"), "denied_action");
  EXPECT_EQ(reason_of(ex, "CREATE TEMP TABLE t(a)"), "denied_action");
  EXPECT_EQ(reason_of(ex, "ATTACH ':memory:' AS m"), "denied_action");
  EXPECT_EQ(reason_of(ex, "PRAGMA user_version = 3"), "denied_action");
  EXPECT_EQ(reason_of(ex, "SELECT load_extension('x')"), "denied_action");
  EXPECT_EQ(reason_of(ex, "SELECT 1; DELETE FROM singer"), "multiple_statements");
  EXPECT_EQ(reason_of(ex, "SELECT 1 /* x */; SELECT 2"), "multiple_statements");
  EXPECT_EQ(reason_of(ex, "  -- nothing\n"), "empty_statement");
  EXPECT_EQ(reason_of(ex, "SELEC 1"), "invalid_sql");
  EXPECT_EQ(reason_of(ex, "WITH x AS (SELECT 1) DELETE FROM singer"), "denied_action");
  EXPECT_EQ(reason_of(ex, "VACUUM"), "not_read_only");
  EXPECT_EQ(ex.execute("SELECT count(*) FROM singer").rows[0][0], 3);
}

TEST_F(SqlTest, CapsRowsAndTime) {
  kexa::sql::SqliteExecutor ex(path_);
  auto r = ex.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 50) SELECT x FROM c",
                      {7, 5000});
  EXPECT_EQ(r.rows.size(), 7u);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(reason_of(ex, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"),
            "timeout");
  // The connection is usable after an interrupt.
  EXPECT_EQ(ex.execute("SELECT 2").rows[0][0], 2);
}

TEST_F(SqlTest, ExplainIsADryRun) {
  kexa::sql::SqliteExecutor ex(path_);
  auto plan = ex.explain("SELECT * FROM singer WHERE singer_id = 1");
  ASSERT_FALSE(plan.empty());
  EXPECT_NE(plan[0].find("singer"), std::string::npos);
  EXPECT_THROW(ex.explain("DROP TABLE singer"), kexa::sql::Refused);
}

TEST_F(SqlTest, IntrospectsSchema) {
  kexa::sql::SqliteExecutor ex(path_);
  auto s = ex.schema(2);
  ASSERT_EQ(s.tables.size(), 5u);
  int sic = s.find("SINGER_IN_CONCERT");
  ASSERT_GE(sic, 0);
  ASSERT_EQ(s.tables[static_cast<size_t>(sic)].foreign_keys.size(), 2u);
  auto& singer = s.tables[static_cast<size_t>(s.find("singer"))];
  EXPECT_TRUE(singer.columns[0].primary_key);
  EXPECT_EQ(singer.columns[1].samples.size(), 2u);
  EXPECT_EQ(singer.columns[1].samples[0], "Joe");
  // Introspection's PRAGMAs stay unavailable to queries afterwards.
  EXPECT_EQ(reason_of(ex, "PRAGMA table_info(singer)"), "denied_action");
}

TEST_F(SqlTest, LinksQuestionsToTables) {
  kexa::sql::SqliteExecutor ex(path_);
  auto s = ex.schema(3);
  auto has = [](const kexa::sql::LinkResult& r, const std::string& t) {
    return std::find(r.tables.begin(), r.tables.end(), t) != r.tables.end();
  };
  auto r = kexa::sql::link_schema(s, "What are the names of singers who performed in concerts in 2014?");
  EXPECT_TRUE(has(r, "singer"));
  EXPECT_TRUE(has(r, "concert"));
  EXPECT_TRUE(has(r, "singer_in_concert"));  // the bridge, never named
  EXPECT_FALSE(has(r, "stadium"));
  auto cap = kexa::sql::link_schema(s, "What is the capacity of each stadium?");
  ASSERT_FALSE(cap.tables.empty());
  EXPECT_EQ(cap.tables[0], "stadium");
  auto ko = kexa::sql::link_schema(s, "영업부 직원의 이름은?");
  ASSERT_FALSE(ko.tables.empty());
  EXPECT_EQ(ko.tables[0], "직원");
}

TEST(SqlParse, TablesInGoldSql) {
  kexa::sql::Schema s;
  s.tables = {{"singer", {}, {}}, {"concert", {}, {}}, {"Free Meals", {}, {}}};
  auto t = kexa::sql::tables_in_sql(
      s, "SELECT T1.name FROM Singer AS T1 JOIN concert AS T2 ON T1.id = T2.id WHERE x IN (SELECT a FROM `Free Meals`)");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0], "singer");
  EXPECT_EQ(t[2], "Free Meals");
  EXPECT_EQ(kexa::sql::sqlite_path_from_url("sqlite:/a/b.db"), "/a/b.db");
  EXPECT_THROW(kexa::sql::sqlite_path_from_url("postgresql://h/db"), kexa::Error);
  EXPECT_THROW(kexa::sql::SqliteExecutor("/nonexistent/kexa.sqlite"), kexa::Error);
}

}  // namespace
