#include <sqlite3.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "sql/generate.h"
#include "sql/korean.h"
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

// The shape of the example (a Spider database none of the tests or benchmarks use):
// English names, Korean questions.
kexa::sql::Schema store_schema() {
  using kexa::sql::Column;
  auto cols = [](std::initializer_list<const char*> names) {
    std::vector<Column> c;
    for (const char* n : names) {
      Column col;
      col.name = n;
      col.type = "TEXT";
      c.push_back(col);
    }
    return c;
  };
  kexa::sql::Schema s;
  s.tables = {
      {"Addresses", cols({"address_id", "address_details"}), {}},
      {"Staff", cols({"staff_id", "staff_gender", "staff_name"}), {}},
      {"Suppliers", cols({"supplier_id", "supplier_name", "supplier_phone"}), {}},
      {"Department_Store_Chain", cols({"dept_store_chain_id", "dept_store_chain_name"}), {}},
      {"Customers", cols({"customer_id", "payment_method_code", "customer_code", "customer_name", "customer_address",
                          "customer_phone", "customer_email"}), {}},
      {"Products", cols({"product_id", "product_type_code", "product_name", "product_price"}), {}},
      {"Supplier_Addresses", cols({"supplier_id", "address_id", "date_from", "date_to"}),
       {{"supplier_id", "Suppliers", "supplier_id"}, {"address_id", "Addresses", "address_id"}}},
      {"Customer_Addresses", cols({"customer_id", "address_id", "date_from", "date_to"}),
       {{"customer_id", "Customers", "customer_id"}, {"address_id", "Addresses", "address_id"}}},
      {"Customer_Orders", cols({"order_id", "customer_id", "order_status_code", "order_date"}),
       {{"customer_id", "Customers", "customer_id"}}},
      {"Department_Stores", cols({"dept_store_id", "dept_store_chain_id", "store_name", "store_address", "store_phone",
                                  "store_email"}),
       {{"dept_store_chain_id", "Department_Store_Chain", "dept_store_chain_id"}}},
      {"Departments", cols({"department_id", "dept_store_id", "department_name"}),
       {{"dept_store_id", "Department_Stores", "dept_store_id"}}},
      {"Order_Items", cols({"order_item_id", "order_id", "product_id"}),
       {{"order_id", "Customer_Orders", "order_id"}, {"product_id", "Products", "product_id"}}},
      {"Product_Suppliers", cols({"product_id", "supplier_id", "date_supplied_from", "total_amount_purchased"}),
       {{"product_id", "Products", "product_id"}, {"supplier_id", "Suppliers", "supplier_id"}}},
      {"Staff_Department_Assignments", cols({"staff_id", "department_id", "date_assigned_from", "job_title_code"}),
       {{"staff_id", "Staff", "staff_id"}, {"department_id", "Departments", "department_id"}}}};
  s.tables[5].columns[2].samples = {"red jeans", "yellow topping"};
  return s;
}

bool has_table(const kexa::sql::LinkResult& r, const std::string& t) {
  return std::find(r.tables.begin(), r.tables.end(), t) != r.tables.end();
}

TEST(SqlKorean, LexiconReadsNounsOutOfEojeol) {
  auto en = [](const std::string& q) {
    auto w = kexa::sql::korean_english_words(q);
    return std::string(" ") + [&] {
      std::string j;
      for (auto& x : w) j += x + " ";
      return j;
    }();
  };
  EXPECT_NE(en("공급업체의 주소").find(" supplier "), std::string::npos);  // particle stripped, compound kept
  EXPECT_NE(en("공급업체의 주소").find(" address "), std::string::npos);
  EXPECT_NE(en("백화점 체인은").find(" department store "), std::string::npos);
  EXPECT_NE(en("고객 아이디와 이메일").find(" id "), std::string::npos);  // transliterations
  EXPECT_NE(en("고객 아이디와 이메일").find(" email "), std::string::npos);
  EXPECT_NE(en("등록일").find(" date "), std::string::npos);  // a one-syllable noun closing a compound
  EXPECT_EQ(en("가수는").find(" number "), std::string::npos);  // 가수 is a singer, not 가 + 수
  EXPECT_NE(en("백화점 수가").find(" number "), std::string::npos);
  EXPECT_EQ(en("강좌는 몇 개인가요").find(" dog "), std::string::npos);  // a counter after 몇
  EXPECT_EQ(en("3개").find(" dog "), std::string::npos);
  EXPECT_NE(en("개의 나이").find(" dog "), std::string::npos);
}

