// Tree-walking evaluator. Internal to the Jinja engine: use Template (jinja.h) from outside.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja/ast.h"
#include "chat/jinja/jinja.h"
#include "chat/jinja/value.h"
#include "util/error.h"

namespace kexa::jinja {

// Variables of one frame (template top level, macro call, loop iteration, with block).
struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find(std::string_view name) const {
    for (const Scope* s = this; s; s = s->parent.get())
      for (const auto& [k, v] : s->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

// An error already carrying its template position.
class PositionedError : public Error {
 public:
  using Error::Error;
};

class Interpreter {
 public:
  Interpreter(const RenderLimits& limits, std::time_t now) : limits_(limits), now_(now) {}
  ~Interpreter();

  std::string run(const Program& prog, const Value& context);

  // Used by builtins.
  Value call(const Value& callee, Args& args);
  Value apply_filter(const std::string& name, const Value& input, Args& args);
  bool apply_test(const std::string& name, const Value& input, Args& args);
  Value getattr(const Value& obj, const std::string& name);
  Value getitem(const Value& obj, const Value& key);
  void check_size(size_t n) const {
    if (n > limits_.max_output_bytes) fail("output or value too large (over ", limits_.max_output_bytes, " bytes)");
  }
  void step() {
    if (++steps_ > limits_.max_steps) fail("template too expensive (over ", limits_.max_steps, " steps)");
  }
  Value make_namespace();
  std::time_t now() const { return now_; }

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void assign(const Target& t, const Value& v, const ScopePtr& scope, Pos pos);
  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_binary(const Expr& e, const ScopePtr& scope);
  Args eval_args(const CallArgs& a, const ScopePtr& scope);
  Value make_macro(const Stmt& def, const ScopePtr& scope, const std::vector<MacroParam>& params,
                   const Body& body, std::string name, Value caller);
  Value apply_filters(const std::vector<ExprPtr>& chain, Value v, const ScopePtr& scope);
  // apply_filter's two halves (filters_text.cpp, filters_list.cpp); nullopt: not theirs.
  std::optional<Value> text_filter(const std::string& name, const Value& input, Args& args);
  std::optional<Value> list_filter(const std::string& name, const Value& input, Args& args);
  void append(std::string& out, std::string_view s) {
    out.append(s);
    check_size(out.size());
  }

  RenderLimits limits_;
  std::time_t now_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  ScopePtr root_;
  std::vector<std::weak_ptr<Namespace>> namespaces_;  // cleared at the end to break cycles
};

std::string py_lower(std::string_view s);
std::string html_escape(const std::string& s);
std::string py_upper(std::string_view s);
std::vector<Value> iterate(const Value& v);  // Python iter() as a list; throws TypeError
// Python's `fmt % args` (the % operator on strings and the format filter).
std::string python_percent_format(Interpreter& in, const std::string& fmt, const Value& args);
// range, namespace, dict, raise_exception, strftime_now, cycler, joiner.
std::optional<Value> global_function(const std::string& name);

}  // namespace kexa::jinja
