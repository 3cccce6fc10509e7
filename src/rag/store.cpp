#include "rag/store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include <openssl/evp.h>

#include "rag/ingest.h"
#include "rag/store_backend.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace kexa::rag {

namespace {

// Version of analyze(): bump it whenever the terms it produces change. A store indexed by another
// version is re-indexed from its stored chunk texts at the next ingest (unchanged files are
// otherwise never analysed again). Stores without the key date from version 1.
constexpr const char* kAnalysisVersion = "2";

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

bool is_postgres_uri(const std::string& s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

// Index terms of a chunk: its text, plus its heading when the text does not repeat it (later chunks
// of a section would otherwise lose the heading's words).
detail::TermCounts chunk_terms(const std::string& text, const std::string& heading, std::int64_t& len) {
  std::vector<std::string> terms = analyze(text);
  if (!heading.empty() && text.find(heading) == std::string::npos) {
    std::vector<std::string> h = analyze(heading);
    terms.insert(terms.end(), h.begin(), h.end());
  }
  len = static_cast<std::int64_t>(terms.size());
  std::unordered_map<std::string, std::int64_t> tf;
  for (const auto& t : terms) ++tf[t];
  detail::TermCounts out(tf.begin(), tf.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::string embed_input(const std::string& heading, const std::string& text) {
  return heading.empty() || text.find(heading) != std::string::npos ? text : heading + "\n" + text;
}

// Runs f() inside a read snapshot of `be`.
template <class F>
auto reading(detail::Backend& be, F&& f) {
  be.begin_read();
  struct EndRead {
    detail::Backend& be;
    ~EndRead() { be.end_read(); }
  } end_read{be};
  return f();
}

// Runs f() inside a write transaction of `be`: committed when f returns, rolled back when it throws.
template <class F>
void writing(detail::Backend& be, F&& f) {
  be.begin_write();
  try {
    f();
    be.commit();
  } catch (...) {
    be.rollback();
    throw;
  }
}

}  // namespace

std::string store_path(const std::string& p) { return fs::absolute(fs::path(p)).lexically_normal().string(); }

Store::Store(const std::string& path, bool read_only) : path_(path), postgres_(is_postgres_uri(path)) {
  be_ = postgres_ ? detail::open_postgres(path, read_only) : detail::open_sqlite(path, read_only);
}

Store::~Store() = default;

void Store::set_embedder(Embedder e, const std::string& model_id) {
  embed_ = std::move(e);
  embed_model_ = model_id;
}

void Store::check_embed_model() const {
  std::optional<std::string> stored = be_->meta("embed_model");
  if (stored && *stored != embed_model_)
    fail("rag store '", path_, "': its vectors were made by embedding model '", *stored, "', not '", embed_model_,
         "' (re-ingest with that model, or search without --embed-model)");
}

const char* Store::ingest_file(const std::string& path) {
  std::string data = read_all(path);
  std::string hash = sha256_hex(data);
  std::optional<detail::DocRow> old = be_->find_doc(path);
  if (old && old->sha256 == hash) return "unchanged";
  std::vector<ChunkRecord> chunks = extract_chunks(path, data, chunk_opt_);
  // Analysis and embedding happen before the write transaction so other writers wait less.
  std::vector<detail::TermCounts> terms(chunks.size());
  std::vector<std::int64_t> lens(chunks.size());
  std::vector<std::vector<float>> vecs;
  for (std::size_t i = 0; i < chunks.size(); ++i) terms[i] = chunk_terms(chunks[i].text, chunks[i].heading, lens[i]);
  if (embed_)
    for (const ChunkRecord& c : chunks) vecs.push_back(unit_vector(embed_(embed_input(c.heading, c.text))));
  writing(*be_, [&] {
    // Another process may have written this document meanwhile: look again inside the transaction.
    old = be_->find_doc(path);
    if (old) be_->delete_doc(old->id);
    std::int64_t doc = be_->insert_doc(path, hash, static_cast<std::int64_t>(data.size()));
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      std::int64_t id = be_->insert_chunk(doc, chunks[i], lens[i]);
      be_->insert_postings(id, terms[i]);
      if (embed_) be_->put_vector(id, vecs[i]);
    }
  });
  return old ? "updated" : "added";
}

void Store::embed_missing() {
  for (;;) {
    auto todo = be_->chunks_without_vector(64);
    if (todo.empty()) return;
    std::vector<std::vector<float>> vecs;
    for (const auto& [id, heading, text] : todo) vecs.push_back(unit_vector(embed_(embed_input(heading, text))));
    writing(*be_, [&] {
      for (std::size_t i = 0; i < todo.size(); ++i) be_->put_vector(std::get<0>(todo[i]), vecs[i]);
    });
  }
}

void Store::reindex_if_stale() {
  std::optional<std::string> v = be_->meta("analysis");
  if (v && *v == kAnalysisVersion) return;
  writing(*be_, [&] {
    // Inside the write transaction: another process may have re-indexed meanwhile.
    v = be_->meta("analysis");
    if (v && *v == kAnalysisVersion) return;
    auto chunks = be_->all_chunks();
    if (!chunks.empty()) {
      be_->clear_postings();
      for (const auto& [id, heading, text] : chunks) {
        std::int64_t len = 0;
        detail::TermCounts tf = chunk_terms(text, heading, len);
        be_->set_chunk_len(id, len);
        be_->insert_postings(id, tf);
      }
    }
    be_->set_meta("analysis", kAnalysisVersion);
  });
}

IngestStats Store::ingest(const std::vector<std::string>& paths, bool prune,
                          const std::function<void(const std::string&, const char*)>& progress) {
  IngestStats st;
  reindex_if_stale();
  if (embed_) {
    std::optional<std::string> stored = be_->meta("embed_model");
    if (!stored || *stored != embed_model_) {
      writing(*be_, [&] {
        if (stored) be_->clear_vectors();  // vectors of another model cannot be compared
        be_->set_meta("embed_model", embed_model_);
      });
    }
  }
  for (const std::string& given : paths) {
    std::error_code ec;
    fs::file_status s = fs::status(given, ec);
    if (ec || !fs::exists(s)) fail("rag ingest: '", given, "' does not exist");
    std::vector<std::string> files;
    bool folder = fs::is_directory(s);
    if (folder) {
      for (fs::recursive_directory_iterator it(given, fs::directory_options::skip_permission_denied), end;
           it != end; ++it) {
        std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (!it->is_regular_file()) continue;
        if (readable_type(it->path().string())) files.push_back(store_path(it->path().string()));
        else ++st.skipped;
      }
      std::sort(files.begin(), files.end());
    } else {
      if (!readable_type(given))
        fail("rag ingest: '", given, "': unsupported file type (reads .txt .text .md .markdown .html .htm .xhtml"
             " .pdf .jsonl .ndjson .json .csv)");
      files.push_back(store_path(given));
    }
    for (const std::string& f : files) {
      const char* what = nullptr;
      if (folder) {
        // One unreadable file in a folder does not stop the others (each file is its own
        // transaction); the caller reports it.
        try {
          what = ingest_file(f);
        } catch (const Error& e) {
          st.failed.emplace_back(f, e.what());
          if (progress) progress(f, "failed");
          continue;
        }
      } else {
        what = ingest_file(f);
      }
      if (std::string_view(what) == "added") ++st.added;
      else if (std::string_view(what) == "updated") ++st.updated;
      else ++st.unchanged;
      if (progress) progress(f, what);
    }
    if (prune && folder) {
      std::string prefix = store_path(given);
      if (prefix.back() != '/') prefix += '/';
      std::vector<std::string> gone;
      for (const auto& [id, p] : be_->docs_under(prefix, prefix))
        if (!fs::exists(p)) gone.push_back(p);
      for (const auto& p : gone) st.removed += remove(p);
    }
  }
  // Chunks stored without vectors (an earlier ingest without a model, a model change).
  if (embed_) embed_missing();
  st.chunks = static_cast<std::size_t>(be_->totals().first);
  return st;
}

std::size_t Store::remove(const std::string& given) {
  std::string p = store_path(given);
  std::string prefix = p.back() == '/' ? p : p + "/";
  auto docs = be_->docs_under(p, prefix);
  if (docs.empty()) return 0;
  writing(*be_, [&] {
    for (const auto& [id, path] : docs) be_->delete_doc(id);
  });
  return docs.size();
}

StoreStats Store::stats() const { return be_->stats(); }

std::vector<std::pair<double, std::int64_t>> Store::rank_bm25(std::string_view query, std::size_t depth) const {
  std::vector<std::pair<double, std::int64_t>> ranked;
  std::vector<std::string> terms = analyze_query(query);
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  if (terms.empty() || depth == 0) return ranked;
  auto [n, total_len] = be_->totals();
  if (n == 0) return ranked;
  double n_chunks = static_cast<double>(n);
  double avgdl = std::max(static_cast<double>(total_len) / n_chunks, 1.0);

  struct Posting { std::int64_t chunk, tf, len; };
  std::vector<std::vector<Posting>> lists(terms.size());
  be_->postings(terms, [&](std::size_t t, std::int64_t chunk, std::int64_t tf, std::int64_t len) {
    lists[t].push_back({chunk, tf, len});
  });
  // Summed term by term in sorted order so every backend yields bit-identical scores.
  std::unordered_map<std::int64_t, double> score;
  for (const auto& list : lists) {
    if (list.empty()) continue;
    double df = static_cast<double>(list.size());
    double idf = bm25_idf(n_chunks, df);
    for (const Posting& p : list)
      score[p.chunk] += bm25_term(bm25_, idf, static_cast<double>(p.tf), static_cast<double>(p.len), avgdl);
  }
  ranked.reserve(score.size());
  for (const auto& [id, s] : score) ranked.emplace_back(s, id);
  keep_best(ranked, depth);
  return ranked;
}

std::vector<std::pair<double, std::int64_t>> Store::rank_dense(std::string_view query, std::size_t depth) const {
  std::vector<std::pair<double, std::int64_t>> ranked;
  if (!embed_ || depth == 0) return ranked;
  check_embed_model();
  std::vector<float> q = unit_vector(embed_(query));
  be_->vectors([&](std::int64_t chunk, std::span<const float> v) {
    if (v.size() != q.size())
      fail("rag store '", path_, "': stored vector of chunk ", chunk, " has ", v.size(), " dimensions, the model gives ",
           q.size());
    ranked.emplace_back(dot(v, q), chunk);
  });
  keep_best(ranked, depth);
  return ranked;
}

std::vector<Hit> Store::hits(const std::vector<std::pair<double, std::int64_t>>& ranked, std::size_t k) const {
  std::vector<Hit> out;
  for (std::size_t i = 0; i < ranked.size() && out.size() < k; ++i) {
    std::optional<Hit> h = be_->chunk(ranked[i].second);
    if (!h) continue;
    h->score = ranked[i].first;
    out.push_back(std::move(*h));
  }
  return out;
}

std::vector<Hit> Store::search_bm25(std::string_view query, std::size_t k) const {
  return reading(*be_, [&] { return hits(rank_bm25(query, k), k); });
}

std::vector<Hit> Store::search_dense(std::string_view query, std::size_t k) const {
  return reading(*be_, [&] { return hits(rank_dense(query, k), k); });
}

std::vector<Hit> Store::search(std::string_view query, std::size_t k) const {
  if (k == 0) return {};
  // Read consistently even while another process ingests.
  return reading(*be_, [&] {
    if (!embed_ || !be_->meta("embed_model")) return hits(rank_bm25(query, k), k);
    std::size_t depth = std::max(k, kFuseDepth);
    const Ranking lists[] = {rank_bm25(query, depth), rank_dense(query, depth)};
    return hits(fuse_rankings(lists, k), k);
  });
}

}  // namespace kexa::rag
