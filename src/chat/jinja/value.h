// The Python-like value model of the Jinja engine: templates written for Hugging Face are run by
// Python, so printing, comparing and serialising values must follow Python's rules exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/utf8.h"

namespace kexa::jinja {

struct Value;
struct Dict;
struct Namespace;
struct Callable;
class Interpreter;

using List = std::vector<Value>;

// Positional and keyword arguments of a call, already evaluated.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Value {
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Kind kind = Kind::Undefined;
  bool is_tuple = false;  // a List printed as (a, b) like a Python tuple
  bool markup = false;
  // A List that is a dict view (d.items() ...): prints as dict_items([...]), is no JSON value.
  enum class View : uint8_t { None, Keys, Values, Items } view = View::None;    // a String that is markupsafe.Markup (from |safe, |escape): + escapes the other side
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // String contents, or the name an Undefined stands for (for error messages)
  std::shared_ptr<const List> list;
  std::shared_ptr<const Dict> dict;
  std::shared_ptr<Namespace> ns;  // namespaces are the one mutable kind (set ns.x = ...)
  std::shared_ptr<const Callable> fn;

  Value() = default;
  static Value undefined(std::string hint = {}) {
    Value v;
    v.s = std::move(hint);
    return v;
  }
  static Value none() { return with_kind(Kind::None); }
  static Value boolean(bool x) {
    Value v = with_kind(Kind::Bool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = with_kind(Kind::Int);
    v.i = x;
    return v;
  }
  static Value number(double x) {
    Value v = with_kind(Kind::Float);
    v.f = x;
    return v;
  }
  static Value string(std::string x) {
    Value v = with_kind(Kind::String);
    v.s = std::move(x);
    return v;
  }
  static Value make_list(List items, bool tuple = false);
  static Value make_dict(Dict d);
  static Value make_namespace();
  static Value make_callable(std::string name, std::function<Value(Interpreter&, Args&)> fn);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_number() const { return kind == Kind::Bool || kind == Kind::Int || kind == Kind::Float; }
  bool is_integer_like() const { return kind == Kind::Bool || kind == Kind::Int; }
  int64_t as_int() const { return kind == Kind::Bool ? (b ? 1 : 0) : i; }
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(as_int()); }

  bool truthy() const;
  const char* type_name() const;  // Python's type name, for error messages

 private:
  static Value with_kind(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// A dict keeps insertion order like Python 3.7+; lookups are linear because chat-template dicts
// are small and keys compare with Python's == (1 == 1.0 == True).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

struct Namespace {
  Dict attrs;
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, Args&)> fn;
  bool is_macro = false;
};

// Python semantics.
bool equals(const Value& a, const Value& b);
// Python's <; throws kexa::Error (TypeError) on unorderable types.
bool less_than(const Value& a, const Value& b);
// Python str() and repr().
std::string to_str(const Value& v);
std::string repr(const Value& v);
std::string float_repr(double d);

struct JsonOptions {
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool has_indent = false;
  std::string indent;  // json.dumps indent rendered as the string repeated per level
  std::string item_sep = ", ";
  std::string key_sep = ": ";
};
// json.dumps; throws kexa::Error for values JSON cannot hold (Undefined, namespace, macro).
std::string to_json(const Value& v, const JsonOptions& opts);

// Input data (messages, tools, kwargs). ordered_json keeps the key order that Python's json.load
// would keep; plain json has already sorted its keys.
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

// UTF-8 helpers: Python indexes strings by code point.
std::vector<char32_t> decode_utf8(std::string_view s);
std::string encode_utf8(const std::vector<char32_t>& cps, size_t begin, size_t end);
bool is_py_space(char32_t cp);
size_t utf8_length(std::string_view s);

}  // namespace kexa::jinja