TEST(SqlKorean, KoreanQuestionsReachEnglishTables) {
  kexa::sql::Schema s = store_schema();
  auto supplied = kexa::sql::link_schema(s, "'red jeans' 제품을 공급한 공급업체는 어디인가요?");
  EXPECT_TRUE(has_table(supplied, "Suppliers"));
  EXPECT_TRUE(has_table(supplied, "Products"));
  EXPECT_TRUE(has_table(supplied, "Product_Suppliers"));
  auto addresses = kexa::sql::link_schema(s, "모든 공급업체의 주소를 보여 주세요.");
  EXPECT_TRUE(has_table(addresses, "Suppliers"));
  EXPECT_TRUE(has_table(addresses, "Addresses"));
  auto chains = kexa::sql::link_schema(s, "백화점 수가 가장 많은 백화점 체인은 어디인가요?");
  EXPECT_TRUE(has_table(chains, "Department_Store_Chain"));
  EXPECT_TRUE(has_table(chains, "Department_Stores"));
  EXPECT_LT(chains.tables.size(), s.tables.size() / 2);
  auto emails = kexa::sql::link_schema(s, "고객들의 이메일과 전화번호를 알려 주세요.");
  ASSERT_FALSE(emails.tables.empty());
  EXPECT_EQ(emails.tables[0], "Customers");
}

TEST(SqlKorean, EmbeddingSimilarityIsOneMoreSignal) {
  kexa::sql::Schema s = store_schema();
  // A stand-in embedder: the question "직무" (duty) and the assignment table share a direction
  // no lexicon word gives them.
  kexa::sql::LinkOptions lo;
  lo.embed = [](const std::string& text) {
    bool duty = text.find("직무") != std::string::npos || text.find("job_title_code") != std::string::npos;
    return std::vector<float>{duty ? 1.0f : 0.0f, 1.0f};
  };
  lo.embed_weight = 2.0;
  const std::string q = "직무 배정 내역";
  auto plain = kexa::sql::link_schema(s, q);
  auto embedded = kexa::sql::link_schema(s, q, lo);
  ASSERT_FALSE(embedded.tables.empty());
  EXPECT_EQ(embedded.tables[0], "Staff_Department_Assignments");
  // Without it no word of the question names that table.
  EXPECT_TRUE(plain.tables.empty() || plain.tables[0] != "Staff_Department_Assignments");
}

TEST(SqlGenerate, WholeSchemaWhenItFitsElseTheLinkersSelection) {
  kexa::sql::Schema s = store_schema();
  auto link = kexa::sql::link_schema(s, "모든 공급업체의 주소를 보여 주세요.");
  ASSERT_LT(link.tables.size(), s.tables.size());
  auto ranked = kexa::sql::ranked_tables(s, link);
  ASSERT_EQ(ranked.size(), s.tables.size());
  // The linker's selection first, in its order, then the rest by score.
  for (size_t i = 0; i < link.tables.size(); ++i) EXPECT_EQ(ranked[i], link.tables[i]);
  for (size_t i = link.tables.size() + 1; i < ranked.size(); ++i)
    EXPECT_GE(link.scores[static_cast<size_t>(s.find(ranked[i - 1]))], link.scores[static_cast<size_t>(s.find(ranked[i]))]);
  const int64_t whole = static_cast<int64_t>(kexa::sql::schema_prompt_text(s, ranked).size() / 3);
  EXPECT_EQ(kexa::sql::prompt_tables(s, link, whole, nullptr), ranked);       // fits: all, by relevance
  EXPECT_EQ(kexa::sql::prompt_tables(s, link, whole - 1, nullptr), link.tables);  // does not: pruned
}

TEST_F(SqlTest, QuestionValuesAreLookedUpInTheRows) {
  kexa::sql::SqliteExecutor ex(path_);
  auto spans = kexa::sql::question_value_spans("'Week 1' 콘서트에 Korea 출신 가수가 있나요?");
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0], "Week 1");
  EXPECT_EQ(spans[2], "Korea");
  auto en = kexa::sql::question_value_spans("Which singers from New Zealand sang?");
  ASSERT_EQ(en.size(), 1u);
  EXPECT_EQ(en[0], "New Zealand");
  auto s = ex.schema(1);  // one sample a column: 'Auditions', 'France'
  kexa::sql::add_question_values(ex, s, "'week 1' 콘서트에 Korea 출신 가수가 있나요?");
  const auto& concert = s.tables[static_cast<size_t>(s.find("concert"))];
  EXPECT_NE(std::find(concert.columns[1].samples.begin(), concert.columns[1].samples.end(), "Week 1"),
            concert.columns[1].samples.end());
  const auto& singer = s.tables[static_cast<size_t>(s.find("singer"))];
  EXPECT_NE(std::find(singer.columns[2].samples.begin(), singer.columns[2].samples.end(), "Korea"),
            singer.columns[2].samples.end());
}

}  // namespace
