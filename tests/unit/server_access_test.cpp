// The server's door: which routes need which key, and how a presented key is judged.
#include <gtest/gtest.h>

#include "server/access.h"

namespace kexa::server {
namespace {

using V = AccessControl::Verdict;

TEST(AccessControl, ApiKeyGuardsEveryRouteButThePublicOnes) {
  AccessControl door("s3cret", "", {"/health", "/", "/app.js"});
  for (const char* path : {"/v1/models", "/v1/chat/completions", "/tokenize", "/detokenize", "/apply-template",
                           "/metrics", "/no-such-route"}) {
    EXPECT_EQ(door.check(path, ""), V::Missing) << path;
    EXPECT_EQ(door.check(path, "Bearer wrong"), V::Wrong) << path;
    EXPECT_EQ(door.check(path, "Bearer s3cret"), V::Allowed) << path;
  }
  for (const char* path : {"/health", "/", "/app.js"}) EXPECT_EQ(door.check(path, ""), V::Allowed) << path;
  EXPECT_EQ(door.check("/tokenize", "bearer s3cret"), V::Allowed);  // the scheme is case-insensitive
  EXPECT_EQ(door.check("/tokenize", "Basic s3cret"), V::Missing);
  EXPECT_EQ(door.check("/tokenize", "Bearer "), V::Missing);
  EXPECT_EQ(door.check("/tokenize", "Bearer s3cre"), V::Wrong);    // a prefix of the key
  EXPECT_EQ(door.check("/tokenize", "Bearer s3cret "), V::Wrong);  // the key and more
  EXPECT_EQ(door.check("/tokenize", "s3cret"), V::Missing);
}

TEST(AccessControl, MetricsKeyReplacesTheApiKeyOnMetricsOnly) {
  AccessControl door("api", "scrape", {"/health"});
  EXPECT_EQ(door.check("/metrics", "Bearer scrape"), V::Allowed);
  EXPECT_EQ(door.check("/metrics", "Bearer api"), V::Wrong);
  EXPECT_EQ(door.check("/metrics", ""), V::Missing);
  EXPECT_EQ(door.check("/v1/models", "Bearer scrape"), V::Wrong);
  AccessControl metrics_only("", "scrape", {"/health"});
  EXPECT_EQ(metrics_only.check("/metrics", ""), V::Missing);
  EXPECT_EQ(metrics_only.check("/metrics", "Bearer scrape"), V::Allowed);
  EXPECT_EQ(metrics_only.check("/v1/models", ""), V::Allowed);
}

TEST(AccessControl, NoKeysOpenEveryRoute) {
  AccessControl open("", "", {});
  EXPECT_EQ(open.check("/metrics", ""), V::Allowed);
  EXPECT_EQ(open.check("/v1/models", "Bearer anything"), V::Allowed);
}

}  // namespace
}  // namespace kexa::server
