#include <CLI/CLI.hpp>

#include "cli/args.h"
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
  // --help lists the options by concern, as llama-server's does; ~30 options in one list hide
  // the few most runs need (model, port, key).
  CLI::App& model = *app.add_option_group("Model");
  model.add_option("-m,--model", opt.model_path, "model folder, GGUF file, or ORG/REPO[:QUANT]")
      ->required()
      ->type_name("PATH|REPO");
  add_mmproj_option(model, opt.mmproj);
  model.add_option("--threads", opt.threads, "compute threads (default: all CPUs)")->check(CLI::Range(0, 1024));
  add_device_option(model, opt.device, opt.gpu_layers);
  add_cache_type_option(model, opt.cache_type);
  if (std::optional<int> rc = list_devices_if_asked(argc, argv)) return *rc;
  model.add_option("--parallel", opt.parallel, "sequences decoded together")->check(CLI::Range(1, 256));
  model.add_option("--ctx", opt.context, "context length per sequence")->check(CLI::Range(16, 1 << 20));
  model.add_option("--name", opt.model_name, "model id reported by /v1/models");

  CLI::App& http = *app.add_option_group("HTTP");
  http.add_option("--host", opt.host, "address to bind (default 127.0.0.1: this machine only)")->type_name("ADDR");
  http.add_option("--port", opt.port, "port (0 picks a free one)")->check(CLI::Range(0, 65535));
  http.add_option("--api-key", opt.api_key,
                  "require 'Authorization: Bearer KEY' on every route but /health and the UI's files")
      ->type_name("KEY")
      ->envname("KEXA_API_KEY");
  http.add_option("--metrics-key", opt.metrics_key, "the key /metrics requires instead of --api-key (for a scraper)")
      ->type_name("KEY")
      ->envname("KEXA_METRICS_KEY");
  http.add_option("--queue", opt.queue, "requests that may wait for a slot before 429")->check(CLI::Range(0, 1 << 16));
  http.add_option("--max-body", opt.max_body, "largest request body in bytes");

  CLI::App& knowledge = *app.add_option_group("Knowledge (documents, databases, the web)");
  knowledge.add_option("--rag-store", opt.rag_store,
                       "document store (SQLite file or postgresql://): enables /v1/rag/query, /v1/rag/documents\n"
                       "and the chat tool kexa_rag_search")
      ->type_name("STORE");
  knowledge.add_option("--rag-uploads", opt.rag_uploads,
                       "folder for documents uploaded through the API (default STORE.uploads)")
      ->type_name("DIR");
  knowledge.add_option("--max-document", opt.max_document, "largest uploaded document in bytes (default 4 MiB)");
  knowledge.add_option("--sql-db", opt.sql_db,
                       "database (sqlite:PATH or postgresql://...), queried read-only: enables /v1/sql/query\n"
                       "and the chat tool kexa_sql_query")
      ->type_name("DB");
  knowledge.add_option("--web-search", opt.web_search,
                       "search service (searxng:URL, brave: with BRAVE_API_KEY, json:URL): enables /v1/web/query\n"
                       "and the chat tool kexa_web_search")
      ->type_name("SERVICE");
  knowledge
      .add_option("--web-allow", opt.web_allow,
                  "let web fetches (and --image-fetch) reach these otherwise refused addresses: CIDR or host:port")
      ->allow_extra_args(false)
      ->type_name("CIDR|HOST:PORT");
  knowledge.add_option("--web-cache", opt.web_cache, "SQLite page cache for web fetches")->type_name("FILE");
  knowledge.add_option("--web-deadline-ms", opt.web_deadline_ms, "time for the page fetches of one web request")
      ->check(CLI::Range(100, 600000));

  CLI::App& images = *app.add_option_group("Pictures (vision models)");
  images.add_option("--max-images", opt.max_images, "most pictures one chat request may carry (default 8)")
      ->check(CLI::Range(0, 1024));
  images.add_option("--max-image-bytes", opt.max_image_bytes, "largest picture in bytes, encoded (default 16 MiB)");
  images.add_option("--max-image-pixels", opt.max_image_pixels,
                    "most pixels (width x height as its header declares) of one picture (default 40000000)");
  images.add_flag("--image-fetch", opt.image_fetch,
                  "fetch http(s) image URLs in chat messages (off: only data: URLs); internal addresses stay\n"
                  "refused unless --web-allow opens them");
  images.add_option("--image-fetch-timeout-ms", opt.image_fetch_timeout_ms, "time for the image fetches of one request")
      ->check(CLI::Range(100, 600000));
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  return server::serve(opt);
}

}  // namespace kexa::cli
