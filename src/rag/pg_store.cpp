// PostgreSQL backend of the document store (scale-out). Same tables as the SQLite file, prefixed
// kexa_rag_ so they can share a database with other data. BM25 uses our own postings (not
// tsvector) so results match the SQLite backend exactly. Writers serialise on an advisory lock
// held for the transaction, as SQLite's BEGIN IMMEDIATE does; a killed client's open transaction
// is rolled back by the server.
#include <cstring>
#include <unordered_map>

#include <libpq-fe.h>

#include "rag/store_backend.h"
#include "util/error.h"

namespace kexa::rag::detail {

namespace {

constexpr const char* kSchemaVersion = "1";
constexpr const char* kWriteLock = "SELECT pg_advisory_xact_lock(4811162371295027457)";

// The URI without its password, for messages.
std::string redact(const std::string& uri) {
  std::size_t scheme = uri.find("://");
  if (scheme == std::string::npos) return uri;
  std::size_t host_end = uri.find_first_of("/?", scheme + 3);
  std::size_t at = uri.rfind('@', host_end == std::string::npos ? uri.size() : host_end);
  if (at == std::string::npos || at < scheme) return uri;
  std::size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

// A PostgreSQL array literal of text values.
std::string text_array(const std::vector<std::string>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : v[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string int_array(const std::vector<std::int64_t>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(v[i]);
  }
  return out + "}";
}

std::int64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<std::int64_t>(v);
}

class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  ~Result() { PQclear(r_); }
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  int rows() const { return PQntuples(r_); }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
  }
  std::int64_t i64(int row, int col) const { return std::stoll(PQgetvalue(r_, row, col)); }
  const char* raw(int row, int col) const { return PQgetvalue(r_, row, col); }
  int len(int row, int col) const { return PQgetlength(r_, row, col); }

 private:
  PGresult* r_;
};

class PgBackend final : public Backend {
 public:
  PgBackend(const std::string& uri, bool read_only) : name_(redact(uri)) {
    conn_ = PQconnectdb(uri.c_str());
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      PQfinish(conn_);
      conn_ = nullptr;
      fail("rag store '", name_, "': cannot connect: ", msg);
    }
    try {
      run("SET client_min_messages = warning");
      bool has_meta = run("SELECT to_regclass('kexa_rag_meta') IS NOT NULL").text(0, 0) == "t";
      if (read_only) {
        if (!has_meta) fail("not a kexa document store (no kexa_rag_meta table)");
        run("SET default_transaction_read_only = on");
      } else if (!has_meta || run("SELECT to_regclass('kexa_rag_vec') IS NULL").text(0, 0) == "t") {
        begin_write();
        try {
          run("CREATE TABLE IF NOT EXISTS kexa_rag_meta(key text PRIMARY KEY, value text NOT NULL)");
          run("INSERT INTO kexa_rag_meta VALUES('schema', '1') ON CONFLICT DO NOTHING");
          run("CREATE TABLE IF NOT EXISTS kexa_rag_doc(id bigserial PRIMARY KEY, path text UNIQUE NOT NULL,"
              " sha256 text NOT NULL, size bigint NOT NULL)");
          run("CREATE TABLE IF NOT EXISTS kexa_rag_chunk(id bigserial PRIMARY KEY, doc bigint NOT NULL,"
              " unit text NOT NULL, \"begin\" bigint NOT NULL, \"end\" bigint NOT NULL, heading text NOT NULL,"
              " text text NOT NULL, len bigint NOT NULL, page bigint NOT NULL DEFAULT 0)");
          run("CREATE INDEX IF NOT EXISTS kexa_rag_chunk_doc ON kexa_rag_chunk(doc)");
          run("CREATE TABLE IF NOT EXISTS kexa_rag_term(id bigserial PRIMARY KEY, text text UNIQUE NOT NULL)");
          run("CREATE TABLE IF NOT EXISTS kexa_rag_posting(term bigint NOT NULL, chunk bigint NOT NULL,"
              " tf bigint NOT NULL, PRIMARY KEY(term, chunk))");
          run("CREATE INDEX IF NOT EXISTS kexa_rag_posting_chunk ON kexa_rag_posting(chunk)");
          run("CREATE TABLE IF NOT EXISTS kexa_rag_vec(chunk bigint PRIMARY KEY, v bytea NOT NULL)");
          commit();
        } catch (...) {
          rollback();
          throw;
        }
      }
      auto ver = meta("schema");
      if (!ver || *ver != kSchemaVersion) fail("unsupported store schema (expected version ", kSchemaVersion, ")");
    } catch (const Error& e) {
      PQfinish(conn_);
      conn_ = nullptr;
      fail("rag store '", name_, "': ", e.what());
    }
  }
  ~PgBackend() override { PQfinish(conn_); }

