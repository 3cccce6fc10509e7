// The server's side of pictures in chat requests: image_url parts become the {"type": "image"}
// parts the EXAONE 4.5 template renders as its placeholder (checked on the real template), their
// URLs are collected in order with the field an error names, and load_images decodes data: URLs
// under the server's limits and refuses what it must (count, fetching off, bad data).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/template.h"
#include "fixtures.h"
#include "server/images.h"
#include "server/request.h"
#include "server/server.h"
#include "util/base64.h"
#include "util/read_file.h"

using namespace kexa;
using namespace kexa::server;

namespace {

std::string png_data_url() {
  return "data:image/png;base64," + encode_base64(read_file(KEXA_SOURCE_DIR "/tests/data/images/blocks.png"));
}

json image_part(const std::string& url) { return json{{"type", "image_url"}, {"image_url", {{"url", url}}}}; }

BadRequest refusal(const ServerOptions& o, const std::vector<ImagePart>& parts) {
  try {
    load_images(o, parts);
  } catch (const BadRequest& e) {
    return e;
  }
  return {};
}

}  // namespace

TEST(ServerImages, ImagePartsBecomeTheTemplatesPlaceholders) {
  const std::string url = png_data_url();
  json body = {{"messages", json::array({
                                json{{"role", "user"},
                                     {"content", json::array({json{{"type", "text"}, {"text", "Look: "}}, image_part(url),
                                                              image_part("https://example.com/b.jpg"),
                                                              json{{"type", "text"}, {"text", "What are they?"}}})}},
                                json{{"role", "assistant"}, {"content", "Two pictures."}},
                                json{{"role", "user"}, {"content", json::array({json{{"type", "text"}, {"text", "Thanks"}}})}},
                            })}};
  std::vector<ImagePart> parts;
  const json messages = normalize_messages(body, &parts);
  EXPECT_EQ(messages[0]["content"].dump(),
            R"([{"type":"text","text":"Look: "},{"type":"image"},{"type":"image"},{"type":"text","text":"What are they?"}])");
  EXPECT_EQ(messages[2]["content"], "Thanks");  // no picture: a string, as before
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].url, url);
  EXPECT_EQ(parts[0].param, "messages[0].content[1].image_url.url");
  EXPECT_EQ(parts[1].param, "messages[0].content[2].image_url.url");
  // Without a place for pictures (callers that cannot take them) the part is refused.
  try {
    normalize_messages(body);
    ADD_FAILURE() << "image part accepted";
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.message, "messages[0].content part type 'image_url' is not supported by a text model");
  }

  // Pictures belong in user turns.
  json from_assistant = {{"messages", json::array({json{{"role", "assistant"}, {"content", json::array({image_part(url)})}}})}};
  try {
    normalize_messages(from_assistant, &parts);
    ADD_FAILURE() << "image part accepted in an assistant message";
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.message, "messages[0].content[0]: image parts belong in user messages, not assistant");
  }

  const std::string tpl = KEXA_SOURCE_DIR "/../shared/fixtures/exaone45-template/chat_template.jinja";
  KEXA_REQUIRE_FIXTURE(tpl);
  const std::string prompt = chat::ChatTemplate::load(tpl).render(messages, json(), true);
  EXPECT_NE(prompt.find("Look: <vision><|image_pad|></vision>\n<vision><|image_pad|></vision>\nWhat are they?"),
            std::string::npos)
      << prompt;
}

TEST(ServerImages, LoadImagesDecodesAndRefuses) {
  ServerOptions o;
  const std::string url = png_data_url();
  const std::vector<RgbImage> images = load_images(o, {{url, "p0"}, {url, "p1"}});
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[1].width, 24u);
  EXPECT_EQ(images[1].height, 16u);

  o.max_images = 1;
  BadRequest e = refusal(o, {{url, "p0"}, {url, "p1"}});
  EXPECT_EQ(e.message, "the request has 2 images; this server takes at most 1 per request (--max-images)");
  EXPECT_EQ(e.param, "p1");
  o.max_images = 8;
  e = refusal(o, {{"https://example.com/a.png", "p0"}});
  EXPECT_NE(e.message.find("p0: this server does not fetch images from URLs"), std::string::npos) << e.message;
  o.max_image_pixels = 100;
  e = refusal(o, {{url, "p0"}});
  EXPECT_EQ(e.message, "p0: PNG: 24 x 16 pixels is more than the limit of 100 pixels");
  EXPECT_EQ(e.status, 400);
  o.max_image_bytes = 10;
  e = refusal(o, {{url, "p0"}});
  EXPECT_NE(e.message.find("more than the limit of 10 bytes"), std::string::npos) << e.message;
}
