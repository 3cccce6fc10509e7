#include "web/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include <curl/curl.h>

#include "util/error.h"
#include "web/text.h"

namespace kexa::web {

namespace {

std::string strip_host(std::string_view h) {
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  // A zone id ("fe80::1%eth0") only narrows a link-local address, which is refused anyway.
  while (!h.empty() && h.back() == '.') h.remove_suffix(1);
  return ascii_lower(h);
}

IpAddress v4(std::uint32_t host_order) {
  IpAddress a;
  for (int i = 0; i < 4; ++i) a.bytes[i] = static_cast<std::uint8_t>(host_order >> (24 - 8 * i));
  return a;
}

IpAddress v4_at(const IpAddress& a6, int offset) {
  IpAddress a;
  std::memcpy(a.bytes, a6.bytes + offset, 4);
  return a;
}

bool in_prefix(const IpAddress& a, const IpAddress& net, int bits) {
  if (a.v6 != net.v6) return false;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    int m = bits >= 8 ? 0xFF : (0xFF << (8 - bits)) & 0xFF;
    if ((a.bytes[i] & m) != (net.bytes[i] & m)) return false;
  }
  return true;
}

bool prefix(const IpAddress& a, const char* net, int bits) {
  std::optional<IpAddress> n = parse_ip(net);
  return n && in_prefix(a, *n, bits);
}

std::string refused_v4(const IpAddress& a) {
  struct Range {
    const char* net;
    int bits;
    const char* why;
  };
  static const Range ranges[] = {
      {"0.0.0.0", 8, "unspecified"},        {"10.0.0.0", 8, "private"},
      {"100.64.0.0", 10, "shared address space"}, {"127.0.0.0", 8, "loopback"},
      {"169.254.0.0", 16, "link-local"},    {"172.16.0.0", 12, "private"},
      {"192.0.0.0", 24, "reserved"},        {"192.0.2.0", 24, "documentation"},
      {"192.88.99.0", 24, "reserved"},      {"192.168.0.0", 16, "private"},
      {"198.18.0.0", 15, "reserved"},       {"198.51.100.0", 24, "documentation"},
      {"203.0.113.0", 24, "documentation"}, {"224.0.0.0", 4, "multicast"},
      {"240.0.0.0", 4, "reserved"},
  };
  for (const Range& r : ranges)
    if (prefix(a, r.net, r.bits)) return r.why;
  return "";
}

struct CurlUrl {
  CURLU* h = curl_url();
  ~CurlUrl() { curl_url_cleanup(h); }
  std::string get(CURLUPart part, unsigned flags = 0) const {
    char* s = nullptr;
    if (curl_url_get(h, part, &s, flags) != CURLUE_OK || !s) return "";
    std::string out(s);
    curl_free(s);
    return out;
  }
};

}  // namespace

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, buf, sizeof buf);
  return buf;
}

bool IpAddress::operator==(const IpAddress& o) const {
  return v6 == o.v6 && std::memcmp(bytes, o.bytes, v6 ? 16 : 4) == 0;
}

std::optional<IpAddress> parse_ip(std::string_view host) {
  std::string h = strip_host(host);
  if (h.empty()) return std::nullopt;
  if (h.find(':') != std::string::npos) {
    size_t pct = h.find('%');
    if (pct != std::string::npos) h.resize(pct);
    IpAddress a;
    a.v6 = true;
    if (inet_pton(AF_INET6, h.c_str(), a.bytes) != 1) return std::nullopt;
    return a;
  }
  // inet_aton reads the same numeric forms as the URL parsers of browsers and libcurl
  // (1 to 4 parts, each decimal, 0-octal or 0x-hex, the last filling the remaining bytes).
  if (h.find_first_not_of("0123456789abcdefx.") != std::string::npos) return std::nullopt;
  in_addr in{};
  if (inet_aton(h.c_str(), &in) == 0) return std::nullopt;
  return v4(ntohl(in.s_addr));
}

std::string refused_range(const IpAddress& a) {
  if (!a.v6) return refused_v4(a);
  static const IpAddress zero6 = [] { IpAddress z; z.v6 = true; return z; }();
  if (a == zero6) return "unspecified";
  if (prefix(a, "::1", 128)) return "loopback";
  // Forms that carry an IPv4 address: judged by it.
  if (prefix(a, "::ffff:0:0", 96) || prefix(a, "64:ff9b::", 96)) {
    std::string r = refused_v4(v4_at(a, 12));
    return r.empty() ? "" : r + " (embedded IPv4)";
  }
  if (prefix(a, "::", 96)) return "reserved (IPv4-compatible)";
  if (prefix(a, "2002::", 16)) {
    std::string r = refused_v4(v4_at(a, 2));
    return r.empty() ? "" : r + " (6to4)";
  }
  if (prefix(a, "::", 8)) return "reserved";
  if (prefix(a, "64:ff9b:1::", 48)) return "private (local NAT64)";
  if (prefix(a, "100::", 64)) return "reserved (discard)";
  if (prefix(a, "2001:db8::", 32)) return "documentation";
  if (prefix(a, "2001::", 23)) return "reserved (IETF special purpose, Teredo)";
  if (prefix(a, "fc00::", 7)) return "private (unique local)";
  if (prefix(a, "fe80::", 10)) return "link-local";
  if (prefix(a, "fec0::", 10)) return "reserved (site-local)";
  if (prefix(a, "ff00::", 8)) return "multicast";
  return "";
}

std::string ParsedUrl::origin() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  return scheme + "://" + h + (default_port ? "" : ":" + std::to_string(port));
}

