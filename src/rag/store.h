// The document store: documents, their chunks with source spans, a BM25 inverted index
// (term -> postings) and optional dense vectors, kept in one SQLite file (WAL) or, for scale-out, in
// a PostgreSQL database with the same tables. Every file is ingested in its own transaction, so a
// process killed mid-ingest leaves the store as it was after the last whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rag/analyze.h"
#include "rag/rank.h"

namespace kexa::rag {

struct IngestStats {
  std::size_t added = 0;      // new documents
  std::size_t updated = 0;    // documents whose content hash changed (old chunks replaced)
  std::size_t unchanged = 0;  // same content hash: skipped
  std::size_t skipped = 0;    // files of a type the store does not read (in folders)
  std::size_t removed = 0;    // documents pruned because their file is gone
  std::size_t chunks = 0;     // chunks in the store afterwards
  // Files found in a folder that could not be read (damaged PDF, invalid JSON, ...): path and
  // the error. The other files are still ingested; a file named directly throws instead.
  std::vector<std::pair<std::string, std::string>> failed;
};

// One retrieved chunk. For text files (unit "byte") [begin, end) are byte offsets into the source
// file; for records of a JSON array (unit "record") they are [index, index + 1) of the record; for
// HTML (unit "text") byte offsets into html_to_text of the file; for PDF (unit "page") byte offsets
// into the extracted text of page `page` (see rag/ingest.h).
struct Hit {
  std::int64_t chunk_id = 0;
  std::string path;
  std::string unit;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::string heading;
  std::string text;
  double score = 0;         // BM25, or the reciprocal-rank-fusion score when vectors were used
  std::int64_t page = 0;    // PDF page (1-based), 0 otherwise
};

// Text -> embedding vector (any length, the same for every call). Set one on a Store to store
// vectors at ingest and to fuse dense with BM25 rankings at search.
using Embedder = std::function<std::vector<float>(std::string_view text)>;

struct StoreStats {
  std::int64_t documents = 0;
  std::int64_t chunks = 0;
  std::int64_t terms = 0;
  std::int64_t vectors = 0;
};

namespace detail { class Backend; }

class Store {
 public:
  // Opens (creating unless read_only) the store at `path`: a SQLite file, or a PostgreSQL database
  // given as a postgresql:// (or postgres://) URI. Throws kexa::Error naming the store when it is
  // not a kexa store or cannot be opened.
  explicit Store(const std::string& path, bool read_only = false);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Ingests files and folders (recursively: .txt .md .markdown .html .htm .pdf .jsonl .ndjson .json
  // .csv). A store indexed by an older version of the text analysis is first re-indexed from its
  // stored chunks (one transaction).
  // `prune` also removes stored documents under a given folder whose file no longer exists.
  // `progress` (optional) is called after each file with its path and what happened ("added",
  // "updated", "unchanged", or "failed" for a folder's file that could not be read).
  IngestStats ingest(const std::vector<std::string>& paths, bool prune = false,
                     const std::function<void(const std::string&, const char*)>& progress = {});

  // Removes the document at `path`, or every document under it when it names a folder.
  // Returns the number of documents removed.
  std::size_t remove(const std::string& path);

  // The k best chunks for `query` by BM25 (ties broken by chunk id). With an embedder set and
  // vectors in the store: BM25 and cosine rankings fused by reciprocal rank (k = 60).
  std::vector<Hit> search(std::string_view query, std::size_t k) const;

  // Only BM25 / only cosine similarity (no fusion); for inspection and tests.
  std::vector<Hit> search_bm25(std::string_view query, std::size_t k) const;
  std::vector<Hit> search_dense(std::string_view query, std::size_t k) const;

  // `model_id` names the embedding model (its path); the store remembers it and refuses to mix
  // vectors of different models: ingest re-embeds every chunk, search fails with a clear error.
  void set_embedder(Embedder e, const std::string& model_id);
  // True when this store is PostgreSQL.
  bool is_postgres() const { return postgres_; }

  StoreStats stats() const;
  void set_chunk_options(const ChunkOptions& o) { chunk_opt_ = o; }
  void set_bm25(const Bm25Params& p) { bm25_ = p; }

 private:
  const char* ingest_file(const std::string& abs_path);  // returns "added"/"updated"/"unchanged"
  void embed_missing();
  void reindex_if_stale();  // re-analyses every stored chunk when the analysis version changed
  void check_embed_model() const;
  std::vector<std::pair<double, std::int64_t>> rank_bm25(std::string_view query, std::size_t depth) const;
  std::vector<std::pair<double, std::int64_t>> rank_dense(std::string_view query, std::size_t depth) const;
  std::vector<Hit> hits(const std::vector<std::pair<double, std::int64_t>>& ranked, std::size_t k) const;

  std::unique_ptr<detail::Backend> be_;
  std::string path_;
  bool postgres_ = false;
  ChunkOptions chunk_opt_;
  Bm25Params bm25_;
  Embedder embed_;
  std::string embed_model_;
};

// Absolute, lexically normal form of a path as the store records it.
std::string store_path(const std::string& p);

}  // namespace kexa::rag
