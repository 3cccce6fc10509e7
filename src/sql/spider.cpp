// Spider/BIRD data for measuring schema linking (bench/schema-linking, tests): schemas from a
// tables.json and the tables a gold query reads.
#include <algorithm>
#include <cctype>
#include <set>

#include "sql/sql.h"

namespace kexa::sql {

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
    // The natural-language names ("number of test takers" for NumTstTakr) are the dataset's
    // column descriptions; kept when they say more than the name itself.
    auto differs = [](const std::string& nice, const std::string& orig) {
      std::string a, b;
      for (char c : nice) if (std::isalnum(static_cast<unsigned char>(c))) a += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (char c : orig) if (std::isalnum(static_cast<unsigned char>(c))) b += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return a != b;
    };
    if (db.contains("table_names")) {
      const auto& nice = db.at("table_names");
      for (size_t i = 0; i < nice.size() && i < s.tables.size(); ++i) {
        std::string d = nice[i].get<std::string>();
        if (differs(d, s.tables[i].name)) s.tables[i].description = d;
      }
    }
    const nlohmann::json* nice_cols = db.contains("column_names") ? &db.at("column_names") : nullptr;
    const auto& cols = db.at("column_names_original");
    const auto& types = db.at("column_types");
    std::vector<std::pair<int, std::string>> colref;  // column index -> (table, name)
    for (size_t i = 0; i < cols.size(); ++i) {
      int t = cols[i][0].get<int>();
      std::string name = cols[i][1].get<std::string>();
      colref.emplace_back(t, name);
      if (t >= 0) {
        std::string d;
        if (nice_cols && i < nice_cols->size()) d = (*nice_cols)[i][1].get<std::string>();
        s.tables[static_cast<size_t>(t)].columns.push_back(
            {name, types.at(i).get<std::string>(), false, {}, differs(d, name) ? d : std::string()});
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
