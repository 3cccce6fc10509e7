// Filters on strings and numbers (see builtins.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include <utf8proc.h>

#include "chat/jinja/builtins.h"

namespace kexa::jinja {

namespace builtins {

std::string py_int_repr_for_format(const Value& v) {
  if (v.kind == Value::Kind::Float) {
    if (!std::isfinite(v.f)) fail("OverflowError: cannot convert float infinity or nan to integer");
    return std::to_string(static_cast<int64_t>(std::trunc(v.f)));
  }
  if (!v.is_integer_like()) fail("TypeError: %d format: a real number is required, not ", v.type_name());
  return std::to_string(v.as_int());
}

bool parse_py_int(std::string s, int64_t base, int64_t* out) {
  // Python int(str): surrounding whitespace, sign, underscores between digits.
  auto t = py_strip(s, std::nullopt, true, true);
  if (t.empty()) return false;
  bool neg = false;
  size_t i = 0;
  if (t[0] == '+' || t[0] == '-') {
    neg = t[0] == '-';
    i = 1;
  }
  if (t.size() > i + 1 && t[i] == '0') {
    char k = static_cast<char>(std::tolower(static_cast<unsigned char>(t[i + 1])));
    if ((base == 16 && k == 'x') || (base == 8 && k == 'o') || (base == 2 && k == 'b')) i += 2;
  }
  if (i >= t.size()) return false;
  unsigned __int128 v = 0;
  bool prev_digit = false;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '_') {
      if (!prev_digit || i + 1 >= t.size()) return false;
      prev_digit = false;
      continue;
    }
    int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
            : std::isalpha(static_cast<unsigned char>(c)) ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10 : 99;
    if (d >= base) return false;
    v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
    if (v > static_cast<unsigned __int128>(INT64_MAX)) fail("OverflowError: integer too large");
    prev_digit = true;
  }
  *out = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  return true;
}

bool parse_py_float(const std::string& s, double* out) {
  std::string t = py_strip(s, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_') {
      if (i == 0 || i + 1 >= t.size() || !std::isdigit(static_cast<unsigned char>(t[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(t[i + 1])))
        return false;
      continue;
    }
    clean.push_back(t[i]);
  }
  if (clean.empty()) return false;
  std::string low = py_lower(clean);
  std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? NAN : INFINITY;
    *out = low[0] == '-' ? -v : v;
    return true;
  }
  for (char c : body)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return false;
  char* end = nullptr;
  *out = std::strtod(clean.c_str(), &end);
  return end && *end == '\0';
}

std::string do_indent(const std::string& s0, const std::string& ind, bool first, bool blank) {
  std::string s = s0 + "\n";
  auto lines = py_splitlines(s, false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + ind;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += ind;
      rv += lines[i];
    }
  }
  if (first) rv = ind + rv;
  return rv;
}

double py_round(double v, int64_t ndigits) {
  if (!std::isfinite(v)) return v;
  if (ndigits > 300) return v;
  if (ndigits < -308) return 0.0 * v;
  if (ndigits >= 0) {
    // glibc printf rounds the exact binary value half-to-even, as Python's round() does.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits), v);
    return std::strtod(buf, nullptr);
  }
  double p = std::pow(10.0, static_cast<double>(-ndigits));
  double y = v / p;
  double r = std::nearbyint(y);
  return r * p;
}

}  // namespace builtins

using namespace builtins;

