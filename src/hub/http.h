// The few HTTP operations the hub client needs, over libcurl. Proxies come from the environment
// (http_proxy, https_proxy, no_proxy), as libcurl reads them itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

namespace kexa::hub {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; last value wins
  std::string body;
  std::string header(const std::string& name) const;
};

class HttpClient {
 public:
  explicit HttpClient(std::string token) : token_(std::move(token)) {}

  // HEAD without following redirects: the hub puts the file's metadata on the first response.
  HttpResponse head(const std::string& url) const;
  // GET following redirects, body kept in memory (for small JSON answers).
  HttpResponse get(const std::string& url) const;

  // GET following redirects, appending to `path` from byte `offset` (Range request when > 0).
  // `progress` is advanced by each byte written. Throws kexa::Error on HTTP or I/O failure
  // (the partial file stays for a later resume). Returns the bytes written.
  uint64_t download(const std::string& url, const std::string& path, uint64_t offset,
                    std::atomic<uint64_t>& progress) const;

 private:
  std::string token_;
};

// Percent-encodes each path segment of `path`, keeping the slashes.
std::string url_encode_path(const std::string& path);

}  // namespace kexa::hub
