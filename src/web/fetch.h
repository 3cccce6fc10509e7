// Fetching web pages for answers: several at once (libcurl multi), every hop of every redirect
// checked by the AddressPolicy and pinned to the checked address, robots.txt honoured, sizes and
// times capped, the text converted to UTF-8 and reduced to the page's main content, kept in an
// optional SQLite cache.
//
//   web::AddressPolicy policy;  policy.allow("127.0.0.1:8080");
//   web::Fetcher f(policy, {});
//   for (const web::Page& p : f.fetch({"https://example.com/a", ...}))
//     p.ok() ? use(p.final_url, p.title, p.text) : report(p.url, p.error);
//
// A failed page never throws: its `error` says what happened ("refused ...: address 127.0.0.1
// (loopback)", "robots.txt of http://h disallows /x", "larger than 5242880 bytes", "timed out
// after 8000 ms", "HTTP 404", "not valid EUC-KR", "deadline of 20000 ms reached", ...).
// fetch() returns within deadline_ms (plus the time of one DNS lookup in progress).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "web/address.h"

namespace kexa::web {

struct FetchOptions {
  long page_timeout_ms = 8000;     // one transfer (a hop, or robots.txt)
  long connect_timeout_ms = 3000;
  std::size_t max_page_bytes = 5u << 20;  // decoded body; larger pages fail
  long deadline_ms = 20000;        // the whole fetch() call
  int max_redirects = 5;
  int parallel = 6;                // transfers at once
  bool robots = true;              // honour robots.txt (User-agent "kexa", else "*")
  std::string user_agent = "kexa-web/1.0 (question answering with citations; honours robots.txt)";
  std::string cache_path;          // SQLite file; "" = no cache
  long cache_ttl_s = 3600;
  // Binary bodies (pictures): Page::body keeps the bytes as they came and content_type the
  // header's type; no text conversion, no cache.
  bool raw_body = false;
};

struct Page {
  std::string url;           // as requested
  std::string final_url;     // after redirects
  std::string title;
  std::string text;          // main content, UTF-8
  std::string body;          // FetchOptions::raw_body: the response body
  std::string content_type;  // "text/html", "text/plain", "application/pdf"
  std::string charset;       // what the body was converted from ("UTF-8", "CP949", ...)
  std::string error;         // "" when the page was fetched and read
  int status = 0;            // HTTP status of the last hop (0: none)
  bool cached = false;
  bool ok() const { return error.empty(); }
};

struct FetchCounters {
  std::uint64_t transfers = 0;   // HTTP requests made (pages, hops, robots.txt)
  std::uint64_t refusals = 0;    // URLs or redirect hops refused by the address policy
  std::uint64_t robots_denied = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t failures = 0;    // pages that ended with an error (refusals included)
};

class Fetcher {
 public:
  Fetcher(AddressPolicy policy, FetchOptions options);
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // The pages of `urls`, in the same order (duplicates fetched once). Not thread-safe.
  std::vector<Page> fetch(const std::vector<std::string>& urls);
  const FetchCounters& counters() const { return counters_; }
  const FetchOptions& options() const { return opt_; }

 private:
  struct Cache;
  AddressPolicy policy_;
  FetchOptions opt_;
  FetchCounters counters_;
  std::unique_ptr<Cache> cache_;
  std::map<std::string, std::string> robots_;  // origin -> robots.txt body ("" = allow all)
};

// Reads a response body into a Page: chooses the type from the Content-Type header (sniffing
// "%PDF-" and "<html" when it is missing), converts the charset (header, then <meta charset>,
// then UTF-8 if valid, else CP949: the legacy Korean encoding, a superset of EUC-KR), extracts
// the main content. Sets page.error when the body cannot be read.
void read_body(Page& page, const std::string& body, std::string_view content_type);

// `bytes` in `charset` as UTF-8. Throws kexa::Error "not valid <charset>" on malformed input.
// "euc-kr" and its aliases are read as CP949, as browsers do.
std::string to_utf8(std::string_view bytes, std::string_view charset);

// robots.txt: may `agent` (product token, e.g. "kexa") fetch `path` (path + query)? The group
// naming the agent applies, else the "*" group; the longest matching Allow/Disallow rule wins
// (Allow on ties); '*' and a final '$' are understood (RFC 9309).
bool robots_allows(std::string_view robots_txt, std::string_view agent, std::string_view path);

// One GET outside the page pipeline (search services): headers "Name: value", the response
// body capped at max_bytes. Connects to the host as resolved (the operator configured it), with no
// proxy. Throws kexa::Error naming the URL on transport errors; any HTTP status is returned.
struct HttpResponse {
  long status = 0;
  std::string body;
  std::string content_type;
};
HttpResponse http_get(const std::string& url, const std::vector<std::string>& headers, long timeout_ms,
                      std::size_t max_bytes, const std::string& user_agent);

}  // namespace kexa::web
