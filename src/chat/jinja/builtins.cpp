// Filters, tests, globals and the Python methods of str/dict/list that templates call, with the
// semantics of Jinja2 3.1 under transformers' ImmutableSandboxedEnvironment.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include <utf8proc.h>

#include "chat/jinja/interpreter.h"
#include "util/escape.h"

namespace kexa::jinja {

namespace {

using Opt = std::optional<Value>;

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

// ---- Unicode string helpers ----

bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
char32_t lower_cp(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
char32_t upper_cp(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }

// Python's str.upper() uses full case mappings; utf8proc has the simple ones. Cover the common
// one-to-many case (German sharp s).
void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "SS";
    return;
  }
  append_utf8(out, upper_cp(c));
}
char32_t title_cp(char32_t c) { return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))); }

std::string map_cps(std::string_view s, char32_t (*f)(char32_t)) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode_utf8(s)) append_utf8(out, f(c));
  return out;
}

std::string py_title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (char32_t c : decode_utf8(s)) {
    append_utf8(out, prev_cased ? lower_cp(c) : title_cp(c));
    prev_cased = is_cased(c);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  auto cps = decode_utf8(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) append_utf8(out, i == 0 ? title_cp(cps[i]) : lower_cp(cps[i]));
  return out;
}

std::string py_strip(std::string_view s, const Opt& chars, bool left, bool right) {
  auto cps = decode_utf8(s);
  std::vector<char32_t> set;
  bool use_set = chars && !chars->is_none();
  if (use_set) set = decode_utf8(need_str(*chars, "strip arg"));
  auto strip_it = [&](char32_t c) {
    return use_set ? std::find(set.begin(), set.end(), c) != set.end() : is_py_space(c);
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return encode_utf8(cps, b, e);
}

List py_split(const std::string& s, const Opt& sep_v, int64_t maxsplit, bool from_right) {
  List out;
  if (!sep_v || sep_v->is_none()) {
    auto cps = decode_utf8(s);
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && is_py_space(cps[i])) ++i;
      if (i >= cps.size()) break;
      size_t j = i;
      while (j < cps.size() && !is_py_space(cps[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    if (maxsplit < 0 || static_cast<size_t>(maxsplit) >= words.size()) {
      for (auto [b, e] : words) out.push_back(Value::string(encode_utf8(cps, b, e)));
      return out;
    }
    if (!from_right) {
      for (size_t k = 0; k < static_cast<size_t>(maxsplit); ++k)
        out.push_back(Value::string(encode_utf8(cps, words[k].first, words[k].second)));
      // The remainder runs to the end of the string, trailing whitespace included.
      out.push_back(Value::string(encode_utf8(cps, words[static_cast<size_t>(maxsplit)].first, cps.size())));
    } else {
      size_t nw = words.size();
      size_t keep = nw - static_cast<size_t>(maxsplit);
      out.push_back(Value::string(encode_utf8(cps, 0, words[keep - 1].second)));
      for (size_t k = keep; k < nw; ++k) out.push_back(Value::string(encode_utf8(cps, words[k].first, words[k].second)));
    }
    return out;
  }
  const std::string& sep = need_str(*sep_v, "separator");
  if (sep.empty()) fail("ValueError: empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t pos = 0;
    int64_t n = 0;
    while (maxsplit < 0 || n < maxsplit) {
      size_t f = s.find(sep, pos);
      if (f == std::string::npos) break;
      parts.push_back(s.substr(pos, f - pos));
      pos = f + sep.size();
      ++n;
    }
    parts.push_back(s.substr(pos));
  } else {
    size_t end = s.size();
    int64_t n = 0;
    std::vector<std::string> rev;
    while (maxsplit < 0 || n < maxsplit) {
      if (end < sep.size()) break;
      size_t f = s.rfind(sep, end - sep.size());
      if (f == std::string::npos) break;
      rev.push_back(s.substr(f + sep.size(), end - f - sep.size()));
      end = f;
      ++n;
    }
    rev.push_back(s.substr(0, end));
    parts.assign(rev.rbegin(), rev.rend());
  }
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  auto cps = decode_utf8(s);
  std::vector<std::string> out;
  size_t i = 0, start = 0;
  while (i < cps.size()) {
    if (is_line_break(cps[i])) {
      size_t eol = i;
      if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
      ++i;
      out.push_back(encode_utf8(cps, start, keepends ? i : eol));
      start = i;
    } else {
      ++i;
    }
  }
  if (start < cps.size()) out.push_back(encode_utf8(cps, start, cps.size()));
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& nw, int64_t count,
                       Interpreter& in) {
  std::string out;
  if (old.empty()) {
    // Python inserts `nw` between every character (and at both ends).
    auto cps = decode_utf8(s);
    int64_t n = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || n < count) {
        out += nw;
        ++n;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
      in.check_size(out.size());
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += nw;
    in.check_size(out.size());
    pos = f + old.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// Code-point index of the byte offset `b` in s.
int64_t cp_index(const std::string& s, size_t b) { return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, b))); }

}  // namespace

// MarkupSafe's escape.
constexpr CharEscape kHtmlEscapes[] = {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&#34;"}, {'\'', "&#39;"}};

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (const char* e = find_escape(kHtmlEscapes, static_cast<unsigned char>(c)))
      out += e;
    else
      out.push_back(c);
  }
  return out;
}

