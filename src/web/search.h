// Web search connectors behind one interface. A service is named by a spec:
//   searxng:URL    a SearXNG instance (GET URL/search?q=...&format=json; JSON must be enabled in its
//                  settings.yml `search.formats`)
//   brave:[URL]    the Brave Search API (key from the BRAVE_API_KEY environment variable; URL
//                  overrides the endpoint https://api.search.brave.com/res/v1/web/search)
//   json:URL       any endpoint answering SearXNG-shaped JSON ({"results":[{"url","title",
//                  "content"}]}); "{q}" in URL is replaced by the query, else "q=" is appended
// The service's own address is operator configuration and is not subject to the AddressPolicy
// (a self-hosted SearXNG usually listens on loopback); the result URLs are, when fetched.
//
// search() throws kexa::Error saying what failed rather than returning nothing: the service is
// unreachable (after retries with exponential backoff on transport errors, 429 and 5xx), answered
// an HTTP error, or answered something that is not the expected JSON. An empty list means the
// service worked and found nothing.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kexa::web {

struct SearchResult {
  std::string url;
  std::string title;
  std::string snippet;
};

struct SearchOptions {
  long timeout_ms = 6000;    // per attempt
  int retries = 2;           // attempts after the first
  long backoff_ms = 200;     // before the first retry; doubled each time
  std::size_t max_results = 10;
  std::string user_agent = "kexa-web/1.0";
};

class SearchService {
 public:
  virtual ~SearchService() = default;
  // De-duplicated results, best first, at most max_results.
  virtual std::vector<SearchResult> search(std::string_view query) = 0;
  virtual std::string describe() const = 0;  // "searxng http://..." for messages
};

// Throws kexa::Error for an unknown or malformed spec (or brave: without BRAVE_API_KEY).
std::unique_ptr<SearchService> make_search_service(std::string_view spec, const SearchOptions& options = {});

// The result list of a SearXNG-shaped / Brave JSON body; throws kexa::Error when the body is not
// that JSON (`service` names the service in the message).
std::vector<SearchResult> parse_searxng_json(std::string_view body, const std::string& service);
std::vector<SearchResult> parse_brave_json(std::string_view body, const std::string& service);

// Drops results whose URL (scheme and host case, fragment, a trailing '/') repeats an earlier one.
std::vector<SearchResult> dedupe(std::vector<SearchResult> results);

}  // namespace kexa::web
