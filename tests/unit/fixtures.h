// Tests that need a file of ../shared/fixtures: KEXA_REQUIRE_FIXTURE(path) skips the test when the
// path is missing, or fails it when the environment requires fixtures (KEXA_REQUIRE_FIXTURES=1,
// which scripts/test sets when CI=true and .ci/run always sets), so a missing or misplaced fixture
// never passes CI as a skip.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace kexa::test {

inline bool fixtures_required() {
  const char* e = std::getenv("KEXA_REQUIRE_FIXTURES");
  return e != nullptr && *e != 0 && std::strcmp(e, "0") != 0;
}

}  // namespace kexa::test

// A statement, usable only in a test body (it returns from it like GTEST_SKIP and FAIL do).
#define KEXA_REQUIRE_FIXTURE(path)                                                                   \
  do {                                                                                               \
    if (!std::filesystem::exists(path)) {                                                            \
      if (::kexa::test::fixtures_required()) FAIL() << "fixture missing (KEXA_REQUIRE_FIXTURES): " << (path); \
      GTEST_SKIP() << "fixture missing: " << (path);                                                 \
    }                                                                                                \
  } while (0)
