#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "chat/output_parser.h"

namespace kexa::chat {
namespace {

struct Expected {
  std::string content;
  std::string reasoning;
  std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
  size_t errors = 0;
};

struct Transcript {
  const char* label;
  std::string prompt;  // rendered prompt end, decides tags and starting state
  std::string output;
  Expected expected;
};

std::vector<Transcript> transcripts() {
  return {
      {"exaone4 reasoning opened by the prompt", "[|assistant|]\n<think>\n",
       "Let me think.\nStep <2> of </thin\n</think>\n\nThe answer is 42.",
       {"The answer is 42.", "Let me think.\nStep <2> of </thin", {}, 0}},
      {"exaone4 non-reasoning with two tool calls", "[|assistant|]\n<think>\n\n</think>\n\n",
       "I'll check 서울.\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"서울\", \"n\": [1, 2.5]}}"
       "</tool_call>\n<tool_call>{\"name\":\"search\",\"arguments\":{\"q\":\"x\"}}</tool_call>",
       {"I'll check 서울.", "",
        {{"get_weather", "{\"city\": \"서울\", \"n\": [1, 2.5]}"}, {"search", "{\"q\": \"x\"}"}}, 0}},
      {"model writes its own think block", "[|assistant|]\n",
       "<think>\nplan a < b\n</think>\n\nDone <b>bold</b> <tool", {"Done <b>bold</b> <tool", "plan a < b", {}, 0}},
      {"invalid tool-call JSON is reported", "[|assistant|]\n<think>\n\n</think>\n\n",
       "<tool_call>{\"name\": broken}</tool_call>",
       {"<tool_call>{\"name\": broken}</tool_call>", "", {}, 1}},
      {"tool call without name", "x", "ok <tool_call>[1, 2]</tool_call>",
       {"ok<tool_call>[1, 2]</tool_call>", "", {}, 1}},
      {"unterminated tool call", "x", "text <tool_call>{\"name\": \"f\", \"argu",
       {"text<tool_call>{\"name\": \"f\", \"argu", "", {}, 1}},
      {"exaone deep thought", "[|user|]q\n[|assistant|]<thought>\n",
       "First, 2+2.\nSo 4.\n</thought>\n\n**4**\n", {"**4**", "First, 2+2.\nSo 4.", {}, 0}},
      {"k-exaone reasoning then a tool call with parameters", "<|assistant|>\n<think>\n",
       "Need weather.</think>\n\n<tool_call>{\"name\": \"w\", \"parameters\": {\"c\": \"부산\"}}</tool_call>",
       {"", "Need weather.", {{"w", "{\"c\": \"부산\"}"}}, 0}},
      {"arguments given as a string", "x",
       "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>", {"", "", {{"f", "{\"a\": 1}"}}, 0}},
      {"unterminated reasoning", "<think>\n", "still thinking about <tool_call> and </thi",
       {"", "still thinking about <tool_call> and </thi", {}, 0}},
      {"plain content", "", "  Hello,\n\nworld!  \n", {"  Hello,\n\nworld!", "", {}, 0}},
  };
}

ParseDelta run(const Transcript& t, const std::vector<size_t>& cuts) {
  OutputParser p = OutputParser::for_prompt(t.prompt, 1234);
  ParseDelta all;
  size_t prev = 0;
  for (size_t c : cuts) {
    all.append(p.push(std::string_view(t.output).substr(prev, c - prev)));
    prev = c;
  }
  all.append(p.push(std::string_view(t.output).substr(prev)));
  all.append(p.finish());
  return all;
}

void check(const Transcript& t, const ParseDelta& d, const std::string& how) {
  SCOPED_TRACE(std::string(t.label) + " / " + how);
  EXPECT_EQ(d.content, t.expected.content);
  EXPECT_EQ(d.reasoning, t.expected.reasoning);
  ASSERT_EQ(d.tool_calls.size(), t.expected.calls.size());
  for (size_t i = 0; i < d.tool_calls.size(); ++i) {
    EXPECT_EQ(d.tool_calls[i].name, t.expected.calls[i].first);
    EXPECT_EQ(d.tool_calls[i].arguments, t.expected.calls[i].second);
    EXPECT_EQ(d.tool_calls[i].id.rfind("call_", 0), 0u);
  }
  EXPECT_EQ(d.errors.size(), t.expected.errors);
}

TEST(ChatOutputParser, WholeText) {
  for (const auto& t : transcripts()) check(t, run(t, {}), "whole");
}

TEST(ChatOutputParser, ByteByByte) {
  for (const auto& t : transcripts()) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < t.output.size(); ++i) cuts.push_back(i);
    check(t, run(t, cuts), "byte by byte");
  }
}

