// Global functions (see builtins.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>

#include "chat/jinja/builtins.h"

namespace kexa::jinja {

using namespace builtins;

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

}  // namespace kexa::jinja
