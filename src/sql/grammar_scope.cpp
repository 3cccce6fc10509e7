// SqlGrammar's FROM clause and column references. A reference written before FROM (in the select
// list) is kept pending until FROM ends; every table and alias FROM adds is checked right away
// against what the pending references still need, so a constrained model never writes itself
// into a FROM clause nothing can finish.
#include <algorithm>

#include "sql/grammar_parse.h"

namespace kexa::sql::detail {

// FROM table [AS alias] {[INNER|LEFT] JOIN table [AS alias] ON cond}
bool Parser::from_clause(Core& core) {
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

bool Parser::table_ref(Core& core, int joins_left) {
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

bool Parser::join_cond(Core& core) {
  int n = 0;
  do {
    if (++n > 2) return false;
    if (!colref(core) || !punct("=") || !colref(core)) return false;
  } while (room() && kw("and"));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Can the FROM clause still be finished?

// Whether at most joins_left further tables (each with or without an alias) can make every
// reference made before FROM resolve to exactly one table of the scope. An exact search over
// the few tables of the grammar: each added table must resolve a reference still open, and a
// reference that became ambiguous stays so. Rejecting a table (or a reference before FROM) as
// soon as this is false keeps a model that may only pick allowed tokens from writing itself
// into a FROM clause nothing can finish.
bool Parser::feasible(const Core& core, int joins_left) const {
  std::vector<TableRef> scope = core.scope;
  return can_finish(scope, core.pending, joins_left);
}

bool Parser::can_finish(std::vector<TableRef>& scope, const std::vector<ColRef>& pending, int k) const {
  const ColRef* first = nullptr;  // the first reference no table resolves yet
  std::vector<std::string> quals;  // distinct qualifiers of open references
  for (const ColRef& r : pending) {
    const int n = resolve_in(scope, r);
    if (n >= 2) return false;
    if (n != 0) continue;
    if (!first) first = &r;
    if (!r.qual.empty()) {
      for (const TableRef& t : scope)
        if (r.qual == t.name()) return false;  // that name is taken
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
bool Parser::joinable(Core& core, int joins_left) const {
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
bool Parser::some_alias_feasible(Core& core, int joins_left, bool bare_ok) const {
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
int Parser::unresolved(const Core& core) const {
  int n = 0;
  for (const ColRef& r : core.pending)
    if (resolve(core, r) != 1) ++n;
  return n;
}

// How many tables of the scope a reference can mean (1 = resolved, 2+ = ambiguous).
int Parser::resolve_in(const std::vector<TableRef>& scope, const ColRef& r) {
  int n = 0;
  for (const TableRef& t : scope) {
    if (!r.qual.empty() && r.qual != t.name()) continue;
    if (std::find(t.table->columns.begin(), t.table->columns.end(), r.col) != t.table->columns.end()) ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Column references

// [qualifier .] column. Before FROM any known column may be named (checked when FROM ends);
// after it, only columns of the tables in scope, unambiguously.
bool Parser::colref(Core& core) {
  Mark m = mark();
  std::vector<std::string> quals;
  std::vector<std::string> cols;
  if (core.from_done) {
    // Only columns that name exactly one table of the scope may be written bare.
    for (const TableRef& t : core.scope) {
      quals.push_back(t.name());
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
    succeed_if_column_follows(core, qual, qualified_columns(core, qual, cols));
  }
  if (q >= 0 && punct(".")) {
    std::string qual = quals[static_cast<size_t>(q)];
    std::vector<std::string> qcols = qualified_columns(core, qual, cols);
    if (prefix_ && at_end()) {
      // "qualifier." ends the text: some column must be able to follow.
      succeed_if_column_follows(core, qual, qcols);
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

// The columns "qual." may go on with: after FROM those of the scope's tables named `qual`,
// before it every `known` column (FROM is checked when it ends).
std::vector<std::string> Parser::qualified_columns(const Core& core, const std::string& qual,
                                                   const std::vector<std::string>& known) const {
  if (!core.from_done) return known;
  std::vector<std::string> qcols;
  for (const TableRef& t : core.scope)
    if (t.name() == qual) qcols.insert(qcols.end(), t.table->columns.begin(), t.table->columns.end());
  return qcols;
}

// Throws PrefixOk when some column of `qcols`, qualified by `qual`, would be accepted here.
void Parser::succeed_if_column_follows(Core& core, const std::string& qual, const std::vector<std::string>& qcols) {
  for (const std::string& c : qcols) {
    Mark cm = mark();
    const bool ok = accept_ref(core, ColRef{qual, c});
    reset(cm);
    if (ok) throw PrefixOk{};
  }
}

bool Parser::accept_ref(Core& core, const ColRef& r) {
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

}  // namespace kexa::sql::detail
