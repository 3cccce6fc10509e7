#include <gtest/gtest.h>

#include <string>

#include "util/error.h"
#include "web/address.h"

using namespace kexa;
using namespace kexa::web;

namespace {

// The policy's decision for a URL: "" when accepted, else the error text.
std::string decision(const AddressPolicy& p, const std::string& url, const std::string& base = "") {
  try {
    p.check(url, base);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

TEST(WebAddress, RefusesEveryInternalForm) {
  AddressPolicy p;
  const char* refused[] = {
      "http://127.0.0.1/",
      "http://localhost/",
      "http://localhost./",
      "http://LOCALHOST:8080/x",
      "http://2130706433/",
      "http://0x7f.1/",
      "http://0x7f000001/",
      "http://017700000001/",
      "http://0177.0.0.1/",
      "http://127.1/",
      "http://127.0.0.1./",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/",
      "http://[::127.0.0.1]/",
      "http://[0:0:0:0:0:ffff:10.0.0.1]/",
      "http://[64:ff9b::7f00:1]/",
      "http://[2002:7f00:1::]/",
      "http://0.0.0.0/",
      "http://0/",
      "http://[::]/",
      "http://10.1.2.3/",
      "http://172.16.0.1/",
      "http://172.31.255.255/",
      "http://192.168.1.1/",
      "http://100.64.0.1/",
      "http://169.254.169.254/latest/meta-data/",
      "http://[fe80::1]/",
      "http://[fc00::1]/",
      "http://[fd12:3456::1]/",
      "http://224.0.0.1/",
      "http://[ff02::1]/",
      "http://255.255.255.255/",
      "http://240.0.0.1/",
      "http://192.0.2.1/",
      "http://[2001:db8::1]/",
      "http://[2001::1]/",
      "http://evil.example@127.0.0.1/",
      "http://user:pw@example.com/",
      "ftp://example.com/",
      "file:///etc/passwd",
      "gopher://127.0.0.1:25/",
      "http://%31%32%37.0.0.1/",
  };
  for (const char* u : refused) EXPECT_NE(decision(p, u), "") << u;
  EXPECT_GE(sizeof refused / sizeof refused[0], 20u);
}

TEST(WebAddress, AcceptsPublicAddresses) {
  AddressPolicy p;
  for (const char* u : {"http://93.184.216.34/", "https://8.8.8.8/dns", "http://[2606:4700::1111]/",
                        "http://[::ffff:8.8.8.8]/", "http://172.32.0.1/", "http://1.1.1.1:8080/x?y=1#frag"})
    EXPECT_EQ(decision(p, u), "") << u;
}

TEST(WebAddress, NumericFormsAreCanonicalised) {
  EXPECT_EQ(parse_url("http://0x7f.1/a").url, "http://127.0.0.1/a");
  EXPECT_EQ(parse_url("http://2130706433/").host, "127.0.0.1");
  EXPECT_EQ(parse_url("http://017700000001/").host, "127.0.0.1");
  EXPECT_EQ(parse_url("http://[::FFFF:127.0.0.1]/").host, "::ffff:127.0.0.1");
  EXPECT_EQ(parse_url("HTTP://Example.COM./p#f").url, "http://example.com/p");
  EXPECT_EQ(parse_url("http://example.com:8080/p").origin(), "http://example.com:8080");
  EXPECT_EQ(parse_url("/b?c", "http://example.com/a/x").url, "http://example.com/b?c");
  EXPECT_EQ(parse_url("y", "http://example.com/a/x").url, "http://example.com/a/y");
}

TEST(WebAddress, AllowListOpensExactly) {
  AddressPolicy p;
  p.allow("127.0.0.1:8081");
  p.allow("10.0.0.0/8");
  p.allow("[::1]:9000");
  EXPECT_EQ(decision(p, "http://127.0.0.1:8081/x"), "");
  EXPECT_EQ(decision(p, "http://2130706433:8081/x"), "");  // the same address and port
  EXPECT_NE(decision(p, "http://127.0.0.1:8082/x"), "");   // another port
  EXPECT_NE(decision(p, "http://127.0.0.1/"), "");
  EXPECT_EQ(decision(p, "http://10.9.8.7:1234/"), "");
  EXPECT_EQ(decision(p, "http://[::1]:9000/"), "");
  EXPECT_NE(decision(p, "http://[::1]:9001/"), "");
  EXPECT_NE(decision(p, "http://192.168.0.1/"), "");
  // A redirect target is judged on its own: relative to an allowed page, another port is refused.
  EXPECT_NE(decision(p, "http://127.0.0.1:8082/secret", "http://127.0.0.1:8081/page"), "");
  EXPECT_EQ(decision(p, "/next", "http://127.0.0.1:8081/page"), "");
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "host:", "host:99999", "::1/129", "host"})
    EXPECT_THROW(p.allow(bad), Error) << bad;
}

TEST(WebAddress, RangesNameTheirReason) {
  EXPECT_EQ(refused_range(*parse_ip("127.0.0.1")), "loopback");
  EXPECT_EQ(refused_range(*parse_ip("192.168.0.1")), "private");
  EXPECT_EQ(refused_range(*parse_ip("169.254.1.1")), "link-local");
  EXPECT_EQ(refused_range(*parse_ip("239.1.1.1")), "multicast");
  EXPECT_EQ(refused_range(*parse_ip("::")), "unspecified");
  EXPECT_EQ(refused_range(*parse_ip("::ffff:10.0.0.1")), "private (embedded IPv4)");
  EXPECT_EQ(refused_range(*parse_ip("8.8.8.8")), "");
  EXPECT_FALSE(parse_ip("example.com"));
  EXPECT_FALSE(parse_ip("cafe"));
}
