#include "chat/jinja/interpreter.h"

#include <cmath>
#include <ctime>

namespace kexa::jinja {

namespace {

[[noreturn]] void error_at(Pos p, const std::string& msg) {
  throw PositionedError(concat("template error at line ", p.line, ", column ", p.col, ": ", msg));
}

// Runs `fn`, attaching the position of `p` to an unpositioned kexa::Error.
template <typename F>
auto at(Pos p, const char* what, const std::string& name, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const PositionedError&) {
    throw;
  } catch (const Error& e) {
    if (name.empty()) error_at(p, e.what());
    error_at(p, std::string(what) + " '" + name + "': " + e.what());
  }
}

[[noreturn]] void undefined_error(const Value& v) {
  fail("UndefinedError: ", v.s.empty() ? std::string("value is undefined") : v.s);
}

bool checked_add(int64_t a, int64_t b, int64_t* r) { return !__builtin_add_overflow(a, b, r); }
bool checked_sub(int64_t a, int64_t b, int64_t* r) { return !__builtin_sub_overflow(a, b, r); }
bool checked_mul(int64_t a, int64_t b, int64_t* r) { return !__builtin_mul_overflow(a, b, r); }

int64_t floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) fail("OverflowError: integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t py_mod(int64_t a, int64_t b) {
  if (b == -1) return 0;
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}
double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  if (m == 0) m = std::copysign(0.0, b);
  return m;
}

}  // namespace

Interpreter::~Interpreter() {
  // Namespaces are the only mutable values, so only they can close a reference cycle.
  for (auto& w : namespaces_)
    if (auto ns = w.lock()) ns->attrs.items.clear();
  if (root_) root_->vars.clear();
}

Value Interpreter::make_namespace() {
  Value v = Value::make_namespace();
  namespaces_.push_back(v.ns);
  return v;
}

std::string Interpreter::run(const Program& prog, const Value& context) {
  root_ = std::make_shared<Scope>();
  if (context.is_dict())
    for (const auto& [k, v] : context.dict->items)
      if (k.is_string()) root_->set(k.s, v);
  std::string out;
  exec(prog.body, root_, out);
  return out;
}

