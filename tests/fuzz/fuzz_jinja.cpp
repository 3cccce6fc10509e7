// Fuzzes the Jinja engine: any template source, rendered against a fixed chat-like context, must
// either render or fail with kexa::Error (bounded time and memory, no crash, no other exception).
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/jinja/jinja.h"
#include "util/error.h"

namespace {

const kexa::jinja::Value& context() {
  static const kexa::jinja::Value ctx = kexa::jinja::from_json(nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "안녕 <b>"},
                 {"role": "assistant", "content": "<think>\nr\n</think>\n\nok", "reasoning_content": "r",
                  "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5, null, true]}}}]},
                 {"role": "tool", "content": {"x": "y"}}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "[BOS]", "eos_token": "[|endofturn|]",
    "enable_thinking": false, "n": 3, "s": "  text  "})"));
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::string src(reinterpret_cast<const char*>(data), size);
  kexa::jinja::RenderLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 100000;
  limits.max_call_depth = 50;
  try {
    kexa::jinja::Template t(src);
    t.set_fixed_time(0);
    t.render(context(), limits);
  } catch (const kexa::Error&) {
  }
  return 0;
}
