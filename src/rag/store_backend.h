// Storage primitives behind rag::Store (internal to src/rag). The ranking, chunking and ingest
// logic live once in store.cpp; a backend only keeps rows: SQLite (one file, WAL) or PostgreSQL
// (scale-out). Both hold the same tables (doc, chunk, term, posting, vec, kexa_meta), so the same
// data gives the same chunk ids and, with the shared BM25 code, the same search results.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rag/ingest.h"
#include "rag/store.h"

namespace kexa::rag::detail {

struct DocRow {
  std::int64_t id = 0;
  std::string sha256;
};

// (term, frequency in the chunk), terms distinct.
using TermCounts = std::vector<std::pair<std::string, std::int64_t>>;

// A stored chunk's (id, heading, text).
using ChunkText = std::tuple<std::int64_t, std::string, std::string>;

class Backend {
 public:
  virtual ~Backend() = default;

  // A write transaction (exclusive among writers); rollback never throws.
  virtual void begin_write() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  // A consistent snapshot for a search while others may write.
  virtual void begin_read() = 0;
  virtual void end_read() noexcept = 0;

  virtual std::optional<DocRow> find_doc(const std::string& path) = 0;
  virtual std::int64_t insert_doc(const std::string& path, const std::string& sha256, std::int64_t size) = 0;
  // Removes the document with its chunks, postings and vectors.
  virtual void delete_doc(std::int64_t id) = 0;
  // Documents whose path equals `path` or starts with `prefix` (id, path).
  virtual std::vector<std::pair<std::int64_t, std::string>> docs_under(const std::string& path,
                                                                       const std::string& prefix) = 0;
  // Stores a chunk whose text has `len` terms; returns the chunk id.
  virtual std::int64_t insert_chunk(std::int64_t doc, const ChunkRecord& r, std::int64_t len) = 0;
  // Stores a chunk's postings, interning terms not seen before.
  virtual void insert_postings(std::int64_t chunk, const TermCounts& tf) = 0;

  // Number of chunks and the sum of their lengths (in terms).
  virtual std::pair<std::int64_t, std::int64_t> totals() = 0;
  // Calls f(term index, chunk, tf, chunk length) for every posting of every term.
  virtual void postings(const std::vector<std::string>& terms,
                        const std::function<void(std::size_t, std::int64_t, std::int64_t, std::int64_t)>& f) = 0;
  // The chunk with its document path; nullopt when gone.
  virtual std::optional<Hit> chunk(std::int64_t id) = 0;
  virtual StoreStats stats() = 0;

  // Re-indexing after an analysis change: every chunk; drop all postings and terms; store a
  // chunk's new length (its new postings go through insert_postings).
  virtual std::vector<ChunkText> all_chunks() = 0;
  virtual void clear_postings() = 0;
  virtual void set_chunk_len(std::int64_t chunk, std::int64_t len) = 0;

  virtual std::optional<std::string> meta(const std::string& key) = 0;
  virtual void set_meta(const std::string& key, const std::string& value) = 0;

  // Dense vectors (one per chunk).
  virtual void put_vector(std::int64_t chunk, std::span<const float> v) = 0;
  virtual void clear_vectors() = 0;
  // Up to `limit` chunks that have no vector yet.
  virtual std::vector<ChunkText> chunks_without_vector(std::size_t limit) = 0;
  virtual void vectors(const std::function<void(std::int64_t, std::span<const float>)>& f) = 0;
};

std::unique_ptr<Backend> open_sqlite(const std::string& path, bool read_only);
// `uri`: postgresql://... or postgres://... (libpq connection URI).
std::unique_ptr<Backend> open_postgres(const std::string& uri, bool read_only);

}  // namespace kexa::rag::detail
