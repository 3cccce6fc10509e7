// Values a question names, looked up in the database's own rows (the column samples hold only a
// few): "'red jeans' 제품을 공급한 ..." names a row of Products whether or not it was sampled.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>

#include "sql/sql.h"

namespace kexa::sql {
namespace {

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e + 1 - b);
}

std::string quote_ident(const std::string& name) {
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// A table name as SQL: PostgreSQL names tables outside "public" schema.table.
std::string table_ref(const std::string& name, bool postgres) {
  size_t dot = name.find('.');
  if (!postgres || dot == std::string::npos) return quote_ident(name);
  return quote_ident(name.substr(0, dot)) + "." + quote_ident(name.substr(dot + 1));
}

std::string literal(const std::string& v) {
  std::string q = "'";
  for (char c : v) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

bool is_text_type(const std::string& type) {
  std::string t = lowered(type);
  return t.empty() || t.find("char") != std::string::npos || t.find("text") != std::string::npos ||
         t.find("clob") != std::string::npos || t.find("string") != std::string::npos;
}

bool latin_word_char(unsigned char c) { return std::isalnum(c) || c == '.' || c == '-' || c == '\'' || c == '&'; }

}  // namespace

std::vector<std::string> question_value_spans(const std::string& question) {
  std::vector<std::string> out;
  auto add = [&](std::string v) {
    v = trim(v);
    while (!v.empty() && (v.back() == '.' || v.back() == '?' || v.back() == ',')) v.pop_back();
    bool digits = std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c) || c == '.' || c == '-'; });
    if (v.size() >= 2 && v.size() <= 80 && !digits && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  };
  // Quoted spans: '...', "...", and the typographic quotes.
  const std::pair<std::string, std::string> quotes[] = {{"'", "'"}, {"\"", "\""}, {"\xE2\x80\x98", "\xE2\x80\x99"}, {"\xE2\x80\x9C", "\xE2\x80\x9D"}};
  for (const auto& [open, close] : quotes) {
    for (size_t b = question.find(open); b != std::string::npos; b = question.find(open, b)) {
      // An apostrophe inside a word ("driver's") opens nothing.
      if (open == "'" && b > 0 && std::isalpha(static_cast<unsigned char>(question[b - 1]))) {
        b += 1;
        continue;
      }
      size_t e = question.find(close, b + open.size());
      if (e == std::string::npos) break;
      add(question.substr(b + open.size(), e - b - open.size()));
      b = e + close.size();
    }
  }
  // Between Hangul, a run of Latin words is a name or a value ("Aberdeen에 도착하는", "Jetblue
  // Airways는"); in an English question a run of capitalised words after its first word is.
  bool hangul = false;
  for (size_t i = 0; i + 2 < question.size() && !hangul; ++i)
    hangul = static_cast<unsigned char>(question[i]) >= 0xEA && static_cast<unsigned char>(question[i]) <= 0xED;
  std::string run;
  bool first_word = true;
  for (size_t i = 0; i <= question.size();) {
    unsigned char c = i < question.size() ? static_cast<unsigned char>(question[i]) : 0;
    if (c != 0 && std::isalnum(c)) {
      size_t b = i;
      while (i < question.size() && latin_word_char(static_cast<unsigned char>(question[i]))) ++i;
      std::string w = question.substr(b, i - b);
      bool keep = hangul || (!first_word && std::isupper(static_cast<unsigned char>(w[0])));
      first_word = false;
      if (keep) {
        run += (run.empty() ? "" : " ") + w;
        continue;
      }
      if (!run.empty()) add(run);
      run.clear();
      continue;
    }
    if (c == ' ' && !run.empty()) {
      ++i;
      continue;
    }
    if (!run.empty()) add(run);
    run.clear();
    if (c == 0) break;
    ++i;
  }
  return out;
}

void add_question_values(Executor& db, Schema& schema, const std::string& question, size_t max_columns) {
  std::vector<std::string> spans = question_value_spans(question);
  if (spans.empty()) return;
  const bool postgres = db.dialect() == "postgresql";
  std::string in;
  for (const std::string& s : spans) in += (in.empty() ? "" : ", ") + literal(lowered(s));
  size_t checked = 0;
  // A large database must not stall the question: each lookup and all of them together are capped.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  for (Table& t : schema.tables) {
    for (Column& c : t.columns) {
      if (!is_text_type(c.type) || checked++ >= max_columns || std::chrono::steady_clock::now() > deadline) continue;
      std::string col = quote_ident(c.name);
      std::string sql = "SELECT DISTINCT " + col + " FROM " + table_ref(t.name, postgres) + " WHERE lower(trim(" + col +
                        ")) IN (" + in + ") LIMIT 4";
      try {
        Limits lim;
        lim.max_rows = 4;
        lim.timeout_ms = 100;
        Result r = db.execute(sql, lim);
        for (auto& row : r.rows) {
          if (row.empty() || !row[0].is_string()) continue;
          std::string v = row[0].get<std::string>();
          if (std::find(c.samples.begin(), c.samples.end(), v) == c.samples.end()) c.samples.push_back(v);
        }
      } catch (const std::exception&) {
        // A column the lookup cannot read (a view's odd type, a timeout) names nothing.
      }
    }
  }
}

}  // namespace kexa::sql
