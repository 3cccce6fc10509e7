// Python str semantics: case mapping, strip, split, the str methods, % formatting; HTML
// escaping (see builtins.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include <utf8proc.h>

#include "chat/jinja/builtins.h"
#include "util/escape.h"

namespace kexa::jinja {

namespace builtins {

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

std::string center(const std::string& s, int64_t width, const std::string& fill) {
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

}  // namespace builtins

using namespace builtins;

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

}  // namespace kexa::jinja
