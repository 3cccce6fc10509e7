// Which addresses kexa may fetch from (server-side request forgery defence). A URL is parsed with
// libcurl's URL API (the parser the transfer itself uses, so the host checked is the host
// connected to), its host resolved once, and every resulting address classified; the transfer is
// then pinned to the checked address (web/fetch.cpp: CURLOPT_RESOLVE plus a connect-time check),
// so a second DNS answer cannot point it elsewhere.
//
// Refused by default: loopback, private (RFC 1918, IPv6 unique-local), shared (100.64/10),
// link-local, multicast, unspecified, documentation / benchmarking / reserved ranges, IPv6 forms
// that embed an IPv4 address (mapped, compatible, NAT64, 6to4) whose IPv4 address is refused, and
// Teredo / other IETF special-purpose ranges. Numeric host forms ("2130706433", "0x7f.1", "127.1",
// "017700000001") are read as the IPv4 address they denote; a trailing dot is ignored; URLs with
// user info ("http://a@b/") or schemes other than http/https are refused outright.
//
// The operator's allow-list opens exceptions: "CIDR" (any port of those addresses, e.g.
// "10.0.0.0/8", "::1/128", "127.0.0.1") or "host:port" (that host name or address literal on that
// port only, e.g. "127.0.0.1:8080", "intranet.example:443", "[::1]:8080").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netinet/in.h>

namespace kexa::web {

// An IPv4 or IPv6 address (IPv4 stored as 4 bytes, IPv6 as 16).
struct IpAddress {
  bool v6 = false;
  std::uint8_t bytes[16] = {};
  std::string to_string() const;  // "127.0.0.1", "::1" (no brackets)
  bool operator==(const IpAddress& o) const;
};

// Parses a numeric address the way the transfer would read it: dotted, decimal, octal and hex
// IPv4 forms (inet_aton's grammar: "127.1", "0x7f.1", "2130706433"), IPv6 with or without
// brackets. nullopt for a host name.
std::optional<IpAddress> parse_ip(std::string_view host);

// Why the address is refused by default ("loopback", "private", ...), or "" when it is public.
std::string refused_range(const IpAddress& a);

struct ParsedUrl {
  std::string url;     // normalized by libcurl (what is fetched)
  std::string scheme;  // "http" or "https"
  std::string host;    // lower case, no brackets, no trailing dot
  int port = 0;        // explicit or the scheme's default
  std::string path;    // path and query ("/a/b?x=1"), as robots.txt rules match them
  std::string origin() const;  // scheme://host[:port] as written for robots.txt and cache keys
};

// Parses an absolute http(s) URL, or `url` relative to `base` when base is given (redirects).
// Throws kexa::Error saying why (not a URL, scheme, user info, no host).
ParsedUrl parse_url(std::string_view url, std::string_view base = {});

// The address a transfer may connect to, after the policy accepted the URL.
struct CheckedTarget {
  ParsedUrl url;
  IpAddress address;
};

class AddressPolicy {
 public:
  // Adds one allow-list entry; throws kexa::Error for a malformed one.
  void allow(std::string_view entry);
  // Parses, resolves (getaddrinfo) and checks. Every address the name resolves to must be
  // acceptable (a name with one private address among public ones is refused). Throws
  // kexa::Error naming the URL and the reason ("... resolves to 127.0.0.1 (loopback)").
  CheckedTarget check(std::string_view url, std::string_view base = {}) const;
  // The decision for one address reached through `host`:`port`: "" when allowed, else the reason.
  std::string refusal(const IpAddress& a, std::string_view host, int port) const;

 private:
  struct Cidr {
    IpAddress net;
    int bits = 0;
  };
  struct HostPort {
    std::string host;
    int port = 0;
  };
  std::vector<Cidr> cidrs_;
  std::vector<HostPort> host_ports_;
};

// Socket address <-> IpAddress (for the connect-time check).
std::optional<IpAddress> from_sockaddr(const struct sockaddr* sa);

}  // namespace kexa::web
