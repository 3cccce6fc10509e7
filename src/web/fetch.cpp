#include "web/fetch.h"

#include <iconv.h>
#include <sqlite3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <deque>
#include <mutex>

#include <curl/curl.h>

#include "rag/ingest.h"
#include "util/error.h"
#include "util/utf8.h"
#include "web/text.h"

namespace kexa::web {

namespace {

using Clock = std::chrono::steady_clock;

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool valid_utf8(std::string_view s) {
  size_t replaced = 0;
  sanitize_utf8(s, &replaced);
  return replaced == 0;
}

// The charset parameter of a Content-Type value, or "".
std::string header_charset(std::string_view content_type) {
  std::string ct = ascii_lower(content_type);
  size_t p = ct.find("charset=");
  if (p == std::string::npos) return "";
  std::string v = ct.substr(p + 8);
  v = v.substr(0, v.find(';'));
  v = trim_space(v);
  if (!v.empty() && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() >= 2 ? v.size() - 2 : 0);
  return v;
}

// <meta charset="x"> or <meta http-equiv content="...; charset=x"> in the first 4 KiB.
std::string meta_charset(std::string_view html) {
  std::string head = ascii_lower(html.substr(0, 4096));
  size_t p = head.find("charset");
  while (p != std::string::npos) {
    size_t i = p + 7;
    while (i < head.size() && head[i] == ' ') ++i;
    if (i < head.size() && head[i] == '=') {
      ++i;
      while (i < head.size() && (head[i] == ' ' || head[i] == '"' || head[i] == '\'')) ++i;
      size_t e = i;
      while (e < head.size() && (std::isalnum(static_cast<unsigned char>(head[e])) || head[e] == '-' || head[e] == '_'))
        ++e;
      if (e > i) return head.substr(i, e - i);
    }
    p = head.find("charset", p + 7);
  }
  return "";
}

// A robots.txt path pattern: '*' matches any run, a final '$' anchors at the end, otherwise a
// prefix match. Leftmost matching of each literal segment is enough for '*'-only globs.
bool robots_match(std::string_view pat, std::string_view s) {
  bool anchored = !pat.empty() && pat.back() == '$';
  if (anchored) pat.remove_suffix(1);
  std::vector<std::string_view> seg;
  for (size_t i = 0;;) {
    size_t star = pat.find('*', i);
    seg.push_back(pat.substr(i, star == std::string_view::npos ? std::string_view::npos : star - i));
    if (star == std::string_view::npos) break;
    i = star + 1;
  }
  if (s.substr(0, seg[0].size()) != seg[0]) return false;
  size_t at = seg[0].size();
  if (seg.size() == 1) return !anchored || at == s.size();
  for (size_t i = 1; i + 1 < seg.size(); ++i) {
    size_t f = s.find(seg[i], at);
    if (f == std::string_view::npos) return false;
    at = f + seg[i].size();
  }
  std::string_view last = seg.back();
  if (!anchored) return s.find(last, at) != std::string_view::npos;
  return s.size() >= at + last.size() && s.substr(s.size() - last.size()) == last;
}

std::string deadline_error(long ms) { return "deadline of " + std::to_string(ms) + " ms reached"; }

}  // namespace

std::string to_utf8(std::string_view bytes, std::string_view charset) {
  std::string cs = ascii_lower(charset);
  if (cs == "euc-kr" || cs == "euckr" || cs == "ks_c_5601-1987" || cs == "korean" || cs == "windows-949" ||
      cs == "cp949" || cs == "ks_c_5601")
    cs = "CP949";
  if (cs == "utf-8" || cs == "utf8") {
    if (!valid_utf8(bytes)) fail("not valid UTF-8");
    return std::string(bytes);
  }
  if (cs == "us-ascii" || cs == "iso-8859-1" || cs == "latin1") cs = "WINDOWS-1252";  // as browsers read them
  iconv_t cd = iconv_open("UTF-8", cs.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) fail("unknown charset '", charset, "'");
  std::string out(bytes.size() * 3 / 2 + 16, '\0');
  char* in = const_cast<char*>(bytes.data());
  size_t in_left = bytes.size(), out_done = 0;
  while (in_left > 0) {
    char* o = out.data() + out_done;
    size_t out_left = out.size() - out_done;
    size_t rc = iconv(cd, &in, &in_left, &o, &out_left);
    out_done = out.size() - out_left;
    if (rc != static_cast<size_t>(-1)) break;
    if (errno == E2BIG) {
      out.resize(out.size() * 2);
      continue;
    }
    iconv_close(cd);
    fail("not valid ", charset);
  }
  iconv_close(cd);
  out.resize(out_done);
  return out;
}

void read_body(Page& page, const std::string& body, std::string_view content_type) {
  std::string ct = ascii_lower(content_type.substr(0, content_type.find(';')));
  ct = trim_space(ct);
  if (ct.empty() || ct == "application/octet-stream") {
    std::string head = ascii_lower(std::string_view(body).substr(0, 512));
    if (body.rfind("%PDF-", 0) == 0) ct = "application/pdf";
    else if (head.find("<html") != std::string::npos || head.find("<!doctype html") != std::string::npos) ct = "text/html";
    else ct = "text/plain";
  }
  page.content_type = ct;
  try {
    if (ct == "application/pdf") {
      std::vector<std::string> pages = rag::pdf_pages(body, page.final_url);
      page.charset = "";
      for (size_t i = 0; i < pages.size(); ++i) page.text += (i ? "\n\n" : "") + pages[i];
      return;
    }
    bool html = ct == "text/html" || ct == "application/xhtml+xml";
    if (!html && ct != "text/plain" && ct != "text/markdown") fail("unsupported content type ", ct);
    std::string cs = header_charset(content_type);
    if (cs.empty() && html) cs = meta_charset(body);
    if (cs.empty()) {
      bool bom = body.rfind("\xEF\xBB\xBF", 0) == 0;
      cs = bom || valid_utf8(body) ? "utf-8" : "cp949";
    }
    std::string text = to_utf8(body, cs);
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
    page.charset = cs;
    for (char& c : page.charset)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    page.text = html ? rag::html_main_text(text, &page.title) : text;
  } catch (const Error& e) {
    page.text.clear();
    page.error = e.what();
  }
}

bool robots_allows(std::string_view robots_txt, std::string_view agent, std::string_view path) {
  struct Rule {
    bool allow;
    std::string pattern;
  };
  // Groups: consecutive user-agent lines followed by rules.
  std::vector<Rule> mine, star;
  bool have_mine = false, have_star = false;
  bool in_agents = false, group_mine = false, group_star = false;
  std::string a = ascii_lower(agent);
  size_t pos = 0;
  while (pos <= robots_txt.size()) {
    size_t nl = robots_txt.find('\n', pos);
    std::string_view line = robots_txt.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? robots_txt.size() + 1 : nl + 1;
    line = line.substr(0, line.find('#'));
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string key = ascii_lower(trim_space(line.substr(0, colon)));
    std::string value = trim_space(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!in_agents) group_mine = group_star = false;
      in_agents = true;
      std::string v = ascii_lower(value);
      if (v == "*") group_star = true, have_star = true;
      else if (!v.empty() && a.rfind(v, 0) == 0) group_mine = true, have_mine = true;
      continue;
    }
    if (key != "allow" && key != "disallow") continue;
    in_agents = false;
    if (value.empty()) continue;  // "Disallow:" allows everything
    Rule r{key == "allow", value};
    if (group_mine) mine.push_back(r);
    if (group_star) star.push_back(r);
  }
  const std::vector<Rule>& rules = have_mine ? mine : star;
  if (!have_mine && !have_star) return true;
  auto matches = robots_match;
  size_t best_len = 0;
  bool best_allow = true, found = false;
  for (const Rule& r : rules) {
    if (!matches(r.pattern, path)) continue;
    if (!found || r.pattern.size() > best_len || (r.pattern.size() == best_len && r.allow)) {
      best_len = r.pattern.size();
      best_allow = r.allow;
      found = true;
    }
  }
  return !found || best_allow;
}

