// Model-free schema linking: lexical overlap of the question with table and column names and
// sample values, weighted by how rare a word is in the schema, plus join bridges over foreign
// keys. Korean is matched by syllable bigrams, since Korean words inflect by suffixes.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "sql/korean.h"
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
  // Different endings of one stem ("consumed"/"consumption", "attended"/"attendance").
  size_t common = 0;
  while (common < m && q[common] == n[common]) ++common;
  if (common >= 6) return 0.5;
  return 0.0;
}

// Lexical variants added to the question's words: the English words its Korean nouns name
// (sql/korean.h), so that a Korean question reaches an English schema, and English synonyms
// that schema names use interchangeably.
std::vector<std::string> variants(const std::string& question, const std::vector<std::string>& words) {
  static const std::vector<std::vector<std::string>> groups = {
      {"nation", "country"}, {"maker", "manufacturer"}, {"film", "movie"}, {"track", "song"},
      {"employee", "staff", "worker"}, {"teacher", "instructor", "professor"}, {"pupil", "student"},
      {"salary", "wage", "pay"}, {"vehicle", "car", "automobile"}, {"firm", "company"},
      {"town", "city"}, {"cost", "price"}, {"tune", "song"}, {"airport", "airfield"},
      {"kid", "child"}, {"client", "customer"}, {"purchase", "order"}, {"lecture", "course"}};
  std::vector<std::string> out;
  std::set<std::string> have(words.begin(), words.end());
  for (const std::string& phrase : korean_english_words(question)) {
    for (auto& w : tokens(phrase, true)) {
      if (have.insert(w).second) out.push_back(w);
    }
  }
  for (const auto& g : groups) {
    bool hit = std::any_of(g.begin(), g.end(), [&](const std::string& w) { return have.count(w) > 0; });
    if (!hit) continue;
    for (const auto& w : g) if (!have.count(w)) out.push_back(w);
  }
  return out;
}

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The question as the linking steps read it.
struct Question {
  const std::string& text;
  std::string lower;
  std::vector<std::string> words;  // stemmed words without stop words, then their variants
  bool korean = false;             // written in Hangul: Latin words are names, not sentence starts
  std::vector<std::string> all;    // stemmed words with stop words, of the text and its Korean nouns
};

bool has_hangul(const std::string& s) {
  for (size_t i = 0; i + 2 < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0xEA && c <= 0xED) return true;  // lead bytes of U+A000..U+DFFF (Hangul syllables)
  }
  return false;
}

Question read_question(const std::string& question) {
  Question q{question, lowered(question), tokens(question, true), has_hangul(question), tokens(question, false)};
  for (const std::string& phrase : korean_english_words(question))
    for (auto& w : tokens(phrase, false)) q.all.push_back(w);
  for (auto& v : variants(question, q.words)) q.words.push_back(v);
  return q;
}

// Per table: words of its name (and description), words of its column names (and descriptions).
struct SchemaWords {
  std::vector<std::set<std::string>> tname, cnames;
};

SchemaWords schema_words(const Schema& schema) {
  const size_t n = schema.tables.size();
  SchemaWords sw{std::vector<std::set<std::string>>(n), std::vector<std::set<std::string>>(n)};
  for (size_t t = 0; t < n; ++t) {
    for (auto& w : tokens(schema.tables[t].name, false)) sw.tname[t].insert(w);
    for (auto& w : tokens(schema.tables[t].description, true)) sw.tname[t].insert(w);
    for (const Column& c : schema.tables[t].columns) {
      for (auto& w : tokens(c.name, false)) sw.cnames[t].insert(w);
      for (auto& w : tokens(c.description, true)) sw.cnames[t].insert(w);
    }
  }
  return sw;
}

// Foreign keys as an undirected graph over table indices.
using Graph = std::vector<std::set<size_t>>;

// ---------------------------------------------------------------------------------------------
// Scores

// Every question word adds to each table what it matches of the table's and its columns'
// names, weighted by the word's rarity across tables.
void add_word_scores(const Question& question, const SchemaWords& sw, std::vector<double>& scores) {
  const size_t n = scores.size();
  const auto& tname = sw.tname;
  const auto& cnames = sw.cnames;
  std::set<std::string> qset(question.words.begin(), question.words.end());
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
      scores[t] += weight * (2.0 * best_t + best_c);
    }
  }
}

