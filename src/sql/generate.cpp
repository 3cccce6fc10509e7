#include "sql/generate.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <set>

#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace kexa::sql {

// ---------------------------------------------------------------------------------------------
// Grammar

struct SqlGrammar::Names {
  struct T {
    std::string name;                  // lower case
    std::vector<std::string> columns;  // lower case
  };
  std::vector<T> tables;
};

namespace {

using ojson = nlohmann::ordered_json;

// Bounds that make every accepted prefix complete within a bounded length (see SqlGrammar).
constexpr size_t kMaxWord = 64;
constexpr size_t kMaxString = 32;
constexpr size_t kMaxNumber = 12;
constexpr size_t kMaxSpace = 2;
constexpr int kMaxItems = 5;
constexpr int kMaxJoins = 3;
constexpr int kMaxConds = 3;
constexpr int kMaxBinops = 2;
constexpr int kMaxOrder = 2;
constexpr int kMaxGroup = 2;
constexpr int kMaxInList = 5;
constexpr int kMaxCtes = 2;
constexpr int kMaxDepth = 2;  // subquery nesting (the statement itself is depth 0)
// Optional parts (another item, join, condition, clause, subquery, set operation) may only start
// before this byte offset; past it the statement can only be finished. Keeps the longest
// statement short enough that a model picking allowed tokens at random ends within a few
// hundred tokens, while 97% of Spider's gold queries are shorter than 261 bytes.
constexpr size_t kSoftBytes = 240;

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return o;
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

bool ident_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

const std::set<std::string, std::less<>>& reserved() {
  static const std::set<std::string, std::less<>> words = {
      "select", "from", "where", "group", "by", "order", "having", "limit", "offset", "join",
      "inner", "left", "right", "full", "outer", "cross", "natural", "on", "using", "as", "and",
      "or", "not", "in", "is", "null", "like", "glob", "between", "distinct", "union", "intersect",
      "except", "all", "with", "case", "when", "then", "else", "end", "cast", "asc", "desc",
      "exists", "values", "insert", "update", "delete", "create", "drop", "alter", "table",
      "index", "into", "set", "collate", "escape", "primary", "key", "references", "default",
      "check", "unique", "constraint", "foreign", "transaction", "begin", "commit", "rollback",
      "pragma", "attach", "detach", "replace", "returning", "window", "over", "partition",
      "filter", "recursive", "materialized", "true", "false", "current_date", "current_time",
      "current_timestamp", "isnull", "notnull", "regexp", "match", "vacuum", "analyze", "reindex"};
  return words;
}

bool plain_identifier(std::string_view s) {
  if (s.empty() || s.size() > kMaxWord || !ident_char(s[0], true)) return false;
  for (char c : s)
    if (!ident_char(c, false)) return false;
  return !reserved().count(lower(s));
}

enum class Kind { Word, QIdent, Number, String, Punct };

struct Lex {
  Kind kind;
  std::string text;   // words lower-cased; quoted identifiers and strings: their content
  bool open = false;  // the text ends inside (or right at the end of) this lexeme
  size_t at = 0;      // byte offset of its start in the text
};

// Splits `s` into lexemes; false when it holds something the grammar never writes (comments,
// characters outside SQL, over-long literals, long runs of white space).
bool lex(std::string_view s, std::vector<Lex>& out) {
  out.clear();
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    size_t sp = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\n')) ++i, ++sp;
    if (sp > kMaxSpace) return false;
    if (i >= n) break;
    const char c = s[i];
    if (ident_char(c, true)) {
      size_t b = i;
      while (i < n && ident_char(s[i], false)) ++i;
      if (i - b > kMaxWord) return false;
      out.push_back({Kind::Word, lower(s.substr(b, i - b)), i == n, b});
    } else if (c >= '0' && c <= '9') {
      size_t b = i;
      while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
      if (i < n && s[i] == '.') {
        ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
      }
      if (i < n && ident_char(s[i], true)) return false;  // "12abc"
      if (i - b > kMaxNumber) return false;
      out.push_back({Kind::Number, std::string(s.substr(b, i - b)), i == n, b});
    } else if (c == '\'' || c == '"' || c == '`') {
      const char q = c;
      const size_t b = i;
      std::string content;
      bool closed = false;
      ++i;
      while (i < n) {
        if (s[i] == q) {
          if (i + 1 < n && s[i + 1] == q) {
            content += q;
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        if (static_cast<unsigned char>(s[i]) < 0x20) return false;
        content += s[i++];
      }
      if (content.size() > (q == '\'' ? kMaxString : kMaxWord)) return false;
      out.push_back({q == '\'' ? Kind::String : Kind::QIdent, q == '\'' ? content : lower(content), !closed, b});
    } else {
      static constexpr std::string_view two[] = {"<=", ">=", "<>", "!=", "||"};
      std::string op;
      for (std::string_view t : two)
        if (s.compare(i, 2, t) == 0) op = t;
      if (op.empty()) {
        if (std::string_view("(),.*;=<>+-/%").find(c) != std::string_view::npos) {
          op = std::string(1, c);
          if ((c == '-' || c == '/') && i + 1 < n && s[i + 1] == (c == '-' ? '-' : '*')) return false;
        } else if ((c == '!' || c == '|') && i + 1 == n) {
          out.push_back({Kind::Punct, std::string(1, c), true, i});  // half of != or ||
          ++i;
          continue;
        } else {
          return false;
        }
      }
      out.push_back({Kind::Punct, op, false, i});
      i += op.size();
    }
  }
  return true;
}

struct PrefixOk {};  // thrown when a parse reaches the end of a prefix: a completion exists

struct TableRef {
  const SqlGrammar::Names::T* table;
  std::string alias;  // lower case; empty = referred to by its name
};

struct ColRef {
  std::string qual, col;
};

// One SELECT core: its FROM scope and the column references made before FROM was read.
struct Core {
  std::vector<TableRef> scope;
  bool from_done = false;
  std::vector<ColRef> pending;
  int items = 0;  // result columns
  int max_items = kMaxItems;  // 1 for scalar and IN subqueries
  int min_items = 1;          // the second core of a set operation: as many as the first
};

class Parser {
 public:
  Parser(const SqlGrammar::Names& names, const std::vector<Lex>& lx, bool prefix, size_t text_size)
      : lx_(lx), prefix_(prefix), text_size_(text_size) {
    for (const auto& t : names.tables)
      if (!t.columns.empty()) tables_.push_back(&t);
  }

  bool statement() {
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

 private:
  struct Mark {
    size_t pos;
    size_t pending;
  };

  bool at_end() const { return pos_ >= lx_.size(); }
  // Whether an optional part may start here (see kSoftBytes).
  bool room() const { return (pos_ < lx_.size() ? lx_[pos_].at : text_size_) < kSoftBytes; }
  // The current lexeme, or null at the end (which, for a prefix, means success).
  const Lex* peek() {
    if (pos_ < lx_.size()) return &lx_[pos_];
    if (prefix_) throw PrefixOk{};
    return nullptr;
  }
  bool last_open(const Lex* l) const { return l->open && l == &lx_.back(); }

  bool kw(std::string_view k) {
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
  bool punct(std::string_view p) {
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
  // A name (word or quoted identifier) from `candidates`; returns its index or -1.
  template <class Get>
  int name_of(size_t count, Get get) {
    const Lex* l = peek();
    if (!l || (l->kind != Kind::Word && l->kind != Kind::QIdent)) return -1;
    if (last_open(l) && prefix_) {
      // A longer name may still be typed: a valid prefix. A name typed in full is taken as it is
      // below, so the checks that follow it (scope, ambiguity) apply right away.
      for (size_t i = 0; i < count; ++i) {
        const std::string& c = get(i);
        // A bare word can only grow into a name that may be written bare.
        const bool longer = l->kind == Kind::QIdent ? c.size() >= l->text.size() : c.size() > l->text.size();
        if (longer && starts_with(c, l->text) &&
            (l->kind == Kind::QIdent || plain_identifier(c)))
          throw PrefixOk{};
      }
      if (l->kind == Kind::QIdent) return -1;  // the closing quote is still to come
    }
    if (l->open && l->kind == Kind::QIdent) return -1;  // unterminated: cannot be complete
    for (size_t i = 0; i < count; ++i) {
      if (get(i) != l->text) continue;
      if (l->kind == Kind::Word && !plain_identifier(l->text)) return -1;  // must be quoted
      ++pos_;
      return static_cast<int>(i);
    }
    return -1;
  }

  Mark mark() const { return {pos_, pending_ ? pending_->size() : 0}; }
  void reset(const Mark& m) {
    pos_ = m.pos;
    if (pending_) pending_->resize(m.pending);
  }

  // Table aliases: t1 .. t9 (the Spider/BIRD convention) or a short word a model would pick.
  static bool alias_name(const std::string& s) {
    return s.size() == 2 && s[0] == 't' && s[1] >= '1' && s[1] <= '9';
  }
  bool alias() {
    const Lex* l = peek();
    if (!l || l->kind != Kind::Word) return false;
    if (last_open(l) && prefix_ && l->text == "t") throw PrefixOk{};
    if (!alias_name(l->text)) return false;
    ++pos_;
    return true;
  }

  bool cte() {
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

  bool setop() {
    if (kw("union")) {
      kw("all");
      return true;
    }
    return kw("intersect") || kw("except");
  }

  bool select_core(Core& core, int depth) {
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

  bool select_items(Core& core, int depth, std::vector<std::string>& cols) {
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

  // FROM table [AS alias] {[INNER|LEFT] JOIN table [AS alias] ON cond}
  bool from_clause(Core& core) {
    if (!kw("from")) return false;
    if (!table_ref(core, kMaxJoins) || !feasible(core, kMaxJoins)) return false;
    for (int joins = 0;; ++joins) {
      if (prefix_ && at_end()) {
        if (feasible(core, kMaxJoins - joins)) throw PrefixOk{};
        return false;
      }
      Mark m = mark();
      bool join = false;
      // A join the references before FROM still need is never cut off by room(); and a join
      // starts only when some table can still be joined (none would be a dead end).
      if ((!room() && unresolved(core) == 0) || joins >= kMaxJoins || !joinable(core, kMaxJoins - joins - 1)) {
        break;
      } else if (kw("inner") || kw("left")) {
        if (!kw("join")) return false;
        join = true;
      } else {
        join = kw("join");
      }
      if (!join) {
        reset(m);
        break;
      }
      if (joins >= kMaxJoins || !table_ref(core, kMaxJoins - joins - 1) || !feasible(core, kMaxJoins - joins - 1) ||
          !kw("on"))
        return false;
      core.from_done = true;  // ON sees the tables joined so far
      if (!join_cond(core)) return false;
      core.from_done = false;
    }
    core.from_done = true;
    return unresolved(core) == 0;
  }

  bool table_ref(Core& core, int joins_left) {
    int t = name_of(tables_.size(), [&](size_t i) -> const std::string& { return tables_[i]->name; });
    if (t < 0) return false;
    TableRef ref{tables_[static_cast<size_t>(t)], {}};
    // Whatever alias follows, a bare column of the select list that this table makes ambiguous
    // stays ambiguous: refuse the table before its alias.
    core.scope.push_back(ref);
    bool ambiguous = false;
    for (const ColRef& r : core.pending)
      if (r.qual.empty() && resolve(core, r) >= 2) ambiguous = true;
    // The text ends after the table's name or after AS: go on only if some alias (or none)
    // still leads to a FROM clause that resolves every reference.
    bool viable = true;
    if (!ambiguous && prefix_ && at_end()) viable = some_alias_feasible(core, joins_left, true);
    core.scope.pop_back();
    if (ambiguous || !viable) return false;
    if (kw("as")) {
      if (prefix_ && at_end()) {
        core.scope.push_back(ref);
        viable = some_alias_feasible(core, joins_left, false);
        core.scope.pop_back();
        if (!viable) return false;
      }
      size_t p = pos_;
      if (!alias()) return false;
      ref.alias = lx_[p].text;
      for (const auto& r : core.scope)
        if (r.alias == ref.alias) return false;
    }
    for (const auto& r : core.scope)
      if (ref.alias.empty() && r.alias.empty() && r.table == ref.table) return false;  // ambiguous self-join
    core.scope.push_back(ref);
    return true;
  }

  bool join_cond(Core& core) {
    int n = 0;
    do {
      if (++n > 2) return false;
      if (!colref(core) || !punct("=") || !colref(core)) return false;
    } while (room() && kw("and"));
    return true;
  }

  bool where_group(Core& core, int depth) {
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

  bool order_limit(Core& core) {
    Core* saved = core_;
    core_ = &core;
    bool ok = order_limit_impl();
    core_ = saved;
    return ok;
  }
  bool order_limit_impl() {
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

  bool number() {
    const Lex* l = peek();
    if (!l || l->kind != Kind::Number) return false;
    ++pos_;
    return true;
  }
  bool string_lit() {
    const Lex* l = peek();
    if (!l || l->kind != Kind::String) return false;
    if (l->open) {
      if (prefix_ && last_open(l)) throw PrefixOk{};
      return false;
    }
    ++pos_;
    return true;
  }

  // cond := pred {(AND|OR) pred}
  bool cond(int depth, bool agg, int nest) {
    int n = 0;
    do {
      if (++n > kMaxConds || !pred(depth, agg, nest)) return false;
    } while (room() && (kw("and") || kw("or")));
    return true;
  }

  bool pred(int depth, bool agg, int nest) {
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
    if (kw("in")) {
      const bool sub_ok = room();  // a subquery may open only where an optional part may
      if (!punct("(")) return false;
      Mark im = mark();
      if (depth < kMaxDepth && sub_ok) {
        Core sub;
        sub.max_items = 1;
        if (peek_kw_select()) {
          if (!select_core(sub, depth + 1) || sub.items != 1 || !order_limit(sub)) return false;
          return punct(")");
        }
      }
      reset(im);
      int k = 0;
      do {
        if (++k > kMaxInList || !literal()) return false;
      } while (room() && punct(","));
      return punct(")");
    }
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

  bool peek_kw_select() {
    const Lex* l = peek();
    if (!l || l->kind != Kind::Word) return false;
    if (last_open(l) && prefix_) {
      if (starts_with("select", l->text)) throw PrefixOk{};
      return false;
    }
    return l->text == "select";
  }

  bool literal() {
    Mark m = mark();
    if (punct("-")) return number();
    reset(m);
    return number() || string_lit() || kw("null");
  }

  // expr := unary {binop unary}. String literals only where a value is compared (strings=true):
  // result columns and sort keys are computed from columns.
  bool expr(int depth, bool agg, bool strings = true) {
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

  bool unary(int depth, bool agg, bool strings) {
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
      if (peek_kw_select()) {
        Core sub;
        sub.max_items = 1;
        if (!select_core(sub, depth + 1) || sub.items != 1 || !order_limit(sub)) return false;
        return punct(")");
      }
      reset(m);
      return false;
    }
    reset(m);
    return colref(*core_);
  }

  bool aggregate(int depth) {
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

  // Whether at most joins_left further tables (each with or without an alias) can make every
  // reference made before FROM resolve to exactly one table of the scope. An exact search over
  // the few tables of the grammar: each added table must resolve a reference still open, and a
  // reference that became ambiguous stays so. Rejecting a table (or a reference before FROM) as
  // soon as this is false keeps a model that may only pick allowed tokens from writing itself
  // into a FROM clause nothing can finish.
  bool feasible(const Core& core, int joins_left) const {
    std::vector<TableRef> scope = core.scope;
    return can_finish(scope, core.pending, joins_left);
  }
  bool can_finish(std::vector<TableRef>& scope, const std::vector<ColRef>& pending, int k) const {
    const ColRef* first = nullptr;  // the first reference no table resolves yet
    std::vector<std::string> quals;  // distinct qualifiers of open references
    for (const ColRef& r : pending) {
      const int n = resolve_in(scope, r);
      if (n >= 2) return false;
      if (n != 0) continue;
      if (!first) first = &r;
      if (!r.qual.empty()) {
        for (const TableRef& t : scope)
          if (r.qual == (t.alias.empty() ? t.table->name : t.alias)) return false;  // that name is taken
        if (std::find(quals.begin(), quals.end(), r.qual) == quals.end()) quals.push_back(r.qual);
      }
    }
    if (!first) return true;
    // Every distinct qualifier needs a table of its own.
    if (k <= 0 || static_cast<int>(quals.size()) > k) return false;
    // Some added table resolves `first`: branch on which, and under which name.
    std::vector<std::string> names;
    if (!first->qual.empty()) {
      names.push_back(alias_name(first->qual) ? first->qual : std::string());
    } else {
      names.push_back("");
      for (const std::string& q : quals)
        if (alias_name(q)) names.push_back(q);
    }
    for (const auto* t : tables_) {
      if (std::find(t->columns.begin(), t->columns.end(), first->col) == t->columns.end()) continue;
      for (const std::string& a : names) {
        if (!first->qual.empty() && a.empty() && t->name != first->qual) continue;
        if (a.empty()) {
          bool self = false;
          for (const TableRef& s : scope) self = self || (s.alias.empty() && s.table == t);
          if (self) continue;
        }
        scope.push_back(TableRef{t, a});
        const bool ok = can_finish(scope, pending, k - 1);
        scope.pop_back();
        if (ok) return true;
      }
    }
    return false;
  }
  // Whether some table (with some alias) can be joined to the scope and still lead to a FROM
  // clause that resolves every reference, with joins_left joins after it.
  bool joinable(Core& core, int joins_left) const {
    for (const auto* t : tables_) {
      core.scope.push_back(TableRef{t, {}});
      bool ambiguous = false;
      for (const ColRef& r : core.pending)
        if (r.qual.empty() && resolve(core, r) >= 2) ambiguous = true;
      const bool ok = !ambiguous && some_alias_feasible(core, joins_left, true);
      core.scope.pop_back();
      if (ok) return true;
    }
    return false;
  }
  // Whether the table just pushed onto core.scope can take some alias (or none, when
  // `bare_ok`) and still lead to a FROM clause that resolves every reference.
  bool some_alias_feasible(Core& core, int joins_left, bool bare_ok) const {
    TableRef& ref = core.scope.back();
    if (bare_ok) {
      bool self = false;
      for (size_t i = 0; i + 1 < core.scope.size(); ++i)
        self = self || (core.scope[i].alias.empty() && core.scope[i].table == ref.table);
      ref.alias.clear();
      if (!self && feasible(core, joins_left)) return true;
    }
    for (char d = '1'; d <= '9'; ++d) {
      std::string a = std::string("t") + d;
      bool used = false;
      for (size_t i = 0; i + 1 < core.scope.size(); ++i) used = used || core.scope[i].alias == a;
      if (used) continue;
      ref.alias = a;
      if (feasible(core, joins_left)) {
        ref.alias.clear();
        return true;
      }
    }
    ref.alias.clear();
    return false;
  }

  // Number of pending references that no table of the scope resolves yet.
  int unresolved(const Core& core) const {
    int n = 0;
    for (const ColRef& r : core.pending)
      if (resolve(core, r) != 1) ++n;
    return n;
  }
  // How many tables of the scope a reference can mean (1 = resolved, 2+ = ambiguous).
  static int resolve(const Core& core, const ColRef& r) { return resolve_in(core.scope, r); }
  static int resolve_in(const std::vector<TableRef>& scope, const ColRef& r) {
    int n = 0;
    for (const TableRef& t : scope) {
      if (!r.qual.empty() && r.qual != (t.alias.empty() ? t.table->name : t.alias)) continue;
      if (std::find(t.table->columns.begin(), t.table->columns.end(), r.col) != t.table->columns.end()) ++n;
    }
    return n;
  }

  // [qualifier .] column. Before FROM any known column may be named (checked when FROM ends);
  // after it, only columns of the tables in scope, unambiguously.
  bool colref(Core& core) {
    Mark m = mark();
    std::vector<std::string> quals;
    std::vector<std::string> cols;
    if (core.from_done) {
      // Only columns that name exactly one table of the scope may be written bare.
      for (const TableRef& t : core.scope) {
        quals.push_back(t.alias.empty() ? t.table->name : t.alias);
        for (const std::string& c : t.table->columns)
          if (resolve(core, ColRef{"", c}) == 1) cols.push_back(c);
      }
    } else {
      for (const auto* t : tables_) {
        quals.push_back(t->name);
        cols.insert(cols.end(), t->columns.begin(), t->columns.end());
      }
      for (char d = '1'; d <= '9'; ++d) quals.push_back(std::string("t") + d);
    }
    // Qualified form first: "t1" may be both an alias and a column name.
    int q = name_of(quals.size(), [&](size_t i) -> const std::string& { return quals[i]; });
    if (q >= 0 && prefix_ && at_end()) {
      // The text ends after a qualifier: it leads on if some column of it can follow, or if
      // the same word is a column by itself (tried below).
      const std::string qual = quals[static_cast<size_t>(q)];
      std::vector<std::string> qcols;
      if (core.from_done) {
        for (const TableRef& t : core.scope)
          if ((t.alias.empty() ? t.table->name : t.alias) == qual)
            qcols.insert(qcols.end(), t.table->columns.begin(), t.table->columns.end());
      } else {
        qcols = cols;
      }
      for (const std::string& c : qcols) {
        Mark cm = mark();
        const bool ok = accept_ref(core, ColRef{qual, c});
        reset(cm);
        if (ok) throw PrefixOk{};
      }
    }
    if (q >= 0 && punct(".")) {
      std::string qual = quals[static_cast<size_t>(q)];
      std::vector<std::string> qcols;
      if (core.from_done) {
        for (const TableRef& t : core.scope)
          if ((t.alias.empty() ? t.table->name : t.alias) == qual)
            qcols.insert(qcols.end(), t.table->columns.begin(), t.table->columns.end());
      } else {
        qcols = cols;
      }
      if (prefix_ && at_end()) {
        // "qualifier." ends the text: some column must be able to follow.
        for (const std::string& c : qcols) {
          Mark cm = mark();
          const bool ok = accept_ref(core, ColRef{qual, c});
          reset(cm);
          if (ok) throw PrefixOk{};
        }
        return false;
      }
      int c = name_of(qcols.size(), [&](size_t i) -> const std::string& { return qcols[i]; });
      if (c < 0) return false;
      ColRef r{qual, qcols[static_cast<size_t>(c)]};
      return accept_ref(core, r);
    }
    reset(m);
    int c = name_of(cols.size(), [&](size_t i) -> const std::string& { return cols[i]; });
    if (c < 0) return false;
    ColRef r{"", cols[static_cast<size_t>(c)]};
    return accept_ref(core, r);
  }

  bool accept_ref(Core& core, const ColRef& r) {
    if (core.from_done) return resolve(core, r) == 1;
    if (!pending_) return true;
    pending_->push_back(r);
    // Before FROM: some FROM clause (a first table and at most kMaxJoins joins) must still be
    // able to resolve every reference made so far.
    if (pending_ == &core.pending && core.scope.empty()) {
      std::vector<TableRef> scope;
      if (!can_finish(scope, core.pending, kMaxJoins + 1)) return false;
    }
    return true;
  }

  const std::vector<Lex>& lx_;
  bool prefix_;
  size_t text_size_;
  size_t pos_ = 0;
  std::vector<const SqlGrammar::Names::T*> tables_;
  std::deque<SqlGrammar::Names::T> ctes_;
  std::vector<ColRef>* pending_ = nullptr;
  Core* core_ = nullptr;
  std::vector<std::string> core_columns_;
};

bool parse(const SqlGrammar::Names& names, const std::vector<Lex>& lx, bool prefix, size_t text_size) {
  Parser p(names, lx, prefix, text_size);
  try {
    return p.statement();
  } catch (const PrefixOk&) {
    return prefix;
  }
}

// Every word the grammar reads as a keyword (kw()), lower case.
const std::vector<std::string>& grammar_keywords() {
  static const std::vector<std::string> words = {
      "with", "as", "select", "distinct", "from", "inner", "left", "join", "on", "and", "or",
      "where", "group", "by", "having", "order", "asc", "desc", "limit", "offset", "union",
      "all", "intersect", "except", "not", "like", "between", "in", "is", "null", "cast",
      "integer", "real", "text", "numeric", "count", "sum", "avg", "min", "max"};
  return words;
}

bool run_parser(const SqlGrammar::Names& names, std::string_view text, bool prefix) {
  std::vector<Lex> lx;
  if (!lex(text, lx)) return false;
  if (!prefix && !lx.empty() && lx.back().open && lx.back().kind != Kind::Word &&
      lx.back().kind != Kind::Number)
    return false;  // unterminated literal or half an operator
  if (!prefix || lx.empty() || !lx.back().open || (lx.back().kind != Kind::Word && lx.back().kind != Kind::QIdent))
    return parse(names, lx, prefix, text.size());
  // The text ends inside a word or a quoted name. It is a valid prefix only when some way of
  // finishing that word leads on: a keyword, a table or column name, an alias, a name defined
  // earlier in the text (a CTE), or the word as it stands. Accepting the bare start of a name
  // that no continuation can use ("JOIN conce" when joining concert again would be ambiguous)
  // would let a constrained model write itself into a dead end.
  if (!parse(names, lx, true, text.size())) return false;  // cheap rejection first
  const Lex last = lx.back();
  std::set<std::string, std::less<>> cands;
  auto consider = [&](const std::string& c) {
    if (!starts_with(c, last.text)) return;
    if (last.kind == Kind::Word && !std::all_of(c.begin(), c.end(), [](char ch) { return ident_char(ch, false); }))
      return;
    cands.insert(c);
  };
  consider(last.text);
  for (const std::string& k : grammar_keywords()) consider(k);
  for (const auto& t : names.tables) {
    consider(t.name);
    for (const std::string& c : t.columns) consider(c);
  }
  for (char d = '1'; d <= '9'; ++d) consider(std::string("t") + d);
  for (size_t i = 0; i + 1 < lx.size(); ++i)
    if (lx[i].kind == Kind::Word || lx[i].kind == Kind::QIdent) consider(lx[i].text);
  for (const std::string& c : cands) {
    if (last.kind == Kind::Word && c.size() > kMaxWord) continue;
    lx.back() = Lex{last.kind, c, false, last.at};
    if (parse(names, lx, true, text.size())) return true;
  }
  return false;
}

}  // namespace

SqlGrammar::SqlGrammar(const Schema& schema) {
  auto names = std::make_shared<Names>();
  for (const Table& t : schema.tables) {
    Names::T nt{lower(t.name), {}};
    for (const Column& c : t.columns) nt.columns.push_back(lower(c.name));
    names->tables.push_back(std::move(nt));
  }
  names_ = std::move(names);
}

bool SqlGrammar::valid_prefix(std::string_view text) const { return run_parser(*names_, text, true); }

bool SqlGrammar::complete(std::string_view text) const { return run_parser(*names_, text, false); }

// ---------------------------------------------------------------------------------------------
// Token filter

namespace {

// The vocabulary as a byte trie of token texts (special tokens and stop ids left out).
struct VocabTrie {
  struct Node {
    std::vector<std::pair<char, uint32_t>> kids;  // sorted by byte
    std::vector<int32_t> ids;                     // tokens whose text ends here
  };
  std::vector<std::string> pieces;  // by id; empty = never allowed as text
  std::vector<Node> nodes;

  VocabTrie(const Tokenizer& tok, const std::set<int32_t>& stops) {
    const int32_t n = tok.vocab_size();
    pieces.resize(static_cast<size_t>(n));
    nodes.push_back({});
    for (int32_t id = 0; id < n; ++id) {
      if (stops.count(id) || tok.is_special(id)) continue;
      std::string p = tok.token_piece(id);
      if (p.empty()) continue;
      uint32_t node = 0;
      for (char c : p) {
        auto& kids = nodes[node].kids;
        auto it = std::lower_bound(kids.begin(), kids.end(), c,
                                   [](const std::pair<char, uint32_t>& x, char y) { return x.first < y; });
        if (it != kids.end() && it->first == c) {
          node = it->second;
        } else {
          const uint32_t fresh = static_cast<uint32_t>(nodes.size());
          kids.insert(it, {c, fresh});
          nodes.push_back({});
          node = fresh;
        }
      }
      nodes[node].ids.push_back(id);
      pieces[static_cast<size_t>(id)] = std::move(p);
    }
  }
};

class SqlFilter : public TokenFilter {
 public:
  SqlFilter(const SqlGrammar& grammar, std::shared_ptr<const VocabTrie> trie, std::set<int32_t> stops)
      : grammar_(grammar), stops_(std::move(stops)), trie_(std::move(trie)), pieces_(trie_->pieces) {}

  bool allows(int32_t token) override {
    if (stops_.count(token)) return grammar_.complete(out_);
    if (token < 0 || static_cast<size_t>(token) >= pieces_.size() || pieces_[static_cast<size_t>(token)].empty())
      return false;
    return grammar_.valid_prefix(out_ + pieces_[static_cast<size_t>(token)]);
  }

  void mask(std::span<float> logits) override {
    // The most likely tokens first: when some of them are allowed, sampling among those is what
    // sampling over the whole allowed set would do up to the tail beyond the top kTop (exact for
    // greedy), and it avoids walking the trie where nearly everything is allowed (inside a
    // string literal).
    constexpr size_t kTop = 256;
    std::vector<int32_t> top(std::min(kTop, logits.size()));
    {
      std::vector<int32_t> all(logits.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
      std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(top.size()), all.end(),
                        [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
      std::copy_n(all.begin(), top.size(), top.begin());
    }
    std::vector<int32_t> keep;
    for (int32_t t : top)
      if (logits[static_cast<size_t>(t)] != -std::numeric_limits<float>::infinity() && allows(t)) keep.push_back(t);
    if (!keep.empty()) {
      std::vector<float> kept(keep.size());
      for (size_t i = 0; i < keep.size(); ++i) kept[i] = logits[static_cast<size_t>(keep[i])];
      std::fill(logits.begin(), logits.end(), -std::numeric_limits<float>::infinity());
      for (size_t i = 0; i < keep.size(); ++i) logits[static_cast<size_t>(keep[i])] = kept[i];
      return;
    }
    std::vector<char> ok(logits.size(), 0);
    std::string buf = out_;
    walk(0, buf, ok);
    if (grammar_.complete(out_))
      for (int32_t s : stops_)
        if (s >= 0 && static_cast<size_t>(s) < ok.size()) ok[static_cast<size_t>(s)] = 1;
    for (size_t i = 0; i < logits.size(); ++i)
      if (!ok[i]) logits[i] = -std::numeric_limits<float>::infinity();
  }

  void accept(int32_t token) override {
    if (!stops_.count(token) && token >= 0 && static_cast<size_t>(token) < pieces_.size())
      out_ += pieces_[static_cast<size_t>(token)];
  }

 private:
  // Depth-first over the trie: a branch whose text is no longer a valid prefix is cut whole,
  // since no extension of an invalid prefix is valid.
  void walk(uint32_t node, std::string& buf, std::vector<char>& ok) {
    for (const auto& [c, child] : trie_->nodes[node].kids) {
      buf.push_back(c);
      if (grammar_.valid_prefix(buf)) {
        for (int32_t id : trie_->nodes[child].ids)
          if (static_cast<size_t>(id) < ok.size()) ok[static_cast<size_t>(id)] = 1;
        walk(child, buf, ok);
      }
      buf.pop_back();
    }
  }

  const SqlGrammar& grammar_;
  std::set<int32_t> stops_;
  std::shared_ptr<const VocabTrie> trie_;
  const std::vector<std::string>& pieces_;
  std::string out_;
};

}  // namespace

std::unique_ptr<TokenFilter> make_sql_filter(const SqlGrammar& grammar, const Tokenizer& tokenizer,
                                             const std::vector<int32_t>& stop_ids) {
  std::set<int32_t> stops(stop_ids.begin(), stop_ids.end());
  return std::make_unique<SqlFilter>(grammar, std::make_shared<VocabTrie>(tokenizer, stops), stops);
}

// ---------------------------------------------------------------------------------------------
// Prompts

namespace {

std::string quote_ident(const std::string& name) {
  if (plain_identifier(name)) return name;
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string sample_text(const std::string& v) {
  std::string s = v.size() > 40 ? v.substr(0, 40) + "..." : v;
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string cell_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string schema_prompt_text(const Schema& schema, const std::vector<std::string>& tables) {
  std::string out;
  for (const std::string& name : tables) {
    int ti = schema.find(name);
    if (ti < 0) continue;
    const Table& t = schema.tables[static_cast<size_t>(ti)];
    // (definition, comment) per line; commas go between definitions, before the comment.
    std::vector<std::pair<std::string, std::string>> lines;
    std::vector<std::string> pk;
    for (const Column& c : t.columns) {
      if (c.primary_key) pk.push_back(quote_ident(c.name));
      std::string comment;
      for (size_t k = 0; k < c.samples.size(); ++k)
        comment += (k ? ", '" : " -- e.g. '") + sample_text(c.samples[k]) + "'";
      lines.push_back({quote_ident(c.name) + (c.type.empty() ? "" : " " + c.type), comment});
    }
    if (!pk.empty()) {
      std::string def = "PRIMARY KEY (";
      for (size_t i = 0; i < pk.size(); ++i) def += (i ? ", " : "") + pk[i];
      lines.push_back({def + ")", ""});
    }
    for (const ForeignKey& f : t.foreign_keys)
      lines.push_back({"FOREIGN KEY (" + quote_ident(f.column) + ") REFERENCES " + quote_ident(f.ref_table) +
                           "(" + quote_ident(f.ref_column) + ")",
                       ""});
    out += "CREATE TABLE " + quote_ident(t.name) + " (\n";
    for (size_t i = 0; i < lines.size(); ++i)
      out += "  " + lines[i].first + (i + 1 < lines.size() ? "," : "") + lines[i].second + "\n";
    out += ");\n\n";
  }
  return out;
}

nlohmann::ordered_json sql_messages(std::string_view dialect, std::string_view schema_text,
                                    std::string_view question, const std::vector<Attempt>& previous) {
  std::string sys = "You translate questions into one " + std::string(dialect == "postgresql" ? "PostgreSQL" : "SQLite") +
                    " query. Write only the SQL: one SELECT statement (WITH is allowed), no explanation, "
                    "no code fence. Use only the tables and columns of the schema. The database is "
                    "read-only.";
  std::string user = "Schema:\n" + std::string(schema_text) + "Question: " + std::string(question);
  ojson msgs = ojson::array();
  msgs.push_back({{"role", "system"}, {"content", sys}});
  msgs.push_back({{"role", "user"}, {"content", user}});
  for (const Attempt& a : previous) {
    msgs.push_back({{"role", "assistant"}, {"content", a.sql}});
    msgs.push_back({{"role", "user"},
                    {"content", "The database rejected that query: " + a.error +
                                    "\nWrite a corrected query (only the SQL)."}});
  }
  return msgs;
}

std::string extract_sql(std::string_view generated) {
  std::string s(generated);
  size_t fence = s.find("```");
  if (fence != std::string::npos) {
    size_t start = s.find('\n', fence);
    size_t end = start == std::string::npos ? std::string::npos : s.find("```", start);
    s = start == std::string::npos ? "" : s.substr(start + 1, end == std::string::npos ? std::string::npos : end - start - 1);
  }
  // Only the first statement: the executor would refuse a second one anyway.
  bool in_str = false;
  char q = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_str) {
      if (c == q) in_str = false;
    } else if (c == '\'' || c == '"' || c == '`') {
      in_str = true;
      q = c;
    } else if (c == ';') {
      s.resize(i);
      break;
    }
  }
  return trim(s);
}

// ---------------------------------------------------------------------------------------------
// The loop

nlohmann::json AskResult::to_json() const {
  nlohmann::json att = nlohmann::json::array();
  for (const Attempt& a : attempts) att.push_back({{"sql", a.sql}, {"error", a.error}});
  nlohmann::json j = {{"linked_tables", linked_tables}, {"attempts", att}, {"sql", sql},
                      {"executed", executed},           {"answer", answer}};
  if (executed) j["result"] = result.to_json();
  if (!error.empty()) j["error"] = error;
  return j;
}

namespace {

// One generation of the text-to-SQL loop through the caller's chat turn: the reply text with
// reasoning removed, also when generation failed (then `error` says why).
struct Reply {
  std::string text;
  std::string error;
};

Reply run_turn(const ChatFunction& chat, const AskOptions& opt, const ojson& msgs, int64_t max_tokens,
               const std::function<std::shared_ptr<TokenFilter>()>& make_filter,
               const std::function<bool(std::string_view)>& on_delta) {
  TurnRequest req;
  req.messages = msgs;
  req.kwargs = ojson{{"enable_thinking", false}};
  req.sampling = opt.sampling;
  req.max_tokens = max_tokens;
  // Under the grammar the reply is the SQL itself (no tags to parse); otherwise it may open with
  // reasoning.
  req.parse_output = !make_filter;
  if (make_filter) req.make_filter = [&](const PreparedTurn&) { return make_filter(); };
  TurnCallbacks callbacks;
  if (on_delta) callbacks.on_delta = [&](const TurnDelta& d) { return d.content.empty() || on_delta(d.content); };
  TurnResult t = chat.turn(req, callbacks);
  return Reply{trim(t.content), t.finish == StopReason::Error ? t.error : std::string()};
}

std::string rows_text(const Result& r, size_t max_rows) {
  std::string s;
  for (size_t i = 0; i < r.columns.size(); ++i) s += (i ? " | " : "") + r.columns[i];
  s += "\n";
  for (size_t k = 0; k < r.rows.size() && k < max_rows; ++k) {
    for (size_t i = 0; i < r.rows[k].size(); ++i) s += (i ? " | " : "") + sample_text(cell_text(r.rows[k][i]));
    s += "\n";
  }
  if (r.rows.size() > max_rows) s += "(" + std::to_string(r.rows.size() - max_rows) + " more rows)\n";
  if (r.truncated) s += "(the result was cut at the row limit)\n";
  if (r.rows.empty()) s += "(no rows)\n";
  return s;
}

}  // namespace

AskResult ask(Executor& db, const ChatFunction& chat, const AskOptions& options, std::string_view question) {
  AskResult r;
  Schema schema = db.schema(options.samples_per_column);
  if (schema.tables.empty()) fail("sql: the database has no tables to query");
  LinkResult link = link_schema(schema, std::string(question), options.link);
  r.linked_tables = link.tables;
  if (r.linked_tables.empty())
    for (const Table& t : schema.tables) r.linked_tables.push_back(t.name);
  r.schema_text = schema_prompt_text(schema, r.linked_tables);
  Schema linked;
  for (const std::string& name : r.linked_tables) linked.tables.push_back(schema.tables[static_cast<size_t>(schema.find(name))]);
  SqlGrammar grammar(linked);

  std::function<std::shared_ptr<TokenFilter>()> make;
  if (options.constrain)
    make = [&]() -> std::shared_ptr<TokenFilter> { return make_sql_filter(grammar, *chat.tokenizer, chat.stop_ids); };

  const std::string dialect = db.dialect();
  for (int attempt = 0; attempt <= options.max_retries; ++attempt) {
    ojson msgs = sql_messages(dialect, r.schema_text, question, r.attempts);
    Reply reply;
    Attempt a;
    try {
      reply = run_turn(chat, options, msgs, options.max_sql_tokens, make, {});
      if (!reply.error.empty()) fail(reply.error);
      a.sql = options.constrain ? reply.text : extract_sql(reply.text);
      while (!a.sql.empty() && (a.sql.back() == ';' || std::isspace(static_cast<unsigned char>(a.sql.back()))))
        a.sql.pop_back();
      if (a.sql.empty()) fail("the model wrote no SQL");
      if (options.constrain && !grammar.complete(a.sql))
        fail("the model did not finish the statement within ", options.max_sql_tokens, " tokens");
      db.validate(a.sql);
      r.result = db.execute(a.sql, options.limits);
      r.executed = true;
      r.sql = a.sql;
    } catch (const std::exception& e) {
      a.error = e.what();
      if (a.sql.empty()) a.sql = reply.text;
    }
    r.attempts.push_back(a);
    if (r.executed) break;
  }
  if (!r.executed) {
    r.error = "no statement ran after " + std::to_string(r.attempts.size()) + " attempts: " + r.attempts.back().error;
    return r;
  }
  if (options.answer) {
    ojson msgs = ojson::array();
    msgs.push_back({{"role", "system"},
                    {"content", "You answer the user's question from the result of a database query. "
                                "Use only the rows shown; say so when they do not answer it. Be brief "
                                "and answer in the language of the question."}});
    msgs.push_back({{"role", "user"},
                    {"content", "Question: " + std::string(question) + "\n\nSQL:\n" + r.sql +
                                    "\n\nResult rows:\n" + rows_text(r.result, options.max_rows_in_prompt)}});
    Reply reply = run_turn(chat, options, msgs, options.max_answer_tokens, {}, options.on_answer_delta);
    if (!reply.error.empty()) fail("sql: generating the answer failed: ", reply.error);
    r.answer = reply.text;
  }
  return r;
}

}  // namespace kexa::sql
