#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/web_args.h"
#include "util/error.h"
#include "web/fetch.h"
#include "web/search.h"

namespace kexa::cli {

namespace {

std::string dump(const nlohmann::json& j) { return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace); }

int web_search(const WebArgs& a, const std::string& query, bool json) {
  std::unique_ptr<web::SearchService> s = web::make_search_service(a.search_spec, a.search);
  std::vector<web::SearchResult> results = s->search(query);
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : results) out.push_back({{"url", r.url}, {"title", r.title}, {"snippet", r.snippet}});
    std::cout << dump(out) << '\n';
    return 0;
  }
  if (results.empty()) std::printf("no results\n");
  for (size_t i = 0; i < results.size(); ++i)
    std::printf("%zu. %s\n   %s\n   %s\n", i + 1, results[i].title.c_str(), results[i].url.c_str(),
                results[i].snippet.c_str());
  return 0;
}

int web_fetch(const WebArgs& a, const std::vector<std::string>& urls, bool json) {
  web::Fetcher f(a.policy(), a.fetch_options());
  std::vector<web::Page> pages = f.fetch(urls);
  int failed = 0;
  nlohmann::json out = nlohmann::json::array();
  for (const web::Page& p : pages) {
    failed += p.ok() ? 0 : 1;
    if (json) {
      nlohmann::json j = {{"url", p.url},       {"final_url", p.final_url}, {"ok", p.ok()},
                          {"status", p.status}, {"title", p.title},         {"content_type", p.content_type},
                          {"charset", p.charset}, {"cached", p.cached},     {"text", p.text}};
      if (!p.ok()) j["error"] = p.error;
      out.push_back(std::move(j));
    } else if (p.ok()) {
      std::printf("== %s (%s%s%s)\n%s\n", p.final_url.c_str(), p.content_type.c_str(), p.charset.empty() ? "" : ", ",
                  p.charset.c_str(), p.text.c_str());
    } else {
      std::printf("== %s: FAILED: %s\n", p.url.c_str(), p.error.c_str());
    }
  }
  if (json) std::cout << dump(out) << '\n';
  const web::FetchCounters& c = f.counters();
  std::fprintf(stderr, "transfers %llu, refusals %llu, robots denied %llu, cache hits %llu, failed pages %d\n",
               static_cast<unsigned long long>(c.transfers), static_cast<unsigned long long>(c.refusals),
               static_cast<unsigned long long>(c.robots_denied), static_cast<unsigned long long>(c.cache_hits), failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace

int web_ask_main(int argc, char** argv);  // model_answers.cpp

int web_main(int argc, char** argv) {
  // `kexa web ask` may load a model; it lives in model_answers.cpp with its own options.
  if (argc >= 2 && std::string(argv[1]) == "ask") return web_ask_main(argc - 1, argv + 1);
  CLI::App app{"Answers from the live web, with sources. Every fetched URL (and every redirect hop) must\n"
               "resolve to a public address unless --web-allow opens it; robots.txt is honoured."};
  app.name("kexa web");
  app.require_subcommand(1);
  WebArgs search_args, fetch_args;
  std::string query;
  std::vector<std::string> urls;
  bool json = false;
  CLI::App* search = app.add_subcommand("search", "print the search service's results for a query");
  search->add_option("query", query, "the query")->required();
  search->add_flag("--json", json, "JSON output");
  search_args.add(*search);
  CLI::App* fetch = app.add_subcommand("fetch", "fetch pages as `web ask` reads them (main content, UTF-8)");
  fetch->add_option("urls", urls, "URLs")->required();
  fetch->add_flag("--json", json, "JSON output");
  fetch_args.add(*fetch, /*with_search=*/false);
  app.add_subcommand("ask", "answer a question from web pages with numbered sources (see kexa web ask --help)");
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  if (*search) return web_search(search_args, query, json);
  return web_fetch(fetch_args, urls, json);
}

}  // namespace kexa::cli
