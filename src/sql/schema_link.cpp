// Model-free schema linking: lexical overlap of the question with table and column names and
// sample values, weighted by how rare a word is in the schema, plus join bridges over foreign
// keys. Korean is matched by syllable bigrams, since Korean words inflect by suffixes.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "sql/sql.h"

namespace kexa::sql {
namespace {

std::string stem(std::string w) {
  static const std::map<std::string, std::string> irregular = {
      {"people", "person"}, {"children", "child"}, {"men", "man"}, {"women", "woman"},
      {"countries", "country"}, {"cities", "city"}, {"feet", "foot"}, {"mice", "mouse"}};
  if (auto it = irregular.find(w); it != irregular.end()) return it->second;
  size_t n = w.size();
  if (n > 4 && w.compare(n - 3, 3, "ies") == 0) return w.substr(0, n - 3) + "y";
  if (n > 4 && (w.compare(n - 4, 4, "ches") == 0 || w.compare(n - 4, 4, "shes") == 0 ||
                w.compare(n - 3, 3, "xes") == 0 || w.compare(n - 3, 3, "ses") == 0)) {
    return w.substr(0, n - 2);
  }
  if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') return w.substr(0, n - 1);
  return w;
}

bool is_stop(const std::string& w) {
  static const std::set<std::string> stop = {
      "the", "a", "an", "of", "what", "which", "who", "whose", "how", "many", "much", "is", "are",
      "was", "were", "in", "on", "for", "with", "and", "or", "to", "by", "show", "list", "give",
      "find", "all", "each", "that", "have", "ha", "had", "do", "doe", "did", "their", "it", "its",
      "from", "at", "as", "be", "there", "than", "more", "most", "least", "number", "count",
      "me", "return", "tell", "those", "these", "this", "any", "not", "no", "only", "also",
      "order", "sorted", "sort", "descending", "ascending", "both", "either", "between", "per",
      "whom", "where", "when", "they", "them", "different", "distinct", "total", "average",
      "maximum", "minimum", "max", "min", "sum", "avg", "if", "but", "i", "we", "you",
      "please", "id", "ids", "name", "names", "value", "values", "times", "among", "over"};
  return stop.count(w) > 0;
}

// Splits into lowercased, stemmed ASCII words (snake_case, camelCase and digits split) and
// bigrams of non-ASCII characters (Korean syllables).
std::vector<std::string> tokens(const std::string& s, bool drop_stop) {
  std::vector<std::string> out;
  std::string word;
  auto flush_word = [&] {
    if (word.empty()) return;
    std::string w = word;
    word.clear();
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    w = stem(w);
    if (drop_stop && is_stop(w)) return;
    out.push_back(w);
  };
  std::vector<std::string> run;  // non-ASCII characters of the current run
  auto flush_run = [&] {
    if (run.size() == 1) out.push_back(run[0]);
    for (size_t i = 0; i + 1 < run.size(); ++i) out.push_back(run[i] + run[i + 1]);
    run.clear();
  };
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      flush_word();
      size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      run.push_back(s.substr(i, len));
      i += len;
      continue;
    }
    flush_run();
    if (std::isalnum(c)) {
      bool upper = std::isupper(c);
      bool digit = std::isdigit(c);
      if (!word.empty()) {
        char prev = word.back();
        bool boundary = (upper && std::islower(static_cast<unsigned char>(prev))) ||
                        (digit != static_cast<bool>(std::isdigit(static_cast<unsigned char>(prev))));
        if (boundary) flush_word();
      }
      word += static_cast<char>(c);
    } else {
      flush_word();
    }
    ++i;
  }
  flush_word();
  flush_run();
  return out;
}

// How well a question word matches a schema word: exact, or one a prefix of the other
// ("nation"/"nationality", "emp"/"employee") when long enough to mean something.
double word_match(const std::string& q, const std::string& n) {
  if (q == n) return 1.0;
  size_t m = std::min(q.size(), n.size());
  if (m >= 4 && (q.compare(0, m, n, 0, m) == 0)) return 0.6;
  return 0.0;
}

}  // namespace