namespace {

std::string center(const std::string& s, int64_t width, const std::string& fill = " ") {
  int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return s;
  int64_t marg = width - len;
  int64_t left = marg / 2 + (marg & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return out;
}

Value bound(const Value& obj, const std::string& name, std::function<Value(const Value&, Interpreter&, Args&)> fn) {
  return Value::make_callable(std::string(obj.type_name()) + "." + name,
                              [obj, fn = std::move(fn)](Interpreter& in, Args& a) { return fn(obj, in, a); });
}

bool starts_or_ends(const std::string& s, const Value& arg, bool ends) {
  auto one = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return ends ? s.compare(s.size() - p.size(), p.size(), p) == 0 : s.compare(0, p.size(), p) == 0;
  };
  if (arg.is_list() && arg.is_tuple) {
    for (const auto& x : *arg.list)
      if (one(need_str(x, ends ? "endswith arg" : "startswith arg"))) return true;
    return false;
  }
  if (!arg.is_string())
    fail("TypeError: ", ends ? "endswith" : "startswith", " first arg must be str or a tuple of str, not ", arg.type_name());
  return one(arg.s);
}

bool all_cps(const std::string& s, bool (*pred)(char32_t)) {
  auto cps = decode_utf8(s);
  if (cps.empty()) return false;
  for (char32_t c : cps)
    if (!pred(c)) return false;
  return true;
}

std::optional<Value> string_method(const Value& obj, const std::string& name) {
  auto m = [&](auto fn) { return std::optional<Value>(bound(obj, name, fn)); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return m([l, r, name](const Value& o, Interpreter&, Args& a) {
      auto p = bind(name, a, {"chars"});
      return Value::string(py_strip(o.s, p[0], l, r));
    });
  }
  if (name == "split" || name == "rsplit") {
    bool rev = name == "rsplit";
    return m([rev, name](const Value& o, Interpreter&, Args& a) {
      auto p = bind(name, a, {"sep", "maxsplit"});
      return Value::make_list(py_split(o.s, p[0], int_arg(p[1], -1, "maxsplit"), rev));
    });
  }
  if (name == "splitlines")
    return m([](const Value& o, Interpreter&, Args& a) {
      auto p = bind("splitlines", a, {"keepends"});
      List out;
      for (auto& l : py_splitlines(o.s, bool_arg(p[0], false))) out.push_back(Value::string(l));
      return Value::make_list(std::move(out));
    });
  if (name == "startswith" || name == "endswith") {
    bool ends = name == "endswith";
    return m([ends, name](const Value& o, Interpreter&, Args& a) {
      auto p = bind(name, a, {"prefix"});
      if (!p[0]) fail("TypeError: ", name, "() takes at least 1 argument (0 given)");
      return Value::boolean(starts_or_ends(o.s, *p[0], ends));
    });
  }
  if (name == "replace")
    return m([](const Value& o, Interpreter& in, Args& a) {
      auto p = bind("replace", a, {"old", "new", "count"});
      if (!p[0] || !p[1]) fail("TypeError: replace() takes at least 2 arguments");
      return Value::string(py_replace(o.s, need_str(*p[0], "replace arg 1"), need_str(*p[1], "replace arg 2"),
                                      int_arg(p[2], -1, "count"), in));
    });
  if (name == "upper") return m([](const Value& o, Interpreter&, Args&) { return Value::string(py_upper(o.s)); });
  if (name == "lower") return m([](const Value& o, Interpreter&, Args&) { return Value::string(py_lower(o.s)); });
  if (name == "title") return m([](const Value& o, Interpreter&, Args&) { return Value::string(py_title(o.s)); });
  if (name == "capitalize")
    return m([](const Value& o, Interpreter&, Args&) { return Value::string(py_capitalize(o.s)); });
  if (name == "swapcase")
    return m([](const Value& o, Interpreter&, Args&) {
      return Value::string(map_cps(o.s, [](char32_t c) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        return cat == UTF8PROC_CATEGORY_LU ? lower_cp(c) : cat == UTF8PROC_CATEGORY_LL ? upper_cp(c) : c;
      }));
    });
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    return m([name](const Value& o, Interpreter&, Args& a) {
      auto p = bind(name, a, {"sub", "start", "end"});
      if (!p[0]) fail("TypeError: ", name, "() takes at least 1 argument (0 given)");
      const std::string& sub = need_str(*p[0], "argument");
      auto cps = decode_utf8(o.s);
      int64_t len = static_cast<int64_t>(cps.size());
      auto norm = [&](const Opt& v, int64_t d) {
        int64_t x = int_arg(v, d, "slice index");
        if (x < 0) x += len;
        return std::clamp<int64_t>(x, 0, len);
      };
      int64_t st = norm(p[1], 0), en = norm(p[2], len);
      if (st > en) return Value::integer(name == "count" ? 0 : -1);
      std::string hay = encode_utf8(cps, static_cast<size_t>(st), static_cast<size_t>(en));
      if (name == "count") {
        if (sub.empty()) return Value::integer(en - st + 1);
        int64_t n = 0;
        for (size_t pos = hay.find(sub); pos != std::string::npos; pos = hay.find(sub, pos + sub.size())) ++n;
        return Value::integer(n);
      }
      size_t f = (name == "find" || name == "index") ? hay.find(sub) : hay.rfind(sub);
      if (f == std::string::npos) {
        if (name == "index" || name == "rindex") fail("ValueError: substring not found");
        return Value::integer(-1);
      }
      return Value::integer(st + cp_index(hay, f));
    });
  }
  if (name == "join")
    return m([](const Value& o, Interpreter& in, Args& a) {
      const Value items = one_arg("join", a, "iterable");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(items)) {
        if (!first) out += o.s;
        first = false;
        out += need_str(x, "sequence item");
        in.check_size(out.size());
      }
      return Value::string(std::move(out));
    });
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal")
    return m([](const Value& o, Interpreter&, Args&) {
      return Value::boolean(all_cps(o.s, [](char32_t c) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        return cat == UTF8PROC_CATEGORY_ND;
      }));
    });
  if (name == "isalpha")
    return m([](const Value& o, Interpreter&, Args&) {
      return Value::boolean(all_cps(o.s, [](char32_t c) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
      }));
    });
  if (name == "isalnum")
    return m([](const Value& o, Interpreter&, Args&) {
      return Value::boolean(all_cps(o.s, [](char32_t c) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_ND ||
               cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
      }));
    });
  if (name == "isspace")
    return m([](const Value& o, Interpreter&, Args&) { return Value::boolean(all_cps(o.s, is_py_space)); });
  if (name == "isupper" || name == "islower") {
    bool up = name == "isupper";
    return m([up](const Value& o, Interpreter&, Args&) {
      bool any = false;
      for (char32_t c : decode_utf8(o.s)) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
          if (!up) return Value::boolean(false);
          any = true;
        } else if (cat == UTF8PROC_CATEGORY_LL) {
          if (up) return Value::boolean(false);
          any = true;
        }
      }
      return Value::boolean(any);
    });
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    return m([name](const Value& o, Interpreter& in, Args& a) {
      auto p = bind(name, a, {"width", "fillchar"});
      int64_t w = int_arg(p[0], 0, "width");
      in.check_size(static_cast<size_t>(std::max<int64_t>(0, w)));
      std::string fill = p[1] ? need_str(*p[1], "fillchar") : " ";
      if (utf8_length(fill) != 1) fail("TypeError: The fill character must be exactly one character long");
      int64_t len = static_cast<int64_t>(utf8_length(o.s));
      if (name == "center") return Value::string(center(o.s, w, fill));
      std::string pad;
      for (int64_t i = len; i < w; ++i) pad += fill;
      return Value::string(name == "ljust" ? o.s + pad : pad + o.s);
    });
  }
  if (name == "zfill")
    return m([](const Value& o, Interpreter& in, Args& a) {
      auto p = bind("zfill", a, {"width"});
      int64_t w = int_arg(p[0], 0, "width");
      in.check_size(static_cast<size_t>(std::max<int64_t>(0, w)));
      int64_t len = static_cast<int64_t>(utf8_length(o.s));
      if (w <= len) return Value::string(o.s);
      std::string zeros(static_cast<size_t>(w - len), '0');
      if (!o.s.empty() && (o.s[0] == '+' || o.s[0] == '-')) return Value::string(o.s.substr(0, 1) + zeros + o.s.substr(1));
      return Value::string(zeros + o.s);
    });
  if (name == "removeprefix" || name == "removesuffix") {
    bool suffix = name == "removesuffix";
    return m([suffix, name](const Value& o, Interpreter&, Args& a) {
      const Value arg = one_arg(name, a, "affix");
      const std::string& x = need_str(arg, "argument");
      if (!suffix && o.s.compare(0, x.size(), x) == 0) return Value::string(o.s.substr(x.size()));
      if (suffix && !x.empty() && o.s.size() >= x.size() && o.s.compare(o.s.size() - x.size(), x.size(), x) == 0)
        return Value::string(o.s.substr(0, o.s.size() - x.size()));
      return Value::string(o.s);
    });
  }
  if (name == "partition" || name == "rpartition") {
    bool rev = name == "rpartition";
    return m([rev, name](const Value& o, Interpreter&, Args& a) {
      const Value arg = one_arg(name, a, "sep");
      const std::string& sep = need_str(arg, "separator");
      if (sep.empty()) fail("ValueError: empty separator");
      size_t f = rev ? o.s.rfind(sep) : o.s.find(sep);
      if (f == std::string::npos)
        return rev ? Value::make_list({Value::string(""), Value::string(""), Value::string(o.s)}, true)
                   : Value::make_list({Value::string(o.s), Value::string(""), Value::string("")}, true);
      return Value::make_list({Value::string(o.s.substr(0, f)), Value::string(sep), Value::string(o.s.substr(f + sep.size()))},
                              true);
    });
  }
  if (name == "format")
    return m([](const Value& o, Interpreter&, Args& a) {
      // str.format with plain {} / {0} / {name} fields; format specs are not supported.
      std::string out;
      size_t auto_idx = 0;
      for (size_t i = 0; i < o.s.size(); ++i) {
        char c = o.s[i];
        if (c == '{' && i + 1 < o.s.size() && o.s[i + 1] == '{') {
          out.push_back('{');
          ++i;
        } else if (c == '}' && i + 1 < o.s.size() && o.s[i + 1] == '}') {
          out.push_back('}');
          ++i;
        } else if (c == '{') {
          size_t e = o.s.find('}', i);
          if (e == std::string::npos) fail("ValueError: Single '{' encountered in format string");
          std::string field = o.s.substr(i + 1, e - i - 1);
          if (field.find_first_of(":!.[") != std::string::npos) fail("format(): format specs are not supported");
          const Value* v = nullptr;
          if (field.empty() || std::all_of(field.begin(), field.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
            size_t idx = field.empty() ? auto_idx++ : static_cast<size_t>(std::stoul(field.substr(0, 9)));
            if (idx >= a.positional.size()) fail("IndexError: Replacement index ", idx, " out of range");
            v = &a.positional[idx];
          } else {
            for (auto& [k, kv] : a.keyword)
              if (k == field) v = &kv;
            if (!v) fail("KeyError: '", field, "'");
          }
          out += to_str(*v);
          i = e;
        } else if (c == '}') {
          fail("ValueError: Single '}' encountered in format string");
        } else {
          out.push_back(c);
        }
      }
      return Value::string(std::move(out));
    });
  return std::nullopt;
}

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

