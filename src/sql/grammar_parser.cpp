// SqlGrammar's statement syntax: lexeme matchers, WITH, the SELECT core, WHERE / GROUP BY /
// HAVING, ORDER BY / LIMIT, conditions and expressions. The FROM clause and column references
// are in grammar_scope.cpp.
#include "sql/grammar_parse.h"

namespace kexa::sql::detail {

Parser::Parser(const SqlGrammar::Names& names, const std::vector<Lex>& lx, bool prefix, size_t text_size)
    : lx_(lx), prefix_(prefix), text_size_(text_size) {
  for (const auto& t : names.tables)
    if (!t.columns.empty()) tables_.push_back(&t);
}

bool Parser::statement() {
  if (kw("with")) {
    int n = 0;
    do {
      if (++n > kMaxCtes) return false;
      if (!cte()) return false;
    } while (room() && punct(","));
  }
  Core core;
  if (!select_core(core, 0)) return false;
  if (room() && setop()) {
    Core second;
    second.min_items = second.max_items = core.items;
    if (!select_core(second, 0) || second.items != core.items) return false;
  } else if (!order_limit(core)) {
    return false;
  }
  punct(";");
  if (pos_ < lx_.size()) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Lexemes

// The current lexeme, or null at the end (which, for a prefix, means success).
const Lex* Parser::peek() {
  if (pos_ < lx_.size()) return &lx_[pos_];
  if (prefix_) throw PrefixOk{};
  return nullptr;
}

bool Parser::kw(std::string_view k) {
  const Lex* l = peek();
  if (!l || l->kind != Kind::Word) return false;
  if (last_open(l) && prefix_) {
    if (starts_with(k, l->text)) throw PrefixOk{};
    return false;
  }
  if (l->text != k) return false;
  ++pos_;
  return true;
}

bool Parser::punct(std::string_view p) {
  const Lex* l = peek();
  if (!l || l->kind != Kind::Punct) return false;
  if (l->open) {
    if (prefix_ && starts_with(p, l->text)) throw PrefixOk{};
    return false;
  }
  if (l->text != p) return false;
  ++pos_;
  return true;
}

bool Parser::alias() {
  const Lex* l = peek();
  if (!l || l->kind != Kind::Word) return false;
  if (last_open(l) && prefix_ && l->text == "t") throw PrefixOk{};
  if (!alias_name(l->text)) return false;
  ++pos_;
  return true;
}

bool Parser::number() {
  const Lex* l = peek();
  if (!l || l->kind != Kind::Number) return false;
  ++pos_;
  return true;
}

bool Parser::string_lit() {
  const Lex* l = peek();
  if (!l || l->kind != Kind::String) return false;
  if (l->open) {
    if (prefix_ && last_open(l)) throw PrefixOk{};
    return false;
  }
  ++pos_;
  return true;
}

bool Parser::literal() {
  Mark m = mark();
  if (punct("-")) return number();
  reset(m);
  return number() || string_lit() || kw("null");
}

bool Parser::peek_kw_select() {
  const Lex* l = peek();
  if (!l || l->kind != Kind::Word) return false;
  if (last_open(l) && prefix_) {
    if (starts_with("select", l->text)) throw PrefixOk{};
    return false;
  }
  return l->text == "select";
}

// ---------------------------------------------------------------------------------------------
// Statements and clauses

bool Parser::cte() {
  const Lex* l = peek();
  if (!l || l->kind != Kind::Word) return false;
  if (last_open(l) && prefix_) {
    if (l->text.size() <= 16) throw PrefixOk{};
    return false;
  }
  if (!plain_identifier(l->text) || l->text.size() > 16) return false;
  for (const auto* t : tables_)
    if (t->name == l->text) return false;
  std::string name = l->text;
  ++pos_;
  if (!kw("as") || !punct("(")) return false;
  Core core;
  if (!select_core(core, 1)) return false;
  if (!order_limit(core) || !punct(")")) return false;
  // The CTE's columns: the names of its plain column items.
  // A CTE none of whose items is a plain column has no name to refer to: it may be written
  // but not read (the grammar offers only tables with columns).
  if (!core_columns_.empty()) {
    ctes_.push_back({name, core_columns_});
    tables_.push_back(&ctes_.back());
  }
  return true;
}

bool Parser::setop() {
  if (kw("union")) {
    kw("all");
    return true;
  }
  return kw("intersect") || kw("except");
}

bool Parser::select_core(Core& core, int depth) {
  if (!kw("select")) return false;
  kw("distinct");
  std::vector<ColRef>* saved = pending_;
  pending_ = &core.pending;
  Core* saved_core = core_;
  core_ = &core;
  std::vector<std::string> cols;
  bool ok = select_items(core, depth, cols) && from_clause(core) && where_group(core, depth);
  pending_ = saved;
  core_ = saved_core;
  core_columns_ = std::move(cols);
  return ok;
}

bool Parser::select_items(Core& core, int depth, std::vector<std::string>& cols) {
  if (core.min_items <= 1 && punct("*")) {
    core.items = 1;  // counted as one; set operations over * are compared loosely
    return true;
  }
  do {
    if (++core.items > core.max_items) return false;
    size_t before = pending_->size();
    if (!expr(depth, /*agg=*/true, /*strings=*/false)) return false;
    if (pending_->size() == before + 1) cols.push_back(pending_->back().col);
  } while ((room() || core.items < core.min_items) && punct(","));
  return core.items >= core.min_items;
}

bool Parser::where_group(Core& core, int depth) {
  if (room() && kw("where") && !cond(depth, false, 0)) return false;
  Mark m = mark();
  if (room() && kw("group")) {
    if (!kw("by")) return false;
    int n = 0;
    do {
      if (++n > kMaxGroup || !colref(core)) return false;
    } while (room() && punct(","));
    if (room() && kw("having") && !cond(depth, true, 0)) return false;
  } else {
    reset(m);
  }
  return true;
}

bool Parser::order_limit(Core& core) {
  Core* saved = core_;
  core_ = &core;
  bool ok = order_limit_impl();
  core_ = saved;
  return ok;
}

bool Parser::order_limit_impl() {
  if (room() && kw("order")) {
    if (!kw("by")) return false;
    int n = 0;
    do {
      if (++n > kMaxOrder || !expr(kMaxDepth, true, false)) return false;
      if (!kw("asc")) kw("desc");
    } while (room() && punct(","));
  }
  if (room() && kw("limit")) {
    if (!number()) return false;
    if (room() && kw("offset") && !number()) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Conditions and expressions

// cond := pred {(AND|OR) pred}
bool Parser::cond(int depth, bool agg, int nest) {
  int n = 0;
  do {
    if (++n > kMaxConds || !pred(depth, agg, nest)) return false;
  } while (room() && (kw("and") || kw("or")));
  return true;
}

bool Parser::pred(int depth, bool agg, int nest) {
  Mark m = mark();
  if (kw("not")) {
    if (!pred(depth, agg, nest)) return false;
    return true;
  }
  reset(m);
  if (nest < 2 && punct("(")) {
    Mark inner = mark();
    // "(cond)" or an expression starting with a parenthesis; try the condition first.
    if (cond(depth, agg, nest + 1) && punct(")")) return true;
    reset(inner);
    reset(m);
  }
  reset(m);
  if (!expr(depth, agg)) return false;
  Mark after = mark();
  bool neg = kw("not");
  if (kw("like")) return string_lit();
  if (kw("between")) return expr(depth, agg) && kw("and") && expr(depth, agg);
  if (kw("in")) return in_operand(depth);
  if (neg) return false;
  reset(after);
  if (kw("is")) {
    kw("not");
    return kw("null");
  }
  static constexpr std::string_view cmps[] = {"=", "!=", "<>", "<", "<=", ">", ">="};
  for (std::string_view op : cmps)
    if (punct(op)) return expr(depth, agg);
  return false;
}

// What follows IN: a parenthesized one-column subquery or list of literals.
bool Parser::in_operand(int depth) {
  const bool sub_ok = room();  // a subquery may open only where an optional part may
  if (!punct("(")) return false;
  Mark im = mark();
  if (depth < kMaxDepth && sub_ok && peek_kw_select()) return subquery(depth);
  reset(im);
  int k = 0;
  do {
    if (++k > kMaxInList || !literal()) return false;
  } while (room() && punct(","));
  return punct(")");
}

// A one-column SELECT nested at depth + 1 and its closing parenthesis (the opening one is read).
bool Parser::subquery(int depth) {
  Core sub;
  sub.max_items = 1;
  if (!select_core(sub, depth + 1) || sub.items != 1 || !order_limit(sub)) return false;
  return punct(")");
}

// expr := unary {binop unary}. String literals only where a value is compared (strings=true):
// result columns and sort keys are computed from columns.
bool Parser::expr(int depth, bool agg, bool strings) {
  int n = 0;
  for (;;) {
    if (!unary(depth, agg, strings)) return false;
    Mark m = mark();
    static constexpr std::string_view ops[] = {"+", "-", "*", "/"};
    bool more = false;
    if (room()) {
      for (std::string_view op : ops) {
        if (punct(op)) {
          more = true;
          break;
        }
      }
    }
    if (!more) {
      reset(m);
      return true;
    }
    if (++n > kMaxBinops) return false;
  }
}

bool Parser::unary(int depth, bool agg, bool strings) {
  Mark m = mark();
  if (punct("-")) return number();
  reset(m);
  if (number() || (strings && string_lit())) return true;
  reset(m);
  if (kw("null")) return true;
  reset(m);
  if (agg && aggregate(depth)) return true;
  reset(m);
  if (kw("cast")) {
    if (!punct("(") || !expr(depth, agg, strings) || !kw("as")) return false;
    if (!(kw("integer") || kw("real") || kw("text") || kw("numeric"))) return false;
    return punct(")");
  }
  reset(m);
  if (room() && depth < kMaxDepth && punct("(")) {
    if (peek_kw_select()) return subquery(depth);
    reset(m);
    return false;
  }
  reset(m);
  return colref(*core_);
}

bool Parser::aggregate(int depth) {
  static constexpr std::string_view fns[] = {"count", "sum", "avg", "min", "max"};
  for (std::string_view f : fns) {
    Mark m = mark();
    if (!kw(f)) continue;
    if (!punct("(")) {
      reset(m);
      continue;  // a column named like the function
    }
    if (f == "count" && punct("*")) return punct(")");
    kw("distinct");
    if (!expr(depth, /*agg=*/false, /*strings=*/false)) return false;
    return punct(")");
  }
  return false;
}

}  // namespace kexa::sql::detail
