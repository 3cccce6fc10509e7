#include <gtest/gtest.h>

#include <string>

#include "util/error.h"
#include "web/address.h"
#include "web/answer.h"
#include "web/fetch.h"
#include "web/search.h"

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
  EXPECT_EQ(parse_url("http://example.com:80/a/b?x=1#f").path, "/a/b?x=1");
  EXPECT_EQ(parse_url("http://example.com").path, "/");
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
  // Numbers too long for an int are refused, not wrapped ("/4294967296" is not /0, nor ":4294967297" port 1).
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "host:", "host:99999", "::1/129", "host", "10.0.0.0/4294967296",
                           "10.0.0.0/99999999999999999999", "host:4294967297"})
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

TEST(WebRobots, GroupsLongestMatchAndWildcards) {
  const char* txt =
      "User-agent: *\nDisallow: /private/\nAllow: /private/open\n\n"
      "User-agent: kexa\nUser-agent: other\nDisallow: /nokexa\nDisallow: /*.pdf$\nAllow: /nokexa/yes\n";
  EXPECT_FALSE(robots_allows(txt, "kexa", "/nokexa/page"));
  EXPECT_TRUE(robots_allows(txt, "kexa", "/nokexa/yes/x"));
  EXPECT_TRUE(robots_allows(txt, "kexa", "/private/x"));  // kexa's own group replaces "*"
  EXPECT_FALSE(robots_allows(txt, "kexa", "/a/b.pdf"));
  EXPECT_TRUE(robots_allows(txt, "kexa", "/a/b.pdf?x=1"));
  EXPECT_FALSE(robots_allows(txt, "somebot", "/private/x"));
  EXPECT_TRUE(robots_allows(txt, "somebot", "/private/open/1"));
  EXPECT_TRUE(robots_allows(txt, "somebot", "/public"));
  EXPECT_TRUE(robots_allows("", "kexa", "/anything"));
  EXPECT_TRUE(robots_allows("User-agent: *\nDisallow:\n", "kexa", "/x"));
  EXPECT_FALSE(robots_allows("User-agent: *\nDisallow: /a*c\n", "kexa", "/abbbc/d"));
  EXPECT_TRUE(robots_allows("User-agent: *\nDisallow: /a*c\n", "kexa", "/abbb"));
}

TEST(WebCharset, ConvertsKoreanLegacyEncodings) {
  // "한국어" in EUC-KR, and a CP949-only syllable ("똠", outside EUC-KR's KS X 1001 set).
  EXPECT_EQ(to_utf8("\xC7\xD1\xB1\xB9\xBE\xEE", "euc-kr"), "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4");
  EXPECT_EQ(to_utf8("\x8C\x63", "EUC-KR"), "\xEB\x98\xA0");
  EXPECT_THROW(to_utf8("caf\xE9", "utf-8"), Error);
  EXPECT_THROW(to_utf8("\xC7", "euc-kr"), Error);  // truncated character
  EXPECT_EQ(to_utf8("caf\xE9", "iso-8859-1"), "caf\xC3\xA9");
  EXPECT_THROW(to_utf8("x", "no-such-charset"), Error);
}

TEST(WebPage, ReadsHtmlMainContentAndDetectsCharset) {
  Page p;
  std::string html =
      "<html><head><meta charset=\"euc-kr\"><title>\xC1\xA6\xB8\xF1</title></head><body>"
      "<nav>Home | News</nav><header>Site header</header><main><h1>T</h1><p>\xC7\xD1\xB1\xB9\xBE\xEE body.</p>"
      "<aside>related links</aside></main><footer>Copyright</footer></body></html>";
  read_body(p, html, "text/html");
  ASSERT_TRUE(p.ok()) << p.error;
  EXPECT_EQ(p.charset, "EUC-KR");
  EXPECT_EQ(p.title, "\xEC\xA0\x9C\xEB\xAA\xA9");
  EXPECT_EQ(p.text, "# T\n\n\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 body.");
  Page undeclared;  // no charset anywhere and not UTF-8: read as CP949
  read_body(undeclared, "\xC7\xD1\xB1\xB9\xBE\xEE", "text/plain");
  EXPECT_EQ(undeclared.text, "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4");
  Page bad;
  read_body(bad, "caf\xE9", "text/plain; charset=utf-8");
  EXPECT_EQ(bad.error, "not valid UTF-8");
  Page img;
  read_body(img, "GIF89a", "image/gif");
  EXPECT_EQ(img.error, "unsupported content type image/gif");
}

TEST(WebSearch, ParsesAndRejectsServiceAnswers) {
  auto r = parse_searxng_json(R"({"query":"q","results":[{"url":"http://a.example/x","title":"A","content":"c"},)"
                              R"({"title":"no url"},{"url":"http://A.example/x#f","title":"dup"}]})",
                              "searxng test");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(dedupe(r).size(), 1u);
  EXPECT_EQ(r[0].snippet, "c");
  EXPECT_THROW(parse_searxng_json("<html>rate limited</html>", "s"), Error);
  EXPECT_THROW(parse_searxng_json(R"({"error":"x"})", "s"), Error);
  auto b = parse_brave_json(R"({"type":"search","web":{"results":[{"url":"https://b.example/","title":"B",)"
                            R"("description":"d"}]}})",
                            "brave");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].snippet, "d");
  EXPECT_TRUE(parse_brave_json(R"({"type":"search","query":{"original":"q"}})", "brave").empty());
  EXPECT_THROW(parse_brave_json("[]", "brave"), Error);
  EXPECT_THROW(make_search_service("bing:http://x"), Error);
  EXPECT_THROW(make_search_service("searxng:not-a-url"), Error);
}

