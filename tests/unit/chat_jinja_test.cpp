#include <gtest/gtest.h>

#include <string>

#include "chat/jinja/jinja.h"
#include "util/error.h"

namespace kexa::jinja {
namespace {

std::string render(const std::string& src, const std::string& ctx_json = "{}", RenderLimits limits = {}) {
  Template t(src);
  return t.render(from_json(nlohmann::ordered_json::parse(ctx_json)), limits);
}

std::string error_of(const std::string& src, const std::string& ctx_json = "{}", RenderLimits limits = {}) {
  try {
    render(src, ctx_json, limits);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

TEST(Jinja, SyntaxErrorsNameLineAndColumn) {
  std::string e = error_of("line one\n{% if x %}\n  {{ x + }}\n{% endif %}");
  EXPECT_TRUE(contains(e, "line 3, column 10")) << e;
  e = error_of("{% for x in y %}\n{{ x }}\n");
  EXPECT_TRUE(contains(e, "syntax error")) << e;
  EXPECT_TRUE(contains(e, "endfor")) << e;
  e = error_of("ab\n  {% frobnicate %}");
  EXPECT_TRUE(contains(e, "line 2, column 6")) << e;
  EXPECT_TRUE(contains(e, "frobnicate")) << e;
  e = error_of("{{ 'unterminated }}");
  EXPECT_TRUE(contains(e, "line 1, column 4")) << e;
  e = error_of("{# never closed");
  EXPECT_TRUE(contains(e, "comment")) << e;
  e = error_of("{{ (1, 2 }}");
  EXPECT_TRUE(contains(e, "line 1")) << e;
  e = error_of("{% break %}");
  EXPECT_TRUE(contains(e, "outside of a loop")) << e;
}

TEST(Jinja, RuntimeErrorsNameTheConstruct) {
  std::string e = error_of("\n{{ raise_exception('Unknown role: ' ~ r) }}", R"({"r": "narrator"})");
  EXPECT_TRUE(contains(e, "Unknown role: narrator")) << e;
  EXPECT_TRUE(contains(e, "line 2")) << e;
  e = error_of("{{ x | nosuchfilter }}", R"({"x": 1})");
  EXPECT_TRUE(contains(e, "nosuchfilter")) << e;
  e = error_of("{{ x is nosuchtest }}", R"({"x": 1})");
  EXPECT_TRUE(contains(e, "nosuchtest")) << e;
  e = error_of("{{ 1 + 'a' }}");
  EXPECT_TRUE(contains(e, "TypeError")) << e;
  EXPECT_TRUE(contains(e, "'+'")) << e;
  e = error_of("{{ a.b.c }}");
  EXPECT_TRUE(contains(e, "'a' is undefined")) << e;
  e = error_of("{{ [1].append(2) }}");
  EXPECT_TRUE(contains(e, "unsafe")) << e;
  e = error_of("{% set x = 1 %}{% set x.y = 2 %}");
  EXPECT_TRUE(contains(e, "namespace")) << e;
  e = error_of("{{ range(1000000) | length }}");
  EXPECT_TRUE(contains(e, "MAX_RANGE")) << e;
  e = error_of("{{ 1 // 0 }}");
  EXPECT_TRUE(contains(e, "ZeroDivisionError")) << e;
}

TEST(Jinja, LimitsStopRunawayTemplates) {
  EXPECT_TRUE(contains(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), "recursion"));
  RenderLimits small;
  small.max_output_bytes = 1000;
  EXPECT_TRUE(contains(error_of("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", "{}", small), "too large"));
  EXPECT_TRUE(contains(error_of("{{ 'x' * 100000000000 }}", "{}", small), "too large"));
  RenderLimits few;
  few.max_steps = 1000;
  EXPECT_TRUE(contains(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", "{}", few),
                       "expensive"));
  std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_TRUE(contains(error_of("{{ " + deep + " }}"), "nested too deeply"));
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_TRUE(contains(error_of("{{ " + nots + "1 }}"), "nested too deeply"));
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if 1 %}";
  EXPECT_TRUE(contains(error_of(ifs), "nested too deeply"));
  EXPECT_TRUE(contains(error_of("{{ 9223372036854775807 + 1 }}"), "overflow"));
}

TEST(Jinja, WhitespaceControlMatchesHfSettings) {
  // trim_blocks + lstrip_blocks: block lines vanish, {{ }} lines keep their newline.
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render("{{ 1 }}\n{{ 2 }}\n"), "1\n2");  // one trailing newline dropped
  EXPECT_EQ(render("x  {%- if true -%}  y  {%- endif -%}  z"), "xyz");
  EXPECT_EQ(render("  {%+ if true %}k{% endif %}"), "  k");
}

TEST(Jinja, PythonValueSemantics) {
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5, {'k': (1,)}] }}"), "[1, 'a', None, True, 1.5, {'k': (1,)}]");
  EXPECT_EQ(render("{{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 7 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }}"),
            "1e+16 1e-05 0.30000000000000004 3.5 -4 2");
  EXPECT_EQ(render("{{ x | tojson }}", R"({"x": {"b": [1, 2.0, "한"], "a": null}})"),
            "{\"b\": [1, 2.0, \"한\"], \"a\": null}");
  EXPECT_EQ(render("{{ '한국어'[1:] }}{{ '한국어' | length }}"), "국어3");
  EXPECT_EQ(render("{% for i in range(3) %}{% if i == 0 %}{% set x = 1 %}{% endif %}{{ x is defined }}{% endfor %}"),
            "TrueFalseFalse");
}

TEST(Jinja, LoopControlsKeepOutputBeforeContinue) {
  // The bug that rules out @huggingface/jinja as a reference.
  EXPECT_EQ(render("{% for i in range(3) %}[{{ i }}]{% if i == 0 %}{% continue %}{% endif %}+{% endfor %}"),
            "[0][1]+[2]+");
}

}  // namespace
}  // namespace kexa::jinja
