#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>
#include <string_view>

#include "sql/sql.h"

namespace kexa::sql {
namespace {

// Functions a query may call. Everything else (load_extension, fts3_tokenizer, randomblob and
// zeroblob that allocate at will, anything an extension might register) is denied.
const std::set<std::string, std::less<>>& safe_functions() {
  static const std::set<std::string, std::less<>> names = {
      "abs", "avg", "cast", "char", "coalesce", "count", "date", "datetime", "group_concat",
      "hex", "ifnull", "iif", "instr", "julianday", "length", "like", "glob", "lower", "ltrim",
      "max", "min", "nullif", "printf", "format", "quote", "replace", "round", "rtrim", "sign",
      "strftime", "substr", "substring", "sum", "time", "total", "trim", "typeof", "unicode",
      "unixepoch", "upper", "string_agg", "row_number", "rank", "dense_rank", "percent_rank",
      "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value", "json",
      "json_array", "json_array_length", "json_extract", "json_object", "json_type",
      "json_valid", "json_group_array", "json_group_object", "json_quote", "acos", "asin",
      "atan", "atan2", "ceil", "ceiling", "cos", "degrees", "exp", "floor", "ln", "log",
      "log10", "log2", "mod", "pi", "pow", "power", "radians", "sin", "sqrt", "tan", "trunc",
      "likely", "unlikely", "likelihood", "regexp", "random"};
  return names;
}

// Read-only pragmas used by schema() itself; user statements never get PRAGMA at all.
bool introspection_pragma(const char* name) {
  if (!name) return false;
  std::string_view n = name;
  return n == "table_info" || n == "foreign_key_list" || n == "table_xinfo";
}

const char* action_name(int code) {
  switch (code) {
    case SQLITE_INSERT: return "INSERT";
    case SQLITE_UPDATE: return "UPDATE";
    case SQLITE_DELETE: return "DELETE";
    case SQLITE_PRAGMA: return "PRAGMA";
    case SQLITE_ATTACH: return "ATTACH";
    case SQLITE_DETACH: return "DETACH";
    case SQLITE_TRANSACTION: return "transaction";
    case SQLITE_SAVEPOINT: return "SAVEPOINT";
    case SQLITE_ALTER_TABLE: return "ALTER TABLE";
    case SQLITE_ANALYZE: return "ANALYZE";
    case SQLITE_REINDEX: return "REINDEX";
    case SQLITE_FUNCTION: return "function";
    case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TEMP_TABLE: return "CREATE TABLE";
    case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TEMP_INDEX: return "CREATE INDEX";
    case SQLITE_CREATE_TRIGGER: case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TRIGGER";
    case SQLITE_CREATE_VIEW: case SQLITE_CREATE_TEMP_VIEW: return "CREATE VIEW";
    case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
    case SQLITE_DROP_TABLE: case SQLITE_DROP_TEMP_TABLE: return "DROP TABLE";
    case SQLITE_DROP_INDEX: case SQLITE_DROP_TEMP_INDEX: return "DROP INDEX";
    case SQLITE_DROP_TRIGGER: case SQLITE_DROP_TEMP_TRIGGER: return "DROP TRIGGER";
    case SQLITE_DROP_VIEW: case SQLITE_DROP_TEMP_VIEW: return "DROP VIEW";
    case SQLITE_DROP_VTABLE: return "DROP VIRTUAL TABLE";
    case SQLITE_COPY: return "COPY";
    default: return "action";
  }
}

int authorize(void* user, int code, const char* a1, const char* a2, const char*, const char*) {
  auto* g = static_cast<SqliteExecutor::Guard*>(user);
  switch (code) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_FUNCTION: {
      std::string name = a2 ? a2 : "";
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (safe_functions().count(name)) return SQLITE_OK;
      if (g->denied.empty()) g->denied = "function " + name + "()";
      return SQLITE_DENY;
    }
    case SQLITE_PRAGMA:
      if (g->introspecting && introspection_pragma(a1)) return SQLITE_OK;
      if (g->denied.empty()) g->denied = std::string("PRAGMA ") + (a1 ? a1 : "");
      return SQLITE_DENY;
    default:
      // Name what the statement asked for (DROP TABLE x), not the sqlite_master update it
      // implies, whichever the authorizer is asked about first.
      if (g->denied.empty() || g->denied.find("sqlite_") != std::string::npos) {
        g->denied = action_name(code);
        if (a1 && code != SQLITE_TRANSACTION) g->denied += std::string(" ") + a1;
      }
      return SQLITE_DENY;
  }
}

int progress(void* user) {
  auto* g = static_cast<SqliteExecutor::Guard*>(user);
  if (g->deadline != std::chrono::steady_clock::time_point{} &&
      std::chrono::steady_clock::now() > g->deadline) {
    g->timed_out = true;
    return 1;
  }
  return 0;
}

// Skips whitespace, comments and empty statements; returns where real text starts.
const char* skip_blank(const char* p) {
  while (*p) {
    if (std::isspace(static_cast<unsigned char>(*p)) || *p == ';') {
      ++p;
    } else if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n') ++p;
    } else if (p[0] == '/' && p[1] == '*') {
      const char* end = std::strstr(p + 2, "*/");
      if (!end) return p + std::strlen(p);  // an unterminated comment runs to the end
      p = end + 2;
    } else {
      break;
    }
  }
  return p;
}