// ---- the SQLite page cache -------------------------------------------------------------------

struct Fetcher::Cache {
  sqlite3* db = nullptr;
  long ttl = 0;

  Cache(const std::string& path, long ttl_s) : ttl(ttl_s) {
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      fail("web cache '", path, "': ", msg);
    }
    sqlite3_busy_timeout(db, 2000);
    char* err = nullptr;
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE IF NOT EXISTS web_pages(url TEXT PRIMARY KEY, fetched_at INTEGER NOT NULL,"
                     " final_url TEXT, title TEXT, content_type TEXT, charset TEXT, status INTEGER, text TEXT);",
                     nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      sqlite3_close(db);
      fail("web cache '", path, "': ", msg);
    }
  }
  ~Cache() { sqlite3_close(db); }

  bool get(const std::string& url, Page& p) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db,
                           "SELECT final_url, title, content_type, charset, status, text FROM web_pages"
                           " WHERE url = ?1 AND fetched_at >= ?2",
                           -1, &st, nullptr) != SQLITE_OK)
      return false;
    sqlite3_bind_text(st, 1, url.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(std::time(nullptr)) - ttl);
    bool hit = sqlite3_step(st) == SQLITE_ROW;
    if (hit) {
      auto col = [&](int i) {
        const unsigned char* t = sqlite3_column_text(st, i);
        return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
      };
      p.final_url = col(0);
      p.title = col(1);
      p.content_type = col(2);
      p.charset = col(3);
      p.status = sqlite3_column_int(st, 4);
      p.text = col(5);
      p.cached = true;
    }
    sqlite3_finalize(st);
    return hit;
  }

  void put(const Page& p) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO web_pages VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1, &st,
                           nullptr) != SQLITE_OK)
      return;
    sqlite3_bind_text(st, 1, p.url.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(std::time(nullptr)));
    sqlite3_bind_text(st, 3, p.final_url.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, p.title.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, p.content_type.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, p.charset.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, p.status);
    sqlite3_bind_text(st, 8, p.text.c_str(), static_cast<int>(p.text.size()), SQLITE_TRANSIENT);
    sqlite3_step(st);  // a cache that cannot be written only costs a refetch
    sqlite3_finalize(st);
  }
};

