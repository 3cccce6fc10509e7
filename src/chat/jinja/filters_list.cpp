// Filters on sequences and mappings, and the filter dispatch (see builtins.h).
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

Value Interpreter::apply_filter(const std::string& name, const Value& v, Args& a) {
  if (std::optional<Value> r = text_filter(name, v, a)) return *std::move(r);
  if (std::optional<Value> r = list_filter(name, v, a)) return *std::move(r);
  fail("No filter named '", name, "' found.");
}

std::optional<Value> Interpreter::list_filter(const std::string& name, const Value& v, Args& a) {
  using K = Value::Kind;
  if (name == "length" || name == "count") {
    bind(name, a, {});
    switch (v.kind) {
      case K::String: return Value::integer(static_cast<int64_t>(utf8_length(v.s)));
      case K::List: return Value::integer(static_cast<int64_t>(v.list->size()));
      case K::Dict: return Value::integer(static_cast<int64_t>(v.dict->items.size()));
      case K::Undefined: return Value::integer(0);
      default: fail("TypeError: object of type '", v.type_name(), "' has no len()");
    }
  }
  if (name == "list") {
    bind(name, a, {});
    return Value::make_list(iterate(v));
  }
  if (name == "join") {
    auto p = bind(name, a, {"d", "attribute"});
    std::string sep = str_arg(p[0], "");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(p[1] && !p[1]->is_none() ? attr_lookup(*this, x, *p[1]) : x);
      check_size(out.size());
    }
    return Value::string(std::move(out));
  }
  if (name == "first" || name == "last") {
    bind(name, a, {});
    auto items = iterate(v);
    if (items.empty()) return Value::undefined(concat("No ", name, " item, sequence was empty."));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "items") {
    bind(name, a, {});
    if (v.is_undefined()) return Value::make_list({});
    if (!v.is_dict()) fail("TypeError: Can only get item pairs from a mapping.");
    return Value::make_list(dict_items(v));
  }
  if (name == "reverse") {
    bind(name, a, {});
    if (v.is_string()) {
      auto cps = decode_utf8(v.s);
      std::reverse(cps.begin(), cps.end());
      return Value::string(encode_utf8(cps, 0, cps.size()));
    }
    auto items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "map") {
    std::vector<Value> items = v.truthy() ? iterate(v) : std::vector<Value>{};  // Jinja: `if value:`
    List out;
    bool has_attr = false;
    Value attribute, dflt = Value::undefined();
    for (auto& [k, x] : a.keyword) {
      if (k == "attribute") {
        has_attr = true;
        attribute = x;
      } else if (k == "default") {
        dflt = x;
      }
    }
    if (has_attr) {
      for (const auto& it : items) out.push_back(attr_lookup(*this, it, attribute, dflt.is_none() || dflt.is_undefined() ? nullptr : &dflt));
      return Value::make_list(std::move(out));
    }
    if (a.positional.empty()) fail("TypeError: map requires a filter argument");
    std::string fname = to_str(a.positional[0]);
    Args rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const auto& it : items) {
      Args copy = rest;
      out.push_back(apply_filter(fname, it, copy));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool want = name == "select" || name == "selectattr";
    bool by_attr = name == "selectattr" || name == "rejectattr";
    std::vector<Value> pos = a.positional;
    Value attr;
    if (by_attr) {
      if (pos.empty()) fail("TypeError: ", name, " requires an attribute name");
      attr = pos[0];
      pos.erase(pos.begin());
    }
    std::string test;
    if (!pos.empty()) {
      test = to_str(pos[0]);
      pos.erase(pos.begin());
    }
    List out;
    for (const auto& it : v.truthy() ? iterate(v) : std::vector<Value>{}) {
      Value x = by_attr ? attr_lookup(*this, it, attr) : it;
      bool r;
      if (test.empty()) {
        r = x.truthy();
      } else {
        Args targs;
        targs.positional = pos;
        targs.keyword = a.keyword;
        r = apply_test(test, x, targs);
      }
      if (r == want) out.push_back(it);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "unique") {
    auto p = bind(name, a, {"case_sensitive", "attribute"});
    bool cs = bool_arg(p[0], false);
    List out, seen;
    for (const auto& it : iterate(v)) {
      Value key = sort_key(*this, it, cs, p[1]);
      bool dup = false;
      for (const auto& s : seen)
        if (equals(s, key)) {
          dup = true;
          break;
        }
      if (!dup) {
        seen.push_back(key);
        out.push_back(it);
      }
    }
    return Value::make_list(std::move(out));
  }
  if (name == "sort") {
    auto p = bind(name, a, {"reverse", "case_sensitive", "attribute"});
    std::vector<std::pair<Value, Value>> keyed;
    for (const auto& it : iterate(v)) keyed.emplace_back(sort_key(*this, it, bool_arg(p[1], false), p[2]), it);
    py_sort(keyed, bool_arg(p[0], false));
    List out;
    for (auto& [k, x] : keyed) out.push_back(std::move(x));
    return Value::make_list(std::move(out));
  }
  if (name == "dictsort") {
    auto p = bind(name, a, {"case_sensitive", "by", "reverse"});
    if (!v.is_dict()) fail("TypeError: dictsort needs a mapping");
    std::string by = str_arg(p[1], "key");
    if (by != "key" && by != "value") fail("FilterArgumentError: You can only sort by either \"key\" or \"value\"");
    std::vector<std::pair<Value, Value>> keyed;
    for (const auto& [k, x] : v.dict->items)
      keyed.emplace_back(sort_key(*this, by == "key" ? k : x, bool_arg(p[0], false), std::nullopt),
                         Value::make_list({k, x}, true));
    py_sort(keyed, bool_arg(p[2], false));
    List out;
    for (auto& [k, x] : keyed) out.push_back(std::move(x));
    return Value::make_list(std::move(out));
  }
  if (name == "min" || name == "max") {
    auto p = bind(name, a, {"case_sensitive", "attribute"});
    auto items = iterate(v);
    if (items.empty()) return Value::undefined(concat("No aggregated item, sequence was empty."));
    size_t best = 0;
    Value bk = sort_key(*this, items[0], bool_arg(p[0], false), p[1]);
    for (size_t i = 1; i < items.size(); ++i) {
      Value k = sort_key(*this, items[i], bool_arg(p[0], false), p[1]);
      if (name == "min" ? less_than(k, bk) : less_than(bk, k)) {
        best = i;
        bk = k;
      }
    }
    return items[best];
  }
  if (name == "sum") {
    auto p = bind(name, a, {"attribute", "start"});
    Value acc = p[1] ? *p[1] : Value::integer(0);
    for (const auto& it : iterate(v)) {
      Value x = p[0] && !p[0]->is_none() ? attr_lookup(*this, it, *p[0]) : it;
      if (!acc.is_number() || !x.is_number())
        fail("TypeError: unsupported operand type(s) for +: '", acc.type_name(), "' and '", x.type_name(), "'");
      if (acc.kind == K::Float || x.kind == K::Float) {
        acc = Value::number(acc.as_double() + x.as_double());
      } else {
        int64_t r;
        if (__builtin_add_overflow(acc.as_int(), x.as_int(), &r)) fail("OverflowError: integer overflow");
        acc = Value::integer(r);
      }
    }
    return acc;
  }
  if (name == "batch" || name == "slice") {
    auto p = bind(name, a, {name == "batch" ? "linecount" : "slices", "fill_with"});
    int64_t n = int_arg(p[0], 0, "count");
    if (n <= 0) fail("ValueError: ", name, " count must be positive");
    auto items = iterate(v);
    List out;
    if (name == "batch") {
      for (size_t i = 0; i < items.size(); i += static_cast<size_t>(n)) {
        List row(items.begin() + static_cast<std::ptrdiff_t>(i),
                 items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + static_cast<size_t>(n))));
        if (p[1] && row.size() < static_cast<size_t>(n))
          while (row.size() < static_cast<size_t>(n)) row.push_back(*p[1]);
        out.push_back(Value::make_list(std::move(row)));
      }
    } else {
      size_t len = items.size(), slices = static_cast<size_t>(std::min<int64_t>(n, 100000));
      size_t per = len / slices, extra = len % slices, offset = 0;
      for (size_t s = 0; s < slices; ++s) {
        size_t start = offset + s * per;
        if (s < extra) ++offset;
        size_t end = offset + (s + 1) * per;
        List row(items.begin() + static_cast<std::ptrdiff_t>(start), items.begin() + static_cast<std::ptrdiff_t>(end));
        if (p[1] && s >= extra) row.push_back(*p[1]);
        out.push_back(Value::make_list(std::move(row)));
      }
    }
    return Value::make_list(std::move(out));
  }
  return std::nullopt;
}

}  // namespace kexa::jinja
