#include "server/knowledge.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace kexa::server {

namespace fs = std::filesystem;

Documents::Documents(const std::string& store_path, std::string uploads_dir, size_t max_document_bytes)
    : uploads_(uploads_dir.empty() ? store_path + ".uploads" : std::move(uploads_dir)),
      max_bytes_(max_document_bytes) {
  store_ = std::make_unique<rag::Store>(store_path, /*read_only=*/false);
  std::error_code ec;
  fs::create_directories(uploads_, ec);
  if (ec || !fs::is_directory(uploads_)) fail("--rag-uploads ", uploads_, ": cannot create the folder (", ec.message(), ")");
  uploads_ = rag::store_path(uploads_);
}

void Documents::check_name(std::string_view name) {
  if (name.empty()) fail("the document name is empty");
  if (name.size() > 200) fail("the document name is longer than 200 bytes");
  if (name.front() == '.') fail("the document name may not start with '.'");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == ':') {
      fail("the document name may not hold '/', '\\', ':' or control characters");
    }
  }
  std::string ext = fs::path(std::string(name)).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const char* kTypes[] = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".json", ".jsonl", ".ndjson", ".csv"};
  if (std::find(std::begin(kTypes), std::end(kTypes), ext) == std::end(kTypes)) {
    fail("the document type '", ext, "' is not one of .txt .md .markdown .html .htm .pdf .json .jsonl .ndjson .csv");
  }
}

std::string Documents::path_of(const std::string& name) const { return (fs::path(uploads_) / name).string(); }

nlohmann::json Documents::upload(const std::string& name, std::string_view content) {
  check_name(name);
  if (content.size() > max_bytes_) fail("the document has ", content.size(), " bytes; the limit is ", max_bytes_);
  std::lock_guard<std::mutex> lk(mu_);
  const std::string path = path_of(name);
  const std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) fail("cannot write ", tmp);
  }
  fs::rename(tmp, path);  // a reader never sees half a file
  rag::IngestStats s;
  try {
    s = store_->ingest({path});
  } catch (const Error&) {
    std::error_code ec;
    fs::remove(path, ec);  // a file the store cannot read stays out of the list too
    throw;
  }
  return {{"document", {{"name", name}, {"path", path}, {"bytes", content.size()}}},
          {"ingest", {{"added", s.added}, {"updated", s.updated}, {"unchanged", s.unchanged}, {"chunks", s.chunks}}}};
}

nlohmann::json Documents::list() const {
  std::lock_guard<std::mutex> lk(mu_);
  nlohmann::json docs = nlohmann::json::array();
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(uploads_)) {
    if (e.is_regular_file() && e.path().extension() != ".part") entries.push_back(e);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const auto& e : entries) {
    struct stat st{};
    int64_t modified = ::stat(e.path().c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
    docs.push_back({{"name", e.path().filename().string()}, {"path", e.path().string()},
                    {"bytes", e.file_size()}, {"modified", modified}});
  }
  rag::StoreStats s = store_->stats();
  return {{"object", "list"}, {"data", docs},
          {"store", {{"documents", s.documents}, {"chunks", s.chunks}}}};
}

bool Documents::remove(const std::string& name) {
  check_name(name);
  std::lock_guard<std::mutex> lk(mu_);
  const std::string path = path_of(name);
  if (!fs::is_regular_file(path)) return false;
  store_->remove(path);
  std::error_code ec;
  fs::remove(path, ec);
  return true;
}

std::vector<rag::Hit> Documents::search(std::string_view query, size_t k) const {
  std::lock_guard<std::mutex> lk(mu_);
  return store_->search(query, k);
}

nlohmann::json Documents::hit_json(const rag::Hit& h, int number) {
  nlohmann::json j = {{"path", h.path}, {"name", fs::path(h.path).filename().string()}, {"unit", h.unit},
                      {"begin", h.begin}, {"end", h.end}, {"heading", h.heading}, {"text", h.text},
                      {"score", h.score}};
  if (number > 0) j["number"] = number;
  if (h.page > 0) j["page"] = h.page;
  return j;
}

}  // namespace kexa::server
