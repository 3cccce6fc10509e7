// Argument binding, attribute and item access, iteration (see builtins.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include "chat/jinja/builtins.h"

namespace kexa::jinja {

namespace builtins {

// Binds positional and keyword arguments to parameter names, like a Python signature.
std::vector<Opt> bind(const std::string& fname, Args& a, std::initializer_list<const char*> names) {
  std::vector<const char*> n(names);
  std::vector<Opt> out(n.size());
  if (a.positional.size() > n.size())
    fail("TypeError: ", fname, "() takes at most ", n.size(), " argument(s) (", a.positional.size(), " given)");
  for (size_t i = 0; i < a.positional.size(); ++i) out[i] = a.positional[i];
  for (auto& [k, v] : a.keyword) {
    size_t j = 0;
    while (j < n.size() && k != n[j]) ++j;
    if (j == n.size()) fail("TypeError: ", fname, "() got an unexpected keyword argument '", k, "'");
    if (out[j]) fail("TypeError: ", fname, "() got multiple values for argument '", k, "'");
    out[j] = v;
  }
  return out;
}

int64_t int_arg(const Opt& v, int64_t dflt, const char* what) {
  if (!v || v->is_none()) return dflt;
  if (!v->is_integer_like()) fail("TypeError: ", what, " must be an integer, not ", v->type_name());
  return v->as_int();
}

bool bool_arg(const Opt& v, bool dflt) { return v ? v->truthy() : dflt; }

std::string str_arg(const Opt& v, const std::string& dflt) { return v ? to_str(*v) : dflt; }

const std::string& need_str(const Value& v, const char* what) {
  if (!v.is_string()) fail("TypeError: ", what, " must be str, not ", v.type_name());
  return v.s;
}

// The single required argument of a str method.
Value one_arg(const std::string& method, Args& a, const char* param) {
  auto p = bind(method, a, {param});
  if (!p[0]) fail("TypeError: ", method, "() takes exactly one argument");
  return std::move(*p[0]);
}

std::optional<Value> method_of(const Value& obj, const std::string& name) {
  if (obj.is_string()) return string_method(obj, name);
  if (obj.is_dict()) return dict_method(obj, name);
  if (obj.is_list()) return list_method(obj, name);
  return std::nullopt;
}

}  // namespace builtins

using namespace builtins;

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::List: return *v.list;
    case Value::Kind::Dict: {
      std::vector<Value> out;
      for (const auto& [k, x] : v.dict->items) out.push_back(k);
      return out;
    }
    case Value::Kind::String: {
      std::vector<Value> out;
      for (char32_t c : decode_utf8(v.s)) {
        std::string s;
        append_utf8(s, c);
        out.push_back(Value::string(std::move(s)));
      }
      return out;
    }
    case Value::Kind::Undefined: return {};
    default: fail("TypeError: '", v.type_name(), "' object is not iterable");
  }
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail("UndefinedError: ", obj.s.empty() ? "value is undefined" : obj.s);
  if (name.size() > 1 && name[0] == '_' && name[1] == '_')
    return Value::undefined(concat("access to attribute '", name, "' of '", obj.type_name(), "' object is unsafe."));
  if (obj.kind == Value::Kind::Namespace) {
    if (const Value* v = obj.ns->attrs.find(std::string_view(name))) return *v;
    return Value::undefined(concat("'", "Namespace object' has no attribute '", name, "'"));
  }
  if (auto m = method_of(obj, name)) return *m;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
  }
  return Value::undefined(concat(obj_desc(obj), " has no attribute '", name, "'"));
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail("UndefinedError: ", obj.s.empty() ? "value is undefined" : obj.s);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict->find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && key.is_integer_like()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.list->size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return (*obj.list)[static_cast<size_t>(i)];
      return Value::undefined(concat(obj_desc(obj), " has no element ", key.as_int()));
    }
    auto cps = decode_utf8(obj.s);
    int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i >= 0 && i < n) {
      std::string s;
      append_utf8(s, cps[static_cast<size_t>(i)]);
      return Value::string(std::move(s));
    }
    return Value::undefined(concat(obj_desc(obj), " has no element ", key.as_int()));
  }
  if (key.is_string()) {
    if (obj.kind == Value::Kind::Namespace) return getattr(obj, key.s);
    if (auto m = method_of(obj, key.s)) return *m;
    return Value::undefined(concat(obj_desc(obj), " has no attribute '", key.s, "'"));
  }
  return Value::undefined(concat(obj_desc(obj), " has no element ", repr(key)));
}

}  // namespace kexa::jinja
