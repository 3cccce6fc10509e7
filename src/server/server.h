// `kexa serve`: an OpenAI-compatible HTTP API with continuous batching, plus the web chat UI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kexa::server {

struct ServerOptions {
  std::string model_path;
  std::string model_name;  // id reported by /v1/models (default: the path's last component)
  std::string host = "127.0.0.1";
  int port = 8080;
  // When set, every route but /health and the UI's files requires "Authorization: Bearer KEY".
  std::string api_key;
  std::string metrics_key;  // when set, /metrics requires it (instead of api_key)
  int parallel = 4;         // sequences decoded together
  int64_t context = 4096;   // positions per sequence
  int queue = 64;           // requests waiting for a slot before 429
  size_t max_body = 8u << 20;
  int threads = 0;          // compute threads (0 = all CPUs)
  std::string mmproj;       // vision tower of a GGUF model (EngineOptions::mmproj)
  std::string device = "auto";  // where the model runs: auto, vulkan or cpu (EngineOptions::device)
  int64_t gpu_layers = -1;      // EngineOptions::gpu_layers
  std::string cache_type = "f32";  // KV cache element type: f32 or f16 (EngineOptions::kv_type)
  int http_threads = 64;    // concurrent connections served
  // Grounded answers and text-to-SQL (opt-in): /v1/rag/*, /v1/sql/query and the chat tools
  // kexa_rag_search / kexa_sql_query.
  std::string rag_store;        // store file (or postgresql:// URI); empty = RAG endpoints off
  std::string rag_uploads;      // folder for uploaded documents (default: STORE.uploads)
  size_t max_document = 4u << 20;  // largest uploaded document in bytes
  std::string sql_db;           // sqlite:PATH or postgresql://...; empty = SQL endpoints off
  // Web answers (opt-in): /v1/web/query and the chat tool kexa_web_search (server/web_routes.h).
  std::string web_search;              // searxng:URL, brave:, json:URL; empty = no web access
  std::vector<std::string> web_allow;  // address policy exceptions (CIDR or host:port)
  std::string web_cache;               // SQLite page cache; empty = none
  long web_deadline_ms = 20000;        // all page fetches of one request
  // Pictures in chat messages (image_url content parts; server/images.h): data: URLs always,
  // http(s) URLs only with image_fetch (under the web address policy and web_allow).
  int max_images = 8;                      // per request
  size_t max_image_bytes = 16u << 20;      // encoded, per picture
  uint64_t max_image_pixels = 40000000;    // width x height as declared, per picture
  bool image_fetch = false;
  long image_fetch_timeout_ms = 10000;     // all fetches of one request
};

// Loads the model, binds, and serves until SIGINT/SIGTERM. Prints the bound address on stderr
// (port 0 picks a free port; the line "kexa serve: listening on http://HOST:PORT" tells which).
int serve(const ServerOptions& options);

}  // namespace kexa::server
