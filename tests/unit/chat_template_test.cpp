#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "chat/template.h"
#include "formats/gguf.h"
#include "util/error.h"
#include "fixtures.h"

namespace kexa::chat {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string shared_dir() {
  const char* env = std::getenv("KEXA_SHARED");
  return env ? env : KEXA_SOURCE_DIR "/../shared";
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("kexa-chat-test-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// Golden strings from exaone-architecture.md §7.3 (EXAONE 4.0).
TEST(ChatTemplate, Exaone4GoldenFormats) {
  std::string dir = shared_dir() + "/fixtures/exaone4-tokenizer";
  KEXA_REQUIRE_FIXTURE(dir);
  ChatTemplate t = ChatTemplate::load(dir);
  ojson msgs = ojson::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}])");
  EXPECT_EQ(t.render(msgs, ojson(), true),
            "[|system|]\nS[|endofturn|]\n[|user|]\nHi[|endofturn|]\n[|assistant|]\n<think>\n\n</think>\n\n");
  EXPECT_EQ(t.render(msgs, ojson(), true, ojson{{"enable_thinking", true}}),
            "[|system|]\nS[|endofturn|]\n[|user|]\nHi[|endofturn|]\n[|assistant|]\n<think>\n");
  ojson tool_turns = ojson::parse(R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": "값"}}}]},
      {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"}])");
  EXPECT_EQ(t.render(tool_turns, ojson(), false),
            "[|user|]\nq[|endofturn|]\n[|assistant|]\n<think>\n\n</think>\n\n<tool_call>{\"name\": \"f\", "
            "\"arguments\": {\"a\": \"값\"}}</tool_call>[|endofturn|]\n[|tool|]\n<tool_result>{\"result\": \"r1\"}"
            "</tool_result>\n<tool_result>{\"result\": \"r2\"}</tool_result>[|endofturn|]\n");
  EXPECT_EQ(t.special_tokens()["eos_token"], "[|endofturn|]");
  EXPECT_EQ(t.special_tokens()["bos_token"], "[BOS]");
}

TEST(ChatTemplate, Exaone35GoldenFormat) {
  std::string dir = shared_dir() + "/fixtures/exaone35-tokenizer";
  KEXA_REQUIRE_FIXTURE(dir);
  ChatTemplate t = ChatTemplate::load(dir);
  ojson msgs = ojson::parse(
      R"([{"role": "system", "content": "You are EXAONE model from LG AI Research, a helpful assistant."}, {"role": "user", "content": "Hello"}])");
  EXPECT_EQ(t.render(msgs, ojson(), true),
            "[|system|]You are EXAONE model from LG AI Research, a helpful assistant.[|endofturn|]\n[|user|]Hello\n[|assistant|]");
}

TEST(ChatTemplate, NamedTemplatesAndErrors) {
  TempDir d;
  ojson cfg = {{"bos_token", {{"content", "<s>"}}},
               {"chat_template", ojson::array({{{"name", "default"}, {"template", "D{{ bos_token }}"}},
                                               {{"name", "tool_use"}, {"template", "T{{ tools | length }}"}}})}};
  write(d.path / "tokenizer_config.json", cfg.dump());
  ChatTemplate t = ChatTemplate::load(d.path.string());
  ojson msgs = ojson::array();
  EXPECT_EQ(t.render(msgs, ojson(), false), "D<s>");
  EXPECT_EQ(t.render(msgs, ojson::parse("[{\"type\": \"function\"}]"), false), "T1");
  EXPECT_EQ(t.render(msgs, ojson::array(), false, ojson::object(), "tool_use"), "T0");

  // chat_template.jinja wins over tokenizer_config.json, as in transformers.
  write(d.path / "chat_template.jinja", "J{{ messages | length }}\n");
  EXPECT_EQ(ChatTemplate::load(d.path.string()).render(msgs, ojson(), false), "J0");

  write(d.path / "chat_template.jinja", "{% if %}");
  try {
    ChatTemplate::load(d.path.string());
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template.jinja"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
  }
  TempDir empty;
  try {
    ChatTemplate::load(empty.path.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, FromGguf) {
  TempDir d;
  fs::path p = d.path / "t.gguf";
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("exaone4"));
  w.set("tokenizer.ggml.tokens", gguf::Value::strings({"[PAD]", "[BOS]", "[|endofturn|]"}));
  w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(1));
  w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(2));
  w.set("tokenizer.chat_template", gguf::Value::str("{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"));
  w.write(p.string());
  ChatTemplate t = ChatTemplate::load(p.string());
  EXPECT_EQ(t.render(ojson::parse(R"([{"role": "user", "content": "hi"}])"), ojson(), false), "[BOS]hi[|endofturn|]");

  gguf::Writer none;
  none.set("general.architecture", gguf::Value::str("exaone4"));
  none.write((d.path / "none.gguf").string());
  try {
    ChatTemplate::load((d.path / "none.gguf").string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.chat_template"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kexa::chat
