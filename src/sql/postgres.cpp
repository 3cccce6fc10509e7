// PostgreSQL backend of the safe executor. The database enforces read-only itself (READ ONLY
// transaction, always rolled back); the checks in front of it give named reasons and stop what
// a read-only transaction still allows: sleeping, reading server files, large objects, dblink,
// changing settings, running SQL text through query_to_xml, taking advisory locks.
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include "sql/sql.h"

namespace kexa::sql {
namespace {

constexpr size_t kMaxResultBytes = 32u << 20;  // text of all returned values together

std::string lower(std::string_view s) {
  std::string o(s);
  std::transform(o.begin(), o.end(), o.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return o;
}

bool ident_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || c == '$' || u >= 0x80;
}

// Skips whitespace and comments; PostgreSQL block comments nest.
size_t skip_blank(std::string_view s, size_t i, bool semicolons = false) {
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c)) || (semicolons && c == ';')) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      int depth = 1;
      i += 2;
      while (i < s.size() && depth > 0) {
        if (s[i] == '/' && i + 1 < s.size() && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
    } else {
      break;
    }
  }
  return i;
}

// Functions a read-only transaction still lets run but a query from a model must not call.
// Names are matched without schema ("pg_catalog.pg_sleep" is "pg_sleep").
bool denied_function(const std::string& name) {
  static const char* prefixes[] = {"pg_", "lo_", "dblink", "txid_", "binary_upgrade_", "brin_",
                                   "gin_clean", "query_to_xml", "cursor_to_xml", "table_to_xml",
                                   "schema_to_xml", "database_to_xml", "xact_"};
  static const std::set<std::string, std::less<>> names = {
      "set_config", "current_setting", "nextval", "setval", "currval", "lastval", "loread",
      "lowrite", "dblink", "version", "inet_server_addr", "inet_server_port", "current_user",
      "session_user", "has_table_privilege", "ts_stat", "ts_debug", "xpath_table",
      "plpgsql_call_handler", "plpgsql_inline_handler"};
  if (name == "pg_typeof") return false;
  for (const char* p : prefixes) {
    if (name.rfind(p, 0) == 0) return true;
  }
  return names.count(name) > 0;
}

// Every identifier followed by "(" (across whitespace, comments and the quotes of a quoted
// identifier) is taken as a function call. Strings are not skipped on purpose: a denied name
// inside a literal is a false refusal, never a missed call.
std::string first_denied_call(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (!ident_char(s[i]) || (i > 0 && ident_char(s[i - 1]))) {
      ++i;
      continue;
    }
    size_t b = i;
    while (i < s.size() && ident_char(s[i])) ++i;
    std::string word = lower(s.substr(b, i - b));
    size_t j = i;
    for (;;) {
      size_t k = skip_blank(s, j);
      while (k < s.size() && s[k] == '"') ++k;
      if (k == j) break;
      j = k;
    }
    if (j < s.size() && s[j] == '(' && denied_function(word)) return word;
  }
  return {};
}

