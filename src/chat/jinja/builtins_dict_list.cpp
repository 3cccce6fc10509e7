// dict and list methods; sorting (see builtins.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include "chat/jinja/builtins.h"

namespace kexa::jinja {

namespace builtins {

const char* const kListMutators[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
const char* const kDictMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};

Value unsafe(const Value& obj, const std::string& name) {
  return Value::make_callable(name, [msg = concat("SecurityError: access to attribute '", name, "' of '", obj.type_name(),
                                                  "' object is unsafe.")](Interpreter&, Args&) -> Value { fail(msg); });
}

List dict_items(const Value& d) {
  List out;
  for (const auto& [k, v] : d.dict->items) out.push_back(Value::make_list({k, v}, true));
  return out;
}

std::optional<Value> dict_method(const Value& obj, const std::string& name) {
  for (const char* mname : kDictMutators)
    if (name == mname) return unsafe(obj, name);
  if (name == "items")
    return bound(obj, name, [](const Value& o, Interpreter&, Args&) {
      Value v = Value::make_list(dict_items(o));
      v.view = Value::View::Items;
      return v;
    });
  if (name == "keys" || name == "values") {
    bool keys = name == "keys";
    return bound(obj, name, [keys](const Value& o, Interpreter&, Args&) {
      List out;
      for (const auto& [k, v] : o.dict->items) out.push_back(keys ? k : v);
      Value r = Value::make_list(std::move(out));
      r.view = keys ? Value::View::Keys : Value::View::Values;
      return r;
    });
  }
  if (name == "get")
    return bound(obj, name, [](const Value& o, Interpreter&, Args& a) {
      auto p = bind("get", a, {"key", "default"});
      if (!p[0]) fail("TypeError: get expected at least 1 argument, got 0");
      const Value* v = o.dict->find(*p[0]);
      return v ? *v : (p[1] ? *p[1] : Value::none());
    });
  if (name == "copy") return bound(obj, name, [](const Value& o, Interpreter&, Args&) { return Value::make_dict(*o.dict); });
  return std::nullopt;
}

std::optional<Value> list_method(const Value& obj, const std::string& name) {
  if (!obj.is_tuple)
    for (const char* mname : kListMutators)
      if (name == mname) return unsafe(obj, name);
  if (name == "index" || name == "count") {
    bool count = name == "count";
    return bound(obj, name, [count](const Value& o, Interpreter&, Args& a) {
      if (a.positional.empty()) fail("TypeError: expected at least 1 argument");
      int64_t n = 0;
      for (size_t i = 0; i < o.list->size(); ++i) {
        if (equals((*o.list)[i], a.positional[0])) {
          if (!count) return Value::integer(static_cast<int64_t>(i));
          ++n;
        }
      }
      if (!count) fail("ValueError: ", repr(a.positional[0]), " is not in list");
      return Value::integer(n);
    });
  }
  if (name == "copy" && !obj.is_tuple)
    return bound(obj, name, [](const Value& o, Interpreter&, Args&) { return Value::make_list(*o.list); });
  return std::nullopt;
}

std::string obj_desc(const Value& v) { return concat("'", v.type_name(), " object'"); }

// Jinja's make_attrgetter: "a.b.0" walks getitem part by part; `dflt` replaces an undefined part.
Value attr_lookup(Interpreter& in, const Value& item, const Value& attribute, const Value* dflt) {
  if (!attribute.is_string()) {
    Value r = in.getitem(item, attribute);
    return (dflt && r.is_undefined()) ? *dflt : r;
  }
  Value cur = item;
  size_t pos = 0;
  const std::string& a = attribute.s;
  while (true) {
    size_t dot = a.find('.', pos);
    std::string part = a.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = in.getitem(cur, digits && part.size() < 18 ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dflt && cur.is_undefined()) cur = *dflt;
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

Value sort_key(Interpreter& in, const Value& item, bool case_sensitive, const Opt& attribute) {
  Value v = (attribute && !attribute->is_none()) ? attr_lookup(in, item, *attribute) : item;
  if (!case_sensitive && v.is_string()) return Value::string(py_lower(v.s));
  return v;
}

void py_sort(std::vector<std::pair<Value, Value>>& keyed, bool reverse) {
  // Python's sort is stable; reverse=True keeps equal elements in original order too.
  if (reverse)
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& x, const auto& y) { return less_than(y.first, x.first); });
  else
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& x, const auto& y) { return less_than(x.first, y.first); });
}

}  // namespace builtins

using namespace builtins;

}  // namespace kexa::jinja
