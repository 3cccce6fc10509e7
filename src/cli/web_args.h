// The options every `kexa web` command shares: the search service, the address allow-list and
// the fetch limits (see web/search.h, web/address.h, web/fetch.h).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "web/address.h"
#include "web/fetch.h"
#include "web/search.h"

namespace kexa::cli {

struct WebArgs {
  std::string search_spec;
  std::vector<std::string> allow;
  web::FetchOptions fetch;
  web::SearchOptions search;
  bool no_robots = false;

  void add(CLI::App& app, bool with_search = true) {
    if (with_search)
      app.add_option("--web-search", search_spec,
                     "search service: searxng:URL, brave: (BRAVE_API_KEY) or json:URL (SearXNG-shaped JSON)")
          ->required();
    app.add_option("--web-allow", allow,
                   "let fetches reach these otherwise refused addresses: CIDR (10.0.0.0/8) or host:port "
                   "(repeatable)")
        ->allow_extra_args(false);
    app.add_option("--deadline-ms", fetch.deadline_ms, "time for all page fetches together")->check(CLI::Range(100, 600000));
    app.add_option("--page-timeout-ms", fetch.page_timeout_ms, "time for one page")->check(CLI::Range(100, 600000));
    app.add_option("--max-page-bytes", fetch.max_page_bytes, "larger pages fail")->check(CLI::Range(1024, 1 << 30));
    app.add_option("--parallel", fetch.parallel, "pages fetched at once")->check(CLI::Range(1, 64));
    app.add_flag("--ignore-robots", no_robots, "do not read robots.txt (only for sites you run)");
    app.add_option("--web-cache", fetch.cache_path, "SQLite page cache file");
    app.add_option("--web-cache-ttl", fetch.cache_ttl_s, "seconds a cached page stays fresh")->check(CLI::Range(0, 100000000));
    app.add_option("--search-timeout-ms", search.timeout_ms, "time for one search request")->check(CLI::Range(100, 600000));
    app.add_option("--search-retries", search.retries, "retries of a failed search request")->check(CLI::Range(0, 10));
  }

  web::AddressPolicy policy() const {
    web::AddressPolicy p;
    for (const std::string& a : allow) p.allow(a);
    return p;
  }
  web::FetchOptions fetch_options() const {
    web::FetchOptions f = fetch;
    f.robots = !no_robots;
    return f;
  }
};

}  // namespace kexa::cli