// The first keyword of the statement, past blanks and opening parentheses.
std::string first_word(std::string_view s) {
  size_t i = skip_blank(s, 0, true);
  while (i < s.size() && s[i] == '(') i = skip_blank(s, i + 1);
  size_t b = i;
  while (i < s.size() && (std::isalpha(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
  return lower(s.substr(b, i - b));
}

std::string sqlstate(const PGresult* r) {
  const char* s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  return s ? s : "";
}

std::string trimmed_error(const char* msg) {
  std::string m = msg ? msg : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  if (m.rfind("ERROR:  ", 0) == 0) m = m.substr(8);
  return m;
}

// Maps a server error to a named refusal.
[[noreturn]] void throw_pg_error(const PGresult* r, PGconn* c, const char* during) {
  std::string state = sqlstate(r);
  std::string msg = trimmed_error(r ? PQresultErrorMessage(r) : PQerrorMessage(c));
  if (msg.empty()) msg = trimmed_error(PQerrorMessage(c));
  if (state == "42601" && msg.find("multiple commands") != std::string::npos) {
    throw Refused("multiple_statements", msg);
  }
  if (state == "25006") throw Refused("not_read_only", msg);
  if (state == "57014" || state == "55P03") throw Refused("timeout", msg);
  if (state == "42501") throw Refused("denied_action", msg);
  if (state.rfind("53", 0) == 0 || state.rfind("54", 0) == 0) throw Refused("resource_limit", msg);
  if (state.rfind("42", 0) == 0 || state.rfind("22", 0) == 0 || state == "0A000" ||
      state.rfind("2F", 0) == 0 || state.rfind("39", 0) == 0) {
    throw Refused("invalid_sql", msg);
  }
  if (state.empty() && PQstatus(c) != CONNECTION_OK) fail("sql: PostgreSQL connection lost ", during, ": ", msg);
  fail("sql: PostgreSQL error ", during, " (SQLSTATE ", state.empty() ? "?" : state, "): ", msg);
}

struct Res {
  PGresult* r = nullptr;
  explicit Res(PGresult* p) : r(p) {}
  ~Res() { PQclear(r); }
  Res(Res&& o) noexcept : r(o.r) { o.r = nullptr; }
  Res(const Res&) = delete;
  Res& operator=(const Res&) = delete;
  Res& operator=(Res&&) = delete;
};

nlohmann::json pg_value(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return nullptr;
  std::string v(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
  switch (PQftype(r, col)) {
    case 16: return v == "t";  // bool
    case 20: case 21: case 23: case 26:  // int8, int2, int4, oid
      try {
        return std::stoll(v);
      } catch (...) {
        return v;
      }
    case 700: case 701: case 1700: {  // float4, float8, numeric
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end || !std::isfinite(d)) return v;
      // A numeric without a fraction is an integer (count(*) over numeric, sum of int8).
      if (PQftype(r, col) == 1700 && v.find_first_of(".eE") == std::string::npos && std::fabs(d) < 9e15) {
        return static_cast<long long>(d);
      }
      return d;
    }
    case 17:  // bytea, hex output "\x..."
      return nlohmann::json{{"blob_hex", v.rfind("\\x", 0) == 0 ? v.substr(2) : v}};
    default: return v;
  }
}

}  // namespace

void postgres_precheck(const std::string& sql) {
  std::string w = first_word(sql);
  if (w.empty()) {
    if (skip_blank(sql, 0, true) >= sql.size()) throw Refused("empty_statement", "no SQL statement given");
    throw Refused("not_a_query", "only SELECT, WITH, VALUES or TABLE statements are run");
  }
  if (w != "select" && w != "with" && w != "values" && w != "table") {
    throw Refused("not_a_query", "only SELECT, WITH, VALUES or TABLE statements are run, not " + w);
  }
  // U&"..." identifiers can spell any name with escapes; a query has no need for them.
  std::string l = lower(sql);
  for (size_t p = l.find("u&"); p != std::string::npos; p = l.find("u&", p + 2)) {
    size_t q = skip_blank(l, p + 2);
    if (q < l.size() && (l[q] == '"' || l[q] == '\'')) throw Refused("denied_function", "U& escaped identifiers and strings are not allowed");
  }
  if (std::string f = first_denied_call(sql); !f.empty()) {
    throw Refused("denied_function", "function " + f + "() may not be called");
  }
}

struct PostgresExecutor::Conn {
  PGconn* c = nullptr;
  ~Conn() { PQfinish(c); }

  Res exec(const std::string& q, const char* during) {
    Res r(PQexecParams(c, q.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0));
    ExecStatusType st = PQresultStatus(r.r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw_pg_error(r.r, c, during);
    return r;
  }

  // Sends a cancel and reads what is left, so the connection can take the ROLLBACK.
  void cancel_and_drain() {
    if (PGcancel* k = PQgetCancel(c)) {
      char buf[256];
      PQcancel(k, buf, sizeof buf);
      PQfreeCancel(k);
    }
    while (PGresult* r = PQgetResult(c)) PQclear(r);
  }

  // Waits for the next result until the deadline; a server that does not answer in time is
  // cancelled (statement_timeout normally fires first).
  PGresult* next_result(std::chrono::steady_clock::time_point deadline, bool& expired) {
    while (PQisBusy(c)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) {
        expired = true;
        cancel_and_drain();
        return nullptr;
      }
      pollfd p{PQsocket(c), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
      if (!PQconsumeInput(c)) return nullptr;
    }
    return PQgetResult(c);
  }
};

namespace {

// A READ ONLY transaction that is always rolled back, whatever happened inside.
class ReadOnlyTxn {
 public:
  ReadOnlyTxn(PostgresExecutor::Conn& c, int timeout_ms) : c_(c) {
    int t = std::max(1, timeout_ms);
    c_.exec("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting a read-only transaction");
    c_.exec("SET LOCAL statement_timeout = " + std::to_string(t), "setting statement_timeout");
    c_.exec("SET LOCAL lock_timeout = " + std::to_string(t), "setting lock_timeout");
    c_.exec("SET LOCAL idle_in_transaction_session_timeout = " + std::to_string(t + 60000), "setting idle timeout");
  }
  ~ReadOnlyTxn() {
    if (PQisBusy(c_.c)) c_.cancel_and_drain();
    while (PGresult* r = PQgetResult(c_.c)) PQclear(r);
    PQclear(PQexec(c_.c, "ROLLBACK"));
  }
  ReadOnlyTxn(const ReadOnlyTxn&) = delete;
  ReadOnlyTxn& operator=(const ReadOnlyTxn&) = delete;

 private:
  PostgresExecutor::Conn& c_;
};

// Walks an EXPLAIN (VERBOSE, FORMAT JSON) plan: writes and row locks are refused, and every
// expression text is scanned for denied function calls (catches what the lexical scan of the
// statement text could miss).
void check_plan(const nlohmann::json& node, bool is_with) {
  if (node.is_object()) {
    if (auto it = node.find("Node Type"); it != node.end() && it->is_string()) {
      const std::string& t = it->get_ref<const std::string&>();
      if (t == "ModifyTable") {
        if (is_with) throw Refused("write_in_cte", "a WITH clause of the statement writes to the database");
        throw Refused("not_read_only", "the statement would write to the database");
      }
      if (t == "LockRows") throw Refused("not_read_only", "the statement locks rows (FOR UPDATE/SHARE)");
    }
    // System catalogs hold what a question never needs (pg_authid's password hashes, settings,
    // other databases' names); schema() reads them on the executor's own behalf.
    if (auto rel = node.find("Relation Name"); rel != node.end()) {
      auto sch = node.find("Schema");
      std::string ns = sch != node.end() && sch->is_string() ? sch->get<std::string>() : "";
      if (ns == "pg_catalog" || ns == "information_schema" || ns.rfind("pg_toast", 0) == 0) {
        throw Refused("system_catalog", "the statement reads " + ns + "." + rel->get<std::string>());
      }
    }
    if (auto it = node.find("Function Name"); it != node.end() && it->is_string() &&
                                              denied_function(lower(it->get<std::string>()))) {
      throw Refused("denied_function", "function " + it->get<std::string>() + "() may not be called");
    }
    for (auto& [k, v] : node.items()) check_plan(v, is_with);
  } else if (node.is_array()) {
    for (auto& v : node) check_plan(v, is_with);
  } else if (node.is_string()) {
    if (std::string f = first_denied_call(node.get_ref<const std::string&>()); !f.empty()) {
      throw Refused("denied_function", "function " + f + "() may not be called (found in the query plan)");
    }
  }
}

// Parses, describes and plans the statement inside an open read-only transaction; on success the
// unnamed prepared statement holds it. Returns the column names.
std::vector<std::string> prepare_checked(PostgresExecutor::Conn& c, const std::string& sql) {
  postgres_precheck(sql);
  {
    Res r(PQprepare(c.c, "", sql.c_str(), 0, nullptr));
    if (PQresultStatus(r.r) != PGRES_COMMAND_OK) throw_pg_error(r.r, c.c, "preparing the statement");
  }
  std::vector<std::string> cols;
  {
    Res d(PQdescribePrepared(c.c, ""));
    if (PQresultStatus(d.r) != PGRES_COMMAND_OK) throw_pg_error(d.r, c.c, "describing the statement");
    // SELECT ... INTO creates a table and returns no columns; a query returns some.
    if (PQnfields(d.r) == 0) throw Refused("not_a_query", "the statement returns no columns (SELECT INTO?)");
    for (int i = 0; i < PQnfields(d.r); ++i) cols.push_back(PQfname(d.r, i));
  }
  // The text was accepted as exactly one statement above, so prefixing it plans that statement.
  Res p = c.exec("EXPLAIN (VERBOSE, FORMAT JSON) " + sql, "planning the statement");
  if (PQntuples(p.r) < 1) fail("sql: PostgreSQL returned no plan");
  nlohmann::json plan;
  try {
    plan = nlohmann::json::parse(PQgetvalue(p.r, 0, 0));
  } catch (const nlohmann::json::exception& e) {
    fail("sql: PostgreSQL plan is not JSON: ", e.what());
  }
  check_plan(plan, first_word(sql) == "with");
  // EXPLAIN went through the unnamed statement too: prepare the checked text again.
  Res again(PQprepare(c.c, "", sql.c_str(), 0, nullptr));
  if (PQresultStatus(again.r) != PGRES_COMMAND_OK) throw_pg_error(again.r, c.c, "preparing the statement");
  return cols;
}

std::string quote_ident(PGconn* c, const std::string& name) {
  char* q = PQescapeIdentifier(c, name.c_str(), name.size());
  if (!q) fail("sql: cannot quote identifier ", name, ": ", trimmed_error(PQerrorMessage(c)));
  std::string out = q;
  PQfreemem(q);
  return out;
}

}  // namespace

PostgresExecutor::PostgresExecutor(const std::string& url) : conn_(std::make_unique<Conn>()) {
  if (!is_postgres_url(url)) fail("sql: not a PostgreSQL URL (postgresql://...): ", url);
  // Later keywords override what the URL says: the connection always names itself and gives up
  // after 10 s instead of hanging.
  const char* keys[] = {"dbname", "connect_timeout", "application_name", "client_encoding", nullptr};
  const char* vals[] = {url.c_str(), "10", "kexa-sql", "UTF8", nullptr};
  conn_->c = PQconnectdbParams(keys, vals, 1);
  if (!conn_->c || PQstatus(conn_->c) != CONNECTION_OK) {
    std::string msg = conn_->c ? trimmed_error(PQerrorMessage(conn_->c)) : "out of memory";
    fail("sql: cannot connect to PostgreSQL: ", msg);
  }
  // Session defaults as a second line of defence; every statement still runs in its own
  // READ ONLY transaction with SET LOCAL timeouts.
  conn_->exec("SET default_transaction_read_only = on", "making the session read-only");
  conn_->exec("SET statement_timeout = 30000", "setting statement_timeout");
}

PostgresExecutor::~PostgresExecutor() = default;

void PostgresExecutor::validate(const std::string& sql) {
  ReadOnlyTxn txn(*conn_, Limits{}.timeout_ms);
  prepare_checked(*conn_, sql);
}

std::vector<std::string> PostgresExecutor::explain(const std::string& sql) {
  ReadOnlyTxn txn(*conn_, Limits{}.timeout_ms);
  prepare_checked(*conn_, sql);
  Res p = conn_->exec("EXPLAIN " + sql, "planning the statement");
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(p.r); ++i) out.push_back(PQgetvalue(p.r, i, 0));
  return out;
}

Result PostgresExecutor::execute(const std::string& sql, const Limits& limits) {
  ReadOnlyTxn txn(*conn_, limits.timeout_ms);
  Result out;
  out.columns = prepare_checked(*conn_, sql);
  PGconn* c = conn_->c;
  if (!PQsendQueryPrepared(c, "", 0, nullptr, nullptr, nullptr, 0)) {
    fail("sql: PostgreSQL did not take the statement: ", trimmed_error(PQerrorMessage(c)));
  }
  // One row at a time, so the row cap also caps client memory.
  PQsetSingleRowMode(c);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits.timeout_ms + 2000);
  size_t bytes = 0;
  bool cancelled = false, expired = false;
  for (;;) {
    PGresult* raw = conn_->next_result(deadline, expired);
    if (expired) throw Refused("timeout", "the statement ran longer than " + std::to_string(limits.timeout_ms) + " ms");
    if (!raw) break;
    Res r(raw);
    ExecStatusType st = PQresultStatus(r.r);
    if (st == PGRES_SINGLE_TUPLE) {
      if (cancelled) continue;
      if (out.rows.size() >= limits.max_rows || bytes > kMaxResultBytes) {
        out.truncated = true;
        cancelled = true;
        conn_->cancel_and_drain();
        break;
      }
      std::vector<nlohmann::json> row;
      for (int i = 0; i < PQnfields(r.r); ++i) {
        bytes += static_cast<size_t>(PQgetlength(r.r, 0, i));
        row.push_back(pg_value(r.r, 0, i));
      }
      out.rows.push_back(std::move(row));
    } else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      continue;
    } else {
      throw_pg_error(r.r, c, "running the statement");
    }
  }
  return out;
}