TEST(WebRetrieval, RanksChunksOfReadPagesWithSpans) {
  std::vector<Page> pages(3);
  pages[0].final_url = "http://a.example/1";
  pages[0].title = "Velmora";
  pages[0].text = "Velmora is a village. The lighthouse of Velmora was built in 1873.";
  pages[1].final_url = "http://b.example/2";
  pages[1].title = "Kestrin";
  pages[1].text = "Kestrin is a village. The lighthouse of Kestrin was built in 1902.";
  pages[2].final_url = "http://c.example/3";
  pages[2].error = "HTTP 404";
  pages[2].text = "Velmora Velmora Velmora";  // a failed page is never a source
  rag::Retriever r = page_retriever(pages, {});
  std::vector<rag::Hit> hits = r("When was the lighthouse of Velmora built?", 5);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].path, "http://a.example/1");
  EXPECT_EQ(hits[0].heading, "Velmora");
  EXPECT_EQ(pages[0].text.substr(static_cast<size_t>(hits[0].begin), static_cast<size_t>(hits[0].end - hits[0].begin)),
            hits[0].text);
  EXPECT_GT(hits[0].score, hits[1].score);
}

TEST(WebRetrieval, EmbedderReordersTheChunksBm25FoundAndKeepsTheirBm25Scores) {
  // Four pages share the query's terms equally (BM25 ties keep page order: a, d, b, c); a stand-in
  // embedder (a vector per marker word) ranks d first and a last. Fusion must lift d over a, keep
  // BM25's score on every hit, and leave out the page BM25 gave nothing.
  std::vector<Page> pages(5);
  const char* names[] = {"a", "d", "b", "c"};
  for (int i = 0; i < 4; ++i) {
    pages[static_cast<size_t>(i)].final_url = std::string("http://") + names[i] + ".example/";
    pages[static_cast<size_t>(i)].title = names[i];
    pages[static_cast<size_t>(i)].text = std::string("harbor bridge opening year ") + "marker" + names[i];
  }
  pages[4].final_url = "http://e.example/";
  pages[4].text = "markerd markerd unrelated";  // dense-similar but no shared term
  rag::Embedder embed = [](std::string_view t) {
    std::vector<float> v(6, 0.01f);
    if (t.find("markerd") != std::string_view::npos || t.find("drawbridge") != std::string_view::npos) v[3] = 1;
    if (t.find("markerb") != std::string_view::npos || t.find("markerc") != std::string_view::npos) v[3] = 0.1f;
    if (t.find("markera") != std::string_view::npos) v[0] = 1;
    return v;
  };
  const std::string query = "harbor bridge opening year drawbridge";
  std::vector<rag::Hit> plain = page_retriever(pages, {})(query, 5);
  std::vector<rag::Hit> fused = page_retriever(pages, {}, embed)(query, 5);
  ASSERT_EQ(plain.size(), 4u);
  ASSERT_EQ(fused.size(), 4u);
  EXPECT_EQ(plain[0].path, "http://a.example/");
  EXPECT_EQ(plain[1].path, "http://d.example/");
  EXPECT_EQ(fused[0].path, "http://d.example/");
  for (const rag::Hit& h : fused) {
    EXPECT_NE(h.path, "http://e.example/");
    auto same = std::find_if(plain.begin(), plain.end(), [&](const rag::Hit& p) { return p.path == h.path; });
    ASSERT_NE(same, plain.end());
    EXPECT_EQ(h.score, same->score);
  }
}

TEST(RagRank, FusionAndBm25Arithmetic) {
  const rag::Ranking lists[] = {{{5.0, 1}, {4.0, 2}, {3.0, 3}}, {{0.9, 3}, {0.8, 1}}};
  rag::Ranking f = rag::fuse_rankings(lists, 10);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].second, 1);  // 1/61 + 1/62
  EXPECT_EQ(f[1].second, 3);  // 1/63 + 1/61
  EXPECT_EQ(f[2].second, 2);
  EXPECT_DOUBLE_EQ(f[0].first, 1.0 / 61 + 1.0 / 62);
  EXPECT_EQ(rag::fuse_rankings(lists, 1).size(), 1u);
  // Okapi BM25 with k1 = 0.9, b = 0.75 for a chunk of average length: idf * tf * 1.9 / (tf + 0.9).
  EXPECT_DOUBLE_EQ(rag::bm25_term(rag::Bm25Params{}, 2.0, 1.0, 10.0, 10.0), 2.0 * 1.9 / 1.9);
  EXPECT_DOUBLE_EQ(rag::bm25_idf(10, 1), std::log(1.0 + 9.5 / 1.5));
  std::vector<float> u = rag::unit_vector({3, 4});
  EXPECT_FLOAT_EQ(u[0], 0.6f);
  EXPECT_DOUBLE_EQ(rag::dot(u, u), static_cast<double>(u[0]) * u[0] + static_cast<double>(u[1]) * u[1]);
}
