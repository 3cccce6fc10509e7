#include "rag/store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "util/error.h"

namespace fs = std::filesystem;

namespace kexa::rag {

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
  Stmt& bind(int i, double v) { check(sqlite3_bind_double(st_, i, v)); return *this; }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
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
  double f64(int c) const { return sqlite3_column_double(st_, c); }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(st_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(st_, c)))
             : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail("rag store: bind failed: ", sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr) != 1) fail("rag store: SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("rag ingest: cannot read '", path, "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

bool readable_type(const fs::path& p) {
  static const char* kExt[] = {".txt", ".text", ".md", ".markdown", ".jsonl", ".ndjson", ".json", ".csv"};
  std::string e = lower_ext(p);
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* k) { return e == k; });
}

// A record is indexed as "key: value" lines so field names are searchable too.
void flatten(const nlohmann::json& j, const std::string& prefix, std::string& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else if (j.is_array()) {
    for (const auto& v : j) flatten(v, prefix, out);
  } else if (!j.is_null()) {
    if (!prefix.empty()) out += prefix + ": ";
    out += j.is_string() ? j.get<std::string>() : j.dump();
    out += '\n';
  }
}

// RFC 4180 fields of one CSV record starting at `pos`; advances pos past the record's line end.
std::vector<std::string> csv_record(const std::string& s, std::size_t& pos) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  while (pos < s.size()) {
    char c = s[pos];
    if (quoted) {
      if (c == '"') {
        if (pos + 1 < s.size() && s[pos + 1] == '"') { fields.back() += '"'; ++pos; }
        else quoted = false;
      } else {
        fields.back() += c;
      }
      ++pos;
      continue;
    }
    if (c == '"') { quoted = true; ++pos; continue; }
    if (c == ',') { fields.emplace_back(); ++pos; continue; }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && pos + 1 < s.size() && s[pos + 1] == '\n') ++pos;
      ++pos;
      return fields;
    }
    fields.back() += c;
    ++pos;
  }
  return fields;
}

}  // namespace

std::string store_path(const std::string& p) { return fs::absolute(fs::path(p)).lexically_normal().string(); }

Store::Store(const std::string& path, bool read_only) : path_(path) {
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
           " text TEXT NOT NULL, len INTEGER NOT NULL)");
      exec("CREATE INDEX IF NOT EXISTS chunk_doc ON chunk(doc)");
      exec("CREATE TABLE IF NOT EXISTS term(id INTEGER PRIMARY KEY, text TEXT UNIQUE NOT NULL)");
      exec("CREATE TABLE IF NOT EXISTS posting(term INTEGER NOT NULL, chunk INTEGER NOT NULL,"
           " tf INTEGER NOT NULL, PRIMARY KEY(term, chunk)) WITHOUT ROWID");
      exec("CREATE INDEX IF NOT EXISTS posting_chunk ON posting(chunk)");
      exec("COMMIT");
    }
    Stmt ver(db_, "SELECT value FROM kexa_meta WHERE key='schema'");
    if (!ver.step() || ver.text(0) != kSchemaVersion)
      fail("unsupported store schema (expected version ", kSchemaVersion, ")");
  } catch (const Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    fail("rag store '", path, "': ", e.what());
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    fail("rag store '", path_, "': ", msg, " (in ", sql, ")");
  }
}

std::int64_t Store::term_id(const std::string& term) {
  auto it = term_cache_.find(term);
  if (it != term_cache_.end()) return it->second;
  Stmt ins(db_, "INSERT INTO term(text) VALUES(?) ON CONFLICT(text) DO UPDATE SET text=excluded.text RETURNING id");
  ins.bind(1, term);
  if (!ins.step()) fail("rag store: cannot intern term");
  std::int64_t id = ins.i64(0);
  term_cache_.emplace(term, id);
  return id;
}

void Store::delete_document(std::int64_t doc_id) {
  Stmt p(db_, "DELETE FROM posting WHERE chunk IN (SELECT id FROM chunk WHERE doc=?)");
  p.bind(1, doc_id);
  p.step();
  Stmt c(db_, "DELETE FROM chunk WHERE doc=?");
  c.bind(1, doc_id);
  c.step();
  Stmt d(db_, "DELETE FROM doc WHERE id=?");
  d.bind(1, doc_id);
  d.step();
}