Interpreter::Flow Interpreter::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Value Interpreter::apply_filters(const std::vector<ExprPtr>& chain, Value v, const ScopePtr& scope) {
  for (const auto& f : chain) {
    Args args = eval_args(f->args, scope);
    v = at(f->pos, "filter", f->name, [&] { return apply_filter(f->name, v, args); });
  }
  return v;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  step();
  switch (s.type) {
    case Stmt::Type::Text: append(out, s.text); return Flow::Normal;
    case Stmt::Type::Print: {
      Value v = eval(*s.expr, scope);
      append(out, to_str(v));
      return Flow::Normal;
    }
    case Stmt::Type::If:
      for (const auto& [cond, body] : s.branches) {
        if (!cond || eval(*cond, scope).truthy()) return exec(body, scope, out);
      }
      return Flow::Normal;
    case Stmt::Type::For: exec_for(s, scope, out); return Flow::Normal;
    case Stmt::Type::Set: assign(s.target, eval(*s.expr, scope), scope, s.pos); return Flow::Normal;
    case Stmt::Type::SetBlock: {
      std::string buf;
      Flow f = exec(s.body, scope, buf);
      Value v = apply_filters(s.filters, Value::string(std::move(buf)), scope);
      assign(s.target, v, scope, s.pos);
      return f;
    }
    case Stmt::Type::Macro:
      scope->set(s.text, make_macro(s, scope, s.params, s.body, s.text, Value::undefined()));
      return Flow::Normal;
    case Stmt::Type::CallBlock: {
      Value caller = make_macro(s, scope, s.params, s.body, "caller", Value::undefined());
      const Expr& call = *s.expr;
      Value callee = eval(*call.a, scope);
      Args args = eval_args(call.args, scope);
      args.keyword.emplace_back("caller", caller);
      Value r = at(call.pos, "call", "", [&] { return this->call(callee, args); });
      append(out, to_str(r));
      return Flow::Normal;
    }
    case Stmt::Type::FilterBlock: {
      std::string buf;
      Flow f = exec(s.body, scope, buf);
      append(out, to_str(apply_filters(s.filters, Value::string(std::move(buf)), scope)));
      return f;
    }
    case Stmt::Type::With: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      for (const auto& [t, e] : s.assigns) assign(t, eval(*e, scope), inner, s.pos);
      return exec(s.body, inner, out);
    }
    case Stmt::Type::Scope: return exec(s.body, scope, out);
    case Stmt::Type::Break: return Flow::Break;
    case Stmt::Type::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

void Interpreter::assign(const Target& t, const Value& v, const ScopePtr& scope, Pos pos) {
  if (!t.ns_attr.empty()) {
    const Value* ns = scope->find(t.names[0]);
    if (!ns || ns->kind != Value::Kind::Namespace)
      error_at(pos, "cannot assign attribute on non-namespace object '" + t.names[0] + "'");
    ns->ns->attrs.set(Value::string(t.ns_attr), v);
    return;
  }
  if (!t.unpack) {
    scope->set(t.names[0], v);
    return;
  }
  std::vector<Value> items = at(pos, "unpacking", "", [&] { return iterate(v); });
  if (items.size() != t.names.size())
    error_at(pos, concat("ValueError: cannot unpack ", items.size(), " values into ", t.names.size(), " names"));
  for (size_t i = 0; i < items.size(); ++i) scope->set(t.names[i], items[i]);
}

void Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  if (s.recursive) error_at(s.pos, "recursive for loops are not supported");
  Value iterable = eval(*s.expr, scope);
  std::vector<Value> all = at(s.expr->pos, "for loop over", "", [&] { return iterate(iterable); });
  std::vector<Value> items;
  if (s.cond) {
    for (auto& item : all) {
      auto tmp = std::make_shared<Scope>();
      tmp->parent = scope;
      assign(s.target, item, tmp, s.pos);
      if (eval(*s.cond, tmp).truthy()) items.push_back(std::move(item));
    }
  } else {
    items = std::move(all);
  }
  if (items.empty()) {
    exec(s.else_body, scope, out);
    return;
  }
  auto last_changed = std::make_shared<Value>(Value::undefined());
  auto have_changed = std::make_shared<bool>(false);
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    step();
    auto it = std::make_shared<Scope>();
    it->parent = scope;
    Dict loop;
    loop.items.reserve(14);
    auto put = [&](const char* k, Value v) { loop.items.emplace_back(Value::string(k), std::move(v)); };
    put("index", Value::integer(i + 1));
    put("index0", Value::integer(i));
    put("revindex", Value::integer(n - i));
    put("revindex0", Value::integer(n - i - 1));
    put("first", Value::boolean(i == 0));
    put("last", Value::boolean(i == n - 1));
    put("length", Value::integer(n));
    put("depth", Value::integer(1));
    put("depth0", Value::integer(0));
    put("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    put("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    put("cycle", Value::make_callable("loop.cycle", [i](Interpreter&, Args& a) {
          if (a.positional.empty()) fail("TypeError: no items for cycling given");
          return a.positional[static_cast<size_t>(i) % a.positional.size()];
        }));
    put("changed", Value::make_callable("loop.changed", [last_changed, have_changed](Interpreter&, Args& a) {
          Value cur = Value::make_list(a.positional);
          bool changed = !*have_changed || !equals(cur, *last_changed);
          *have_changed = true;
          *last_changed = cur;
          return Value::boolean(changed);
        }));
    it->set("loop", Value::make_dict(std::move(loop)));
    assign(s.target, items[static_cast<size_t>(i)], it, s.pos);
    Flow f = exec(s.body, it, out);
    if (f == Flow::Break) break;
  }
}