// ---- transfers --------------------------------------------------------------------------------

namespace {

// One HTTP request in flight: a page hop or a robots.txt.
struct Transfer {
  size_t page = 0;      // index into the fetch's pages (robots: unused)
  bool robots = false;
  int robots_hops = 0;  // robots: redirects followed so far
  std::string origin;   // robots: the origin it is for
  CheckedTarget target;
  std::string body;
  std::size_t max_bytes = 0;
  bool too_big = false;
  CURL* easy = nullptr;
  curl_slist* resolve = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  if (t->body.size() + bytes > t->max_bytes) {
    t->too_big = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  t->body.append(data, bytes);
  return bytes;
}

// The connect-time check: the socket is opened only for the address the policy accepted, so a
// different DNS answer (rebinding) or a resolver surprise cannot redirect the connection.
curl_socket_t open_checked_socket(void* user, curlsocktype purpose, curl_sockaddr* addr) {
  auto* t = static_cast<Transfer*>(user);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  std::optional<IpAddress> ip = from_sockaddr(&addr->addr);
  if (!ip || !(*ip == t->target.address)) return CURL_SOCKET_BAD;
  return socket(addr->family, addr->socktype, addr->protocol);
}

void common_options(CURL* e, const std::string& user_agent, long timeout_ms, long connect_ms, std::size_t max_bytes) {
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  // An empty proxy disables the environment's http_proxy too: a proxy would connect elsewhere.
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max(1L, timeout_ms));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, std::min(connect_ms, timeout_ms)));
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
}

}  // namespace

Fetcher::Fetcher(AddressPolicy policy, FetchOptions options) : policy_(std::move(policy)), opt_(std::move(options)) {
  curl_global();
  if (!opt_.cache_path.empty() && !opt_.raw_body) cache_ = std::make_unique<Cache>(opt_.cache_path, opt_.cache_ttl_s);
}

Fetcher::~Fetcher() = default;

