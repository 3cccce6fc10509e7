#include "hub/http.h"

#include <curl/curl.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

#include "util/error.h"

namespace kexa::hub {

namespace {

// curl_global_init is not thread-safe; run it once before the first handle.
void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* s) const { curl_slist_free_all(s); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using HeaderList = std::unique_ptr<curl_slist, SlistDeleter>;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

size_t collect_header(char* data, size_t size, size_t n, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    response->headers.clear();  // a new response after a redirect
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    size_t b = value.find_first_not_of(" \t");
    size_t e = value.find_last_not_of(" \t\r\n");
    response->headers[name] = (b == std::string::npos) ? "" : value.substr(b, e - b + 1);
  }
  return size * n;
}

size_t collect_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct FileSink {
  FILE* file = nullptr;
  std::atomic<uint64_t>* progress = nullptr;
  CURL* curl = nullptr;
  uint64_t offset = 0;  // bytes already in the file before this request
  uint64_t written = 0;
  int write_errno = 0;
  bool started = false;
};

size_t write_file(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<FileSink*>(user);
  long status = 0;
  curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400) return 0;  // an error page is not file content
  if (!sink->started) {
    sink->started = true;
    if (sink->offset > 0 && status == 200) {
      // The server ignored the Range request and sends the whole file: start over.
      if (std::fflush(sink->file) != 0 || ::ftruncate(::fileno(sink->file), 0) != 0 ||
          std::fseek(sink->file, 0, SEEK_SET) != 0) {
        sink->write_errno = errno != 0 ? errno : EIO;
        return 0;
      }
      sink->progress->fetch_sub(sink->offset, std::memory_order_relaxed);
      sink->offset = 0;
    }
  }
  size_t bytes = size * n;
  size_t put = std::fwrite(data, 1, bytes, sink->file);
  if (put != bytes) {
    sink->write_errno = errno != 0 ? errno : EIO;
    return 0;
  }
  sink->written += bytes;
  sink->progress->fetch_add(bytes, std::memory_order_relaxed);
  return bytes;
}

// A request for url whose response headers and status go into `response`.
CurlHandle make_handle(const std::string& url, const std::string& token, HeaderList& headers,
                       HttpResponse& response) {
  ensure_curl_initialized();
  CurlHandle curl(curl_easy_init());
  if (!curl) fail("cannot initialise libcurl");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, "kexa/0.1");
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  // Abort a transfer that stalls below 1 byte/s for 60 s rather than hanging forever.
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, 60L);
  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Accept-Encoding: identity");
  if (!token.empty()) list = curl_slist_append(list, ("Authorization: Bearer " + token).c_str());
  headers.reset(list);
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &response);
  return curl;
}

// Follows redirects (the Hub answers file requests with one to its CDN); the body goes to write.
void follow_redirects(CURL* curl, curl_write_callback write, void* data) {
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, data);
}

void check(CURLcode code, const std::string& url) {
  if (code != CURLE_OK) fail(url, ": ", curl_easy_strerror(code));
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

HttpResponse HttpClient::head(const std::string& url) const {
  HeaderList headers;
  HttpResponse response;
  CurlHandle curl = make_handle(url, token_, headers, response);
  curl_easy_setopt(curl.get(), CURLOPT_NOBODY, 1L);
  check(curl_easy_perform(curl.get()), url);
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

HttpResponse HttpClient::get(const std::string& url) const {
  HeaderList headers;
  HttpResponse response;
  CurlHandle curl = make_handle(url, token_, headers, response);
  follow_redirects(curl.get(), collect_body, &response.body);
  check(curl_easy_perform(curl.get()), url);
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

uint64_t HttpClient::download(const std::string& url, const std::string& path, uint64_t offset,
                              std::atomic<uint64_t>& progress) const {
  HeaderList headers;
  HttpResponse response;
  CurlHandle curl = make_handle(url, token_, headers, response);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), offset > 0 ? "ab" : "wb"),
                                             &std::fclose);
  if (!file) fail(path, ": cannot open for writing: ", std::strerror(errno));
  FileSink sink{file.get(), &progress, curl.get(), offset};
  follow_redirects(curl.get(), write_file, &sink);
  std::string range;
  if (offset > 0) {
    range = std::to_string(offset) + "-";
    curl_easy_setopt(curl.get(), CURLOPT_RANGE, range.c_str());
  }
  CURLcode code = curl_easy_perform(curl.get());
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response.status);
  int close_result = std::fclose(file.release());
  if (sink.write_errno != 0) {
    fail(path, ": write failed after ", sink.offset + sink.written, " bytes: ",
         std::strerror(sink.write_errno));
  }
  if (close_result != 0) fail(path, ": write failed: ", std::strerror(errno));
  if (response.status >= 400) fail(url, ": HTTP ", response.status);
  check(code, url);
  return sink.written;
}

std::string url_encode_path(const std::string& path) {
  ensure_curl_initialized();
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string segment = path.substr(start, slash == std::string::npos ? std::string::npos
                                                                        : slash - start);
    char* escaped = curl_easy_escape(nullptr, segment.c_str(), static_cast<int>(segment.size()));
    if (escaped == nullptr) fail("cannot URL-encode ", path);
    out += escaped;
    curl_free(escaped);
    if (slash == std::string::npos) break;
    out += '/';
    start = slash + 1;
  }
  return out;
}

}  // namespace kexa::hub