std::optional<Value> method_of(const Value& obj, const std::string& name) {
  if (obj.is_string()) return string_method(obj, name);
  if (obj.is_dict()) return dict_method(obj, name);
  if (obj.is_list()) return list_method(obj, name);
  return std::nullopt;
}

std::string obj_desc(const Value& v) { return concat("'", v.type_name(), " object'"); }

// ---- sorting helpers ----

Value sort_key(Interpreter& in, const Value& item, bool case_sensitive, const Opt& attribute);

// Jinja's make_attrgetter: "a.b.0" walks getitem part by part; `dflt` replaces an undefined part.
Value attr_lookup(Interpreter& in, const Value& item, const Value& attribute, const Value* dflt = nullptr) {
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

}  // namespace

namespace {

// ASCII text takes the byte-wise fast path; anything else the code-point mapping.
template <typename Unicode>
std::string map_case(std::string_view s, int (*ascii_map)(int), Unicode&& unicode) {
  const bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (!ascii) return unicode(s);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(ascii_map(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string py_lower(std::string_view s) {
  return map_case(s, std::tolower, [](std::string_view u) { return map_cps(u, lower_cp); });
}

std::string py_upper(std::string_view s) {
  return map_case(s, std::toupper, [](std::string_view u) {
    std::string out;
    for (char32_t c : decode_utf8(u)) append_upper(out, c);
    return out;
  });
}

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

std::string python_percent_format(Interpreter& in, const std::string& fmt, const Value& args) {
  std::vector<Value> vals;
  const Dict* mapping = nullptr;
  if (args.is_list() && args.is_tuple) {
    vals = *args.list;
  } else {
    if (args.is_dict()) mapping = args.dict.get();
    vals.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) fail("ValueError: incomplete format");
    const Value* v = nullptr;
    if (fmt[i] == '(') {
      size_t e = fmt.find(')', i);
      if (e == std::string::npos || !mapping) fail("TypeError: format requires a mapping");
      v = mapping->find(std::string_view(fmt).substr(i + 1, e - i - 1));
      if (!v) fail("KeyError: '", fmt.substr(i + 1, e - i - 1), "'");
      i = e + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::strchr("-+ 0#", fmt[i]) && fmt[i]) flags.push_back(fmt[i++]);
    int width = 0, prec = -1;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])) && width < 100000) width = width * 10 + (fmt[i++] - '0');
    if (i < fmt.size() && fmt[i] == '.') {
      prec = 0;
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])) && prec < 1000) prec = prec * 10 + (fmt[i++] - '0');
    }
    if (i >= fmt.size()) fail("ValueError: incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!v) {
      if (next >= vals.size()) fail("TypeError: not enough arguments for format string");
      v = &vals[next++];
    }
    std::string piece;
    switch (conv) {
      case 's': piece = to_str(*v); break;
      case 'r': piece = repr(*v); break;
      case 'd':
      case 'i': piece = py_int_repr_for_format(*v); break;
      case 'f':
      case 'F':
      case 'e':
      case 'g': {
        if (!v->is_number()) fail("TypeError: must be real number, not ", v->type_name());
        char buf[1200];
        char spec[8] = {'%', '.', '*', conv, 0};
        std::snprintf(buf, sizeof buf, spec, prec < 0 ? 6 : prec, v->as_double());
        piece = buf;
        break;
      }
      case 'x':
      case 'X': {
        if (!v->is_integer_like()) fail("TypeError: %x format: an integer is required");
        char buf[32];
        int64_t x = v->as_int();
        std::snprintf(buf, sizeof buf, conv == 'x' ? "%llx" : "%llX", static_cast<unsigned long long>(x < 0 ? -x : x));
        piece = std::string(x < 0 ? "-" : "") + buf;
        break;
      }
      default: fail("ValueError: unsupported format character '", std::string(1, conv), "'");
    }
    if (prec >= 0 && (conv == 's' || conv == 'r')) piece = encode_utf8(decode_utf8(piece), 0, static_cast<size_t>(prec));
    int len = static_cast<int>(utf8_length(piece));
    if (width > len) {
      bool left = flags.find('-') != std::string::npos;
      bool zero = flags.find('0') != std::string::npos && conv != 's' && conv != 'r' && !left;
      std::string pad(static_cast<size_t>(width - len), zero ? '0' : ' ');
      if (zero && !piece.empty() && piece[0] == '-')
        piece = "-" + pad + piece.substr(1);
      else
        piece = left ? piece + pad : pad + piece;
    }
    out += piece;
    in.check_size(out.size());
  }
  if (next < vals.size() && !mapping) fail("TypeError: not all arguments converted during string formatting");
  return out;
}

