#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "util/error.h"
#include "util/mapped_file.h"

namespace kexa {
namespace {

TEST(MappedFile, MissingFileNamesThePath) {
  try {
    MappedFile f("/nonexistent/kexa-missing.bin");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kexa-missing.bin"), std::string::npos);
  }
}

TEST(MappedFile, MapsContents) {
  std::string path = ::testing::TempDir() + "/kexa_mapped.bin";
  {
    std::ofstream out(path, std::ios::binary);
    out << "hello";
  }
  MappedFile f(path);
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data()), f.size()), "hello");
  MappedFile moved(std::move(f));
  EXPECT_EQ(moved.size(), 5u);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kexa
