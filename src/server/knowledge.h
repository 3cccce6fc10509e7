// The server's document store (kexa serve --rag-store): uploads kept as files in a folder next
// to the store and ingested into it, listing and deletion for the web UI's documents panel, and
// search for /v1/rag/query and the kexa_rag_search tool. One mutex serialises store access
// (ingest writes, searches read) because a Store is one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rag/store.h"

namespace kexa::server {

class Documents {
 public:
  // uploads_dir empty = STORE_PATH + ".uploads". Creates the folder; throws kexa::Error naming
  // the store or the folder when either cannot be opened.
  Documents(const std::string& store_path, std::string uploads_dir, size_t max_document_bytes);

  // A file name the UI may upload: one path component of at most 200 bytes, no control
  // characters, not starting with '.', with an extension the store reads. Throws kexa::Error
  // saying what is wrong.
  static void check_name(std::string_view name);

  // Writes (or replaces) the document and ingests it. Returns {"document": {...}, "ingest": {...}}.
  nlohmann::json upload(const std::string& name, std::string_view content);
  // Uploaded documents: [{"name", "path", "bytes", "modified"}], plus the store's totals.
  nlohmann::json list() const;
  // Removes an uploaded document from the store and the folder; false when there is none.
  bool remove(const std::string& name);
  std::vector<rag::Hit> search(std::string_view query, size_t k) const;
  // The stored chunk text of a hit, with its source; used for citations.
  static nlohmann::json hit_json(const rag::Hit& h, int number);

  size_t max_document_bytes() const { return max_bytes_; }
  const std::string& uploads_dir() const { return uploads_; }

 private:
  std::string path_of(const std::string& name) const;

  mutable std::mutex mu_;
  std::unique_ptr<rag::Store> store_;
  std::string uploads_;
  size_t max_bytes_;
};

}  // namespace kexa::server
