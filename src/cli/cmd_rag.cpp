#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "runtime/embedder.h"
#include "rag/store.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

nlohmann::json hit_json(const rag::Hit& h, std::size_t rank) {
  nlohmann::json j = {{"rank", rank},     {"score", h.score}, {"path", h.path},       {"unit", h.unit},
                      {"begin", h.begin}, {"end", h.end},     {"heading", h.heading}, {"text", h.text},
                      {"chunk", h.chunk_id}};
  if (h.page > 0) j["page"] = h.page;
  return j;
}

// Everything `kexa rag` ingest/search/delete/stats read from the command line.
struct RagArgs {
  std::string store, embed_model, query, queries_file, mode = "hybrid";
  std::vector<std::string> paths, del_paths;
  bool prune = false, quiet = false, json = false;
  int threads = 0;
  std::size_t chunk_chars = 0, k = 5;
  double k1 = 0.9, b = 0.75;
  CLI::App *ingest = nullptr, *search = nullptr, *del = nullptr, *stats = nullptr;
};

void add_rag_subcommands(CLI::App& app, RagArgs& a) {
  a.ingest = app.add_subcommand("ingest", "add or update files and folders (unchanged files are skipped)");
  a.ingest->add_option("--store", a.store, "store file (created if missing)")->required();
  a.ingest->add_option("paths", a.paths, "files or folders")->required();
  a.ingest->add_flag("--prune", a.prune, "also remove stored documents under the folders whose files are gone");
  a.ingest->add_flag("-q,--quiet", a.quiet, "no per-file lines");
  a.ingest->add_option("--embed-model", a.embed_model,
                       "model (HF folder or .gguf) whose pooled hidden states are stored as vectors");
  a.ingest->add_option("-t,--threads", a.threads, "threads for the embedding model (0 = all)");
  a.ingest
      ->add_option("--chunk-chars", a.chunk_chars,
                   "target chunk size in characters (default 1000; a sentence longer than 1.5x is cut, "
                   "overlap 15%); changed files are re-chunked, unchanged ones keep their chunks")
      ->check(CLI::Range(50, 100000));

  a.search = app.add_subcommand("search", "print the best chunks for a question");
  a.search->add_option("--store", a.store, "store file")->required();
  a.search->add_option("question", a.query, "question or keywords");
  a.search->add_option("-k", a.k, "number of chunks")->check(CLI::Range(1, 10000));
  a.search->add_flag("--json", a.json, "JSON output");
  a.search->add_option("--queries", a.queries_file,
                       "batch mode (benchmarks): one question per line; prints one JSON line per question");
  a.search->add_option("--k1", a.k1, "BM25 k1")->check(CLI::Range(0.0, 10.0));
  a.search->add_option("--b", a.b, "BM25 b")->check(CLI::Range(0.0, 1.0));
  a.search->add_option("--embed-model", a.embed_model, "the model the store's vectors were made with (enables fusion)");
  a.search->add_option("-t,--threads", a.threads, "threads for the embedding model (0 = all)");
  a.search->add_option("--mode", a.mode, "hybrid (BM25 + vectors by reciprocal rank when a model is given), bm25, dense")
      ->check(CLI::IsMember({"hybrid", "bm25", "dense"}));

  a.del = app.add_subcommand("delete", "remove documents (a folder removes everything under it)");
  a.del->add_option("--store", a.store, "store file")->required();
  a.del->add_option("paths", a.del_paths, "files or folders as they were ingested")->required();

  // Listed for --help only: `kexa rag query` is dispatched before parsing, with its own options.
  app.add_subcommand("query", "answer a question from the documents with citations (-m MODEL; see kexa rag query --help)");
  a.stats = app.add_subcommand("stats", "count documents, chunks and terms");
  a.stats->add_option("--store", a.store, "store file")->required();
}

int rag_ingest(const RagArgs& a, rag::Store& st) {
  if (a.chunk_chars > 0) {
    rag::ChunkOptions co;
    co.target_chars = a.chunk_chars;
    co.max_chars = a.chunk_chars + a.chunk_chars / 2;
    co.overlap_chars = a.chunk_chars * 15 / 100;
    st.set_chunk_options(co);
  }
  auto progress = [&](const std::string& p, const char* what) {
    if (!a.quiet) std::fprintf(stderr, "%-9s %s\n", what, p.c_str());
  };
  rag::IngestStats s = st.ingest(a.paths, a.prune, progress);
  for (const auto& [path, err] : s.failed) std::fprintf(stderr, "kexa rag: error: %s\n", err.c_str());
  std::printf("added %zu, updated %zu, unchanged %zu, removed %zu, skipped %zu (unsupported type)", s.added, s.updated,
              s.unchanged, s.removed, s.skipped);
  if (!s.failed.empty()) std::printf(", failed %zu", s.failed.size());
  std::printf("; %zu chunks in store\n", s.chunks);
  return s.failed.empty() ? 0 : 1;
}