std::optional<Value> Interpreter::text_filter(const std::string& name, const Value& v, Args& a) {
  using K = Value::Kind;
  auto as_string = [&]() { return to_str(v); };
  if (name == "safe" || name == "forceescape" || name == "e" || name == "escape") {
    bind(name, a, {});
    Value r = v;
    if (name == "safe") {
      if (!v.is_string()) r = Value::string(to_str(v));
    } else if (name == "forceescape" || !(v.is_string() && v.markup)) {
      r = Value::string(html_escape(to_str(v)));
    }
    r.markup = true;
    return r;
  }
  if (name == "tojson") {
    auto p = bind(name, a, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions o;
    o.ensure_ascii = bool_arg(p[0], false);
    o.sort_keys = bool_arg(p[3], false);
    if (p[1] && !p[1]->is_none()) {
      o.has_indent = true;
      if (p[1]->is_string()) {
        o.indent = p[1]->s;
      } else if (p[1]->is_integer_like()) {
        int64_t n = p[1]->as_int();
        check_size(static_cast<size_t>(std::max<int64_t>(0, n)));
        o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
      } else {
        fail("TypeError: indent must be an int or str");
      }
      o.item_sep = ",";
    }
    if (p[2] && !p[2]->is_none()) {
      auto seps = iterate(*p[2]);
      if (seps.size() != 2) fail("ValueError: separators must be a pair (item_separator, key_separator)");
      o.item_sep = need_str(seps[0], "item separator");
      o.key_sep = need_str(seps[1], "key separator");
    }
    std::string s = to_json(v, o);
    check_size(s.size());
    return Value::string(std::move(s));
  }
  if (name == "trim") {
    auto p = bind(name, a, {"chars"});
    return Value::string(py_strip(as_string(), p[0], true, true));
  }
  if (name == "string") {
    bind(name, a, {});
    return Value::string(as_string());
  }
  if (name == "lower") {
    bind(name, a, {});
    return Value::string(py_lower(as_string()));
  }
  if (name == "upper") {
    bind(name, a, {});
    return Value::string(py_upper(as_string()));
  }
  if (name == "capitalize") {
    bind(name, a, {});
    return Value::string(py_capitalize(as_string()));
  }
  if (name == "title") {
    bind(name, a, {});
    // Jinja's title: split on runs of "-", whitespace and opening brackets; upper first, lower rest.
    auto cps = decode_utf8(as_string());
    std::string out;
    bool word_start = true;
    for (char32_t c : cps) {
      bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
      if (sep) {
        append_utf8(out, c);
        word_start = true;
      } else {
        append_utf8(out, word_start ? upper_cp(c) : lower_cp(c));
        word_start = false;
      }
    }
    return Value::string(std::move(out));
  }
  if (name == "replace") {
    auto p = bind(name, a, {"old", "new", "count"});
    if (!p[0] || !p[1]) fail("TypeError: replace needs old and new");
    return Value::string(py_replace(as_string(), to_str(*p[0]), to_str(*p[1]), int_arg(p[2], -1, "count"), *this));
  }
  if (name == "indent") {
    auto p = bind(name, a, {"width", "first", "blank"});
    std::string ind;
    if (p[0] && p[0]->is_string()) {
      ind = p[0]->s;
    } else {
      int64_t w = int_arg(p[0], 4, "width");
      check_size(static_cast<size_t>(std::max<int64_t>(0, w)));
      ind = std::string(static_cast<size_t>(std::max<int64_t>(0, w)), ' ');
    }
    std::string r = do_indent(as_string(), ind, bool_arg(p[1], false), bool_arg(p[2], false));
    check_size(r.size());
    return Value::string(std::move(r));
  }
  if (name == "center") {
    auto p = bind(name, a, {"width"});
    int64_t w = int_arg(p[0], 80, "width");
    check_size(static_cast<size_t>(std::max<int64_t>(0, w)));
    return Value::string(center(as_string(), w));
  }
  if (name == "d" || name == "default") {
    auto p = bind(name, a, {"default_value", "boolean"});
    bool boolean = bool_arg(p[1], false);
    if (v.is_undefined() || (boolean && !v.truthy())) return p[0] ? *p[0] : Value::string("");
    return v;
  }
  if (name == "int") {
    auto p = bind(name, a, {"default", "base"});
    Value dflt = p[0] ? *p[0] : Value::integer(0);
    int64_t base = int_arg(p[1], 10, "base");
    if (v.is_string()) {
      int64_t x;
      if (base >= 2 && base <= 36 && parse_py_int(v.s, base, &x)) return Value::integer(x);
      double d;
      if (parse_py_float(v.s, &d) && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(static_cast<int64_t>(d));
      return dflt;
    }
    if (v.is_integer_like()) return Value::integer(v.as_int());
    if (v.kind == K::Float) {
      if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return dflt;
      return Value::integer(static_cast<int64_t>(v.f));
    }
    if (v.is_undefined()) fail("UndefinedError: ", v.s);
    return dflt;
  }
  if (name == "float") {
    auto p = bind(name, a, {"default"});
    Value dflt = p[0] ? *p[0] : Value::number(0.0);
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_string()) {
      double d;
      if (parse_py_float(v.s, &d)) return Value::number(d);
      return dflt;
    }
    if (v.is_undefined()) fail("UndefinedError: ", v.s);
    return dflt;
  }
  if (name == "abs") {
    bind(name, a, {});
    if (v.kind == K::Float) return Value::number(std::fabs(v.f));
    if (v.is_integer_like()) {
      if (v.as_int() == INT64_MIN) fail("OverflowError: integer overflow");
      return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    fail("TypeError: bad operand type for abs(): '", v.type_name(), "'");
  }
  if (name == "round") {
    auto p = bind(name, a, {"precision", "method"});
    int64_t prec = int_arg(p[0], 0, "precision");
    std::string method = str_arg(p[1], "common");
    if (!v.is_number()) fail("TypeError: round needs a number, not ", v.type_name());
    double x = v.as_double();
    if (method == "common") {
      if (v.is_integer_like() && prec >= 0) return Value::integer(v.as_int());  // round(int) stays int
      if (v.is_integer_like()) return Value::integer(static_cast<int64_t>(py_round(x, prec)));
      return Value::number(py_round(x, prec));
    }
    if (method != "floor" && method != "ceil") fail("TypeError: method must be common, ceil or floor");
    double m = std::pow(10.0, static_cast<double>(prec));
    double r = method == "floor" ? std::floor(x * m) : std::ceil(x * m);
    return Value::number(r / m);
  }
  if (name == "attr") {
    auto p = bind(name, a, {"name"});
    if (!p[0]) fail("TypeError: attr needs a name");
    return getattr(v, to_str(*p[0]));
  }
  if (name == "wordcount") {
    bind(name, a, {});
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : decode_utf8(as_string())) {
      auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
      bool w = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
               (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) || cat == UTF8PROC_CATEGORY_MN ||
               cat == UTF8PROC_CATEGORY_MC;
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  if (name == "format") {
    Value args = a.positional.empty() && !a.keyword.empty() ? Value() : Value::make_list(a.positional, true);
    if (!a.keyword.empty()) {
      Dict d;
      for (auto& [k, x] : a.keyword) d.set(Value::string(k), x);
      args = Value::make_dict(std::move(d));
    }
    return Value::string(python_percent_format(*this, as_string(), args));
  }
  return std::nullopt;
}

}  // namespace kexa::jinja
