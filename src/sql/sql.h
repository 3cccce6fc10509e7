// Database side of text-to-SQL: a read-only executor for SQLite that refuses anything but one
// SELECT/WITH statement, schema introspection, and model-free schema linking for a question.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.h"

struct sqlite3;

namespace kexa::sql {

// A statement the executor will not run. reason is a short stable name (e.g. "not_read_only",
// "multiple_statements", "denied_action", "timeout") so scripts can tell refusals apart.
class Refused : public Error {
 public:
  Refused(std::string reason, const std::string& detail)
      : Error("sql refused (" + reason + "): " + detail), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

struct Limits {
  size_t max_rows = 1000;
  int timeout_ms = 5000;
};

struct Result {
  std::vector<std::string> columns;
  std::vector<std::vector<nlohmann::json>> rows;  // null, integer, real, text, or {"blob_hex": ...}
  bool truncated = false;                         // more rows existed than max_rows
  nlohmann::json to_json() const;
};

struct Column {
  std::string name;
  std::string type;
  bool primary_key = false;
  std::vector<std::string> samples;  // a few distinct non-null values, as text
  // Words that say what the column holds when the database has them (PostgreSQL COMMENT ON,
  // Spider/BIRD natural-language names); used by schema linking and prompts. Empty if none.
  std::string description = {};
};

struct ForeignKey {
  std::string column;
  std::string ref_table;
  std::string ref_column;
};

struct Table {
  std::string name;
  std::vector<Column> columns;
  std::vector<ForeignKey> foreign_keys;
  std::string description = {};  // as Column::description
};

struct Schema {
  std::vector<Table> tables;
  int find(const std::string& table_name) const;  // case-insensitive; -1 when absent
  nlohmann::json to_json() const;
};

// What both backends offer; open_database() picks one from a URL. Every method refuses anything
// but one read-only query with a Refused naming the reason. An executor owns its connection and
// is not copied.
class Executor {
 public:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;
  virtual Result execute(const std::string& sql, const Limits& limits = {}) = 0;
  // Checks with the database itself (prepare, plan) without running: throws Refused.
  virtual void validate(const std::string& sql) = 0;
  // The query plan of a validated statement, one line per plan row (a dry run).
  virtual std::vector<std::string> explain(const std::string& sql) = 0;
  virtual Schema schema(size_t samples_per_column = 3) = 0;
  // "sqlite" or "postgresql": which SQL dialect a generator should write.
  virtual std::string dialect() const = 0;
};

// "sqlite:PATH" or a bare path opens SqliteExecutor; "postgresql://..." / "postgres://..."
// opens PostgresExecutor.
std::unique_ptr<Executor> open_database(const std::string& url);
bool is_postgres_url(const std::string& url);

// One read-only connection. Every statement passes: single statement (only whitespace, comments
// and semicolons may follow), prepare with an authorizer that admits reads and allow-listed
// functions only, sqlite3_stmt_readonly, then a row cap and a wall-clock deadline.
class SqliteExecutor : public Executor {
 public:
  explicit SqliteExecutor(const std::string& path);
  ~SqliteExecutor();

  Result execute(const std::string& sql, const Limits& limits = {}) override;
  // Prepares and checks without running: throws Refused or a prepare error.
  void validate(const std::string& sql) override;
  // EXPLAIN QUERY PLAN of a validated statement, one line per plan row (a dry run).
  std::vector<std::string> explain(const std::string& sql) override;
  Schema schema(size_t samples_per_column = 3) override;
  std::string dialect() const override { return "sqlite"; }

  // State the authorizer reads; public only so the C callback can reach it.
  struct Guard {
    bool introspecting = false;
    std::string denied;  // what the authorizer last refused, for the error message
    std::chrono::steady_clock::time_point deadline{};
    bool timed_out = false;
  };