LinkResult link_schema(const Schema& schema, const std::string& question, const LinkOptions& opt) {
  const size_t n = schema.tables.size();
  LinkResult r;
  r.scores.assign(n, 0.0);
  if (n == 0) return r;
  std::vector<std::string> q = tokens(question, true);
  std::set<std::string> qset(q.begin(), q.end());
  std::string qlower = question;
  std::transform(qlower.begin(), qlower.end(), qlower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });

  // Per table: words of its name, words of its column names.
  std::vector<std::set<std::string>> tname(n), cnames(n);
  for (size_t t = 0; t < n; ++t) {
    for (auto& w : tokens(schema.tables[t].name, false)) tname[t].insert(w);
    for (const Column& c : schema.tables[t].columns) {
      for (auto& w : tokens(c.name, false)) cnames[t].insert(w);
    }
  }
  // Rarity of a question word across tables: a word every table has ("name") says little.
  auto idf = [&](const std::string& w) {
    size_t df = 0;
    for (size_t t = 0; t < n; ++t) {
      bool hit = false;
      for (auto& x : tname[t]) hit = hit || word_match(w, x) > 0;
      for (auto& x : cnames[t]) hit = hit || word_match(w, x) > 0;
      df += hit;
    }
    return std::log(1.0 + static_cast<double>(n + 1) / static_cast<double>(df + 1));
  };
  for (const std::string& w : qset) {
    double weight = idf(w);
    for (size_t t = 0; t < n; ++t) {
      double best_t = 0, best_c = 0;
      for (auto& x : tname[t]) {
        best_t = std::max(best_t, word_match(w, x));
        // Compound names without separators ("satscores") contain the question's word.
        if (w.size() >= 3 && x.size() > w.size() + 2 && x.find(w) != std::string::npos) best_t = std::max(best_t, 0.5);
      }
      for (auto& x : cnames[t]) best_c = std::max(best_c, word_match(w, x));
      r.scores[t] += weight * (2.0 * best_t + best_c);
    }
  }
  // Sample values quoted or named in the question ("'Alameda'", "France") point at their table.
  for (size_t t = 0; t < n; ++t) {
    for (const Column& c : schema.tables[t].columns) {
      for (const std::string& v : c.samples) {
        if (v.size() < 3) continue;
        std::string vl = v;
        std::transform(vl.begin(), vl.end(), vl.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        bool numeric = std::all_of(vl.begin(), vl.end(), [](unsigned char ch) { return std::isdigit(ch) || ch == '.' || ch == '-'; });
        if (numeric) continue;
        size_t pos = qlower.find(vl);
        if (pos == std::string::npos) continue;
        bool left = pos == 0 || !std::isalnum(static_cast<unsigned char>(qlower[pos - 1]));
        size_t end = pos + vl.size();
        bool right = end >= qlower.size() || !std::isalnum(static_cast<unsigned char>(qlower[end]));
        if (left && right) r.scores[t] += 1.0;
      }
    }
  }

  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r.scores[a] > r.scores[b]; });
  double top = r.scores[order[0]];
  std::vector<bool> chosen(n, false);
  chosen[order[0]] = true;
  for (size_t i = 1; i < n; ++i) {
    size_t t = order[i];
    if (top > 0 && r.scores[t] >= opt.keep_ratio * top) chosen[t] = true;
  }

  // Foreign keys as an undirected graph; a link table between two chosen tables is needed for
  // the join even when the question never names it (singer_in_concert between singer, concert).
  std::vector<std::set<size_t>> adj(n);
  for (size_t t = 0; t < n; ++t) {
    for (const ForeignKey& f : schema.tables[t].foreign_keys) {
      int o = schema.find(f.ref_table);
      if (o >= 0 && static_cast<size_t>(o) != t) {
        adj[t].insert(static_cast<size_t>(o));
        adj[static_cast<size_t>(o)].insert(t);
      }
    }
  }
  std::vector<size_t> picked;
  for (size_t t = 0; t < n; ++t) if (chosen[t]) picked.push_back(t);
  // Join partners the question also touches (singer for singer_in_concert) come along.
  for (size_t t : picked) {
    for (size_t o : adj[t]) {
      if (top > 0 && r.scores[o] > opt.neighbour_ratio * top) chosen[o] = true;
    }
  }
  picked.clear();
  for (size_t t = 0; t < n; ++t) if (chosen[t]) picked.push_back(t);
  for (size_t i = 0; i < picked.size(); ++i) {
    for (size_t j = i + 1; j < picked.size(); ++j) {
      size_t a = picked[i], b = picked[j];
      if (adj[a].count(b)) continue;
      long best = -1;
      for (size_t c : adj[a]) {
        if (adj[b].count(c) && (best < 0 || r.scores[c] > r.scores[static_cast<size_t>(best)])) best = static_cast<long>(c);
      }
      if (best >= 0) chosen[static_cast<size_t>(best)] = true;
    }
  }
  for (size_t t : order) {
    if (chosen[t]) r.tables.push_back(schema.tables[t].name);
  }
  return r;
}