void Store::write_document(const std::string& path, const std::string& hash, std::int64_t size,
                           const std::vector<ChunkRec>& chunks) {
  Stmt old(db_, "SELECT id FROM doc WHERE path=?");
  old.bind(1, path);
  if (old.step()) delete_document(old.i64(0));
  Stmt d(db_, "INSERT INTO doc(path, sha256, size) VALUES(?,?,?) RETURNING id");
  d.bind(1, path).bind(2, hash).bind(3, size);
  d.step();
  std::int64_t doc_id = d.i64(0);
  Stmt c(db_, "INSERT INTO chunk(doc, unit, begin, end, heading, text, len) VALUES(?,?,?,?,?,?,?) RETURNING id");
  Stmt p(db_, "INSERT INTO posting(term, chunk, tf) VALUES(?,?,?)");
  for (const ChunkRec& r : chunks) {
    std::vector<std::string> terms = analyze(r.text);
    // Later chunks of a section would lose their heading's words; index the heading with them.
    if (!r.heading.empty() && r.text.find(r.heading) == std::string::npos) {
      std::vector<std::string> h = analyze(r.heading);
      terms.insert(terms.end(), h.begin(), h.end());
    }
    std::unordered_map<std::string, std::int64_t> tf;
    for (const auto& t : terms) ++tf[t];
    c.reset();
    c.bind(1, doc_id).bind(2, r.unit).bind(3, r.begin).bind(4, r.end).bind(5, r.heading).bind(6, r.text)
        .bind(7, static_cast<std::int64_t>(terms.size()));
    c.step();
    std::int64_t chunk_id = c.i64(0);
    while (c.step()) {}
    for (const auto& [t, n] : tf) {
      p.reset();
      p.bind(1, term_id(t)).bind(2, chunk_id).bind(3, n);
      p.step();
    }
  }
}

const char* Store::ingest_file(const std::string& path) {
  std::string data = read_all(path);
  std::string hash = sha256_hex(data);
  {
    Stmt q(db_, "SELECT sha256 FROM doc WHERE path=?");
    q.bind(1, path);
    if (q.step() && q.text(0) == hash) return "unchanged";
  }
  std::vector<ChunkRec> chunks;
  std::string ext = lower_ext(path);
  if (ext == ".jsonl" || ext == ".ndjson") {
    std::size_t pos = 0, line_no = 0;
    while (pos < data.size()) {
      std::size_t eol = data.find('\n', pos);
      if (eol == std::string::npos) eol = data.size();
      ++line_no;
      std::string_view line(data.data() + pos, eol - pos);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded()) fail("rag ingest: '", path, "' line ", line_no, " is not valid JSON");
        std::string text;
        flatten(j, "", text);
        if (!text.empty()) chunks.push_back({"byte", static_cast<std::int64_t>(pos), static_cast<std::int64_t>(eol), "", text});
      }
      pos = eol + 1;
    }
  } else if (ext == ".json") {
    nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) fail("rag ingest: '", path, "' is not valid JSON");
    if (!j.is_array()) j = nlohmann::json::array({j});
    for (std::size_t i = 0; i < j.size(); ++i) {
      std::string text;
      flatten(j[i], "", text);
      if (!text.empty())
        chunks.push_back({"record", static_cast<std::int64_t>(i), static_cast<std::int64_t>(i + 1), "", text});
    }
  } else if (ext == ".csv") {
    std::size_t pos = 0;
    std::vector<std::string> header = csv_record(data, pos);
    while (pos < data.size()) {
      std::size_t start = pos;
      std::vector<std::string> row = csv_record(data, pos);
      std::string text;
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (row[i].empty()) continue;
        if (i < header.size() && !header[i].empty()) text += header[i] + ": ";
        text += row[i] + "\n";
      }
      std::size_t end = pos;
      while (end > start && (data[end - 1] == '\n' || data[end - 1] == '\r')) --end;
      if (!text.empty()) chunks.push_back({"byte", static_cast<std::int64_t>(start), static_cast<std::int64_t>(end), "", text});
    }
  } else {
    for (const ChunkSpan& c : chunk_text(data, chunk_opt_))
      chunks.push_back({"byte", static_cast<std::int64_t>(c.span.begin), static_cast<std::int64_t>(c.span.end),
                        c.heading, data.substr(c.span.begin, c.span.end - c.span.begin)});
  }
  bool existed = false;
  {
    Stmt q(db_, "SELECT 1 FROM doc WHERE path=?");
    q.bind(1, path);
    existed = q.step();
  }
  exec("BEGIN IMMEDIATE");
  try {
    write_document(path, hash, static_cast<std::int64_t>(data.size()), chunks);
    exec("COMMIT");
  } catch (...) {
    term_cache_.clear();  // ids handed out in the rolled-back transaction are gone
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return existed ? "updated" : "added";
}

