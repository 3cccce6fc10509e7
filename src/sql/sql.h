// Database side of text-to-SQL: a read-only executor for SQLite that refuses anything but one
// SELECT/WITH statement, schema introspection, and model-free schema linking for a question.
#pragma once

#include <chrono>
#include <cstddef>
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
};

struct Schema {
  std::vector<Table> tables;
  int find(const std::string& table_name) const;  // case-insensitive; -1 when absent
  nlohmann::json to_json() const;
};

// One read-only connection. Every statement passes: single statement (only whitespace, comments
// and semicolons may follow), prepare with an authorizer that admits reads and allow-listed
// functions only, sqlite3_stmt_readonly, then a row cap and a wall-clock deadline.
class SqliteExecutor {
 public:
  explicit SqliteExecutor(const std::string& path);
  ~SqliteExecutor();
  SqliteExecutor(const SqliteExecutor&) = delete;
  SqliteExecutor& operator=(const SqliteExecutor&) = delete;

  Result execute(const std::string& sql, const Limits& limits = {});
  // Prepares and checks without running: throws Refused or a prepare error.
  void validate(const std::string& sql);
  // EXPLAIN QUERY PLAN of a validated statement, one line per plan row (a dry run).
  std::vector<std::string> explain(const std::string& sql);
  Schema schema(size_t samples_per_column = 3);

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
  double keep_ratio = 0.4;        // keep tables scoring at least this share of the best one
  double neighbour_ratio = 0.35;  // and foreign-key neighbours of kept tables above this share
};
LinkResult link_schema(const Schema& schema, const std::string& question, const LinkOptions& opt = {});

// Tables named after FROM/JOIN in a SQL text, matched case-insensitively against the schema.
std::vector<std::string> tables_in_sql(const Schema& schema, const std::string& sql);

// Loads Spider/BIRD tables.json entries (no sample values) keyed by db_id order.
std::vector<std::pair<std::string, Schema>> schemas_from_spider_json(const nlohmann::json& tables);

}  // namespace kexa::sql
