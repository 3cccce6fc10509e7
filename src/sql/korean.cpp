#include "sql/korean.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <sstream>

#include "util/korean.h"
#include "util/utf8.h"

namespace kexa::sql {
namespace {

const char kLexicon[] =
#include "sql/ko_lexicon.inc"
    ;

struct Lexicon {
  std::map<std::string, std::vector<std::string>> entries;  // Korean noun -> English alternatives
  size_t max_syllables = 1;
};

const Lexicon& lexicon() {
  static const Lexicon lex = [] {
    Lexicon l;
    std::istringstream in(kLexicon);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      size_t tab = line.find('\t');
      if (tab == std::string::npos) continue;
      std::string ko = line.substr(0, tab);
      auto& alts = l.entries[ko];
      std::string rest = line.substr(tab + 1);
      for (size_t b = 0; b <= rest.size();) {
        size_t e = rest.find('|', b);
        if (e == std::string::npos) e = rest.size();
        if (e > b) alts.push_back(rest.substr(b, e - b));
        b = e + 1;
      }
      l.max_syllables = std::max(l.max_syllables, ko.size() / 3);
    }
    return l;
  }();
  return lex;
}

bool is_hangul_syllable(uint32_t cp) { return cp >= 0xAC00 && cp <= 0xD7A3; }

// Counters after a number ("3개", "몇 명"): "개" there counts things, it is not a dog.
const char* const kCounters[] = {"가지", "마리", "개", "명", "번", "곳", "편", "대", "장", "권", "건", "채", "회", "위"};

// One eojeol (Hangul syllables only, three bytes each) read into lexicon nouns; `counted`: it
// follows a number, so a counter at its start is skipped.
void read_eojeol(const std::string& w, bool counted, std::vector<std::string>& out) {
  const Lexicon& lex = lexicon();
  const size_t n = w.size() / 3;
  bool after_noun = false;
  size_t start = 0;
  if (counted) {
    for (const char* c : kCounters) {
      std::string_view cv(c);
      if (w.compare(0, cv.size(), cv) == 0) {
        start = cv.size() / 3;
        break;
      }
    }
  }
  for (size_t i = start; i < n;) {
    size_t found = 0;
    for (size_t len = std::min(lex.max_syllables, n - i); len >= 1 && !found; --len) {
      auto it = lex.entries.find(w.substr(i * 3, len * 3));
      if (it == lex.entries.end()) continue;
      if (len == 1) {
        // A one-syllable noun: a word of its own ("수가") or a compound's last noun ("등록일").
        std::string rest = w.substr((i + 1) * 3);
        bool ends = rest.empty() || is_korean_particle(rest);
        if (!ends || (i > start && !after_noun)) continue;
      }
      found = len;
      for (const auto& e : it->second) out.push_back(e);
    }
    after_noun = found > 0;
    i += found ? found : 1;
  }
}

}  // namespace

std::vector<std::string> korean_english_words(const std::string& question) {
  std::vector<std::string> out;
  std::string word;
  bool counted = false;  // the current eojeol follows a number ("3개", "10 명", "몇 개")
  bool number = false;   // the last word seen was a number
  auto flush = [&] {
    if (word.empty()) return;
    read_eojeol(word, counted, out);
    number = word == "몇";
    word.clear();
  };
  for (size_t i = 0; i < question.size();) {
    Utf8Char c = decode_utf8(question, i);
    if (c.cp != kInvalidUtf8 && is_hangul_syllable(c.cp)) {
      if (word.empty()) counted = number;
      word.append(question, i, c.len);
    } else {
      flush();
      if (c.cp >= '0' && c.cp <= '9') number = true;
      else if (c.cp != ' ') number = false;
    }
    i += c.len;
  }
  flush();
  return out;
}

}  // namespace kexa::sql