TEST(ChatOutputParser, EveryOneAndTwoCutChunking) {
  for (const auto& t : transcripts()) {
    ParseDelta ref = run(t, {});
    size_t n = t.output.size();
    for (size_t a = 1; a < n; ++a) {
      for (size_t b = a; b < n; ++b) {
        ParseDelta d = run(t, a == b ? std::vector<size_t>{a} : std::vector<size_t>{a, b});
        ASSERT_EQ(d.content, ref.content) << t.label << " cuts " << a << "," << b;
        ASSERT_EQ(d.reasoning, ref.reasoning) << t.label << " cuts " << a << "," << b;
        ASSERT_EQ(d.tool_calls.size(), ref.tool_calls.size()) << t.label << " cuts " << a << "," << b;
        for (size_t i = 0; i < d.tool_calls.size(); ++i) {
          ASSERT_EQ(d.tool_calls[i].name, ref.tool_calls[i].name);
          ASSERT_EQ(d.tool_calls[i].arguments, ref.tool_calls[i].arguments);
          ASSERT_EQ(d.tool_calls[i].id, ref.tool_calls[i].id);  // same seed, same ids
        }
        ASSERT_EQ(d.errors.size(), ref.errors.size());
      }
    }
  }
}

TEST(ChatOutputParser, RandomChunkings) {
  std::mt19937 rng(7);
  for (const auto& t : transcripts()) {
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<size_t> cuts;
      for (size_t i = 1; i < t.output.size(); ++i)
        if (rng() % 4 == 0) cuts.push_back(i);
      check(t, run(t, cuts), "random");
    }
  }
}

TEST(ChatOutputParser, TagsNeverLeakWhileStreaming) {
  // Each delta must be a prefix-safe piece: no partial tag text ever reaches content.
  Transcript t = transcripts()[1];
  OutputParser p = OutputParser::for_prompt(t.prompt, 1);
  std::string content;
  for (char c : t.output) {
    content += p.push(std::string_view(&c, 1)).content;
    EXPECT_EQ(content.find('<'), std::string::npos) << content;
  }
  content += p.finish().content;
  EXPECT_EQ(content, "I'll check 서울.");
}

TEST(ChatOutputParser, PromptDecidesStartState) {
  EXPECT_TRUE(OutputParser::for_prompt("[|assistant|]\n<think>\n").in_reasoning());
  EXPECT_FALSE(OutputParser::for_prompt("[|assistant|]\n<think>\n\n</think>\n\n").in_reasoning());
  EXPECT_FALSE(OutputParser::for_prompt("[|assistant|]").in_reasoning());
  EXPECT_TRUE(OutputParser::for_prompt("[|assistant|]<thought>\n").in_reasoning());
}

TEST(ChatOutputParser, RandomIdsDifferWithoutSeed) {
  const std::string out = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
  OutputParser a, b;
  auto da = a.push(out);
  auto db = b.push(out);
  ASSERT_EQ(da.tool_calls.size(), 1u);
  ASSERT_EQ(db.tool_calls.size(), 1u);
  EXPECT_NE(da.tool_calls[0].id, db.tool_calls[0].id);
  EXPECT_EQ(da.tool_calls[0].arguments, "{}");
}

}  // namespace
}  // namespace kexa::chat