ParsedUrl parse_url(std::string_view url, std::string_view base) {
  CurlUrl u;
  if (!u.h) fail("out of memory");
  std::string shown(url.substr(0, 200));
  if (!base.empty()) {
    if (curl_url_set(u.h, CURLUPART_URL, std::string(base).c_str(), 0) != CURLUE_OK)
      fail("not a URL: '", base, "'");
  }
  // Without a base a relative string is an error; with one, curl resolves it against the base.
  CURLUcode rc = curl_url_set(u.h, CURLUPART_URL, std::string(url).c_str(), 0);
  if (rc != CURLUE_OK) fail("not a URL: '", shown, "' (", curl_url_strerror(rc), ")");
  ParsedUrl p;
  p.scheme = ascii_lower(u.get(CURLUPART_SCHEME));
  if (p.scheme != "http" && p.scheme != "https") fail("refused '", shown, "': only http and https URLs are fetched");
  if (!u.get(CURLUPART_USER).empty() || !u.get(CURLUPART_PASSWORD).empty())
    fail("refused '", shown, "': URLs with user info (user@host) are not fetched");
  std::string host = u.get(CURLUPART_HOST);
  p.host = strip_host(host);
  if (p.host.empty()) fail("refused '", shown, "': no host");
  std::string port = u.get(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  p.port = port.empty() ? 0 : std::atoi(port.c_str());
  if (p.port <= 0 || p.port > 65535) fail("refused '", shown, "': bad port");
  // The numeric form is rewritten to its canonical address, so curl connects to what was checked.
  if (std::optional<IpAddress> ip = parse_ip(p.host)) {
    p.host = ip->to_string();
    std::string h = ip->v6 ? "[" + p.host + "]" : p.host;
    curl_url_set(u.h, CURLUPART_HOST, h.c_str(), 0);
  } else if (host != p.host) {
    curl_url_set(u.h, CURLUPART_HOST, p.host.c_str(), 0);
  }
  curl_url_set(u.h, CURLUPART_FRAGMENT, nullptr, 0);
  p.path = u.get(CURLUPART_PATH);
  if (p.path.empty()) p.path = "/";
  if (std::string q = u.get(CURLUPART_QUERY); !q.empty()) p.path += "?" + q;
  p.url = u.get(CURLUPART_URL);
  if (p.url.empty()) fail("not a URL: '", shown, "'");
  return p;
}

namespace {

// A decimal of at most five digits (a prefix length, a port), else -1: atoi would wrap a longer
// one, and "10.0.0.0/4294967296" read as /0 would open every address.
int small_decimal(std::string_view s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string_view::npos) return -1;
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

}  // namespace

void AddressPolicy::allow(std::string_view entry) {
  std::string e(entry);
  size_t slash = e.find('/');
  if (slash != std::string::npos) {
    std::optional<IpAddress> net = parse_ip(e.substr(0, slash));
    int bits = small_decimal(std::string_view(e).substr(slash + 1));
    if (!net || bits < 0 || bits > (net->v6 ? 128 : 32))
      fail("--web-allow '", e, "': expected CIDR (10.0.0.0/8, ::1/128) or host:port");
    cidrs_.push_back({*net, bits});
    return;
  }
  if (std::optional<IpAddress> ip = parse_ip(e); ip && e.front() != '[') {
    cidrs_.push_back({*ip, ip->v6 ? 128 : 32});  // a bare address: that address, any port
    return;
  }
  size_t colon = e.rfind(':');
  if (colon == std::string::npos || colon + 1 == e.size() ||
      e.find_first_not_of("0123456789", colon + 1) != std::string::npos)
    fail("--web-allow '", e, "': expected CIDR (10.0.0.0/8, ::1/128) or host:port");
  int port = small_decimal(std::string_view(e).substr(colon + 1));
  std::string host = strip_host(e.substr(0, colon));
  if (host.empty() || port <= 0 || port > 65535) fail("--web-allow '", e, "': bad host or port");
  if (std::optional<IpAddress> ip = parse_ip(host)) host = ip->to_string();
  host_ports_.push_back({host, port});
}

std::string AddressPolicy::refusal(const IpAddress& a, std::string_view host, int port) const {
  for (const Cidr& c : cidrs_)
    if (in_prefix(a, c.net, c.bits)) return "";
  std::string addr = a.to_string();
  for (const HostPort& hp : host_ports_)
    if (hp.port == port && (hp.host == host || hp.host == addr)) return "";
  std::string r = refused_range(a);
  if (r.empty()) return "";
  return addr + " (" + r + ")";
}

CheckedTarget AddressPolicy::check(std::string_view url, std::string_view base) const {
  CheckedTarget t;
  t.url = parse_url(url, base);
  const std::string& host = t.url.host;
  if (std::optional<IpAddress> ip = parse_ip(host)) {
    std::string why = refusal(*ip, host, t.url.port);
    if (!why.empty()) fail("refused ", t.url.url, ": address ", why);
    t.address = *ip;
    return t;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) fail("cannot resolve '", host, "': ", gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  bool found = false;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    std::optional<IpAddress> ip = from_sockaddr(ai->ai_addr);
    if (!ip) continue;
    std::string why = refusal(*ip, host, t.url.port);
    if (!why.empty()) fail("refused ", t.url.url, ": ", host, " resolves to ", why);
    if (!found) t.address = *ip, found = true;
  }
  if (!found) fail("cannot resolve '", host, "': no address");
  return t;
}

std::optional<IpAddress> from_sockaddr(const sockaddr* sa) {
  if (!sa) return std::nullopt;
  IpAddress a;
  if (sa->sa_family == AF_INET) {
    std::memcpy(a.bytes, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    a.v6 = true;
    std::memcpy(a.bytes, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

}  // namespace kexa::web
