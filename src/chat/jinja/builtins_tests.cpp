// The `is` tests (see builtins.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include <utf8proc.h>

#include "chat/jinja/builtins.h"

namespace kexa::jinja {

using namespace builtins;

bool Interpreter::apply_test(const std::string& name, const Value& v, Args& a) {
  using K = Value::Kind;
  auto arg = [&](const char* pname) -> Value {
    auto p = bind(name, a, {pname});
    if (!p[0]) fail("TypeError: test '", name, "' missing argument '", pname, "'");
    return *p[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == K::Bool;
  if (name == "true") return v.kind == K::Bool && v.b;
  if (name == "false") return v.kind == K::Bool && !v.b;
  if (name == "integer") return v.kind == K::Int;
  if (name == "float") return v.kind == K::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.kind == K::Callable || v.is_undefined();
  if (name == "escaped") return false;
  if (name == "odd" || name == "even") {
    if (v.is_undefined()) fail("UndefinedError: ", v.s);
    if (!v.is_number()) fail("TypeError: unsupported operand type(s) for %: '", v.type_name(), "' and 'int'");
    if (v.kind == K::Float) {
      double m = std::fmod(v.f, 2.0);
      if (m < 0) m += 2.0;
      return name == "odd" ? m == 1.0 : m == 0.0;
    }
    int64_t m = v.as_int() % 2;
    return name == "odd" ? m != 0 : m == 0;
  }
  if (name == "divisibleby") {
    Value n = arg("num");
    if (!v.is_number() || !n.is_number()) fail("TypeError: divisibleby needs numbers");
    if (n.as_double() == 0) fail("ZeroDivisionError: integer division or modulo by zero");
    if (v.kind == K::Float || n.kind == K::Float) return std::fmod(v.as_double(), n.as_double()) == 0;
    if (n.as_int() == -1) return true;
    return v.as_int() % n.as_int() == 0;
  }
  if (name == "lower" || name == "upper") {
    std::string s = to_str(v);
    bool up = name == "upper";
    bool any = false;
    for (char32_t c : decode_utf8(s)) {
      auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
        if (!up) return false;
        any = true;
      } else if (cat == UTF8PROC_CATEGORY_LL) {
        if (up) return false;
        any = true;
      }
    }
    return any;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg("other"));
  if (name == "ne" || name == "!=") return !equals(v, arg("other"));
  if (name == "lt" || name == "lessthan" || name == "<" || name == "gt" || name == "greaterthan" || name == ">" ||
      name == "le" || name == "<=" || name == "ge" || name == ">=") {
    Value o = arg("other");
    if (v.is_undefined()) fail("UndefinedError: ", v.s);
    if (o.is_undefined()) fail("UndefinedError: ", o.s);
    if (name == "lt" || name == "lessthan" || name == "<") return less_than(v, o);
    if (name == "gt" || name == "greaterthan" || name == ">") return less_than(o, v);
    if (name == "le" || name == "<=") return !less_than(o, v);
    return !less_than(v, o);
  }
  if (name == "in") {
    Value seq = arg("seq");
    if (seq.is_string()) {
      if (!v.is_string()) fail("TypeError: 'in <string>' requires string as left operand, not ", v.type_name());
      return seq.s.find(v.s) != std::string::npos;
    }
    if (seq.is_dict()) return seq.dict->find(v) != nullptr;
    for (const auto& x : iterate(seq))
      if (equals(x, v)) return true;
    return false;
  }
  if (name == "sameas") {
    Value o = arg("other");
    if (v.kind != o.kind) return false;
    switch (v.kind) {
      case K::None:
      case K::Undefined: return v.kind == K::None;
      case K::Bool: return v.b == o.b;
      case K::Int: return v.i == o.i && v.i >= -5 && v.i <= 256;  // CPython caches small ints
      case K::List: return v.list == o.list;
      case K::Dict: return v.dict == o.dict;
      case K::Namespace: return v.ns == o.ns;
      case K::Callable: return v.fn == o.fn;
      default: return false;
    }
  }
  if (name == "filter" || name == "test") {
    Value n = Value::string("");
    if (!v.is_string()) return false;
    static const char* filters[] = {"abs", "attr", "batch", "capitalize", "center", "count", "d", "default",
                                    "dictsort", "e", "escape", "first", "float", "format", "indent", "int",
                                    "items", "join", "last", "length", "list", "lower", "map", "max", "min",
                                    "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
                                    "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique",
                                    "upper", "wordcount", "forceescape", "slice"};
    static const char* tests[] = {"defined", "undefined", "none", "boolean", "true", "false", "integer", "float",
                                  "number", "string", "mapping", "iterable", "sequence", "callable", "escaped",
                                  "odd", "even", "divisibleby", "lower", "upper", "eq", "equalto", "==", "ne",
                                  "!=", "lt", "lessthan", "<", "gt", "greaterthan", ">", "le", "<=", "ge", ">=",
                                  "in", "sameas", "filter", "test"};
    if (name == "filter") return std::any_of(std::begin(filters), std::end(filters), [&](const char* f) { return v.s == f; });
    return std::any_of(std::begin(tests), std::end(tests), [&](const char* f) { return v.s == f; });
  }
  fail("No test named '", name, "'.");
}

}  // namespace kexa::jinja
