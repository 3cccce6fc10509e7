#include <gtest/gtest.h>

#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "server/json_constraint.h"
#include "util/error.h"

namespace kexa::server {
namespace {

using json = nlohmann::json;

bool feeds(JsonConstraint& c, const std::string& text) {
  for (char ch : text) {
    std::string one(1, ch);
    if (!c.accepts(one)) return false;
    c.advance(one);
  }
  return true;
}

const json kPerson = json::parse(R"({
  "type": "object",
  "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"},
                 "kind": {"enum": ["a", "bb", 3]},
                 "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
  "required": ["name", "age"], "additionalProperties": false})");

TEST(JsonConstraint, AcceptsValidDocuments) {
  for (const char* doc : {R"({"name": "Kim", "age": 30})", R"({"age":-4,"name":"x","tags":["a","b"]})",
                          R"({ "name" : "é\n" , "age" : 0, "kind": 3 })", R"({"name":"","age":7,"kind":"bb"})"}) {
    JsonConstraint c(kPerson, false);
    EXPECT_TRUE(feeds(c, doc)) << doc;
    EXPECT_TRUE(c.complete()) << doc;
    EXPECT_FALSE(c.accepts(" ")) << "nothing may follow a complete value";
  }
}

TEST(JsonConstraint, RejectsWhatTheSchemaForbids) {
  for (const char* doc : {R"({"name": "Kim"})",           // missing required age at the close
                          R"({"nick": "x")",              // unknown key
                          R"({"name": 5)",                // wrong type
                          R"({"name": "x", "age": 1.5)",  // integer only
                          R"({"name": "123456789")",      // maxLength 8
                          R"({"name":"a","age":1,"tags":["x","y","z"])",  // maxItems
                          R"({"name":"a","name")",        // duplicate key
                          R"({"name":"a","age":01)",      // leading zero
                          R"({"kind": "c")",              // not in the enum
                          R"([1])"}) {
    JsonConstraint c(kPerson, false);
    EXPECT_FALSE(feeds(c, std::string(doc) + "}")) << doc;
  }
}

TEST(JsonConstraint, JsonObjectModeTakesAnyObjectOnly) {
  JsonConstraint c(json(), true);
  EXPECT_TRUE(feeds(c, R"({"a": [1, {"b": null}, true, "x\u00e9"], "c": -1.5e3})"));
  EXPECT_TRUE(c.complete());
  JsonConstraint d(json(), true);
  EXPECT_FALSE(d.accepts("["));
  EXPECT_FALSE(d.accepts("\"s\""));
}

TEST(JsonConstraint, UnsupportedKeywordsAreNamed) {
  try {
    JsonConstraint c(json::parse(R"({"anyOf": [{"type": "string"}]})"), false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("anyOf"), std::string::npos);
  }
}

// A random walk over allowed characters always ends in a document that parses and obeys the
// schema, checked here independently with nlohmann::json.
TEST(JsonConstraint, RandomWalksProduceValidDocuments) {
  const std::string alphabet = "{}[],:\" abcdefghijklmnopqrstuvwxyz0123456789-.eE+\\n";
  std::mt19937 rng(1234);
  int completed = 0;
  for (int walk = 0; walk < 300; ++walk) {
    JsonConstraint c(kPerson, false);
    std::string out;
    for (int step = 0; step < 400 && !c.complete(); ++step) {
      std::string allowed;
      for (char ch : alphabet) {
        if (c.accepts(std::string(1, ch))) allowed += ch;
      }
      ASSERT_FALSE(allowed.empty()) << "dead end after: " << out;
      // Prefer closing characters as the walk gets long, as a model running out of tokens would.
      char pick = allowed[rng() % allowed.size()];
      if (step > 60) {
        for (char closer : {'"', '}', ']', ','}) {
          if (allowed.find(closer) != std::string::npos && rng() % 2 == 0) pick = closer;
        }
      }
      c.advance(std::string(1, pick));
      out += pick;
    }
    if (!c.complete()) continue;
    ++completed;
    json doc = json::parse(out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << out;
    ASSERT_TRUE(doc.is_object()) << out;
    ASSERT_TRUE(doc.contains("name") && doc["name"].is_string()) << out;
    ASSERT_TRUE(doc.contains("age") && doc["age"].is_number_integer()) << out;
    for (const auto& [k, v] : doc.items()) {
      ASSERT_TRUE(k == "name" || k == "age" || k == "kind" || k == "tags") << out;
    }
  }
  EXPECT_GT(completed, 100);
}

// With a budget, every walk ends in a complete document within it, whatever the choices.
TEST(JsonConstraint, BudgetGuaranteesCompletion) {
  const std::string alphabet = "{}[],:\" abcdefghijklmnopqrstuvwxyz0123456789-.";
  std::mt19937 rng(99);
  const json schema = json::parse(R"({"type": "object", "properties": {"name": {"type": "string"},
      "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
      "required": ["name", "age", "tags"]})");
  for (size_t limit : {40u, 60u, 120u}) {
    for (int walk = 0; walk < 100; ++walk) {
      JsonConstraint c(schema, false);
      ASSERT_LE(c.min_completion(), limit);
      std::string out;
      for (size_t step = 0; step < limit && !c.complete(); ++step) {
        std::string allowed;
        for (char ch : alphabet) {
          if (c.accepts(std::string(1, ch), limit - step - 1)) allowed += ch;
        }
        ASSERT_FALSE(allowed.empty()) << out;
        char pick = allowed[rng() % allowed.size()];
        c.advance(std::string(1, pick));
        out += pick;
      }
      ASSERT_TRUE(c.complete()) << "limit " << limit << ": " << out;
      json doc = json::parse(out, nullptr, false);
      ASSERT_TRUE(!doc.is_discarded() && doc["tags"].is_array() && !doc["tags"].empty()) << out;
    }
  }
}

}  // namespace
}  // namespace kexa::server
