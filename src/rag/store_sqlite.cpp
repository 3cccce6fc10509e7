// SQLite backend of the document store: one file in WAL mode. Every write transaction is
// BEGIN IMMEDIATE ... COMMIT, so a killed process leaves the store as of its last commit.
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include <sqlite3.h>

#include "rag/store_backend.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace kexa::rag::detail {

namespace {

constexpr const char* kSchemaVersion = "1";

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      fail("rag store: cannot prepare '", sql, "': ", sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, std::int64_t v) { check(sqlite3_bind_int64(st_, i, v)); return *this; }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind_blob(int i, const void* p, std::size_t n) {
    check(sqlite3_bind_blob(st_, i, p, static_cast<int>(n), SQLITE_TRANSIENT));
    return *this;
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("rag store: ", sqlite3_errmsg(db_));
  }
  void reset() { sqlite3_reset(st_); sqlite3_clear_bindings(st_); }
  std::int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(st_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(st_, c)))
             : std::string();
  }
  std::span<const float> floats(int c) const {
    const void* p = sqlite3_column_blob(st_, c);
    auto n = static_cast<std::size_t>(sqlite3_column_bytes(st_, c)) / sizeof(float);
    return {static_cast<const float*>(p), p ? n : 0};
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail("rag store: bind failed: ", sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

class SqliteBackend final : public Backend {
 public:
  SqliteBackend(const std::string& path, bool read_only) : path_(path) {
    if (read_only && !fs::exists(path)) fail("rag store '", path, "' does not exist (create it with kexa rag ingest)");
    int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      fail("rag store '", path, "': cannot open: ", msg);
    }
    sqlite3_busy_timeout(db_, 10000);
    try {
      // Any query on a non-database file fails here with "file is not a database".
      Stmt probe(db_, "SELECT name FROM sqlite_master WHERE type='table' AND name='kexa_meta'");
      bool has_meta = probe.step();
      if (read_only) {
        if (!has_meta) fail("not a kexa document store (no kexa_meta table)");
      } else {
        exec("PRAGMA journal_mode=WAL");
        // WAL + NORMAL: a crash can lose the last commits on power loss but never corrupts the store.
        exec("PRAGMA synchronous=NORMAL");
        exec("BEGIN IMMEDIATE");
        exec("CREATE TABLE IF NOT EXISTS kexa_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
        exec("INSERT OR IGNORE INTO kexa_meta VALUES('schema', '1')");
        exec("CREATE TABLE IF NOT EXISTS doc(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL,"
             " sha256 TEXT NOT NULL, size INTEGER NOT NULL)");
        exec("CREATE TABLE IF NOT EXISTS chunk(id INTEGER PRIMARY KEY, doc INTEGER NOT NULL,"
             " unit TEXT NOT NULL, begin INTEGER NOT NULL, end INTEGER NOT NULL, heading TEXT NOT NULL,"
             " text TEXT NOT NULL, len INTEGER NOT NULL, page INTEGER NOT NULL DEFAULT 0)");
        // Stores from before PDF support lack the page column.
        bool has_page = false;
        {
          Stmt cols(db_, "PRAGMA table_info(chunk)");
          while (cols.step())
            if (cols.text(1) == "page") has_page = true;
        }
        if (!has_page) exec("ALTER TABLE chunk ADD COLUMN page INTEGER NOT NULL DEFAULT 0");
        exec("CREATE INDEX IF NOT EXISTS chunk_doc ON chunk(doc)");
        exec("CREATE TABLE IF NOT EXISTS term(id INTEGER PRIMARY KEY, text TEXT UNIQUE NOT NULL)");
        exec("CREATE TABLE IF NOT EXISTS posting(term INTEGER NOT NULL, chunk INTEGER NOT NULL,"
             " tf INTEGER NOT NULL, PRIMARY KEY(term, chunk)) WITHOUT ROWID");
        exec("CREATE INDEX IF NOT EXISTS posting_chunk ON posting(chunk)");
        exec("CREATE TABLE IF NOT EXISTS vec(chunk INTEGER PRIMARY KEY, v BLOB NOT NULL)");
        exec("COMMIT");
      }
      Stmt ver(db_, "SELECT value FROM kexa_meta WHERE key='schema'");
      if (!ver.step() || ver.text(0) != kSchemaVersion)
        fail("unsupported store schema (expected version ", kSchemaVersion, ")");
      has_vec_ = table_exists("vec");
      has_page_ = column_exists("chunk", "page");
    } catch (const Error& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      fail("rag store '", path, "': ", e.what());
    }
  }
  ~SqliteBackend() override {
    chunk_ins_.reset();
    post_ins_.reset();
    term_ins_.reset();
    chunk_get_.reset();
    sqlite3_close(db_);
  }

  void begin_write() override { exec("BEGIN IMMEDIATE"); }
  void commit() override { exec("COMMIT"); }
  void rollback() noexcept override {
    term_cache_.clear();  // ids handed out in the rolled-back transaction are gone
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void begin_read() override { sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr); }
  void end_read() noexcept override { sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr); }

  std::optional<DocRow> find_doc(const std::string& path) override {
    Stmt q(db_, "SELECT id, sha256 FROM doc WHERE path=?");
    q.bind(1, path);
    if (!q.step()) return std::nullopt;
    return DocRow{q.i64(0), q.text(1)};
  }
  std::int64_t insert_doc(const std::string& path, const std::string& sha256, std::int64_t size) override {
    Stmt d(db_, "INSERT INTO doc(path, sha256, size) VALUES(?,?,?) RETURNING id");
    d.bind(1, path).bind(2, sha256).bind(3, size);
    d.step();
    std::int64_t id = d.i64(0);
    while (d.step()) {}
    return id;
  }
  void delete_doc(std::int64_t id) override {
    if (has_vec_) run("DELETE FROM vec WHERE chunk IN (SELECT id FROM chunk WHERE doc=?)", id);
    run("DELETE FROM posting WHERE chunk IN (SELECT id FROM chunk WHERE doc=?)", id);
    run("DELETE FROM chunk WHERE doc=?", id);
    run("DELETE FROM doc WHERE id=?", id);
  }
  std::vector<std::pair<std::int64_t, std::string>> docs_under(const std::string& path,
                                                               const std::string& prefix) override {
    std::vector<std::pair<std::int64_t, std::string>> out;
    Stmt q(db_, "SELECT id, path FROM doc WHERE path = ?1 OR substr(path, 1, length(?2)) = ?2 ORDER BY id");
    q.bind(1, path).bind(2, prefix);
    while (q.step()) out.emplace_back(q.i64(0), q.text(1));
    return out;
  }
  std::int64_t insert_chunk(std::int64_t doc, const ChunkRecord& r, std::int64_t len) override {
    if (!chunk_ins_)
      chunk_ins_ = std::make_unique<Stmt>(
          db_, "INSERT INTO chunk(doc, unit, begin, end, heading, text, len, page) VALUES(?,?,?,?,?,?,?,?) RETURNING id");
    Stmt& c = *chunk_ins_;
    c.reset();
    c.bind(1, doc).bind(2, r.unit).bind(3, r.begin).bind(4, r.end).bind(5, r.heading).bind(6, r.text).bind(7, len)
        .bind(8, r.page);
    c.step();
    std::int64_t id = c.i64(0);
    while (c.step()) {}
    return id;
  }
  void insert_postings(std::int64_t chunk, const TermCounts& tf) override {
    if (!post_ins_) post_ins_ = std::make_unique<Stmt>(db_, "INSERT INTO posting(term, chunk, tf) VALUES(?,?,?)");
    for (const auto& [t, n] : tf) {
      post_ins_->reset();
      post_ins_->bind(1, term_id(t)).bind(2, chunk).bind(3, n);
      post_ins_->step();
    }
  }

  std::pair<std::int64_t, std::int64_t> totals() override {
    Stmt q(db_, "SELECT count(*), coalesce(sum(len), 0) FROM chunk");
    q.step();
    return {q.i64(0), q.i64(1)};
  }
  void postings(const std::vector<std::string>& terms,
                const std::function<void(std::size_t, std::int64_t, std::int64_t, std::int64_t)>& f) override {
    Stmt post(db_, "SELECT p.chunk, p.tf, c.len FROM term t JOIN posting p ON p.term = t.id"
                   " JOIN chunk c ON c.id = p.chunk WHERE t.text = ?");
    for (std::size_t i = 0; i < terms.size(); ++i) {
      post.reset();
      post.bind(1, terms[i]);
      while (post.step()) f(i, post.i64(0), post.i64(1), post.i64(2));
    }
  }
  std::optional<Hit> chunk(std::int64_t id) override {
    if (!chunk_get_)
      chunk_get_ = std::make_unique<Stmt>(
          db_, has_page_ ? "SELECT d.path, c.unit, c.begin, c.end, c.heading, c.text, c.page FROM chunk c"
                           " JOIN doc d ON d.id = c.doc WHERE c.id = ?"
                         : "SELECT d.path, c.unit, c.begin, c.end, c.heading, c.text, 0 FROM chunk c"
                           " JOIN doc d ON d.id = c.doc WHERE c.id = ?");
    Stmt& get = *chunk_get_;
    get.reset();
    get.bind(1, id);
    if (!get.step()) return std::nullopt;
    Hit h;
    h.chunk_id = id;
    h.path = get.text(0);
    h.unit = get.text(1);
    h.begin = get.i64(2);
    h.end = get.i64(3);
    h.heading = get.text(4);
    h.text = get.text(5);
    h.page = get.i64(6);
    get.reset();  // do not hold the read snapshot open
    return h;
  }
  StoreStats stats() override {
    StoreStats s;
    Stmt q(db_, "SELECT (SELECT count(*) FROM doc), (SELECT count(*) FROM chunk), (SELECT count(*) FROM term)");
    q.step();
    s.documents = q.i64(0);
    s.chunks = q.i64(1);
    s.terms = q.i64(2);
    if (has_vec_) {
      Stmt v(db_, "SELECT count(*) FROM vec");
      v.step();
      s.vectors = v.i64(0);
    }
    return s;
  }

  std::vector<ChunkText> all_chunks() override {
    Stmt q(db_, "SELECT id, heading, text FROM chunk ORDER BY id");
    return chunk_texts(q);
  }
  void clear_postings() override {
    exec("DELETE FROM posting");
    exec("DELETE FROM term");
    term_cache_.clear();
  }
  void set_chunk_len(std::int64_t chunk, std::int64_t len) override {
    run("UPDATE chunk SET len=? WHERE id=?", len, chunk);
  }

  std::optional<std::string> meta(const std::string& key) override {
    Stmt q(db_, "SELECT value FROM kexa_meta WHERE key=?");
    q.bind(1, key);
    if (!q.step()) return std::nullopt;
    return q.text(0);
  }
  void set_meta(const std::string& key, const std::string& value) override {
    run("INSERT INTO kexa_meta(key, value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", key, value);
  }

  void put_vector(std::int64_t chunk, std::span<const float> v) override {
    Stmt q(db_, "INSERT OR REPLACE INTO vec(chunk, v) VALUES(?,?)");
    q.bind(1, chunk).bind_blob(2, v.data(), v.size_bytes());
    q.step();
  }
  void clear_vectors() override { exec("DELETE FROM vec"); }
  std::vector<ChunkText> chunks_without_vector(std::size_t limit) override {
    Stmt q(db_, "SELECT id, heading, text FROM chunk WHERE id NOT IN (SELECT chunk FROM vec) ORDER BY id LIMIT ?");
    q.bind(1, static_cast<std::int64_t>(limit));
    return chunk_texts(q);
  }
  void vectors(const std::function<void(std::int64_t, std::span<const float>)>& f) override {
    if (!has_vec_) return;
    Stmt q(db_, "SELECT chunk, v FROM vec ORDER BY chunk");
    while (q.step()) f(q.i64(0), q.floats(1));
  }

 private:
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      fail("rag store '", path_, "': ", msg, " (in ", sql, ")");
    }
  }
  // One statement with `args` bound to its parameters in order; rows it returns are not read.
  template <class... Args>
  void run(const char* sql, const Args&... args) {
    Stmt q(db_, sql);
    int i = 0;
    (q.bind(++i, args), ...);
    q.step();
  }
  // The rows of a query selecting (id, heading, text).
  static std::vector<ChunkText> chunk_texts(Stmt& q) {
    std::vector<ChunkText> out;
    while (q.step()) out.emplace_back(q.i64(0), q.text(1), q.text(2));
    return out;
  }
  bool table_exists(const char* name) {
    Stmt q(db_, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?");
    q.bind(1, std::string_view(name));
    return q.step();
  }
  bool column_exists(const char* table, const char* col) {
    std::string sql = std::string("PRAGMA table_info(") + table + ")";
    Stmt q(db_, sql.c_str());
    while (q.step())
      if (q.text(1) == col) return true;
    return false;
  }
  std::int64_t term_id(const std::string& term) {
    auto it = term_cache_.find(term);
    if (it != term_cache_.end()) return it->second;
    if (!term_ins_)
      term_ins_ = std::make_unique<Stmt>(
          db_, "INSERT INTO term(text) VALUES(?) ON CONFLICT(text) DO UPDATE SET text=excluded.text RETURNING id");
    term_ins_->reset();
    term_ins_->bind(1, term);
    if (!term_ins_->step()) fail("rag store: cannot intern term");
    std::int64_t id = term_ins_->i64(0);
    while (term_ins_->step()) {}
    term_cache_.emplace(term, id);
    return id;
  }

  sqlite3* db_ = nullptr;
  std::string path_;
  bool has_vec_ = true, has_page_ = true;  // false only for read-only opens of older stores
  std::unique_ptr<Stmt> chunk_ins_, post_ins_, term_ins_, chunk_get_;
  std::unordered_map<std::string, std::int64_t> term_cache_;  // committed or in the open transaction
};

}  // namespace

std::unique_ptr<Backend> open_sqlite(const std::string& path, bool read_only) {
  return std::make_unique<SqliteBackend>(path, read_only);
}

}  // namespace kexa::rag::detail
