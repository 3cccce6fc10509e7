#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/device.h"
#include "server/server.h"

namespace kexa::cli {

int serve_main(int argc, char** argv) {
  server::ServerOptions opt;
  CLI::App app{"Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions,\n"
               "/v1/completions, /v1/models, /tokenize, /detokenize, /apply-template, /health,\n"
               "/metrics) with continuous batching, and a web chat UI at /. With --rag-store and --sql-db:\n"
               "/v1/rag/query, /v1/rag/documents, /v1/sql/query and the server-side chat tools."};
  app.name("kexa serve");
  app.add_option("-m,--model", opt.model_path, "model folder, GGUF file, or ORG/REPO[:QUANT]")->required();
  app.add_option("--host", opt.host, "address to bind (default 127.0.0.1: this machine only)");
  app.add_option("--port", opt.port, "port (0 picks a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--api-key", opt.api_key,
                 "require 'Authorization: Bearer KEY' on every route but /health and the UI's files")
      ->envname("KEXA_API_KEY");
  app.add_option("--metrics-key", opt.metrics_key, "the key /metrics requires instead of --api-key (for a scraper)")
      ->envname("KEXA_METRICS_KEY");
  app.add_option("--parallel", opt.parallel, "sequences decoded together")->check(CLI::Range(1, 256));
  app.add_option("--ctx", opt.context, "context length per sequence")->check(CLI::Range(16, 1 << 20));
  app.add_option("--queue", opt.queue, "requests that may wait for a slot before 429")->check(CLI::Range(0, 1 << 16));
  app.add_option("--threads", opt.threads, "compute threads (default: all CPUs)")->check(CLI::Range(0, 1024));
  add_mmproj_option(app, opt.mmproj);
  add_device_option(app, opt.device, opt.gpu_layers);
  if (std::optional<int> rc = list_devices_if_asked(argc, argv)) return *rc;
  app.add_option("--max-body", opt.max_body, "largest request body in bytes");
  app.add_option("--name", opt.model_name, "model id reported by /v1/models");
  app.add_option("--rag-store", opt.rag_store,
                 "document store (SQLite file or postgresql://): enables /v1/rag/query, /v1/rag/documents\n"
                 "and the chat tool kexa_rag_search");
  app.add_option("--rag-uploads", opt.rag_uploads, "folder for documents uploaded through the API (default STORE.uploads)");
  app.add_option("--max-document", opt.max_document, "largest uploaded document in bytes (default 4 MiB)");
  app.add_option("--sql-db", opt.sql_db,
                 "database (sqlite:PATH or postgresql://...), queried read-only: enables /v1/sql/query\n"
                 "and the chat tool kexa_sql_query");
  app.add_option("--web-search", opt.web_search,
                 "search service (searxng:URL, brave: with BRAVE_API_KEY, json:URL): enables /v1/web/query\n"
                 "and the chat tool kexa_web_search");
  app.add_option("--web-allow", opt.web_allow, "let web fetches reach these otherwise refused addresses: CIDR or host:port")
      ->allow_extra_args(false);
  app.add_option("--web-cache", opt.web_cache, "SQLite page cache for web fetches");
  app.add_option("--web-deadline-ms", opt.web_deadline_ms, "time for the page fetches of one web request")
      ->check(CLI::Range(100, 600000));
  app.add_option("--max-images", opt.max_images, "most pictures one chat request may carry (default 8)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--max-image-bytes", opt.max_image_bytes, "largest picture in bytes, encoded (default 16 MiB)");
  app.add_option("--max-image-pixels", opt.max_image_pixels,
                 "most pixels (width x height as its header declares) of one picture (default 40000000)");
  app.add_flag("--image-fetch", opt.image_fetch,
               "fetch http(s) image URLs in chat messages (off: only data: URLs); internal addresses stay\n"
               "refused unless --web-allow opens them");
  app.add_option("--image-fetch-timeout-ms", opt.image_fetch_timeout_ms, "time for the image fetches of one request")
      ->check(CLI::Range(100, 600000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return server::serve(opt);
}

}  // namespace kexa::cli
