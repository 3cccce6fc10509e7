// libFuzzer target: document ingest (Markdown/text chunking, HTML via libxml2, PDF via Poppler,
// JSON/JSONL records, CSV rows). Any input must give chunks whose spans lie inside the source and
// fall on UTF-8 boundaries, or a kexa::Error naming the file; never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "rag/ingest.h"
#include "util/error.h"

namespace {

const char* const kExtensions[] = {".md", ".txt", ".html", ".pdf", ".json", ".jsonl", ".csv"};

void check_spans(const std::string& data, const std::vector<kexa::rag::ChunkRecord>& chunks) {
  for (const auto& c : chunks) {
    if (c.begin < 0 || c.end < c.begin) __builtin_trap();
    if (c.unit == "byte") {
      if (static_cast<size_t>(c.end) > data.size()) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the document type, the rest is the file's content.
  const char* ext = kExtensions[data[0] % (sizeof(kExtensions) / sizeof(kExtensions[0]))];
  std::string content(reinterpret_cast<const char*>(data + 1), size - 1);
  kexa::rag::ChunkOptions opt;
  opt.target_chars = 64 + data[0] % 200;
  opt.max_chars = opt.target_chars * 2;
  opt.overlap_chars = data[0] % 40;
  try {
    check_spans(content, kexa::rag::extract_chunks(std::string("doc") + ext, content, opt));
  } catch (const kexa::Error&) {
  }
  return 0;
}
