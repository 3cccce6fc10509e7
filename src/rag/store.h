// The document store: one SQLite file (WAL) holding documents, their chunks with source spans, and a
// BM25 inverted index (term -> postings). Every file is ingested in its own transaction, so a
// process killed mid-ingest leaves the store as it was after the last whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rag/analyze.h"

struct sqlite3;

namespace kexa::rag {

struct Bm25Params {
  double k1 = 0.9;
  double b = 0.75;
};

struct IngestStats {
  std::size_t added = 0;      // new documents
  std::size_t updated = 0;    // documents whose content hash changed (old chunks replaced)
  std::size_t unchanged = 0;  // same content hash: skipped
  std::size_t skipped = 0;    // files of a type the store does not read (in folders)
  std::size_t removed = 0;    // documents pruned because their file is gone
  std::size_t chunks = 0;     // chunks written
};

// One retrieved chunk. For text files (unit "byte") [begin, end) are byte offsets into the source
// file; for records of a JSON array (unit "record") they are [index, index + 1) of the record.
struct Hit {
  std::int64_t chunk_id = 0;
  std::string path;
  std::string unit;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::string heading;
  std::string text;
  double score = 0;
};

struct StoreStats {
  std::int64_t documents = 0;
  std::int64_t chunks = 0;
  std::int64_t terms = 0;
};

class Store {
 public:
  // Opens (creating unless read_only) the store at `path`. Throws kexa::Error naming the file when
  // it is not a kexa store or cannot be opened.
  explicit Store(const std::string& path, bool read_only = false);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Ingests files and folders (recursively: .txt .md .markdown .jsonl .ndjson .json .csv).
  // `prune` also removes stored documents under a given folder whose file no longer exists.
  // `progress` (optional) is called after each file with its path and what happened.
  IngestStats ingest(const std::vector<std::string>& paths, bool prune = false,
                     const std::function<void(const std::string&, const char*)>& progress = {});

  // Removes the document at `path`, or every document under it when it names a folder.
  // Returns the number of documents removed.
  std::size_t remove(const std::string& path);

  // The k best chunks for `query` by BM25 (ties broken by chunk id).
  std::vector<Hit> search(std::string_view query, std::size_t k) const;

  StoreStats stats() const;
  void set_chunk_options(const ChunkOptions& o) { chunk_opt_ = o; }
  void set_bm25(const Bm25Params& p) { bm25_ = p; }

 private:
  struct ChunkRec {
    std::string unit;
    std::int64_t begin, end;
    std::string heading, text;
  };
  const char* ingest_file(const std::string& abs_path);  // returns "added"/"updated"/"unchanged"
  void write_document(const std::string& path, const std::string& hash, std::int64_t size,
                      const std::vector<ChunkRec>& chunks);
  void delete_document(std::int64_t doc_id);
  std::int64_t term_id(const std::string& term);
  void exec(const char* sql);

  sqlite3* db_ = nullptr;
  std::string path_;
  ChunkOptions chunk_opt_;
  Bm25Params bm25_;
  std::unordered_map<std::string, std::int64_t> term_cache_;  // valid only inside one transaction
};

// Absolute, lexically normal form of a path as the store records it.
std::string store_path(const std::string& p);

}  // namespace kexa::rag
