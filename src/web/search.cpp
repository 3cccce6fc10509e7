#include "web/search.h"

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "web/address.h"
#include "web/fetch.h"

namespace kexa::web {

namespace {

std::string escape(std::string_view s) {
  char* e = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

std::string text_field(const nlohmann::json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string url_key(const std::string& url) {
  try {
    std::string u = parse_url(url).url;
    while (u.size() > 1 && u.back() == '/') u.pop_back();
    return u;
  } catch (const Error&) {
    return url;
  }
}

nlohmann::json parse_object(std::string_view body, const std::string& service) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    std::string head(body.substr(0, 80));
    for (char& c : head)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    fail("search service ", service, " answered something that is not JSON: '", head, "'");
  }
  return j;
}

// The entries of a result array that have a URL; `snippet` names the field holding the excerpt.
std::vector<SearchResult> results_of(const nlohmann::json& array, const char* snippet) {
  std::vector<SearchResult> out;
  for (const auto& r : array) {
    if (!r.is_object()) continue;
    SearchResult s{text_field(r, "url"), text_field(r, "title"), text_field(r, snippet)};
    if (!s.url.empty()) out.push_back(std::move(s));
  }
  return out;
}

class HttpSearch : public SearchService {
 public:
  enum class Kind { SearXNG, Brave, Json };
  HttpSearch(Kind kind, std::string endpoint, std::string key, SearchOptions opt)
      : kind_(kind), endpoint_(std::move(endpoint)), key_(std::move(key)), opt_(std::move(opt)) {}

  std::string describe() const override {
    return std::string(kind_ == Kind::SearXNG ? "searxng " : kind_ == Kind::Brave ? "brave " : "json ") + endpoint_;
  }

  std::vector<SearchResult> search(std::string_view query) override {
    std::string url = request_url(query);
    std::vector<std::string> headers = {"Accept: application/json"};
    if (kind_ == Kind::Brave) headers.push_back("X-Subscription-Token: " + key_);
    long backoff = opt_.backoff_ms;
    std::string last;
    for (int attempt = 0; attempt <= opt_.retries; ++attempt) {
      if (attempt > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
        backoff *= 2;
      }
      HttpResponse r;
      try {
        r = http_get(url, headers, opt_.timeout_ms, 8u << 20, opt_.user_agent);
      } catch (const Error& e) {
        last = e.what();
        continue;
      }
      if (r.status == 429 || r.status >= 500) {
        last = "HTTP " + std::to_string(r.status);
        continue;
      }
      if (r.status != 200)
        fail("search service ", describe(), " answered HTTP ", r.status,
             r.status == 403 && kind_ == Kind::SearXNG ? " (is the json format enabled in its settings.yml?)" : "");
      std::vector<SearchResult> results =
          kind_ == Kind::Brave ? parse_brave_json(r.body, describe()) : parse_searxng_json(r.body, describe());
      results = dedupe(std::move(results));
      if (results.size() > opt_.max_results) results.resize(opt_.max_results);
      return results;
    }
    fail("search service ", describe(), " is unavailable after ", opt_.retries + 1, " attempts: ", last);
  }

 private:
  std::string request_url(std::string_view query) const {
    std::string q = escape(query);
    switch (kind_) {
      case Kind::SearXNG: {
        std::string base = endpoint_;
        while (!base.empty() && base.back() == '/') base.pop_back();
        return base + "/search?q=" + q + "&format=json";
      }
      case Kind::Brave:
        return endpoint_ + (endpoint_.find('?') == std::string::npos ? "?" : "&") + "q=" + q +
               "&count=" + std::to_string(std::min<std::size_t>(opt_.max_results, 20));
      case Kind::Json:
        break;
    }
    if (size_t p = endpoint_.find("{q}"); p != std::string::npos)
      return endpoint_.substr(0, p) + q + endpoint_.substr(p + 3);
    return endpoint_ + (endpoint_.find('?') == std::string::npos ? "?" : "&") + "q=" + q;
  }

  Kind kind_;
  std::string endpoint_, key_;
  SearchOptions opt_;
};

}  // namespace

std::vector<SearchResult> parse_searxng_json(std::string_view body, const std::string& service) {
  nlohmann::json j = parse_object(body, service);
  auto it = j.find("results");
  if (it == j.end() || !it->is_array())
    fail("search service ", service, " answered JSON without a \"results\" array");
  return results_of(*it, "content");
}

std::vector<SearchResult> parse_brave_json(std::string_view body, const std::string& service) {
  nlohmann::json j = parse_object(body, service);
  auto web = j.find("web");
  if (web == j.end()) {
    if (j.contains("type") && j.contains("query")) return {};  // a valid answer with no web results
    fail("search service ", service, " answered JSON without web results");
  }
  auto it = web->find("results");
  if (!web->is_object() || it == web->end() || !it->is_array())
    fail("search service ", service, " answered JSON without a web.results array");
  return results_of(*it, "description");
}

std::vector<SearchResult> dedupe(std::vector<SearchResult> results) {
  std::set<std::string> seen;
  std::vector<SearchResult> out;
  for (auto& r : results)
    if (seen.insert(url_key(r.url)).second) out.push_back(std::move(r));
  return out;
}

std::unique_ptr<SearchService> make_search_service(std::string_view spec, const SearchOptions& options) {
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos)
    fail("--web-search '", spec, "': expected searxng:URL, brave: or json:URL");
  std::string kind(spec.substr(0, colon)), rest(spec.substr(colon + 1));
  auto need_url = [&] {
    if (rest.rfind("http://", 0) != 0 && rest.rfind("https://", 0) != 0)
      fail("--web-search '", spec, "': ", kind, ": needs an http(s) URL");
  };
  if (kind == "searxng") {
    need_url();
    return std::make_unique<HttpSearch>(HttpSearch::Kind::SearXNG, rest, "", options);
  }
  if (kind == "json") {
    need_url();
    return std::make_unique<HttpSearch>(HttpSearch::Kind::Json, rest, "", options);
  }
  if (kind == "brave") {
    const char* key = std::getenv("BRAVE_API_KEY");
    if (!key || !*key) fail("--web-search brave: set BRAVE_API_KEY to the Brave Search API key");
    if (rest.empty()) rest = "https://api.search.brave.com/res/v1/web/search";
    else need_url();
    return std::make_unique<HttpSearch>(HttpSearch::Kind::Brave, rest, key, options);
  }
  fail("--web-search '", spec, "': unknown service '", kind, "' (searxng, brave, json)");
}

}  // namespace kexa::web
