// EXAONE 4.5 vision: the preprocessing rule (sizes as llama.cpp's clip computes them; the full
// comparison is tests/conformance/vision.sh), the vision config's named errors, and the embedding
// rows the decoder takes instead of tokens.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/kv_cache.h"
#include "model/vision.h"
#include "model/vision_preprocess.h"
#include "util/error.h"

namespace kexa {
namespace {

VisionPreprocessConfig tiny_pre() {
  VisionPreprocessConfig c;
  c.min_pixels = 4 * 28 * 28;
  c.max_pixels = 64 * 28 * 28;
  return c;
}

TEST(VisionPreprocess, TargetSizesMatchLlamaCpp) {
  // Values printed by llama.cpp's mtmd for the same bounds (vision.sh checks them live).
  struct Case {
    int64_t w, h, tw, th, tokens;
  } cases[] = {{1, 1, 56, 56, 4},        {5, 3, 84, 56, 6},         {27, 29, 56, 84, 6},
               {300, 90, 308, 84, 33},   {2000, 20, 2240, 28, 80},  {1000, 1000, 224, 224, 64},
               {4000, 3000, 252, 168, 54}, {513, 257, 308, 140, 55}, {223, 224, 224, 224, 64}};
  for (const Case& c : cases) {
    const ImageSize t = vision_target_size({c.w, c.h}, tiny_pre());
    EXPECT_EQ(t.width, c.tw) << c.w << "x" << c.h;
    EXPECT_EQ(t.height, c.th) << c.w << "x" << c.h;
    EXPECT_EQ(vision_token_count({c.w, c.h}, tiny_pre()), c.tokens) << c.w << "x" << c.h;
  }
  EXPECT_THROW(vision_target_size({0, 5}, tiny_pre()), Error);
}

TEST(VisionPreprocess, NormalisesAndPadsWithBlack) {
  VisionPreprocessConfig pre = tiny_pre();
  // 56x56 needs no resize: each value is (v / 255 - mean) / std, planar.
  RgbImage im{56, 56, std::vector<uint8_t>(56 * 56 * 3)};
  for (size_t i = 0; i < im.rgb.size(); ++i) im.rgb[i] = static_cast<uint8_t>(i % 251);
  VisionInput in = vision_preprocess(im, pre);
  ASSERT_EQ(in.width, 56);
  ASSERT_EQ(in.pixels.size(), 56u * 56 * 3);
  const size_t pix = 57, plane = 56 * 56;
  for (size_t c = 0; c < 3; ++c)
    EXPECT_FLOAT_EQ(in.pixels[c * plane + pix], (static_cast<float>(im.rgb[pix * 3 + c]) / 255.0f - pre.mean[c]) / pre.std[c]);
  // 300x90 white -> 308x84: the picture keeps its aspect ratio inside, black around it.
  RgbImage wide{300, 90, std::vector<uint8_t>(300 * 90 * 3, 255)};
  VisionInput w = vision_preprocess(wide, pre);
  ASSERT_EQ(w.width, 308);
  ASSERT_EQ(w.height, 84);
  const float black0 = (0.0f - pre.mean[0]) / pre.std[0], white0 = (1.0f - pre.mean[0]) / pre.std[0];
  // Scaled to 280x84 and centred: columns 0..13 and 294..307 are padding.
  EXPECT_FLOAT_EQ(w.pixels[13], black0);
  EXPECT_NEAR(w.pixels[14], white0, 1.0f / 255 / pre.std[0]);
  EXPECT_NEAR(w.pixels[293], white0, 1.0f / 255 / pre.std[0]);
  EXPECT_FLOAT_EQ(w.pixels[294], black0);
  RgbImage bad{4, 4, std::vector<uint8_t>(5)};
  EXPECT_THROW(vision_preprocess(bad, pre), Error);
}

nlohmann::json tiny_config() {
  return nlohmann::json::parse(R"({
    "model_type": "exaone4_5", "image_token_id": 67,
    "vision_config": {"depth": 4, "hidden_size": 32, "intermediate_size": 48, "num_heads": 4,
      "num_key_value_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
      "window_size": 112, "fullatt_block_indexes": [1, 3], "out_hidden_size": 32}})");
}
nlohmann::json tiny_preprocessor() {
  return nlohmann::json::parse(R"({"min_pixels": 3136, "max_pixels": 50176, "patch_size": 14, "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})");
}

std::string error_of(const nlohmann::json& cfg, const nlohmann::json& pre) {
  try {
    VisionConfig::from_hf_json(cfg, &pre, "m/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(VisionConfig, ReadsTheTowerAndNamesWhatIsWrong) {
  const nlohmann::json pre = tiny_preprocessor();
  const VisionConfig c = VisionConfig::from_hf_json(tiny_config(), &pre, "m/config.json");
  EXPECT_EQ(c.n_layers, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_wa_pattern, 2);  // blocks 1 and 3 attend fully
  EXPECT_EQ(c.image_token_id, 67);
  EXPECT_EQ(c.pre.max_pixels, 50176);
  EXPECT_FLOAT_EQ(c.pre.std[1], 0.25f);

  nlohmann::json cfg = tiny_config();
  cfg.erase("vision_config");
  EXPECT_NE(error_of(cfg, pre).find("lacks \"vision_config\""), std::string::npos) << error_of(cfg, pre);
  nlohmann::json p2 = pre;
  p2["merge_size"] = 3;
  EXPECT_NE(error_of(tiny_config(), p2).find("merge_size 3 disagrees"), std::string::npos) << error_of(tiny_config(), p2);
  cfg = tiny_config();
  cfg["vision_config"]["spatial_merge_size"] = 3;
  p2 = pre;
  p2.erase("merge_size");
  EXPECT_NE(error_of(cfg, p2).find("merge size 3 is not supported"), std::string::npos) << error_of(cfg, p2);
  cfg = tiny_config();
  cfg["vision_config"]["fullatt_block_indexes"] = {1, 2};
  EXPECT_NE(error_of(cfg, pre).find("not evenly spaced"), std::string::npos) << error_of(cfg, pre);
  cfg = tiny_config();
  cfg["vision_config"]["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(cfg, pre).find("key/value heads 3"), std::string::npos) << error_of(cfg, pre);
  p2 = pre;
  p2.erase("max_pixels");
  EXPECT_NE(error_of(tiny_config(), p2).find("missing \"max_pixels\""), std::string::npos) << error_of(tiny_config(), p2);
}

TEST(InputEmbeddings, RowsCoverTheirSpansOnly) {
  InputEmbeddings e;
  e.width = 2;
  e.spans = {{3, 2, 0}, {7, 1, 4}};
  e.rows = {1, 1, 2, 2, 3, 3};
  EXPECT_EQ(e.row_at(2), nullptr);
  ASSERT_NE(e.row_at(3), nullptr);
  EXPECT_EQ(e.row_at(4)[0], 2);
  EXPECT_EQ(e.row_at(5), nullptr);
  EXPECT_EQ(e.row_at(7)[1], 3);
  EXPECT_EQ(e.row_at(8), nullptr);
  EXPECT_EQ(e.count(), 3);
}

}  // namespace
}  // namespace kexa