// After the first statement only whitespace, comments and empty statements may remain: a
// comment can end early ("/* */ DROP ..."), so the tail is scanned, not trusted.
bool tail_is_empty(const char* p) { return *skip_blank(p) == 0; }

std::string uri_escape(const std::string& path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

nlohmann::json column_value(sqlite3_stmt* s, int i) {
  switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: return sqlite3_column_int64(s, i);
    case SQLITE_FLOAT: return sqlite3_column_double(s, i);
    case SQLITE_TEXT: {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
      return std::string(t, static_cast<size_t>(sqlite3_column_bytes(s, i)));
    }
    case SQLITE_BLOB: {
      const auto* b = static_cast<const unsigned char*>(sqlite3_column_blob(s, i));
      int n = sqlite3_column_bytes(s, i);
      static const char* hex = "0123456789abcdef";
      std::string h;
      for (int k = 0; k < n; ++k) {
        h += hex[b[k] >> 4];
        h += hex[b[k] & 15];
      }
      return nlohmann::json{{"blob_hex", h}};
    }
    default: return nullptr;
  }
}

}  // namespace

struct SqliteExecutor::Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

SqliteExecutor::SqliteExecutor(const std::string& path) : path_(path) {
  // mode=ro plus SQLITE_OPEN_READONLY: the file cannot be written even if every check above
  // the pager failed. No SQLITE_OPEN_CREATE, so a missing file is an error, not a new database.
  std::string uri = "file:" + uri_escape(path) + "?mode=ro";
  int rc = sqlite3_open_v2(uri.c_str(), &db_,
                           SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    fail("sql: cannot open SQLite database ", path, " read-only: ", msg);
  }
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db_, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
  sqlite3_limit(db_, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, 16 << 20);
  sqlite3_limit(db_, SQLITE_LIMIT_SQL_LENGTH, 1 << 20);
  sqlite3_set_authorizer(db_, authorize, &guard_);
  sqlite3_progress_handler(db_, 1000, progress, &guard_);
  // A probe read: a file that is not a database fails here, by name, not on the first query.
  try {
    schema(0);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteExecutor::~SqliteExecutor() { sqlite3_close(db_); }

std::unique_ptr<SqliteExecutor::Stmt> SqliteExecutor::prepare_checked(const std::string& sql) {
  auto st = std::make_unique<Stmt>();
  guard_.denied.clear();
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()) + 1, &st->s, &tail);
  if (rc == SQLITE_AUTH || !guard_.denied.empty()) {
    throw Refused("denied_action", guard_.denied.empty() ? sqlite3_errmsg(db_) : guard_.denied);
  }
  if (rc != SQLITE_OK) throw Refused("invalid_sql", sqlite3_errmsg(db_));
  if (!st->s) throw Refused("empty_statement", "no SQL statement given");
  if (tail && !tail_is_empty(tail)) {
    throw Refused("multiple_statements", "only one statement may be run; found more after: " +
                                             std::string(tail).substr(0, 60));
  }
  if (!sqlite3_stmt_readonly(st->s)) {
    throw Refused("not_read_only", "the statement would write to the database");
  }
  if (sqlite3_stmt_isexplain(st->s) == 0) {
    std::string_view head = skip_blank(sqlite3_sql(st->s));
    while (!head.empty() && head[0] == '(') head = skip_blank(head.data() + 1);
    std::string word;
    for (char c : head.substr(0, 8)) word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (word.rfind("SELECT", 0) != 0 && word.rfind("WITH", 0) != 0 && word.rfind("VALUES", 0) != 0) {
      throw Refused("not_a_query", "only SELECT, WITH or VALUES statements are run");
    }
  }
  return st;
}

void SqliteExecutor::validate(const std::string& sql) { prepare_checked(sql); }

std::vector<std::string> SqliteExecutor::explain(const std::string& sql) {
  prepare_checked(sql);
  std::string q = "EXPLAIN QUERY PLAN " + sql;
  auto st = prepare_checked(q);
  std::vector<std::string> out;
  while (sqlite3_step(st->s) == SQLITE_ROW) {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st->s, 3));
    out.push_back(t ? t : "");
  }
  return out;
}

Result SqliteExecutor::execute(const std::string& sql, const Limits& limits) {
  auto st = prepare_checked(sql);
  Result r;
  int n = sqlite3_column_count(st->s);
  for (int i = 0; i < n; ++i) {
    const char* name = sqlite3_column_name(st->s, i);
    r.columns.push_back(name ? name : "");
  }
  guard_.timed_out = false;
  guard_.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits.timeout_ms);
  struct ClearDeadline {
    Guard& g;
    ~ClearDeadline() { g.deadline = {}; }
  } clear{guard_};
  for (;;) {
    int rc = sqlite3_step(st->s);
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_ROW) {
      if (r.rows.size() >= limits.max_rows) {
        r.truncated = true;
        break;
      }
      std::vector<nlohmann::json> row;
      row.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) row.push_back(column_value(st->s, i));
      r.rows.push_back(std::move(row));
      continue;
    }
    if (guard_.timed_out || rc == SQLITE_INTERRUPT) {
      throw Refused("timeout", "the statement ran longer than " + std::to_string(limits.timeout_ms) + " ms");
    }
    if (rc == SQLITE_AUTH) throw Refused("denied_action", guard_.denied);
    fail("sql: execution failed: ", sqlite3_errmsg(db_));
  }
  return r;
}

