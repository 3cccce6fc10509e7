#include <gtest/gtest.h>

#include "hub/hub.h"

namespace kexa::hub {
namespace {

TEST(ModelRef, ParsesRepoAndQuant) {
  auto ref = parse_model_ref("LGAI-EXAONE/EXAONE-4.0-1.2B-GGUF:Q4_K_M");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->repo, "LGAI-EXAONE/EXAONE-4.0-1.2B-GGUF");
  EXPECT_EQ(ref->quant, "Q4_K_M");
  ref = parse_model_ref("LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->quant, "");
}

TEST(ModelRef, RejectsPathsAndOddNames) {
  EXPECT_FALSE(parse_model_ref("model.gguf").has_value());
  EXPECT_FALSE(parse_model_ref("/abs/path").has_value());
  EXPECT_FALSE(parse_model_ref("a/b/c").has_value());
  EXPECT_FALSE(parse_model_ref("../x").has_value());
  EXPECT_FALSE(parse_model_ref("org/..").has_value());
  EXPECT_FALSE(parse_model_ref("org/repo:").has_value());
  EXPECT_FALSE(parse_model_ref("").has_value());
}

}  // namespace
}  // namespace kexa::hub