 private:
  struct Stmt;
  std::unique_ptr<Stmt> prepare_checked(const std::string& sql);
  sqlite3* db_ = nullptr;
  std::string path_;
  Guard guard_;
};

// A PostgreSQL connection used read-only. Every statement: lexical checks (first word SELECT,
// WITH, VALUES or TABLE; no call of a denied function such as pg_sleep, pg_read_file, lo_*,
// dblink*, set_config, query_to_xml), then inside a READ ONLY transaction with
// statement_timeout and lock_timeout: PQprepare (the extended protocol refuses a second
// statement), a plan check (no ModifyTable or LockRows node, no denied function in the verbose
// plan), execution in single-row mode with a row cap and a byte cap, and ROLLBACK. Refusal
// reasons: not_a_query, multiple_statements, denied_function, not_read_only, write_in_cte,
// system_catalog, timeout, invalid_sql, denied_action (privileges), resource_limit.
class PostgresExecutor : public Executor {
 public:
  // url: postgresql://user:pass@host:port/db?... or postgres://...; a unix socket directory
  // goes in ?host=/path. Connects and sets the session read-only.
  explicit PostgresExecutor(const std::string& url);
  ~PostgresExecutor() override;

  Result execute(const std::string& sql, const Limits& limits = {}) override;
  void validate(const std::string& sql) override;
  std::vector<std::string> explain(const std::string& sql) override;
  // Tables and views of every non-system schema the user may read; tables outside "public"
  // are named schema.table.
  Schema schema(size_t samples_per_column = 3) override;
  std::string dialect() const override { return "postgresql"; }

  struct Conn;  // libpq connection, kept out of this header

 private:
  std::unique_ptr<Conn> conn_;
};

// The lexical part of the PostgreSQL checks (no connection needed), exposed for tests: throws
// Refused for a statement that is not a query or calls a denied function.
void postgres_precheck(const std::string& sql);

// Parses "sqlite:PATH" (or a bare path). Other schemes are refused with a named error.
std::string sqlite_path_from_url(const std::string& url);

// Schema linking without a model.
struct LinkResult {
  std::vector<std::string> tables;  // selected, most relevant first
  std::vector<double> scores;       // score of every table in schema order
};
struct LinkOptions {
  // Chosen on Spider dev + BIRD dev as the best recall with at most half the tables selected
  // on average (bench/schema-linking); lower values trade table share for recall.
  double keep_ratio = 0.75;       // keep tables scoring at least this share of the best one
  double neighbour_ratio = 0.45;  // and foreign-key neighbours of kept tables above this share
  // Schemas with more than size_ref tables scale both ratios by (size_ref / n)^size_exponent:
  // one more table costs less of a large schema, so weaker candidates are kept there.
  double size_ref = 5.0;
  double size_exponent = 0.5;
  // Optional semantic signal: a text embedding (e.g. runtime/embedder.h TextEmbedder::embed).
  // When set, every table gains embed_weight x its cosine similarity with the question (when
  // positive) x the best lexical score (at least 1): text of the table is its name, description
  // and column names and descriptions. Called once for the question and once per table.
  std::function<std::vector<float>(const std::string&)> embed = {};
  double embed_weight = 0.5;
};
LinkResult link_schema(const Schema& schema, const std::string& question, const LinkOptions& opt = {});

// Spans of `question` that may be values stored in the database: quoted text, runs of Latin words
// in a Hangul question, runs of capitalised words after the first word of an English one.
std::vector<std::string> question_value_spans(const std::string& question);
// Looks the question's value spans up in every text column (case-insensitively, ignoring
// surrounding spaces; at most `max_columns` columns, each a read-only query through `db` capped at
// 100 ms, all of them at one second) and appends the values found to that column's samples, so that linking and the
// prompt see them.
void add_question_values(Executor& db, Schema& schema, const std::string& question, size_t max_columns = 400);

// Tables named after FROM/JOIN in a SQL text, matched case-insensitively against the schema.
std::vector<std::string> tables_in_sql(const Schema& schema, const std::string& sql);

// Loads Spider/BIRD tables.json entries (no sample values) keyed by db_id order.
std::vector<std::pair<std::string, Schema>> schemas_from_spider_json(const nlohmann::json& tables);

}  // namespace kexa::sql