std::vector<std::string> tables_in_sql(const Schema& schema, const std::string& sql) {
  // Scans "FROM a [AS x], b" and "JOIN a [x]" by hand (std::regex trips GCC 12 warnings under
  // the sanitizer build); identifiers may be quoted with "", `` or [], string literals skipped.
  std::set<std::string> seen;
  std::vector<std::string> out;
  const size_t n = sql.size();
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  auto skip_space = [&](size_t i) {
    while (i < n && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    return i;
  };
  auto lower = [](std::string w) {
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return w;
  };
  // Reads one identifier at i; returns its text (empty if none) and moves i past it.
  auto ident = [&](size_t& i, bool& quoted) {
    quoted = false;
    if (i >= n) return std::string();
    char open = sql[i];
    char close = open == '[' ? ']' : open;
    if (open == '"' || open == '`' || open == '[') {
      size_t e = sql.find(close, i + 1);
      if (e == std::string::npos) return std::string();
      std::string w = sql.substr(i + 1, e - i - 1);
      i = e + 1;
      quoted = true;
      return w;
    }
    size_t b = i;
    while (i < n && is_word(sql[i])) ++i;
    return sql.substr(b, i - b);
  };
  static const std::set<std::string> clause = {
      "where", "join", "on", "group", "order", "limit", "union", "intersect", "except", "having",
      "left", "right", "inner", "outer", "cross", "natural", "full", "using", "window"};
  auto add = [&](const std::string& name) {
    int t = schema.find(name);
    if (t >= 0 && seen.insert(schema.tables[static_cast<size_t>(t)].name).second) {
      out.push_back(schema.tables[static_cast<size_t>(t)].name);
    }
  };
  for (size_t i = 0; i < n;) {
    char c = sql[i];
    if (c == '\'') {  // string literal: '' escapes a quote
      ++i;
      while (i < n && !(sql[i] == '\'' && (i + 1 >= n || sql[i + 1] != '\''))) i += sql[i] == '\'' ? 2 : 1;
      ++i;
      continue;
    }
    if (!is_word(c) || (i > 0 && is_word(sql[i - 1]))) {
      ++i;
      continue;
    }
    size_t b = i;
    while (i < n && is_word(sql[i])) ++i;
    std::string kw = lower(sql.substr(b, i - b));
    if (kw != "from" && kw != "join") continue;
    for (;;) {
      i = skip_space(i);
      bool quoted = false;
      std::string table = ident(i, quoted);
      if (table.empty()) break;
      add(table);
      i = skip_space(i);
      size_t save = i;
      bool q2 = false;
      std::string alias = ident(i, q2);
      if (!alias.empty() && !q2 && lower(alias) == "as") {
        i = skip_space(i);
        ident(i, q2);
      } else if (alias.empty() || (!q2 && clause.count(lower(alias)))) {
        i = save;
      }
      i = skip_space(i);
      if (i < n && sql[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
  }
  return out;
}

std::vector<std::pair<std::string, Schema>> schemas_from_spider_json(const nlohmann::json& tables) {
  std::vector<std::pair<std::string, Schema>> out;
  for (const auto& db : tables) {
    Schema s;
    const auto& tnames = db.at("table_names_original");
    for (const auto& t : tnames) s.tables.push_back({t.get<std::string>(), {}, {}});
    const auto& cols = db.at("column_names_original");
    const auto& types = db.at("column_types");
    std::vector<std::pair<int, std::string>> colref;  // column index -> (table, name)
    for (size_t i = 0; i < cols.size(); ++i) {
      int t = cols[i][0].get<int>();
      std::string name = cols[i][1].get<std::string>();
      colref.emplace_back(t, name);
      if (t >= 0) {
        s.tables[static_cast<size_t>(t)].columns.push_back({name, types.at(i).get<std::string>(), false, {}});
      }
    }
    for (const auto& fk : db.at("foreign_keys")) {
      auto from = colref.at(fk[0].get<size_t>());
      auto to = colref.at(fk[1].get<size_t>());
      if (from.first < 0 || to.first < 0) continue;
      s.tables[static_cast<size_t>(from.first)].foreign_keys.push_back(
          {from.second, s.tables[static_cast<size_t>(to.first)].name, to.second});
    }
    out.emplace_back(db.at("db_id").get<std::string>(), std::move(s));
  }
  return out;
}

}  // namespace kexa::sql