Schema SqliteExecutor::schema(size_t samples_per_column) {
  guard_.introspecting = true;
  struct Reset {
    Guard& g;
    ~Reset() { g.introspecting = false; }
  } reset{guard_};
  auto run = [&](const std::string& q) {
    auto st = std::make_unique<Stmt>();
    if (sqlite3_prepare_v2(db_, q.c_str(), -1, &st->s, nullptr) != SQLITE_OK) {
      fail("sql: reading the schema of ", path_, " failed: ", sqlite3_errmsg(db_));
    }
    return st;
  };
  auto quote = [](const std::string& name) {
    std::string q = "\"";
    for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  auto text = [](sqlite3_stmt* s, int i) {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
    return std::string(t ? t : "");
  };
  Schema out;
  {
    auto st = run("SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%' ORDER BY rowid");
    int rc;
    while ((rc = sqlite3_step(st->s)) == SQLITE_ROW) out.tables.push_back({text(st->s, 0), {}, {}});
    if (rc != SQLITE_DONE) fail("sql: ", path_, " is not a readable SQLite database: ", sqlite3_errmsg(db_));
  }
  for (Table& t : out.tables) {
    auto ci = run("PRAGMA table_info(" + quote(t.name) + ")");
    while (sqlite3_step(ci->s) == SQLITE_ROW) {
      t.columns.push_back({text(ci->s, 1), text(ci->s, 2), sqlite3_column_int(ci->s, 5) > 0, {}});
    }
    auto fk = run("PRAGMA foreign_key_list(" + quote(t.name) + ")");
    while (sqlite3_step(fk->s) == SQLITE_ROW) {
      t.foreign_keys.push_back({text(fk->s, 3), text(fk->s, 2), text(fk->s, 4)});
    }
    if (samples_per_column == 0) continue;
    for (Column& c : t.columns) {
      auto sv = run("SELECT DISTINCT " + quote(c.name) + " FROM " + quote(t.name) + " WHERE " +
                    quote(c.name) + " IS NOT NULL LIMIT " + std::to_string(samples_per_column));
      while (sqlite3_step(sv->s) == SQLITE_ROW) {
        std::string v = text(sv->s, 0);
        if (v.size() > 80) v.resize(80);
        c.samples.push_back(v);
      }
    }
  }
  return out;
}

std::string sqlite_path_from_url(const std::string& url) {
  if (url.rfind("sqlite:", 0) == 0) {
    std::string p = url.substr(7);
    if (p.rfind("//", 0) == 0) p = p.substr(2);
    if (p.empty()) fail("sql: --db sqlite: needs a file path (sqlite:PATH)");
    return p;
  }
  if (is_postgres_url(url)) {
    fail("sql: ", url.substr(0, url.find(':')), ": is a PostgreSQL URL, not a SQLite path (use open_database)");
  }
  if (url.find("://") != std::string::npos) fail("sql: unknown database URL scheme in ", url);
  return url;
}

bool is_postgres_url(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

std::unique_ptr<Executor> open_database(const std::string& url) {
  if (is_postgres_url(url)) return std::make_unique<PostgresExecutor>(url);
  return std::make_unique<SqliteExecutor>(sqlite_path_from_url(url));
}

nlohmann::json Result::to_json() const {
  nlohmann::json rs = nlohmann::json::array();
  for (const auto& row : rows) rs.push_back(row);
  return {{"columns", columns}, {"rows", rs}, {"truncated", truncated}};
}

int Schema::find(const std::string& name) const {
  for (size_t i = 0; i < tables.size(); ++i) {
    const std::string& t = tables[i].name;
    if (t.size() == name.size() &&
        std::equal(t.begin(), t.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

nlohmann::json Schema::to_json() const {
  nlohmann::json ts = nlohmann::json::array();
  for (const Table& t : tables) {
    nlohmann::json cols = nlohmann::json::array();
    for (const Column& c : t.columns) {
      cols.push_back({{"name", c.name}, {"type", c.type}, {"primary_key", c.primary_key}, {"samples", c.samples}});
      if (!c.description.empty()) cols.back()["description"] = c.description;
    }
    nlohmann::json fks = nlohmann::json::array();
    for (const ForeignKey& f : t.foreign_keys) {
      fks.push_back({{"column", f.column}, {"ref_table", f.ref_table}, {"ref_column", f.ref_column}});
    }
    ts.push_back({{"name", t.name}, {"columns", cols}, {"foreign_keys", fks}});
    if (!t.description.empty()) ts.back()["description"] = t.description;
  }
  return {{"tables", ts}};
}

}  // namespace kexa::sql