void print_hits(const std::vector<rag::Hit>& hits, bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < hits.size(); ++i) out.push_back(hit_json(hits[i], i + 1));
    std::cout << out.dump(2) << '\n';
    return;
  }
  if (hits.empty()) std::printf("no matching chunks\n");
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const auto& h = hits[i];
    std::string where = h.page > 0 ? "page " + std::to_string(h.page) : h.unit;
    std::printf("%zu. %.3f %s [%s %lld-%lld]%s%s\n", i + 1, h.score, h.path.c_str(), where.c_str(),
                static_cast<long long>(h.begin), static_cast<long long>(h.end), h.heading.empty() ? "" : " # ",
                h.heading.c_str());
    std::string t = h.text;
    for (char& c : t)
      if (c == '\n') c = ' ';
    std::printf("   %s\n", t.c_str());
  }
}

int rag_search(const RagArgs& a, rag::Store& st, bool has_embedder) {
  st.set_bm25({a.k1, a.b});
  if (a.mode == "dense" && !has_embedder) fail("rag search: --mode dense needs --embed-model");
  auto run_search = [&](std::string_view q, std::size_t n) {
    if (a.mode == "bm25") return st.search_bm25(q, n);
    if (a.mode == "dense") return st.search_dense(q, n);
    return st.search(q, n);
  };
  if (!a.queries_file.empty()) {
    std::ifstream in(a.queries_file);
    if (!in) fail("rag search: cannot read queries file '", a.queries_file, "'");
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json out = nlohmann::json::array();
      std::size_t rank = 1;
      for (const auto& h : run_search(line, a.k))
        out.push_back({{"rank", rank++}, {"score", h.score}, {"path", h.path}, {"begin", h.begin}, {"end", h.end}});
      std::cout << out.dump() << '\n';
    }
    return 0;
  }
  if (a.query.empty()) fail("rag search: give a question (or --queries FILE)");
  print_hits(run_search(a.query, a.k), a.json);
  return 0;
}

}  // namespace

int rag_query_main(int argc, char** argv);  // model_answers.cpp

int rag_main(int argc, char** argv) {
  // `kexa rag query` needs a model; it lives in model_answers.cpp with its own options.
  if (argc >= 2 && std::string(argv[1]) == "query") return rag_query_main(argc - 1, argv + 1);
  CLI::App app{"Document store for retrieval: ingest folders of .txt/.md/.html/.pdf/.jsonl/.json/.csv into one\n"
               "SQLite file (or a PostgreSQL database: --store postgresql://...) and search it with BM25\n"
               "(Korean-aware analysis), fused with dense vectors when --embed-model is given. Spans are byte\n"
               "offsets into the source file (.json array records: the record index; HTML: into its extracted\n"
               "text; PDF: into the extracted text of the page given)."};
  app.name("kexa rag");
  app.require_subcommand(1);
  RagArgs a;
  add_rag_subcommands(app, a);
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;

  std::unique_ptr<TextEmbedder> embedder;
  if (!a.embed_model.empty()) embedder = std::make_unique<TextEmbedder>(a.embed_model, a.threads);
  auto attach = [&](rag::Store& st) {
    if (embedder)
      st.set_embedder([e = embedder.get()](std::string_view t) { return e->embed(t); }, embedder->model_id());
  };
  if (*a.ingest) {
    rag::Store st(a.store);
    attach(st);
    return rag_ingest(a, st);
  }
  if (*a.del) {
    rag::Store st(a.store);
    std::size_t n = 0;
    for (const auto& p : a.del_paths) n += st.remove(p);
    std::printf("removed %zu documents\n", n);
    return n > 0 ? 0 : 1;
  }
  if (*a.stats) {
    rag::Store st(a.store, /*read_only=*/true);
    rag::StoreStats s = st.stats();
    std::printf("documents %lld, chunks %lld, terms %lld, vectors %lld\n", static_cast<long long>(s.documents),
                static_cast<long long>(s.chunks), static_cast<long long>(s.terms), static_cast<long long>(s.vectors));
    return 0;
  }
  rag::Store st(a.store, /*read_only=*/true);
  attach(st);
  return rag_search(a, st, embedder != nullptr);
}

}  // namespace kexa::cli