std::vector<Page> Fetcher::fetch(const std::vector<std::string>& urls) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(opt_.deadline_ms);
  auto remaining_ms = [&] {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
  };
  std::vector<Page> pages(urls.size());
  std::vector<bool> done(urls.size(), false);
  std::vector<int> hops(urls.size(), 0);
  std::map<std::string, size_t> first_of;  // duplicate URLs share one fetch
  std::deque<std::unique_ptr<Transfer>> queue;
  std::map<std::string, std::vector<std::pair<size_t, CheckedTarget>>> waiting_robots;
  std::vector<std::unique_ptr<Transfer>> active;

  auto finish = [&](size_t i, std::string error) {
    Page& p = pages[i];
    p.error = std::move(error);
    if (!p.ok()) ++counters_.failures, p.text.clear();
    done[i] = true;
  };
  auto queue_hop = [&](size_t i, CheckedTarget t) {
    auto tr = std::make_unique<Transfer>();
    tr->page = i;
    tr->target = std::move(t);
    tr->max_bytes = opt_.max_page_bytes;
    queue.push_back(std::move(tr));
  };
  auto robots_verdict = [&](size_t i, CheckedTarget t) {
    const std::string origin = t.url.origin();
    const std::string& rules = robots_[origin];
    if (!robots_allows(rules, "kexa", t.url.path)) {
      ++counters_.robots_denied;
      finish(i, "robots.txt of " + origin + " disallows " + t.url.path);
      return;
    }
    queue_hop(i, std::move(t));
  };
  // Checks a URL (a page's first or a redirect's next hop) and schedules it.
  auto schedule = [&](size_t i, const std::string& url, const std::string& base) {
    CheckedTarget t;
    try {
      t = policy_.check(url, base);
    } catch (const Error& e) {
      if (std::string(e.what()).rfind("refused", 0) == 0) ++counters_.refusals;
      finish(i, e.what());
      return;
    }
    pages[i].final_url = t.url.url;
    if (!opt_.robots) return queue_hop(i, std::move(t));
    const std::string origin = t.url.origin();
    if (robots_.count(origin)) return robots_verdict(i, std::move(t));
    bool first = waiting_robots.find(origin) == waiting_robots.end();
    waiting_robots[origin].emplace_back(i, t);
    if (first) {
      auto tr = std::make_unique<Transfer>();
      tr->robots = true;
      tr->origin = origin;
      tr->target = t;
      tr->target.url.url = origin + "/robots.txt";
      tr->max_bytes = 512 * 1024;
      queue.push_front(std::move(tr));
    }
  };

  for (size_t i = 0; i < urls.size(); ++i) {
    pages[i].url = urls[i];
    if (auto it = first_of.find(urls[i]); it != first_of.end()) continue;
    first_of[urls[i]] = i;
    if (cache_ && cache_->get(urls[i], pages[i])) {
      ++counters_.cache_hits;
      done[i] = true;
      continue;
    }
    schedule(i, urls[i], "");
  }

  CURLM* multi = curl_multi_init();
  auto start_transfer = [&](std::unique_ptr<Transfer> tr) {
    CURL* e = curl_easy_init();
    tr->easy = e;
    long timeout = std::min(opt_.page_timeout_ms, remaining_ms());
    common_options(e, opt_.user_agent, timeout, opt_.connect_timeout_ms, tr->max_bytes);
    curl_easy_setopt(e, CURLOPT_URL, tr->target.url.url.c_str());
    if (!parse_ip(tr->target.url.host)) {
      std::string addr = tr->target.address.to_string();
      if (tr->target.address.v6) addr = "[" + addr + "]";
      std::string pin = tr->target.url.host + ":" + std::to_string(tr->target.url.port) + ":" + addr;
      tr->resolve = curl_slist_append(nullptr, pin.c_str());
      curl_easy_setopt(e, CURLOPT_RESOLVE, tr->resolve);
    }
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_checked_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, tr.get());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, tr.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, tr->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, tr.get());
    curl_multi_add_handle(multi, e);
    ++counters_.transfers;
    active.push_back(std::move(tr));
  };
  auto release = [&](Transfer* tr) {
    curl_multi_remove_handle(multi, tr->easy);
    curl_easy_cleanup(tr->easy);
    curl_slist_free_all(tr->resolve);
  };
  auto complete = [&](Transfer& tr, CURLcode rc) {
    long status = 0;
    curl_easy_getinfo(tr.easy, CURLINFO_RESPONSE_CODE, &status);
    if (tr.robots) {
      // RFC 9309: redirects are followed (five hops at least), each hop checked by the address
      // policy like a page's; one that cannot be followed leaves robots.txt unavailable (no rules).
      if (rc == CURLE_OK && status >= 300 && status < 400 && tr.robots_hops < std::max(5, opt_.max_redirects)) {
        char* location = nullptr;
        curl_easy_getinfo(tr.easy, CURLINFO_REDIRECT_URL, &location);
        if (location) {
          try {
            auto hop = std::make_unique<Transfer>();
            hop->target = policy_.check(location, tr.target.url.url);
            hop->robots = true;
            hop->origin = tr.origin;
            hop->robots_hops = tr.robots_hops + 1;
            hop->max_bytes = tr.max_bytes;
            queue.push_front(std::move(hop));
            return;
          } catch (const Error& e) {
            if (std::string(e.what()).rfind("refused", 0) == 0) ++counters_.refusals;
          }
        }
      }
      // An unreachable robots.txt (5xx, network) means "disallow all"; 4xx means none.
      std::string rules;
      if (rc != CURLE_OK || status >= 500) rules = "User-agent: *\nDisallow: /\n";
      else if (status >= 200 && status < 300) rules = tr.body;
      robots_[tr.origin] = rules;
      auto waiting = std::move(waiting_robots[tr.origin]);
      waiting_robots.erase(tr.origin);
      for (auto& [i, t] : waiting) robots_verdict(i, std::move(t));
      return;
    }
    size_t i = tr.page;
    Page& p = pages[i];
    p.status = static_cast<int>(status);
    if (tr.too_big || rc == CURLE_FILESIZE_EXCEEDED)
      return finish(i, "larger than " + std::to_string(opt_.max_page_bytes) + " bytes");
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return finish(i, remaining_ms() <= 0 ? deadline_error(opt_.deadline_ms)
                                           : "timed out after " + std::to_string(opt_.page_timeout_ms) + " ms");
    if (rc != CURLE_OK) return finish(i, std::string(curl_easy_strerror(rc)) + (tr.errbuf[0] ? std::string(": ") + tr.errbuf : ""));
    if (status >= 300 && status < 400) {
      char* location = nullptr;
      curl_easy_getinfo(tr.easy, CURLINFO_REDIRECT_URL, &location);
      if (!location) return finish(i, "HTTP " + std::to_string(status) + " without a Location");
      if (++hops[i] > opt_.max_redirects) return finish(i, "more than " + std::to_string(opt_.max_redirects) + " redirects");
      return schedule(i, location, tr.target.url.url);
    }
    if (status < 200 || status >= 300) return finish(i, "HTTP " + std::to_string(status));
    char* ct = nullptr;
    curl_easy_getinfo(tr.easy, CURLINFO_CONTENT_TYPE, &ct);
    if (opt_.raw_body) {
      const std::string_view type = ct ? std::string_view(ct) : std::string_view();
      p.content_type = trim_space(ascii_lower(type.substr(0, type.find(';'))));
      p.body = std::move(tr.body);
      return finish(i, "");
    }
    read_body(p, tr.body, ct ? ct : "");
    if (p.ok() && p.text.find_first_not_of(" \n\t") == std::string::npos) p.error = "no text on the page";
    if (p.ok() && cache_) cache_->put(p);
    finish(i, p.error);
  };

  while (!queue.empty() || !active.empty()) {
    if (remaining_ms() <= 0) break;
    while (!queue.empty() && active.size() < static_cast<size_t>(std::max(1, opt_.parallel))) {
      std::unique_ptr<Transfer> tr = std::move(queue.front());
      queue.pop_front();
      start_transfer(std::move(tr));
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* tr = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &tr);
      CURLcode rc = m->data.result;
      complete(*tr, rc);
      release(tr);
      active.erase(std::find_if(active.begin(), active.end(), [&](const auto& a) { return a.get() == tr; }));
    }
    if (!active.empty()) curl_multi_poll(multi, nullptr, 0, static_cast<int>(std::clamp(remaining_ms(), 1L, 100L)), nullptr);
  }
  for (auto& tr : active) release(tr.get());
  curl_multi_cleanup(multi);
  for (size_t i = 0; i < pages.size(); ++i)
    if (!done[i] && first_of[urls[i]] == i) finish(i, deadline_error(opt_.deadline_ms));
  for (size_t i = 0; i < pages.size(); ++i) {
    size_t f = first_of[urls[i]];
    if (f != i) pages[i] = pages[f];
  }
  return pages;
}

