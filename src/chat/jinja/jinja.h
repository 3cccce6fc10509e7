// A Jinja2 engine for chat templates, configured as Hugging Face transformers configures Python's
// Jinja2 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, json.dumps-based
// tojson, raise_exception and strftime_now globals).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "chat/jinja/value.h"

namespace kexa::jinja {

struct Program;

struct RenderLimits {
  size_t max_output_bytes = size_t{64} << 20;  // also caps any single string or list built
  int max_call_depth = 200;                    // macro recursion
  uint64_t max_steps = 20'000'000;             // statements + loop iterations + calls
};

class Template {
 public:
  // Parses; throws kexa::Error "template syntax error at line L, column C: ..." on bad source.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `context` must be a Dict (the template's top-level variables). Runtime errors (including
  // raise_exception) throw kexa::Error "template error at line L, column C: ...".
  std::string render(const Value& context, const RenderLimits& limits = {}) const;

  // Time used by strftime_now; defaults to the wall clock at render time.
  void set_fixed_time(std::time_t t) { fixed_time_ = t; has_fixed_time_ = true; }

 private:
  std::unique_ptr<Program> program_;
  std::time_t fixed_time_ = 0;
  bool has_fixed_time_ = false;
};

}  // namespace kexa::jinja