  void begin_write() override {
    run("BEGIN");
    run(kWriteLock);
  }
  void commit() override { run("COMMIT"); }
  void rollback() noexcept override {
    term_cache_.clear();
    PQclear(PQexec(conn_, "ROLLBACK"));
  }
  void begin_read() override { run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); }
  void end_read() noexcept override { PQclear(PQexec(conn_, "COMMIT")); }

  std::optional<DocRow> find_doc(const std::string& path) override {
    Result r = run("SELECT id, sha256 FROM kexa_rag_doc WHERE path = $1", {path});
    if (r.rows() == 0) return std::nullopt;
    return DocRow{r.i64(0, 0), r.text(0, 1)};
  }
  std::int64_t insert_doc(const std::string& path, const std::string& sha256, std::int64_t size) override {
    return run("INSERT INTO kexa_rag_doc(path, sha256, size) VALUES($1, $2, $3) RETURNING id",
               {path, sha256, std::to_string(size)})
        .i64(0, 0);
  }
  void delete_doc(std::int64_t id) override {
    std::string d = std::to_string(id);
    run("DELETE FROM kexa_rag_vec WHERE chunk IN (SELECT id FROM kexa_rag_chunk WHERE doc = $1)", {d});
    run("DELETE FROM kexa_rag_posting WHERE chunk IN (SELECT id FROM kexa_rag_chunk WHERE doc = $1)", {d});
    run("DELETE FROM kexa_rag_chunk WHERE doc = $1", {d});
    run("DELETE FROM kexa_rag_doc WHERE id = $1", {d});
  }
  std::vector<std::pair<std::int64_t, std::string>> docs_under(const std::string& path,
                                                               const std::string& prefix) override {
    Result r = run("SELECT id, path FROM kexa_rag_doc WHERE path = $1 OR left(path, length($2)) = $2 ORDER BY id",
                   {path, prefix});
    std::vector<std::pair<std::int64_t, std::string>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.i64(i, 0), r.text(i, 1));
    return out;
  }
  std::int64_t insert_chunk(std::int64_t doc, const ChunkRecord& c, std::int64_t len) override {
    return run("INSERT INTO kexa_rag_chunk(doc, unit, \"begin\", \"end\", heading, text, len, page)"
               " VALUES($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
               {std::to_string(doc), c.unit, std::to_string(c.begin), std::to_string(c.end), c.heading, c.text,
                std::to_string(len), std::to_string(c.page)})
        .i64(0, 0);
  }
  void insert_postings(std::int64_t id, const TermCounts& tf) override {
    if (tf.empty()) return;
    // Terms are interned in one round trip per chunk, postings written in another.
    std::vector<std::string> missing;
    for (const auto& [t, n] : tf)
      if (!term_cache_.count(t)) missing.push_back(t);
    if (!missing.empty()) {
      std::string arr = text_array(missing);
      run("INSERT INTO kexa_rag_term(text) SELECT unnest($1::text[]) ON CONFLICT (text) DO NOTHING", {arr});
      Result r = run("SELECT id, text FROM kexa_rag_term WHERE text = ANY($1::text[])", {arr});
      for (int i = 0; i < r.rows(); ++i) term_cache_[r.text(i, 1)] = r.i64(i, 0);
    }
    std::vector<std::int64_t> terms, counts;
    for (const auto& [t, n] : tf) {
      auto it = term_cache_.find(t);
      if (it == term_cache_.end()) fail("rag store: term '", t, "' was not interned");
      terms.push_back(it->second);
      counts.push_back(n);
    }
    run("INSERT INTO kexa_rag_posting(term, chunk, tf) SELECT unnest($1::bigint[]), $2::bigint, unnest($3::bigint[])",
        {int_array(terms), std::to_string(id), int_array(counts)});
  }

  std::pair<std::int64_t, std::int64_t> totals() override {
    Result r = run("SELECT count(*), coalesce(sum(len), 0) FROM kexa_rag_chunk");
    return {r.i64(0, 0), r.i64(0, 1)};
  }
  void postings(const std::vector<std::string>& terms,
                const std::function<void(std::size_t, std::int64_t, std::int64_t, std::int64_t)>& f) override {
    std::unordered_map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < terms.size(); ++i) index.emplace(terms[i], i);
    Result r = run("SELECT t.text, p.chunk, p.tf, c.len FROM kexa_rag_term t JOIN kexa_rag_posting p ON p.term = t.id"
                   " JOIN kexa_rag_chunk c ON c.id = p.chunk WHERE t.text = ANY($1::text[])",
                   {text_array(terms)});
    for (int i = 0; i < r.rows(); ++i) {
      auto it = index.find(r.text(i, 0));
      if (it != index.end()) f(it->second, r.i64(i, 1), r.i64(i, 2), r.i64(i, 3));
    }
  }
  std::optional<Hit> chunk(std::int64_t id) override {
    Result r = run("SELECT d.path, c.unit, c.\"begin\", c.\"end\", c.heading, c.text, c.page FROM kexa_rag_chunk c"
                   " JOIN kexa_rag_doc d ON d.id = c.doc WHERE c.id = $1",
                   {std::to_string(id)});
    if (r.rows() == 0) return std::nullopt;
    Hit h;
    h.chunk_id = id;
    h.path = r.text(0, 0);
    h.unit = r.text(0, 1);
    h.begin = r.i64(0, 2);
    h.end = r.i64(0, 3);
    h.heading = r.text(0, 4);
    h.text = r.text(0, 5);
    h.page = r.i64(0, 6);
    return h;
  }
  StoreStats stats() override {
    Result r = run("SELECT (SELECT count(*) FROM kexa_rag_doc), (SELECT count(*) FROM kexa_rag_chunk),"
                   " (SELECT count(*) FROM kexa_rag_term), (SELECT count(*) FROM kexa_rag_vec)");
    StoreStats s;
    s.documents = r.i64(0, 0);
    s.chunks = r.i64(0, 1);
    s.terms = r.i64(0, 2);
    s.vectors = r.i64(0, 3);
    return s;
  }

  std::vector<ChunkText> all_chunks() override {
    return chunk_texts(run("SELECT id, heading, text FROM kexa_rag_chunk ORDER BY id"));
  }
  void clear_postings() override {
    run("DELETE FROM kexa_rag_posting");
    run("DELETE FROM kexa_rag_term");
    term_cache_.clear();
  }
  void set_chunk_len(std::int64_t chunk, std::int64_t len) override {
    run("UPDATE kexa_rag_chunk SET len = $1 WHERE id = $2", {std::to_string(len), std::to_string(chunk)});
  }

  std::optional<std::string> meta(const std::string& key) override {
    Result r = run("SELECT value FROM kexa_rag_meta WHERE key = $1", {key});
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
  }
  void set_meta(const std::string& key, const std::string& value) override {
    run("INSERT INTO kexa_rag_meta(key, value) VALUES($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        {key, value});
  }

  void put_vector(std::int64_t chunk, std::span<const float> v) override {
    std::string id = std::to_string(chunk);
    const char* values[2] = {id.c_str(), reinterpret_cast<const char*>(v.data())};
    int lengths[2] = {0, static_cast<int>(v.size_bytes())};
    int formats[2] = {0, 1};
    check(PQexecParams(conn_,
                       "INSERT INTO kexa_rag_vec(chunk, v) VALUES($1, $2) ON CONFLICT (chunk) DO UPDATE SET v = excluded.v",
                       2, nullptr, values, lengths, formats, 0),
          "INSERT INTO kexa_rag_vec");
  }
  void clear_vectors() override { run("DELETE FROM kexa_rag_vec"); }
  std::vector<ChunkText> chunks_without_vector(std::size_t limit) override {
    return chunk_texts(run("SELECT id, heading, text FROM kexa_rag_chunk c WHERE NOT EXISTS"
                           " (SELECT 1 FROM kexa_rag_vec v WHERE v.chunk = c.id) ORDER BY id LIMIT $1",
                           {std::to_string(limit)}));
  }
  void vectors(const std::function<void(std::int64_t, std::span<const float>)>& f) override {
    // Binary results: the ids arrive as big-endian int8 and the vectors as their raw bytes.
    Result r = check(PQexecParams(conn_, "SELECT chunk, v FROM kexa_rag_vec ORDER BY chunk", 0, nullptr, nullptr,
                                  nullptr, nullptr, 1),
                     "SELECT FROM kexa_rag_vec");
    std::vector<float> buf;
    for (int i = 0; i < r.rows(); ++i) {
      if (r.len(i, 0) != 8) fail("rag store '", name_, "': unexpected chunk id size in kexa_rag_vec");
      buf.resize(static_cast<std::size_t>(r.len(i, 1)) / sizeof(float));
      std::memcpy(buf.data(), r.raw(i, 1), buf.size() * sizeof(float));
      f(be64(r.raw(i, 0)), buf);
    }
  }

 private:
  Result check(PGresult* res, const char* what) {
    Result r(res);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      std::string msg = PQerrorMessage(conn_);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      fail("rag store '", name_, "': ", msg, " (in ", std::string(what).substr(0, 80), ")");
    }
    return r;
  }
  // The rows of a query selecting (id, heading, text).
  static std::vector<ChunkText> chunk_texts(const Result& r) {
    std::vector<ChunkText> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.i64(i, 0), r.text(i, 1), r.text(i, 2));
    return out;
  }
  Result run(const char* sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    return check(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0),
                 sql);
  }

  PGconn* conn_ = nullptr;
  std::string name_;
  std::unordered_map<std::string, std::int64_t> term_cache_;
};

}  // namespace

std::unique_ptr<Backend> open_postgres(const std::string& uri, bool read_only) {
  return std::make_unique<PgBackend>(uri, read_only);
}

}  // namespace kexa::rag::detail