HttpResponse http_get(const std::string& url, const std::vector<std::string>& headers, long timeout_ms,
                      std::size_t max_bytes, const std::string& user_agent) {
  curl_global();
  std::unique_ptr<CURL, void (*)(CURL*)> e(curl_easy_init(), curl_easy_cleanup);
  if (!e) fail("out of memory");
  Transfer tr;
  tr.max_bytes = max_bytes;
  common_options(e.get(), user_agent, timeout_ms, timeout_ms, max_bytes);
  curl_easy_setopt(e.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(e.get(), CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e.get(), CURLOPT_WRITEDATA, &tr);
  curl_easy_setopt(e.get(), CURLOPT_ERRORBUFFER, tr.errbuf);
  curl_slist* list = nullptr;
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> guard(list, curl_slist_free_all);
  if (list) curl_easy_setopt(e.get(), CURLOPT_HTTPHEADER, list);
  CURLcode rc = curl_easy_perform(e.get());
  if (tr.too_big || rc == CURLE_FILESIZE_EXCEEDED) fail(url, ": response larger than ", max_bytes, " bytes");
  if (rc != CURLE_OK) fail(url, ": ", curl_easy_strerror(rc), tr.errbuf[0] ? std::string(": ") + tr.errbuf : "");
  HttpResponse r;
  curl_easy_getinfo(e.get(), CURLINFO_RESPONSE_CODE, &r.status);
  char* ct = nullptr;
  curl_easy_getinfo(e.get(), CURLINFO_CONTENT_TYPE, &ct);
  r.content_type = ct ? ct : "";
  r.body = std::move(tr.body);
  return r;
}

}  // namespace kexa::web
