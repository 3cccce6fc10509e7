#include <gtest/gtest.h>

#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "server/tool_constraint.h"
#include "util/error.h"

namespace kexa::server {
namespace {

using json = nlohmann::json;

const json kWeather = json::parse(R"({"type": "object",
  "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
  "required": ["city"]})");

std::vector<ToolCallConstraint::Function> functions() {
  return {{"get_weather", kWeather}, {"get_time", json()}};
}

bool feeds(ToolCallConstraint& c, const std::string& text) {
  for (char ch : text) {
    std::string one(1, ch);
    if (!c.accepts(one)) return false;
    c.advance(one);
  }
  return true;
}

TEST(ToolCallConstraint, AcceptsCallsInTheExaoneFormat) {
  ToolCallConstraint c(functions(), true, false);
  EXPECT_FALSE(c.complete());
  EXPECT_TRUE(feeds(c, "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"서울\"}}</tool_call>"));
  EXPECT_TRUE(c.complete());
  EXPECT_TRUE(feeds(c, "\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"));
  EXPECT_TRUE(c.complete());
}

TEST(ToolCallConstraint, RejectsOtherText) {
  ToolCallConstraint c(functions(), false, false);
  EXPECT_FALSE(c.accepts("Hello"));
  EXPECT_TRUE(c.accepts("\n<tool"));
  EXPECT_FALSE(c.accepts("<tool_call>{\"name\": \"get_wind\""));
  EXPECT_FALSE(c.accepts("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"town\""));
  EXPECT_FALSE(c.accepts("<tool_call>{\"name\": \"get_weather\", \"arguments\": []"));
  ASSERT_TRUE(feeds(c, "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"x\"}}</tool_call>"));
  EXPECT_FALSE(c.accepts("\n")) << "a named function is called once";
  EXPECT_FALSE(c.accepts(" "));
}

TEST(ToolCallConstraint, MultiCharacterTokensAcrossPhases) {
  ToolCallConstraint c(functions(), false, false);
  ASSERT_TRUE(feeds(c, "<tool_call>{\"name\": \"get_time\", \"arguments\": {"));
  EXPECT_TRUE(c.accepts("}}</tool_call>"));
  EXPECT_FALSE(c.accepts("}}}"));
  c.advance("}}</");
  EXPECT_FALSE(c.complete());
  c.advance("tool_call>");
  EXPECT_TRUE(c.complete());
}

TEST(ToolCallConstraint, ReasoningComesFirstWhenOpen) {
  ToolCallConstraint c(functions(), false, true);
  EXPECT_TRUE(c.in_reasoning());
  EXPECT_TRUE(c.accepts("anything <tool_call> goes here"));
  ASSERT_TRUE(feeds(c, "Let me think.\n"));
  c.advance("</think>");
  EXPECT_FALSE(c.in_reasoning());
  EXPECT_FALSE(c.accepts("Sure"));
  EXPECT_TRUE(feeds(c, "\n\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"));
  EXPECT_TRUE(c.complete());
}

TEST(ToolCallConstraint, BudgetForcesCompletion) {
  ToolCallConstraint c(functions(), false, false);
  size_t need = c.min_completion();
  // The cheapest call: get_time with {}.
  EXPECT_EQ(need, std::string("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>").size());
  EXPECT_FALSE(c.accepts("<", need - 2));
  EXPECT_TRUE(c.accepts("<", need - 1));
}

TEST(ToolCallConstraint, RandomWalkAlwaysEndsInAParsableCall) {
  // Pick random allowed characters under a shrinking budget: the result must be one whole call
  // whose arguments are valid JSON.
  std::mt19937 rng(42);
  const std::string alphabet = "<>/{}[]\":, _abcdefghijklmnopqrstuvwxyz0123456789\nfc";
  for (int trial = 0; trial < 50; ++trial) {
    ToolCallConstraint c(functions(), false, false);
    std::string out;
    size_t budget = 160;
    while (!c.complete()) {
      ASSERT_GT(budget, 0u) << out;
      std::vector<char> ok;
      for (char ch : alphabet) {
        if (c.accepts(std::string(1, ch), budget - 1)) ok.push_back(ch);
      }
      ASSERT_FALSE(ok.empty()) << out;
      char ch = ok[rng() % ok.size()];
      c.advance(std::string(1, ch));
      out += ch;
      --budget;
    }
    out.erase(0, out.find_first_not_of(" \n"));  // up to 4 blanks may lead
    const std::string open = "<tool_call>";
    const std::string close = "</tool_call>";
    ASSERT_EQ(out.rfind(open, 0), 0u) << out;
    ASSERT_EQ(out.substr(out.size() - close.size()), close) << out;
    json call = json::parse(out.substr(open.size(), out.size() - open.size() - close.size()));
    EXPECT_TRUE(call["name"] == "get_weather" || call["name"] == "get_time") << out;
    EXPECT_TRUE(call["arguments"].is_object()) << out;
    if (call["name"] == "get_weather") {
      EXPECT_TRUE(call["arguments"]["city"].is_string()) << out;
    }
  }
}

TEST(ToolCallConstraint, UnsupportedSchemaNamesTheFunction) {
  try {
    ToolCallConstraint c({{"f", json::parse(R"({"anyOf": []})")}}, false, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'f'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kexa::server