// Sample values quoted or named in the question ("'Alameda'", "France") point at their table
// as strongly as its name would: the query must filter on that column.
void add_value_scores(const Schema& schema, const Question& question, std::vector<double>& scores) {
  const std::string& qlower = question.lower;
  const double value_weight = 3.0;
  for (size_t t = 0; t < scores.size(); ++t) {
    for (const Column& c : schema.tables[t].columns) {
      for (const std::string& v : c.samples) {
        // Stored values often carry stray spaces ("Aberdeen "); the question does not.
        size_t b = v.find_first_not_of(" \t\r\n"), e = v.find_last_not_of(" \t\r\n");
        if (b == std::string::npos || e + 1 - b < 3) continue;
        std::string vl = lowered(v.substr(b, e + 1 - b));
        bool numeric = std::all_of(vl.begin(), vl.end(), [](unsigned char ch) { return std::isdigit(ch) || ch == '.' || ch == '-'; });
        if (numeric) continue;
        size_t pos = qlower.find(vl);
        if (pos == std::string::npos) continue;
        bool left = pos == 0 || !std::isalnum(static_cast<unsigned char>(qlower[pos - 1]));
        size_t end = pos + vl.size();
        bool right = end >= qlower.size() || !std::isalnum(static_cast<unsigned char>(qlower[end]));
        if (left && right) scores[t] += value_weight;
      }
    }
  }
}

// The question's cosine similarity with each table's text, scaled to the lexical scores so that
// it orders tables the words do not tell apart, or reaches one no word names.
void add_embedding_scores(const Schema& schema, const std::string& question, const LinkOptions& opt,
                          std::vector<double>& scores) {
  auto cosine = [](const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      dot += static_cast<double>(a[i]) * b[i];
      na += static_cast<double>(a[i]) * a[i];
      nb += static_cast<double>(b[i]) * b[i];
    }
    return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
  };
  const std::vector<float> qv = opt.embed(question);
  const double scale = opt.embed_weight * std::max(1.0, *std::max_element(scores.begin(), scores.end()));
  for (size_t t = 0; t < scores.size(); ++t) {
    const Table& table = schema.tables[t];
    std::string text = table.name;
    if (!table.description.empty()) text += ": " + table.description;
    for (const Column& c : table.columns) text += (c.description.empty() ? ", " + c.name : ", " + c.name + " (" + c.description + ")");
    scores[t] += scale * std::max(0.0, cosine(qv, opt.embed(text)));
  }
}

// ---------------------------------------------------------------------------------------------
// Tables the question names

// A table the question names outright is needed whatever the scores say: "Table.column"
// (BIRD's evidence writes League.name, T1.power), or every word of the table's name among
// the question's words ("airlines" for airlines, "car makers" for car_makers).
void choose_named_tables(const Schema& schema, const Question& question, std::vector<bool>& chosen) {
  const std::string& qlower = question.lower;
  std::set<std::string> qwords;
  for (auto& w : tokens(question.text, false)) qwords.insert(w);
  qwords.insert(question.all.begin(), question.all.end());
  for (size_t t = 0; t < chosen.size(); ++t) {
    const std::string& name = schema.tables[t].name;
    std::string nl = lowered(name);
    // "name." in the text, not inside a longer word.
    for (size_t pos = qlower.find(nl + "."); pos != std::string::npos; pos = qlower.find(nl + ".", pos + 1)) {
      bool left = pos == 0 || !(std::isalnum(static_cast<unsigned char>(qlower[pos - 1])) || qlower[pos - 1] == '_');
      size_t after = pos + nl.size() + 1;
      bool right = after < qlower.size() && (std::isalpha(static_cast<unsigned char>(qlower[after])) || qlower[after] == '_' || qlower[after] == '`' || qlower[after] == '"');
      if (left && right) chosen[t] = true;
    }
    std::vector<std::string> nw = tokens(name, false);
    bool all = !nw.empty();
    for (auto& w : nw) all = all && qwords.count(w) > 0;
    if (all) chosen[t] = true;
  }
}

// Written as one word in the schema, as two in the question: "gas stations" names gasstations.
void choose_joined_words(const Schema& schema, const Question& question, std::vector<bool>& chosen) {
  std::vector<std::string> qw = tokens(question.text, false);
  std::set<std::string> joined;
  for (size_t i = 0; i + 1 < qw.size(); ++i) joined.insert(stem(qw[i] + qw[i + 1]));
  for (size_t t = 0; t < chosen.size(); ++t) {
    std::vector<std::string> nw = tokens(schema.tables[t].name, false);
    if (nw.size() == 1 && nw[0].size() >= 6 && joined.count(nw[0])) chosen[t] = true;
  }
}