Schema PostgresExecutor::schema(size_t samples_per_column) {
  ReadOnlyTxn txn(*conn_, 30000);
  PGconn* c = conn_->c;
  Schema out;
  struct Rel {
    std::string oid, nsp, name, description;
  };
  std::vector<Rel> rels;
  {
    Res r = conn_->exec(
        "SELECT c.oid, n.nspname, c.relname, "
        "COALESCE(pg_catalog.obj_description(c.oid, 'pg_class'), '') FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r','v','m','p','f') AND n.nspname <> 'information_schema' "
        "AND n.nspname NOT LIKE 'pg\\_%' AND pg_catalog.has_table_privilege(c.oid, 'SELECT') "
        "ORDER BY n.nspname <> 'public', n.nspname, c.oid",
        "listing tables");
    for (int i = 0; i < PQntuples(r.r); ++i) rels.push_back({PQgetvalue(r.r, i, 0), PQgetvalue(r.r, i, 1), PQgetvalue(r.r, i, 2), PQgetvalue(r.r, i, 3)});
  }
  for (const Rel& rel : rels) {
    Table t;
    t.name = rel.nsp == "public" ? rel.name : rel.nsp + "." + rel.name;
    t.description = rel.description;
    Res cols = conn_->exec(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
        "COALESCE((SELECT true FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid "
        "AND i.indisprimary AND a.attnum = ANY(i.indkey)), false), "
        "COALESCE(pg_catalog.col_description(a.attrelid, a.attnum), '') "
        "FROM pg_catalog.pg_attribute a WHERE a.attrelid = " + rel.oid +
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        "reading columns");
    for (int i = 0; i < PQntuples(cols.r); ++i) {
      t.columns.push_back({PQgetvalue(cols.r, i, 0), PQgetvalue(cols.r, i, 1), PQgetvalue(cols.r, i, 2)[0] == 't', {},
                           PQgetvalue(cols.r, i, 3)});
    }
    Res fks = conn_->exec(
        "SELECT sa.attname, CASE WHEN rn.nspname = 'public' THEN rc.relname "
        "ELSE rn.nspname || '.' || rc.relname END, ra.attname "
        "FROM pg_catalog.pg_constraint k, unnest(k.conkey, k.confkey) AS p(src, dst), "
        "pg_catalog.pg_attribute sa, pg_catalog.pg_attribute ra, pg_catalog.pg_class rc, "
        "pg_catalog.pg_namespace rn WHERE k.contype = 'f' AND k.conrelid = " + rel.oid +
            " AND sa.attrelid = k.conrelid AND sa.attnum = p.src AND ra.attrelid = k.confrelid "
            "AND ra.attnum = p.dst AND rc.oid = k.confrelid AND rn.oid = rc.relnamespace "
            "ORDER BY k.oid",
        "reading foreign keys");
    for (int i = 0; i < PQntuples(fks.r); ++i) {
      t.foreign_keys.push_back({PQgetvalue(fks.r, i, 0), PQgetvalue(fks.r, i, 1), PQgetvalue(fks.r, i, 2)});
    }
    if (samples_per_column > 0) {
      std::string from = quote_ident(c, rel.nsp) + "." + quote_ident(c, rel.name);
      for (Column& col : t.columns) {
        std::string q = quote_ident(c, col.name);
        // Distinct values among the first rows only: bounded work on any table size.
        std::string sq = "SELECT v::text FROM (SELECT " + q + " AS v FROM " + from + " WHERE " + q +
                         " IS NOT NULL LIMIT 1000) s GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT " +
                         std::to_string(samples_per_column);
        PQclear(PQexec(c, "SAVEPOINT kexa_sample"));
        Res s2(PQexecParams(c, sq.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0));
        if (PQresultStatus(s2.r) != PGRES_TUPLES_OK) {
          // A type without a text cast or a column we may not read: no samples, keep going.
          PQclear(PQexec(c, "ROLLBACK TO SAVEPOINT kexa_sample"));
          continue;
        }
        for (int i = 0; i < PQntuples(s2.r); ++i) {
          std::string v = PQgetvalue(s2.r, i, 0);
          if (v.size() > 80) v.resize(80);
          col.samples.push_back(v);
        }
      }
    }
    out.tables.push_back(std::move(t));
  }
  return out;
}

}  // namespace kexa::sql
