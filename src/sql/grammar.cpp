// SqlGrammar's entry points and its lexer; the parser is in grammar_parser.cpp and
// grammar_scope.cpp.
#include "sql/grammar.h"

#include <algorithm>
#include <set>

#include "sql/grammar_parse.h"

namespace kexa::sql {

namespace detail {

namespace {
// Longest token of each kind the lexer accepts, in bytes, and most blanks between two tokens.
constexpr size_t kMaxWord = 64;
constexpr size_t kMaxString = 32;
constexpr size_t kMaxNumber = 12;
constexpr size_t kMaxSpace = 2;
}  // namespace

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return o;
}

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

}  // namespace detail

using namespace detail;

namespace {

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

// The ways of finishing the last lexeme of `lx`, an open word or quoted name: a keyword, a table
// or column name, an alias, a name written earlier in the text (a CTE), or the word as it stands.
std::set<std::string, std::less<>> completions(const SqlGrammar::Names& names, const std::vector<Lex>& lx) {
  const Lex& last = lx.back();
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
  return cands;
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
  // finishing that word leads on. Accepting the bare start of a name that no continuation can
  // use ("JOIN conce" when joining concert again would be ambiguous) would let a constrained
  // model write itself into a dead end.
  if (!parse(names, lx, true, text.size())) return false;  // cheap rejection first
  const Lex last = lx.back();
  for (const std::string& c : completions(names, lx)) {
    if (last.kind == Kind::Word && c.size() > kMaxWord) continue;
    lx.back() = Lex{last.kind, c, false, last.at};
    if (parse(names, lx, true, text.size())) return true;
  }
  return false;
}

}  // namespace

bool plain_identifier(std::string_view s) {
  if (s.empty() || s.size() > kMaxWord || !ident_char(s[0], true)) return false;
  for (char c : s)
    if (!ident_char(c, false)) return false;
  return !reserved().count(lower(s));
}

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

}  // namespace kexa::sql
