// Fuzzes what kexa reads from the network and the operator before fetching a page: numeric
// address forms, URLs (and redirect targets relative to a base), allow-list entries and
// robots.txt. Nothing is resolved or fetched. The first byte picks the parser; the rest is its input.
// Each must return or throw kexa::Error (no crash, no other exception) and keep its contract:
//   - parse_ip: an address reads back as itself from its own to_string();
//   - parse_url: an accepted URL is http(s), has a lower-case host without brackets or a trailing
//     dot, a port in 1..65535 and a path starting with '/'; its normalized form parses to the same;
//   - robots_allows: one "Disallow: P" rule for '*' decides exactly as RFC 9309's matching
//     (a reference matcher below), and any robots.txt is answered.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"
#include "web/address.h"
#include "web/fetch.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

// RFC 9309 path matching, written independently of web/fetch.cpp: '*' matches any run, a final
// '$' anchors at the end, otherwise the pattern is a prefix. Dynamic programming over both.
bool reference_match(std::string_view pat, std::string_view path) {
  bool anchored = !pat.empty() && pat.back() == '$';
  std::string p(pat.substr(0, pat.size() - (anchored ? 1 : 0)));
  if (!anchored) p += '*';
  // m[j]: p[0, i) matches path[0, j).
  std::vector<char> m(path.size() + 1, 0), next(path.size() + 1, 0);
  m[0] = 1;
  for (char c : p) {
    if (c == '*') {
      next[0] = m[0];
      for (size_t j = 1; j <= path.size(); ++j) next[j] = m[j] || next[j - 1];
    } else {
      next[0] = 0;
      for (size_t j = 1; j <= path.size(); ++j) next[j] = m[j - 1] && path[j - 1] == c;
    }
    m.swap(next);
  }
  return m[path.size()] != 0;
}

void fuzz_ip(std::string_view in) {
  std::optional<kexa::web::IpAddress> ip = kexa::web::parse_ip(in);
  if (!ip) return;
  (void)kexa::web::refused_range(*ip);
  std::optional<kexa::web::IpAddress> again = kexa::web::parse_ip(ip->to_string());
  require(again && *again == *ip);
}

// Lines: the URL, then optionally a base to resolve it against, then an allow-list entry.
std::string_view next_line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  return line;
}

void fuzz_url(std::string_view in) {
  std::string_view url = next_line(in);
  std::string_view base = next_line(in);
  kexa::web::AddressPolicy policy;
  try {
    policy.allow(in);
  } catch (const kexa::Error&) {
  }
  kexa::web::ParsedUrl u;
  try {
    u = kexa::web::parse_url(url, base);
  } catch (const kexa::Error&) {
    return;
  }
  require(u.scheme == "http" || u.scheme == "https");
  require(!u.host.empty() && u.host.back() != '.' && u.host.front() != '[');
  for (char c : u.host) require(!(c >= 'A' && c <= 'Z'));
  require(u.port >= 1 && u.port <= 65535);
  require(!u.path.empty() && u.path[0] == '/');
  kexa::web::ParsedUrl again = kexa::web::parse_url(u.url);  // what is fetched must parse as itself
  require(again.url == u.url && again.host == u.host && again.port == u.port && again.path == u.path);
  (void)u.origin();
  if (std::optional<kexa::web::IpAddress> ip = kexa::web::parse_ip(u.host)) (void)policy.refusal(*ip, u.host, u.port);
}

void fuzz_robots(std::string_view in) {
  size_t nl = in.find('\n');
  std::string_view path = in.substr(0, nl);
  std::string_view rest = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  (void)kexa::web::robots_allows(rest, "kexa", path);
  // The same bytes as one rule: a pattern with no space, control byte or comment is taken verbatim.
  for (char c : rest)
    if (static_cast<unsigned char>(c) <= ' ' || c == '#') return;
  if (rest.empty()) return;
  std::string txt = "User-agent: *\nDisallow: " + std::string(rest) + "\n";
  require(kexa::web::robots_allows(txt, "kexa", path) == !reference_match(rest, path));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 4096) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: fuzz_ip(in); break;
    case 1: fuzz_url(in); break;
    default: fuzz_robots(in); break;
  }
  return 0;
}