// A question word that is the whole name of a column only one table has ("elements" for
// atom.element, "currency" for customers.Currency) names that table.
void choose_unique_columns(const Schema& schema, const Question& question, std::vector<bool>& chosen) {
  std::set<std::string> qw;
  for (auto& w : tokens(question.text, true)) qw.insert(w);
  std::map<std::string, std::set<size_t>> owners;
  for (size_t t = 0; t < chosen.size(); ++t) {
    for (const Column& col : schema.tables[t].columns) {
      std::vector<std::string> cw = tokens(col.name, false);
      if (cw.size() == 1 && cw[0].size() >= 5) owners[cw[0]].insert(t);
    }
  }
  for (const auto& [w, ts] : owners)
    if (ts.size() == 1 && qw.count(w)) chosen[*ts.begin()] = true;
}

// A column written as code in the question ("DisplayName = 'Harlan'", "bond_type", "element =
// 'cl'": an identifier with an underscore or inner capital, or followed by a comparison) names
// the tables that have it, when at most two do.
void choose_code_columns(const Schema& schema, const Question& q, std::vector<bool>& chosen) {
  const std::string& question = q.text;
  const size_t qn = question.size();
  for (size_t i = 0; i < qn;) {
    unsigned char c = static_cast<unsigned char>(question[i]);
    if (!(std::isalpha(c) || c == '_') || (i > 0 && (std::isalnum(static_cast<unsigned char>(question[i - 1])) || question[i - 1] == '_'))) {
      ++i;
      continue;
    }
    size_t b = i;
    while (i < qn && (std::isalnum(static_cast<unsigned char>(question[i])) || question[i] == '_')) ++i;
    std::string id = question.substr(b, i - b);
    bool code = id.find('_') != std::string::npos;
    for (size_t k = 1; k + 1 < id.size() && !code; ++k)
      code = std::islower(static_cast<unsigned char>(id[k - 1])) && std::isupper(static_cast<unsigned char>(id[k]));
    size_t j = i;
    while (j < qn && question[j] == ' ') ++j;
    if (j < qn && (question[j] == '=' || question[j] == '<' || question[j] == '>' || question[j] == '!')) code = true;
    if (!code) continue;
    std::string idl = lowered(id);
    std::vector<size_t> has;
    for (size_t t = 0; t < chosen.size(); ++t) {
      for (const Column& col : schema.tables[t].columns) {
        if (lowered(col.name) == idl) {
          has.push_back(t);
          break;
        }
      }
    }
    if (!has.empty() && has.size() <= 2)
      for (size_t t : has) chosen[t] = true;
  }
}

// Whether the question holds a person's name ("Tyler Hewitt", "Adela O'Gallagher"): two or more
// capitalised words in a row, none of them a schema word, not opening the sentence.
bool names_a_person(const std::string& question, bool korean, const SchemaWords& sw) {
  std::set<std::string> schema_words;
  for (size_t t = 0; t < sw.tname.size(); ++t) {
    schema_words.insert(sw.tname[t].begin(), sw.tname[t].end());
    schema_words.insert(sw.cnames[t].begin(), sw.cnames[t].end());
  }
  bool person = false;
  size_t run = 0;
  bool sentence_start = true;
  for (size_t i = 0; i < question.size() && !person;) {
    unsigned char c = static_cast<unsigned char>(question[i]);
    if (!std::isalpha(c)) {
      if (c == '.' || c == '?' || c == '!' || c == ';' || c == '"' || c == '\'' || c == ':') {
        if (c != '\'' || i == 0 || !std::isalpha(static_cast<unsigned char>(question[i - 1]))) {
          sentence_start = c != '\'' && c != '"';
          run = 0;
        }
      }
      ++i;
      continue;
    }
    size_t b = i;
    // A name word: letters, with inner capitals and apostrophes (McLaren, O'Gallagher).
    while (i < question.size() && (std::isalpha(static_cast<unsigned char>(question[i])) ||
                                   (question[i] == '\'' && i + 1 < question.size() &&
                                    std::isupper(static_cast<unsigned char>(question[i + 1])))))
      ++i;
    std::string w = question.substr(b, i - b);
    bool cap = std::isupper(static_cast<unsigned char>(w[0])) && w.size() >= 2 &&
               std::islower(static_cast<unsigned char>(w[1]));
    std::string wl = stem(lowered(w));
    bool plain = cap && (!sentence_start || korean) && !is_stop(wl) && !schema_words.count(wl);
    run = plain ? run + 1 : 0;
    if (run >= 2) person = true;
    sentence_start = false;
  }
  return person;
}

