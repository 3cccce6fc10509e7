// Web answers in the server (opt-in: kexa serve --web-search SPEC): POST /v1/web/query (search,
// fetch under the address policy, answer with numbered sources; web::web_answer on the scheduler)
// and the server-side chat tool kexa_web_search (results with the best passages of the fetched
// pages). Fetching is off unless the operator names a search service; the address policy refuses
// internal addresses unless --web-allow opens them. /metrics counts searches, fetches, refusals
// and cache hits (render_metrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "web/address.h"
#include "web/fetch.h"
#include "web/search.h"

namespace httplib {
class Server;
}

namespace kexa::server {

struct ServerOptions;
struct ServerState;

class WebAccess {
 public:
  // Throws kexa::Error for a bad --web-search spec or --web-allow entry.
  explicit WebAccess(const ServerOptions& options);
  // Searches `query`, counting the search (and its failure).
  std::vector<web::SearchResult> search(std::string_view query);
  web::SearchService& service() { return *search_; }
  // A fetcher for one request (a Fetcher is not shared between threads); count() adds its counters.
  web::Fetcher fetcher() const { return web::Fetcher(policy_, fetch_); }
  void count(const web::Fetcher& f);
  void count_search(bool ok);
  // Prometheus counters, appended to /metrics.
  std::string render_metrics() const;

 private:
  std::unique_ptr<web::SearchService> search_;
  web::AddressPolicy policy_;
  web::FetchOptions fetch_;
  std::atomic<uint64_t> searches_{0}, search_failures_{0}, transfers_{0}, refusals_{0}, robots_denied_{0},
      cache_hits_{0}, page_failures_{0};
};

void install_web_routes(httplib::Server& svr, ServerState& st);

// The chat tool kexa_web_search (server/knowledge_routes.cpp runs server tools).
inline constexpr const char* kWebSearchTool = "kexa_web_search";
nlohmann::ordered_json web_tool_declaration();
nlohmann::ordered_json run_web_tool(ServerState& st, const nlohmann::ordered_json& args);
nlohmann::ordered_json web_tool_result_for_model(const nlohmann::ordered_json& result);

}  // namespace kexa::server
