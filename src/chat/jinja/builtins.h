// Internal to the builtins (src/chat/jinja/builtins*.cpp, filters*.cpp): Jinja2 3.1's filters,
// tests and globals and the Python methods of str/dict/list that templates call, with the
// semantics of Jinja2 under transformers' ImmutableSandboxedEnvironment. By concern:
//   builtins.cpp            argument binding; attribute and item access; iteration
//   builtins_str.cpp        Python str semantics (case mapping, strip, split, str methods, %
//                           formatting) and HTML escaping
//   builtins_dict_list.cpp  dict and list methods; sorting
//   builtins_globals.cpp    range, namespace, dict, raise_exception, strftime_now, cycler, joiner
//   builtins_tests.cpp      the `is` tests
//   filters_text.cpp        filters on strings and numbers
//   filters_list.cpp        filters on sequences and mappings, and apply_filter
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja/interpreter.h"

namespace kexa::jinja::builtins {

using Opt = std::optional<Value>;

// Arguments (builtins.cpp). bind() binds positional and keyword arguments to parameter names,
// like a Python signature.
std::vector<Opt> bind(const std::string& fname, Args& a, std::initializer_list<const char*> names);
int64_t int_arg(const Opt& v, int64_t dflt, const char* what);
bool bool_arg(const Opt& v, bool dflt);
std::string str_arg(const Opt& v, const std::string& dflt);
const std::string& need_str(const Value& v, const char* what);
Value one_arg(const std::string& method, Args& a, const char* param);

// Python str (builtins_str.cpp).
bool is_cased(char32_t c);
char32_t lower_cp(char32_t c);
char32_t upper_cp(char32_t c);
void append_upper(std::string& out, char32_t c);
char32_t title_cp(char32_t c);
std::string map_cps(std::string_view s, char32_t (*f)(char32_t));
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_strip(std::string_view s, const Opt& chars, bool left, bool right);
List py_split(const std::string& s, const Opt& sep_v, int64_t maxsplit, bool from_right);
bool is_line_break(char32_t c);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
std::string py_replace(const std::string& s, const std::string& old, const std::string& nw, int64_t count,
                       Interpreter& in);
int64_t cp_index(const std::string& s, size_t b);
std::string center(const std::string& s, int64_t width, const std::string& fill = " ");
Value bound(const Value& obj, const std::string& name, std::function<Value(const Value&, Interpreter&, Args&)> fn);
bool starts_or_ends(const std::string& s, const Value& arg, bool ends);
bool all_cps(const std::string& s, bool (*pred)(char32_t));
std::optional<Value> string_method(const Value& obj, const std::string& name);

// dict and list (builtins_dict_list.cpp). attr_lookup is Jinja's make_attrgetter: "a.b.0" walks
// getitem part by part; `dflt` replaces an undefined part.
Value unsafe(const Value& obj, const std::string& name);
List dict_items(const Value& d);
std::optional<Value> dict_method(const Value& obj, const std::string& name);
std::optional<Value> list_method(const Value& obj, const std::string& name);
std::string obj_desc(const Value& v);
Value sort_key(Interpreter& in, const Value& item, bool case_sensitive, const Opt& attribute);

Value attr_lookup(Interpreter& in, const Value& item, const Value& attribute, const Value* dflt = nullptr);
Value sort_key(Interpreter& in, const Value& item, bool case_sensitive, const Opt& attribute);
void py_sort(std::vector<std::pair<Value, Value>>& keyed, bool reverse);

// Numbers and text for the filters (filters_text.cpp).
std::string py_int_repr_for_format(const Value& v);
bool parse_py_int(std::string s, int64_t base, int64_t* out);
bool parse_py_float(const std::string& s, double* out);
std::string do_indent(const std::string& s0, const std::string& ind, bool first, bool blank);
double py_round(double v, int64_t ndigits);

}  // namespace kexa::jinja::builtins
