#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "rag/store.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

nlohmann::json hit_json(const rag::Hit& h, std::size_t rank) {
  return {{"rank", rank},       {"score", h.score}, {"path", h.path},       {"unit", h.unit},
          {"begin", h.begin},   {"end", h.end},     {"heading", h.heading}, {"text", h.text},
          {"chunk", h.chunk_id}};
}

}  // namespace

int rag_main(int argc, char** argv) {
  CLI::App app{"Document store for retrieval: ingest folders of .txt/.md/.jsonl/.json/.csv into one SQLite\n"
               "file and search it with BM25 (Korean-aware analysis). Spans are byte offsets into the\n"
               "source file (records of a .json array: the record index)."};
  app.name("kexa rag");
  app.require_subcommand(1);

  std::string store;
  std::vector<std::string> paths;
  bool prune = false, quiet = false;
  auto* ingest = app.add_subcommand("ingest", "add or update files and folders (unchanged files are skipped)");
  ingest->add_option("--store", store, "store file (created if missing)")->required();
  ingest->add_option("paths", paths, "files or folders")->required();
  ingest->add_flag("--prune", prune, "also remove stored documents under the folders whose files are gone");
  ingest->add_flag("-q,--quiet", quiet, "no per-file lines");

  std::string query, queries_file;
  std::size_t k = 5;
  bool json = false;
  double k1 = 0.9, b = 0.75;
  auto* search = app.add_subcommand("search", "print the best chunks for a question");
  search->add_option("--store", store, "store file")->required();
  search->add_option("question", query, "question or keywords");
  search->add_option("-k", k, "number of chunks")->check(CLI::Range(1, 10000));
  search->add_flag("--json", json, "JSON output");
  search->add_option("--queries", queries_file,
                     "batch mode (benchmarks): one question per line; prints one JSON line per question");
  search->add_option("--k1", k1, "BM25 k1")->check(CLI::Range(0.0, 10.0));
  search->add_option("--b", b, "BM25 b")->check(CLI::Range(0.0, 1.0));

  std::vector<std::string> del_paths;
  auto* del = app.add_subcommand("delete", "remove documents (a folder removes everything under it)");
  del->add_option("--store", store, "store file")->required();
  del->add_option("paths", del_paths, "files or folders as they were ingested")->required();

  auto* stats = app.add_subcommand("stats", "count documents, chunks and terms");
  stats->add_option("--store", store, "store file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (*ingest) {
    rag::Store st(store);
    auto progress = [&](const std::string& p, const char* what) {
      if (!quiet) std::fprintf(stderr, "%-9s %s\n", what, p.c_str());
    };
    rag::IngestStats s = st.ingest(paths, prune, progress);
    std::printf("added %zu, updated %zu, unchanged %zu, removed %zu, skipped %zu (unsupported type); %zu chunks in store\n",
                s.added, s.updated, s.unchanged, s.removed, s.skipped, s.chunks);
    return 0;
  }
  if (*del) {
    rag::Store st(store);
    std::size_t n = 0;
    for (const auto& p : del_paths) n += st.remove(p);
    std::printf("removed %zu documents\n", n);
    return n > 0 ? 0 : 1;
  }
  if (*stats) {
    rag::Store st(store, /*read_only=*/true);
    rag::StoreStats s = st.stats();
    std::printf("documents %lld, chunks %lld, terms %lld\n", static_cast<long long>(s.documents),
                static_cast<long long>(s.chunks), static_cast<long long>(s.terms));
    return 0;
  }
  // search
  rag::Store st(store, /*read_only=*/true);
  st.set_bm25({k1, b});
  if (!queries_file.empty()) {
    std::ifstream in(queries_file);
    if (!in) fail("rag search: cannot read queries file '", queries_file, "'");
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json out = nlohmann::json::array();
      std::size_t rank = 1;
      for (const auto& h : st.search(line, k))
        out.push_back({{"rank", rank++}, {"score", h.score}, {"path", h.path}, {"begin", h.begin}, {"end", h.end}});
      std::cout << out.dump() << '\n';
    }
    return 0;
  }
  if (query.empty()) fail("rag search: give a question (or --queries FILE)");
  std::vector<rag::Hit> hits = st.search(query, k);
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < hits.size(); ++i) out.push_back(hit_json(hits[i], i + 1));
    std::cout << out.dump(2) << '\n';
    return 0;
  }
  if (hits.empty()) std::printf("no matching chunks\n");
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const auto& h = hits[i];
    std::printf("%zu. %.3f %s [%s %lld-%lld]%s%s\n", i + 1, h.score, h.path.c_str(), h.unit.c_str(),
                static_cast<long long>(h.begin), static_cast<long long>(h.end), h.heading.empty() ? "" : " # ",
                h.heading.c_str());
    std::string t = h.text;
    for (char& c : t)
      if (c == '\n') c = ' ';
    std::printf("   %s\n", t.c_str());
  }
  return 0;
}

}  // namespace kexa::cli