IngestStats Store::ingest(const std::vector<std::string>& paths, bool prune,
                          const std::function<void(const std::string&, const char*)>& progress) {
  IngestStats st;
  for (const std::string& given : paths) {
    std::error_code ec;
    fs::file_status s = fs::status(given, ec);
    if (ec || !fs::exists(s)) fail("rag ingest: '", given, "' does not exist");
    std::vector<std::string> files;
    if (fs::is_directory(s)) {
      for (fs::recursive_directory_iterator it(given, fs::directory_options::skip_permission_denied), end;
           it != end; ++it) {
        std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (!it->is_regular_file()) continue;
        if (readable_type(it->path())) files.push_back(store_path(it->path().string()));
        else ++st.skipped;
      }
      std::sort(files.begin(), files.end());
    } else {
      if (!readable_type(given))
        fail("rag ingest: '", given, "': unsupported file type (reads .txt .md .markdown .jsonl .ndjson .json .csv;"
             " HTML and PDF are not supported yet)");
      files.push_back(store_path(given));
    }
    for (const std::string& f : files) {
      const char* what = ingest_file(f);
      if (std::string_view(what) == "added") ++st.added;
      else if (std::string_view(what) == "updated") ++st.updated;
      else ++st.unchanged;
      if (progress) progress(f, what);
    }
    if (prune && fs::is_directory(s)) {
      std::string prefix = store_path(given);
      if (prefix.back() != '/') prefix += '/';
      std::vector<std::string> gone;
      Stmt q(db_, "SELECT path FROM doc WHERE substr(path, 1, length(?1)) = ?1");
      q.bind(1, prefix);
      while (q.step()) {
        std::string p = q.text(0);
        if (!fs::exists(p)) gone.push_back(p);
      }
      for (const auto& p : gone) st.removed += remove(p);
    }
  }
  Stmt n(db_, "SELECT count(*) FROM chunk");
  n.step();
  st.chunks = static_cast<std::size_t>(n.i64(0));
  term_cache_.clear();
  return st;
}

std::size_t Store::remove(const std::string& given) {
  std::string p = store_path(given);
  std::string prefix = p.back() == '/' ? p : p + "/";
  std::vector<std::int64_t> ids;
  {
    Stmt q(db_, "SELECT id FROM doc WHERE path = ?1 OR substr(path, 1, length(?2)) = ?2");
    q.bind(1, p).bind(2, prefix);
    while (q.step()) ids.push_back(q.i64(0));
  }
  if (ids.empty()) return 0;
  exec("BEGIN IMMEDIATE");
  try {
    for (auto id : ids) delete_document(id);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return ids.size();
}

StoreStats Store::stats() const {
  StoreStats s;
  Stmt q(db_, "SELECT (SELECT count(*) FROM doc), (SELECT count(*) FROM chunk), (SELECT count(*) FROM term)");
  q.step();
  s.documents = q.i64(0);
  s.chunks = q.i64(1);
  s.terms = q.i64(2);
  return s;
}

std::vector<Hit> Store::search(std::string_view query, std::size_t k) const {
  std::vector<Hit> hits;
  if (k == 0) return hits;
  std::vector<std::string> terms = analyze(query);
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  if (terms.empty()) return hits;

  // Read consistently even while another process ingests.
  sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr);
  struct EndRead {
    sqlite3* db;
    ~EndRead() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
  } end_read{db_};

  Stmt totals(db_, "SELECT count(*), coalesce(avg(len), 0) FROM chunk");
  totals.step();
  double n_chunks = static_cast<double>(totals.i64(0));
  double avgdl = std::max(totals.f64(1), 1.0);
  if (n_chunks == 0) return hits;

  Stmt post(db_, "SELECT p.chunk, p.tf, c.len FROM term t JOIN posting p ON p.term = t.id"
                 " JOIN chunk c ON c.id = p.chunk WHERE t.text = ?");
  std::unordered_map<std::int64_t, double> score;
  struct Posting { std::int64_t chunk; double tf, len; };
  std::vector<Posting> list;
  for (const std::string& t : terms) {
    list.clear();
    post.reset();
    post.bind(1, t);
    while (post.step()) list.push_back({post.i64(0), static_cast<double>(post.i64(1)), static_cast<double>(post.i64(2))});
    if (list.empty()) continue;
    double df = static_cast<double>(list.size());
    double idf = std::log(1.0 + (n_chunks - df + 0.5) / (df + 0.5));
    for (const Posting& p : list) {
      double norm = bm25_.k1 * (1.0 - bm25_.b + bm25_.b * p.len / avgdl);
      score[p.chunk] += idf * p.tf * (bm25_.k1 + 1.0) / (p.tf + norm);
    }
  }
  std::vector<std::pair<double, std::int64_t>> ranked;
  ranked.reserve(score.size());
  for (const auto& [id, s] : score) ranked.emplace_back(s, id);
  auto better = [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  std::size_t n = std::min(k, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(n), ranked.end(), better);
  Stmt get(db_, "SELECT d.path, c.unit, c.begin, c.end, c.heading, c.text FROM chunk c JOIN doc d ON d.id = c.doc"
                " WHERE c.id = ?");
  for (std::size_t i = 0; i < n; ++i) {
    get.reset();
    get.bind(1, ranked[i].second);
    if (!get.step()) continue;
    Hit h;
    h.chunk_id = ranked[i].second;
    h.score = ranked[i].first;
    h.path = get.text(0);
    h.unit = get.text(1);
    h.begin = get.i64(2);
    h.end = get.i64(3);
    h.heading = get.text(4);
    h.text = get.text(5);
    hits.push_back(std::move(h));
  }
  return hits;
}

}  // namespace kexa::rag