// ---- globals ----

std::optional<Value> global_function(const std::string& name) {
  if (name == "range")
    return Value::make_callable("range", [](Interpreter&, Args& a) {
      if (!a.keyword.empty()) fail("TypeError: range() takes no keyword arguments");
      std::vector<int64_t> n;
      for (const auto& v : a.positional) {
        if (!v.is_integer_like()) fail("TypeError: '", v.type_name(), "' object cannot be interpreted as an integer");
        n.push_back(v.as_int());
      }
      int64_t start = 0, stop = 0, step = 1;
      if (n.size() == 1) {
        stop = n[0];
      } else if (n.size() == 2 || n.size() == 3) {
        start = n[0];
        stop = n[1];
        if (n.size() == 3) step = n[2];
      } else {
        fail("TypeError: range expected 1 to 3 arguments, got ", n.size());
      }
      if (step == 0) fail("ValueError: range() arg 3 must not be zero");
      __int128 len = 0;
      if (step > 0 && stop > start) len = ((__int128)stop - start + step - 1) / step;
      if (step < 0 && stop < start) len = ((__int128)start - stop - step - 1) / -step;
      if (len > 100000) fail("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      List out;
      for (__int128 i = 0; i < len; ++i) out.push_back(Value::integer(static_cast<int64_t>(start + i * step)));
      return Value::make_list(std::move(out));
    });
  if (name == "namespace")
    return Value::make_callable("namespace", [](Interpreter& in, Args& a) {
      Value ns = in.make_namespace();
      for (const auto& p : a.positional) {
        if (p.is_dict()) {
          for (const auto& [k, v] : p.dict->items) ns.ns->attrs.set(k, v);
        } else {
          for (const auto& item : iterate(p)) {
            auto kv = iterate(item);
            if (kv.size() != 2) fail("ValueError: dictionary update sequence element has wrong length");
            ns.ns->attrs.set(kv[0], kv[1]);
          }
        }
      }
      for (auto& [k, v] : a.keyword) ns.ns->attrs.set(Value::string(k), v);
      return ns;
    });
  if (name == "dict")
    return Value::make_callable("dict", [](Interpreter&, Args& a) {
      Dict d;
      for (const auto& p : a.positional) {
        if (p.is_dict()) {
          for (const auto& [k, v] : p.dict->items) d.set(k, v);
        } else {
          for (const auto& item : iterate(p)) {
            auto kv = iterate(item);
            if (kv.size() != 2) fail("ValueError: dictionary update sequence element has wrong length");
            d.set(kv[0], kv[1]);
          }
        }
      }
      for (auto& [k, v] : a.keyword) d.set(Value::string(k), v);
      return Value::make_dict(std::move(d));
    });
  if (name == "raise_exception")
    return Value::make_callable("raise_exception", [](Interpreter&, Args& a) -> Value {
      auto p = bind("raise_exception", a, {"message"});
      fail("raise_exception: ", p[0] ? to_str(*p[0]) : std::string());
    });
  if (name == "strftime_now")
    return Value::make_callable("strftime_now", [](Interpreter& in, Args& a) -> Value {
      auto p = bind("strftime_now", a, {"format"});
      if (!p[0]) fail("TypeError: strftime_now() missing 1 required positional argument: 'format'");
      const std::string& f = need_str(*p[0], "format");
      std::time_t t = in.now();
      std::tm tm{};
      localtime_r(&t, &tm);
      std::string buf(f.size() * 8 + 256, '\0');
      size_t n = f.empty() ? 0 : std::strftime(buf.data(), buf.size(), f.c_str(), &tm);
      buf.resize(n);
      return Value::string(buf);
    });
  if (name == "joiner")
    return Value::make_callable("joiner", [](Interpreter&, Args& a) {
      auto p = bind("joiner", a, {"sep"});
      std::string sep = str_arg(p[0], ", ");
      auto used = std::make_shared<bool>(false);
      return Value::make_callable("joiner", [sep, used](Interpreter&, Args&) {
        if (!*used) {
          *used = true;
          return Value::string("");
        }
        return Value::string(sep);
      });
    });
  return std::nullopt;
}

// ---- tests ----

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

// ---- filters ----

Value Interpreter::apply_filter(const std::string& name, const Value& v, Args& a) {
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
  if (name == "attr") {
    auto p = bind(name, a, {"name"});
    if (!p[0]) fail("TypeError: attr needs a name");
    return getattr(v, to_str(*p[0]));
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
  fail("No filter named '", name, "' found.");
}

}  // namespace kexa::jinja