// A person's name in the question is a filter on a first/last-name column: the table that holds
// people's names is needed.
void choose_person_tables(const Schema& schema, const Question& question, const SchemaWords& sw,
                          std::vector<bool>& chosen) {
  if (!names_a_person(question.text, question.korean, sw)) return;
  for (size_t t = 0; t < chosen.size(); ++t) {
    bool first = false, last = false;
    for (const Column& c : schema.tables[t].columns) {
      std::set<std::string> cw;
      for (auto& w : tokens(c.name, false)) cw.insert(w);
      first = first || cw.count("first") || cw.count("forename") || cw.count("firstname");
      last = last || cw.count("last") || cw.count("surname") || cw.count("lastname");
    }
    if (first && last) chosen[t] = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Tables needed to join the chosen ones

Graph foreign_key_graph(const Schema& schema) {
  const size_t n = schema.tables.size();
  Graph adj(n);
  for (size_t t = 0; t < n; ++t) {
    for (const ForeignKey& f : schema.tables[t].foreign_keys) {
      int o = schema.find(f.ref_table);
      if (o >= 0 && static_cast<size_t>(o) != t) {
        adj[t].insert(static_cast<size_t>(o));
        adj[static_cast<size_t>(o)].insert(t);
      }
    }
  }
  return adj;
}

std::vector<size_t> chosen_tables(const std::vector<bool>& chosen) {
  std::vector<size_t> picked;
  for (size_t t = 0; t < chosen.size(); ++t) if (chosen[t]) picked.push_back(t);
  return picked;
}

// Attributes the question asks for ("names of poker players", "birth date") that no chosen
// table has but a join partner does: that partner is needed to answer.
void add_attribute_partners(const Schema& schema, const Question& question, const SchemaWords& sw,
                            const Graph& adj, std::vector<bool>& chosen) {
  const size_t n = chosen.size();
  std::vector<std::string> asked = question.words;
  for (auto& w : question.all) {
    if (w == "name" || w == "names") asked.push_back("name");
  }
  std::vector<std::set<std::string>> colw(n);
  for (size_t t = 0; t < n; ++t) {
    for (const Column& c : schema.tables[t].columns) {
      for (auto& w : tokens(c.name, false)) colw[t].insert(w);
      for (auto& w : tokens(c.description, true)) colw[t].insert(w);
    }
  }
  auto has = [&](size_t t, const std::string& w) { return colw[t].count(w) > 0 || sw.tname[t].count(w) > 0; };
  std::vector<bool> add(n, false);
  for (const std::string& w : asked) {
    bool covered = false;
    for (size_t t = 0; t < n && !covered; ++t) covered = chosen[t] && has(t, w);
    if (covered) continue;
    for (size_t t = 0; t < n; ++t) {
      if (!chosen[t]) continue;
      for (size_t o : adj[t]) {
        if (!chosen[o] && colw[o].count(w)) add[o] = true;
      }
    }
  }
  for (size_t t = 0; t < n; ++t) if (add[t]) chosen[t] = true;
}

// A link table between two chosen tables that no foreign key joins directly (client and
// account through disp) is added, the best-scoring one when several would do.
void add_link_tables(const Graph& adj, const std::vector<double>& scores, std::vector<bool>& chosen) {
  const std::vector<size_t> picked = chosen_tables(chosen);
  for (size_t i = 0; i < picked.size(); ++i) {
    for (size_t j = i + 1; j < picked.size(); ++j) {
      size_t a = picked[i], b = picked[j];
      if (adj[a].count(b)) continue;
      // Two candidate link tables are both kept (client and account meet in disp and in
      // district; which one the question means is not lexical); more than two: the best.
      std::vector<size_t> common;
      for (size_t c : adj[a])
        if (adj[b].count(c)) common.push_back(c);
      if (common.size() <= 2) {
        for (size_t c : common) chosen[c] = true;
      } else {
        size_t best = common[0];
        for (size_t c : common)
          if (scores[c] > scores[best]) best = c;
        chosen[best] = true;
      }
    }
  }
}

// Then the chosen tables must join up: each one not yet connected (through chosen tables) to the
// best one's group is linked to it by the shortest foreign-key path, whose intermediate tables
// (link tables such as disp between client and account) are added. Among equally short paths
// the one through higher-scoring tables wins (`order`: tables by score, best first).
void connect_chosen(const Graph& adj, const std::vector<size_t>& order, std::vector<bool>& chosen) {
  const size_t n = chosen.size();
  std::vector<size_t> nbr_order(n);
  for (size_t i = 0; i < n; ++i) nbr_order[i] = order[i];
  std::vector<bool> group(n, false);
  auto grow = [&](size_t from) {  // marks everything reachable from `from` through chosen tables
    std::vector<size_t> st{from};
    group[from] = true;
    while (!st.empty()) {
      size_t x = st.back();
      st.pop_back();
      for (size_t y : adj[x])
        if (chosen[y] && !group[y]) {
          group[y] = true;
          st.push_back(y);
        }
    }
  };
  grow(order[0]);
  for (size_t t : order) {
    if (!chosen[t] || group[t]) continue;
    // Breadth-first from t over all tables to the group, neighbours by score.
    std::vector<long> prev(n, -1);
    std::vector<bool> seen(n, false);
    std::vector<size_t> frontier{t};
    seen[t] = true;
    long hit = -1;
    while (!frontier.empty() && hit < 0) {
      std::vector<size_t> next;
      for (size_t x : frontier) {
        for (size_t y : nbr_order) {
          if (!adj[x].count(y) || seen[y]) continue;
          seen[y] = true;
          prev[y] = static_cast<long>(x);
          if (group[y]) {
            hit = static_cast<long>(y);
            break;
          }
          next.push_back(y);
        }
        if (hit >= 0) break;
      }
      frontier = std::move(next);
    }
    if (hit < 0) continue;  // no foreign-key path: left as it is
    for (long x = prev[static_cast<size_t>(hit)]; x >= 0 && static_cast<size_t>(x) != t; x = prev[static_cast<size_t>(x)])
      chosen[static_cast<size_t>(x)] = true;
    grow(t);
  }
}

}  // namespace

LinkResult link_schema(const Schema& schema, const std::string& question, const LinkOptions& opt) {
  const size_t n = schema.tables.size();
  LinkResult r;
  r.scores.assign(n, 0.0);
  if (n == 0) return r;
  const Question q = read_question(question);
  const SchemaWords sw = schema_words(schema);
  add_word_scores(q, sw, r.scores);
  add_value_scores(schema, q, r.scores);
  if (opt.embed) add_embedding_scores(schema, question, opt, r.scores);

  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r.scores[a] > r.scores[b]; });
  double top = r.scores[order[0]];
  // One more table costs 1/n of the schema: in a large schema a weaker candidate is worth
  // keeping, in a two-table one it is not. The thresholds fall with the table count.
  const double nref = std::max(1.0, opt.size_ref);
  const double scale = std::pow(nref / std::max(nref, static_cast<double>(n)), opt.size_exponent);
  const double keep = opt.keep_ratio * scale, neighbour = opt.neighbour_ratio * scale;
  std::vector<bool> chosen(n, false);
  chosen[order[0]] = true;
  for (size_t i = 1; i < n; ++i) {
    size_t t = order[i];
    if (top > 0 && r.scores[t] >= keep * top) chosen[t] = true;
  }
  choose_named_tables(schema, q, chosen);
  choose_joined_words(schema, q, chosen);
  choose_unique_columns(schema, q, chosen);
  choose_code_columns(schema, q, chosen);
  choose_person_tables(schema, q, sw, chosen);

  // Foreign keys as an undirected graph; a link table between two chosen tables is needed for
  // the join even when the question never names it (singer_in_concert between singer, concert).
  const Graph adj = foreign_key_graph(schema);
  // Join partners the question also touches (singer for singer_in_concert) come along.
  for (size_t t : chosen_tables(chosen)) {
    for (size_t o : adj[t]) {
      if (top > 0 && r.scores[o] > neighbour * top) chosen[o] = true;
    }
  }
  add_attribute_partners(schema, q, sw, adj, chosen);
  add_link_tables(adj, r.scores, chosen);
  connect_chosen(adj, order, chosen);
  for (size_t t : order) {
    if (chosen[t]) r.tables.push_back(schema.tables[t].name);
  }
  return r;
}

}  // namespace kexa::sql