Value Interpreter::make_macro(const Stmt& def, const ScopePtr& scope, const std::vector<MacroParam>& params,
                              const Body& body, std::string name, Value /*caller*/) {
  std::weak_ptr<Scope> closure = scope;  // weak: the scope usually holds this macro (cycle)
  const Stmt* d = &def;
  const std::vector<MacroParam>* ps = &params;
  const Body* b = &body;
  Value v = Value::make_callable(name, [this, closure, d, ps, b, name](Interpreter&, Args& args) -> Value {
    ScopePtr parent = closure.lock();
    if (!parent) parent = root_;
    auto frame = std::make_shared<Scope>();
    frame->parent = parent;
    size_t np = ps->size();
    std::vector<bool> bound(np, false);
    List varargs;
    for (size_t i = 0; i < args.positional.size(); ++i) {
      if (i < np) {
        frame->set((*ps)[i].name, args.positional[i]);
        bound[i] = true;
      } else {
        varargs.push_back(args.positional[i]);
      }
    }
    Dict kwargs;
    Value caller = Value::undefined("'caller' is undefined");
    for (auto& [k, v] : args.keyword) {
      bool found = false;
      for (size_t i = 0; i < np; ++i) {
        if ((*ps)[i].name == k) {
          if (bound[i]) fail("TypeError: macro '", name, "' got multiple values for argument '", k, "'");
          frame->set(k, v);
          bound[i] = true;
          found = true;
        }
      }
      if (!found) {
        if (k == "caller") {
          caller = v;
        } else {
          kwargs.set(Value::string(k), v);
        }
      }
    }
    for (size_t i = 0; i < np; ++i) {
      if (bound[i]) continue;
      const auto& p = (*ps)[i];
      frame->set(p.name, p.default_value ? eval(*p.default_value, frame)
                                         : Value::undefined("parameter '" + p.name + "' was not provided"));
    }
    frame->set("varargs", Value::make_list(std::move(varargs)));
    frame->set("kwargs", Value::make_dict(std::move(kwargs)));
    if (!caller.is_undefined()) frame->set("caller", caller);
    if (++call_depth_ > limits_.max_call_depth) {
      --call_depth_;
      error_at(d->pos, "maximum macro recursion depth exceeded");
    }
    std::string out;
    try {
      exec(*b, frame, out);
    } catch (...) {
      --call_depth_;
      throw;
    }
    --call_depth_;
    return Value::string(std::move(out));
  });
  auto c = std::const_pointer_cast<Callable>(v.fn);
  c->is_macro = true;
  return v;
}

Args Interpreter::eval_args(const CallArgs& a, const ScopePtr& scope) {
  Args out;
  out.positional.reserve(a.positional.size());
  for (const auto& e : a.positional) out.positional.push_back(eval(*e, scope));
  for (const auto& [k, e] : a.keyword) out.keyword.emplace_back(k, eval(*e, scope));
  if (a.star) {
    Value v = eval(*a.star, scope);
    for (auto& x : at(a.star->pos, "*args", "", [&] { return iterate(v); })) out.positional.push_back(std::move(x));
  }
  if (a.double_star) {
    Value v = eval(*a.double_star, scope);
    if (!v.is_dict()) error_at(a.double_star->pos, concat("TypeError: argument after ** must be a mapping, not ", v.type_name()));
    for (const auto& [k, x] : v.dict->items) {
      if (!k.is_string()) error_at(a.double_star->pos, "TypeError: keywords must be strings");
      out.keyword.emplace_back(k.s, x);
    }
  }
  return out;
}

Value Interpreter::call(const Value& callee, Args& args) {
  step();
  if (callee.kind == Value::Kind::Callable) return callee.fn->fn(*this, args);
  if (callee.is_undefined()) undefined_error(callee);
  fail("TypeError: '", callee.type_name(), "' object is not callable");
}

static Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto to_opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_integer_like()) fail("TypeError: slice ", what, " must be an integer or None, not ", v.type_name());
    return v.as_int();
  };
  auto st = to_opt(start, "indices");
  auto sp = to_opt(stop, "indices");
  auto stp = to_opt(step, "step");
  int64_t stride = stp.value_or(1);
  if (stride == 0) fail("ValueError: slice step cannot be zero");
  auto pick = [&](int64_t len) {
    std::vector<int64_t> idx;
    auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
      if (!v) return dflt;
      int64_t x = *v;
      if (x < 0) x += len;
      if (stride > 0) return std::clamp<int64_t>(x, 0, len);
      return std::clamp<int64_t>(x, -1, len - 1);
    };
    int64_t b = clamp(st, stride > 0 ? 0 : len - 1);
    int64_t e = clamp(sp, stride > 0 ? len : -1);
    if (stride > 0)
      for (int64_t i = b; i < e; i += stride) idx.push_back(i);
    else
      for (int64_t i = b; i > e; i += stride) idx.push_back(i);
    return idx;
  };
  if (obj.is_string()) {
    auto cps = decode_utf8(obj.s);
    std::string out;
    for (int64_t i : pick(static_cast<int64_t>(cps.size()))) append_utf8(out, cps[static_cast<size_t>(i)]);
    return Value::string(std::move(out));
  }
  if (obj.is_list()) {
    List out;
    for (int64_t i : pick(static_cast<int64_t>(obj.list->size()))) out.push_back((*obj.list)[static_cast<size_t>(i)]);
    return Value::make_list(std::move(out), obj.is_tuple);
  }
  if (obj.is_undefined()) undefined_error(obj);
  return Value::undefined(concat("'", obj.type_name(), " object' is not subscriptable"));
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  switch (e.type) {
    case Expr::Type::Literal: return e.literal;
    case Expr::Type::Name: {
      const Value* v = scope->find(e.name);
      if (v) return *v;
      if (auto g = global_function(e.name)) return *g;
      return Value::undefined("'" + e.name + "' is undefined");
    }
    case Expr::Type::List:
    case Expr::Type::Tuple: {
      List items;
      items.reserve(e.items.size());
      for (const auto& x : e.items) items.push_back(eval(*x, scope));
      return Value::make_list(std::move(items), e.type == Expr::Type::Tuple);
    }
    case Expr::Type::Dict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], scope);
        if (k.kind == Value::Kind::List && !k.is_tuple) error_at(e.pos, "TypeError: unhashable type: 'list'");
        if (k.kind == Value::Kind::Dict) error_at(e.pos, "TypeError: unhashable type: 'dict'");
        d.set(std::move(k), eval(*e.items[i + 1], scope));
      }
      return Value::make_dict(std::move(d));
    }
    case Expr::Type::GetAttr: {
      Value obj = eval(*e.a, scope);
      return at(e.pos, "attribute", e.name, [&] { return getattr(obj, e.name); });
    }
    case Expr::Type::GetItem: {
      Value obj = eval(*e.a, scope);
      Value key = eval(*e.b, scope);
      return at(e.pos, "subscript", "", [&] { return getitem(obj, key); });
    }
    case Expr::Type::Slice: {
      Value obj = eval(*e.a, scope);
      Value a = e.b ? eval(*e.b, scope) : Value::none();
      Value b = e.c ? eval(*e.c, scope) : Value::none();
      Value c = e.d ? eval(*e.d, scope) : Value::none();
      return at(e.pos, "slice", "", [&] { return slice_value(obj, a, b, c); });
    }
    case Expr::Type::Call: {
      Value callee = eval(*e.a, scope);
      Args args = eval_args(e.args, scope);
      std::string name = callee.kind == Value::Kind::Callable ? callee.fn->name : "";
      if (callee.kind == Value::Kind::Callable && name == "raise_exception") {
        // Errors raised by the template itself are reported verbatim (with position).
        try {
          return call(callee, args);
        } catch (const PositionedError&) {
          throw;
        } catch (const Error& err) {
          error_at(e.pos, err.what());
        }
      }
      return at(e.pos, "call to", name, [&] { return call(callee, args); });
    }
    case Expr::Type::Filter: {
      Value input = e.a ? eval(*e.a, scope) : Value::undefined();
      Args args = eval_args(e.args, scope);
      return at(e.pos, "filter", e.name, [&] { return apply_filter(e.name, input, args); });
    }
    case Expr::Type::Test: {
      Value input = eval(*e.a, scope);
      Args args = eval_args(e.args, scope);
      bool r = at(e.pos, "test", e.name, [&] { return apply_test(e.name, input, args); });
      return Value::boolean(e.negated ? !r : r);
    }
    case Expr::Type::Not: return Value::boolean(!eval(*e.a, scope).truthy());
    case Expr::Type::Neg:
    case Expr::Type::Pos: {
      Value v = eval(*e.a, scope);
      bool neg = e.type == Expr::Type::Neg;
      if (v.kind == Value::Kind::Float) return Value::number(neg ? -v.f : v.f);
      if (v.is_integer_like()) {
        if (neg && v.as_int() == INT64_MIN) error_at(e.pos, "OverflowError: integer overflow");
        return Value::integer(neg ? -v.as_int() : v.as_int());
      }
      if (v.is_undefined()) at(e.pos, "unary operator", "", [&]() -> Value { undefined_error(v); });
      error_at(e.pos, concat("TypeError: bad operand type for unary ", neg ? "-" : "+", ": '", v.type_name(), "'"));
    }
    case Expr::Type::Binary: return eval_binary(e, scope);
    case Expr::Type::Compare: {
      Value left = eval(*e.a, scope);
      for (const auto& operand : e.ops) {
        const std::string& op = operand.first;  // not a structured binding: lambdas capture it
        Value right = eval(*operand.second, scope);
        bool r = at(e.pos, "comparison", op, [&]() -> bool {
          if (op == "==") return equals(left, right);
          if (op == "!=") return !equals(left, right);
          if (op == "in" || op == "notin") {
            bool found = false;
            if (right.is_string()) {
              if (!left.is_string())
                fail("TypeError: 'in <string>' requires string as left operand, not ", left.type_name());
              found = right.s.find(left.s) != std::string::npos;
            } else if (right.is_dict()) {
              found = right.dict->find(left) != nullptr;
            } else if (right.is_list()) {
              for (const auto& x : *right.list)
                if (equals(x, left)) {
                  found = true;
                  break;
                }
            } else if (right.is_undefined()) {
              found = false;
            } else {
              fail("TypeError: argument of type '", right.type_name(), "' is not iterable");
            }
            return op == "in" ? found : !found;
          }
          if (left.is_undefined()) undefined_error(left);
          if (right.is_undefined()) undefined_error(right);
          if (op == "<") return less_than(left, right);
          if (op == ">") return less_than(right, left);
          if (op == "<=") return less_than(left, right) || (equals(left, right) && !less_than(right, left));
          return less_than(right, left) || (equals(left, right) && !less_than(left, right));
        });
        if (!r) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::Type::Cond: {
      if (eval(*e.a, scope).truthy()) return eval(*e.b, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
  }
  return Value::undefined();
}

Value Interpreter::eval_binary(const Expr& e, const ScopePtr& scope) {
  const std::string& op = e.name;
  Value l = eval(*e.a, scope);
  if (op == "and") return l.truthy() ? eval(*e.b, scope) : l;
  if (op == "or") return l.truthy() ? l : eval(*e.b, scope);
  Value r = eval(*e.b, scope);
  return at(e.pos, "operator", op, [&]() -> Value {
    using K = Value::Kind;
    if (op == "~") {
      std::string s = to_str(l) + to_str(r);
      check_size(s.size());
      return Value::string(std::move(s));
    }
    if (l.is_undefined()) undefined_error(l);
    if (r.is_undefined()) undefined_error(r);
    auto type_error = [&]() -> Value {
      fail("TypeError: unsupported operand type(s) for ", op, ": '", l.type_name(), "' and '", r.type_name(), "'");
    };
    bool nums = l.is_number() && r.is_number();
    bool any_float = l.kind == K::Float || r.kind == K::Float;
    if (op == "+") {
      if (nums) {
        if (any_float) return Value::number(l.as_double() + r.as_double());
        int64_t x;
        if (!checked_add(l.as_int(), r.as_int(), &x)) fail("OverflowError: integer overflow");
        return Value::integer(x);
      }
      if (l.is_string() && r.is_string()) {
        check_size(l.s.size() + r.s.size());
        if (l.markup == r.markup) {
          Value out = Value::string(l.s + r.s);
          out.markup = l.markup;
          return out;
        }
        // markupsafe: Markup + str escapes the plain side.
        Value out = Value::string(l.markup ? l.s + html_escape(r.s) : html_escape(l.s) + r.s);
        out.markup = true;
        return out;
      }
      if (l.is_list() && r.is_list() && l.is_tuple == r.is_tuple) {
        List out = *l.list;
        out.insert(out.end(), r.list->begin(), r.list->end());
        check_size(out.size());
        return Value::make_list(std::move(out), l.is_tuple);
      }
      if (l.is_string() || r.is_string())
        fail("TypeError: can only concatenate str (not \"", (l.is_string() ? r : l).type_name(), "\") to str");
      return type_error();
    }
    if (op == "-") {
      if (!nums) return type_error();
      if (any_float) return Value::number(l.as_double() - r.as_double());
      int64_t x;
      if (!checked_sub(l.as_int(), r.as_int(), &x)) fail("OverflowError: integer overflow");
      return Value::integer(x);
    }
    if (op == "*") {
      if (nums) {
        if (any_float) return Value::number(l.as_double() * r.as_double());
        int64_t x;
        if (!checked_mul(l.as_int(), r.as_int(), &x)) fail("OverflowError: integer overflow");
        return Value::integer(x);
      }
      const Value* seq = (l.is_string() || l.is_list()) ? &l : (r.is_string() || r.is_list()) ? &r : nullptr;
      const Value* cnt = seq == &l ? &r : &l;
      if (!seq || !cnt->is_integer_like()) return type_error();
      int64_t n = std::max<int64_t>(0, cnt->as_int());
      size_t unit = seq->is_string() ? seq->s.size() : seq->list->size();
      if (unit && static_cast<uint64_t>(n) > limits_.max_output_bytes / unit) check_size(SIZE_MAX);
      if (seq->is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq->s;
        return Value::string(std::move(out));
      }
      List out;
      for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq->list->begin(), seq->list->end());
      return Value::make_list(std::move(out), seq->is_tuple);
    }
    if (op == "/") {
      if (!nums) return type_error();
      if (r.as_double() == 0) fail("ZeroDivisionError: division by zero");
      return Value::number(l.as_double() / r.as_double());
    }
    if (op == "//") {
      if (!nums) return type_error();
      if (any_float) {
        if (r.as_double() == 0) fail("ZeroDivisionError: float floor division by zero");
        return Value::number(std::floor(l.as_double() / r.as_double()));
      }
      if (r.as_int() == 0) fail("ZeroDivisionError: integer division or modulo by zero");
      return Value::integer(floor_div(l.as_int(), r.as_int()));
    }
    if (op == "%") {
      if (l.is_string()) return Value::string(python_percent_format(*this, l.s, r));
      if (!nums) return type_error();
      if (any_float) {
        if (r.as_double() == 0) fail("ZeroDivisionError: float modulo");
        return Value::number(py_fmod(l.as_double(), r.as_double()));
      }
      if (r.as_int() == 0) fail("ZeroDivisionError: integer division or modulo by zero");
      return Value::integer(py_mod(l.as_int(), r.as_int()));
    }
    if (op == "**") {
      if (!nums) return type_error();
      if (!any_float && r.as_int() >= 0) {
        int64_t base = l.as_int(), exp = r.as_int(), result = 1;
        while (exp > 0) {
          if (exp & 1)
            if (!checked_mul(result, base, &result)) fail("OverflowError: integer overflow");
          exp >>= 1;
          if (exp && !checked_mul(base, base, &base)) fail("OverflowError: integer overflow");
        }
        return Value::integer(result);
      }
      if (l.as_double() == 0 && r.as_double() < 0) fail("ZeroDivisionError: 0.0 cannot be raised to a negative power");
      double x = std::pow(l.as_double(), r.as_double());
      if (std::isnan(x) && !std::isnan(l.as_double()) && !std::isnan(r.as_double()))
        fail("ValueError: complex result of power");
      return Value::number(x);
    }
    return type_error();
  });
}

// ---------------------------------------------------------------------------------------------

Template::Template(std::string_view source) : program_(parse(source)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Value& context, const RenderLimits& limits) const {
  std::time_t now = has_fixed_time_ ? fixed_time_ : std::time(nullptr);
  Interpreter in(limits, now);
  return in.run(*program_, context);
}

}  // namespace kexa::jinja
