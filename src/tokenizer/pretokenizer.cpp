#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "tokenizer/json_fields.h"
#include "tokenizer/steps_impl.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace kexa::tok {

namespace {

inline Utf8Char char_at(std::string_view s, size_t i) {
  const uint8_t b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) return {b, 1};
  return decode_utf8(s, i);
}

inline bool is_other(CharClass k) { return k == kOther || k == kMark; }

// GPT-2 '\s+(?!\S)|\s+' starting at a whitespace character.
inline size_t whitespace_end(std::string_view s, size_t i) {
  const size_t n = s.size();
  size_t j = i, last = i, count = 0;
  while (j < n) {
    Utf8Char d = char_at(s, j);
    if (char_class(d.cp) != kSpace) break;
    last = j;
    j += d.len;
    ++count;
  }
  if (j == n || count < 2) return j;
  return last;  // leave the last space to prefix the following word
}

inline uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// '(s|t|re|ve|m|ll|d) at i (s[i] == '\''); returns the match length or 0. With fold_case the
// letters match in either ASCII case, and U+017F LATIN SMALL LETTER LONG S matches 's', as
// Oniguruma's (?i:...) does.
size_t contraction(std::string_view s, size_t i, bool fold_case) {
  const size_t n = s.size();
  if (i + 1 >= n) return 0;
  const Utf8Char a = char_at(s, i + 1);
  const uint32_t la = !fold_case ? a.cp : a.cp == 0x17F ? 's' : ascii_lower(a.cp);
  if (la == 's' || la == 't' || la == 'm' || la == 'd') return 1 + a.len;
  if (i + 1 + a.len < n) {
    const uint32_t b = static_cast<uint8_t>(s[i + 1 + a.len]);
    const uint32_t lb = fold_case ? ascii_lower(b) : b;
    if (((la == 'r' || la == 'v') && lb == 'e') || (la == 'l' && lb == 'l')) return 2 + a.len;
  }
  return 0;
}

// The GPT-2 family of split patterns, whose alternatives cover the whole text and all begin with
// the contractions: at each position a contraction, else the piece that ends at
// rest(s, i, c) (c: the character at i).
template <typename Rest>
void split_pieces(std::string_view s, bool fold_case, std::vector<Span>& out, Rest&& rest) {
  size_t i = 0;
  while (i < s.size()) {
    const Utf8Char c = char_at(s, i);
    const size_t len = c.cp == '\'' ? contraction(s, i, fold_case) : 0;
    const size_t end = len != 0 ? i + len : rest(s, i, c);
    out.push_back({uint32_t(i), uint32_t(end)});
    i = end;
  }
}

// GPT-2 after the contractions: ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+'.
size_t gpt2_piece_end(std::string_view s, size_t i, Utf8Char c) {
  const size_t n = s.size();
  CharClass k = char_class(c.cp);
  size_t j = i + c.len;
  if (c.cp == ' ' && j < n) {
    Utf8Char d = char_at(s, j);
    CharClass kd = char_class(d.cp);
    if (kd != kSpace) {
      k = kd;
      j += d.len;
    }
  }
  if (k == kSpace) return whitespace_end(s, i);
  while (j < n) {
    Utf8Char d = char_at(s, j);
    CharClass kd = char_class(d.cp);
    if (k == kLetter ? kd != kLetter : k == kNumber ? kd != kNumber : !is_other(kd)) break;
    j += d.len;
  }
  return j;
}

// SuperBPE after its case-insensitive contractions (1.), alternatives 2. to 7.
size_t superbpe_piece_end(std::string_view s, size_t i, Utf8Char c) {
  const size_t n = s.size();
  const CharClass k = char_class(c.cp);
  // 2. [^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+  — letters may continue across
  // single ASCII spaces (the "superword" pieces).
  size_t letters = std::string_view::npos;
  if (k == kLetter) {
    letters = i;
  } else if (c.cp != '\r' && c.cp != '\n' && k != kNumber && i + c.len < n &&
             char_class(char_at(s, i + c.len).cp) == kLetter) {
    letters = i + c.len;
  }
  if (letters != std::string_view::npos) {
    size_t j = letters + char_at(s, letters).len;
    while (j < n) {
      Utf8Char d = char_at(s, j);
      CharClass kd = char_class(d.cp);
      if (kd == kLetter || kd == kMark) {
        j += d.len;
      } else if (d.cp == ' ' && j + 1 < n && char_class(char_at(s, j + 1).cp) == kLetter) {
        j += 1 + char_at(s, j + 1).len;
      } else {
        break;
      }
    }
    return j;
  }
  // 3. \p{N}: one digit at a time.
  if (k == kNumber) return i + c.len;
  // 4. ' ?[^\s\p{L}\p{N}]+[\r\n/]?'
  size_t run = std::string_view::npos;
  if (is_other(k)) {
    run = i;
  } else if (c.cp == ' ' && i + 1 < n && is_other(char_class(char_at(s, i + 1).cp))) {
    run = i + 1;
  }
  if (run != std::string_view::npos) {
    size_t j = run;
    while (j < n) {
      Utf8Char d = char_at(s, j);
      if (!is_other(char_class(d.cp))) break;
      j += d.len;
    }
    if (j < n && (s[j] == '\r' || s[j] == '\n' || s[j] == '/')) ++j;
    return j;
  }
  // Whitespace. 5. '\s*[\r\n]': up to the last CR/LF of the run, if it has one.
  size_t j = i, last_nl = std::string_view::npos;
  while (j < n) {
    Utf8Char d = char_at(s, j);
    if (char_class(d.cp) != kSpace) break;
    if (d.cp == '\r' || d.cp == '\n') last_nl = j;
    j += d.len;
  }
  if (last_nl != std::string_view::npos) return last_nl + 1;
  // 6./7. '\s+(?!\S)|\s+'
  return whitespace_end(s, i);
}

}  // namespace

void match_gpt2(std::string_view s, std::vector<Span>& out) { split_pieces(s, false, out, gpt2_piece_end); }

void match_superbpe(std::string_view s, std::vector<Span>& out) {
  split_pieces(s, true, out, superbpe_piece_end);
}

void match_digits(std::string_view s, bool individual, std::vector<Span>& out) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    Utf8Char c = char_at(s, i);
    if (char_class(c.cp) != kNumber) {
      i += c.len;
      continue;
    }
    size_t j = i + c.len;
    if (!individual) {
      while (j < n) {
        Utf8Char d = char_at(s, j);
        if (char_class(d.cp) != kNumber) break;
        j += d.len;
      }
    }
    out.push_back({uint32_t(i), uint32_t(j)});
    i = j;
  }
}

// ---------------------------------------------------------------------------------------------

namespace {

// Oniguruma's \s is Unicode White_Space, which includes U+0085; PCRE2's (with UCP) does not.
std::string onig_compatible(std::string_view pat) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pat.size(); ++i) {
    char c = pat[i];
    if (c == '\\' && i + 1 < pat.size()) {
      char e = pat[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (e == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < pat.size() && pat[i + 1] == '^') out += pat[++i];
      if (i + 1 < pat.size() && pat[i + 1] == ']') out += pat[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct Pcre2CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};

}  // namespace

class Matcher {
 public:
  enum Kind { kGpt2, kSuperBpe, kDigit, kRegex, kLiteral, kWhitespaceChar, kChar };

  static std::shared_ptr<const Matcher> fast(Kind kind) {
    auto m = std::make_shared<Matcher>();
    m->kind_ = kind;
    return m;
  }
  static std::shared_ptr<const Matcher> literal(std::string text) {
    auto m = std::make_shared<Matcher>();
    m->kind_ = kLiteral;
    m->literal_ = std::move(text);
    return m;
  }
  static std::shared_ptr<const Matcher> regex(const std::string& pattern, const std::string& where) {
    if (pattern == kGpt2Pattern) return fast(kGpt2);
    if (pattern == kSuperBpePattern) return fast(kSuperBpe);
    auto m = std::make_shared<Matcher>();
    m->kind_ = kRegex;
    std::string pat = onig_compatible(pattern);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err,
                                     &err_off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail(where, ": cannot compile regex '", pattern, "' at offset ", err_off, ": ",
           reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to interpreter
    m->code_.reset(code, Pcre2CodeDeleter());
    return m;
  }

  // Non-overlapping matches in s, in order. Empty matches are dropped (they split nothing).
  void find(std::string_view s, std::vector<Span>& out) const {
    switch (kind_) {
      case kGpt2: match_gpt2(s, out); return;
      case kSuperBpe: match_superbpe(s, out); return;
      case kDigit: match_digits(s, true, out); return;
      case kWhitespaceChar:
        for (size_t i = 0; i < s.size();) {
          Utf8Char c = char_at(s, i);
          if (char_class(c.cp) == kSpace) out.push_back({uint32_t(i), uint32_t(i + c.len)});
          i += c.len;
        }
        return;
      case kLiteral:
      case kChar: {
        if (literal_.empty()) return;
        for (size_t pos = s.find(literal_); pos != std::string_view::npos;
             pos = s.find(literal_, pos + literal_.size())) {
          out.push_back({uint32_t(pos), uint32_t(pos + literal_.size())});
        }
        return;
      }
      case kRegex: {
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_.get(), nullptr);
        size_t off = 0;
        while (off <= s.size()) {
          int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), off,
                               0, md, nullptr);
          if (rc < 0) break;
          PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
          size_t b = ov[0], e = ov[1];
          if (e > b) {
            out.push_back({uint32_t(b), uint32_t(e)});
            off = e;
          } else {
            if (b >= s.size()) break;
            off = b + char_at(s, b).len;
          }
        }
        pcre2_match_data_free(md);
        return;
      }
    }
  }

 private:
  Kind kind_ = kGpt2;
  std::string literal_;
  std::shared_ptr<pcre2_code> code_;  // shared: compiled once, matched from many threads
};

std::shared_ptr<const Matcher> compile_pattern(const nlohmann::json& pat, const std::string& where) {
  if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string())
    return Matcher::regex(pat["Regex"].get<std::string>(), where);
  if (pat.is_object() && pat.contains("String") && pat["String"].is_string())
    return Matcher::literal(pat["String"].get<std::string>());
  if (pat.is_string()) return Matcher::literal(pat.get<std::string>());
  fail(where, ": pattern must be {\"Regex\": ...} or {\"String\": ...}");
}

void find_matches(const Matcher& m, std::string_view s, std::vector<Span>& out) { m.find(s, out); }

namespace {

// HF NormalizedString::split: matches -> pieces according to the behavior; empty pieces dropped.
template <typename Emit>
void apply_split(std::string_view s, const std::vector<Span>& matches, SplitBehavior behavior,
                 bool invert, Emit&& emit) {
  struct Part {
    uint32_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  uint32_t prev = 0;
  for (const Span& m : matches) {
    if (m.begin > prev) parts.push_back({prev, m.begin, invert});
    parts.push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev < s.size()) parts.push_back({prev, uint32_t(s.size()), invert});

  std::vector<Part> res;
  res.reserve(parts.size());
  switch (behavior) {
    case SplitBehavior::Isolated:
      res = std::move(parts);
      break;
    case SplitBehavior::Removed:
      for (const Part& p : parts)
        if (!p.is_match) res.push_back(p);
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.is_match && !prev_match && !res.empty()) res.back().e = p.e;
        else res.push_back(p);
        prev_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        const Part& p = parts[k];
        if (p.is_match && !prev_match && !res.empty()) res.back().b = p.b;
        else res.push_back(p);
        prev_match = p.is_match;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.is_match == prev_match && !res.empty()) res.back().e = p.e;
        else res.push_back(p);
        prev_match = p.is_match;
      }
      break;
    }
  }
  for (const Part& p : res)
    if (p.e > p.b) emit(p.b, p.e);
}

SplitBehavior parse_behavior(const nlohmann::json& j, const std::string& where) {
  std::string b = j.is_string() ? j.get<std::string>() : std::string("Isolated");
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail(where, ": unknown split behavior '", b, "'");
}

}  // namespace

struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind = kSplit;
  std::shared_ptr<const Matcher> matcher;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // ByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  bool map_now = false;  // another step follows: materialize the byte->char mapping
  // Metaspace
  std::string replacement;
  int prepend = 0;  // 0 never, 1 first, 2 always
  bool split = true;

  // The step of one component of type `type` (never "Sequence"); errors name `where`.
  static PreTokenizerStep read(const std::string& type, const nlohmann::json& j, const std::string& where);
};

template class Steps<PreTokenizer, PreTokenizerStep>;

void PreTokenizer::finish_setup() {
  byte_level_ = false;
  for (size_t k = 0; k < steps_.size(); ++k) {
    if (steps_[k].kind != Step::kByteLevel) continue;
    if (byte_level_) fail("tokenizer: more than one ByteLevel pre-tokenizer is not supported");
    byte_level_ = true;
    steps_[k].map_now = k + 1 < steps_.size();
    for (size_t l = k + 1; l < steps_.size(); ++l)
      if (steps_[l].kind == Step::kMetaspace)
        fail("tokenizer: Metaspace after ByteLevel is not supported");
  }
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& where) {
  PreTokenizer p = read(j, "pre_tokenizer", "pretokenizers", where);
  p.finish_setup();
  return p;
}

PreTokenizerStep PreTokenizerStep::read(const std::string& type, const nlohmann::json& j, const std::string& where) {
  PreTokenizerStep st;
  if (type == "ByteLevel") {
    st.kind = kByteLevel;
    st.add_prefix_space = bool_or(j, "add_prefix_space", true);
    st.use_regex = bool_or(j, "use_regex", true);
    st.matcher = Matcher::fast(Matcher::kGpt2);
  } else if (type == "Split") {
    auto pat = j.find("pattern");
    if (pat == j.end() || !pat->is_object()) fail(where, ": Split pre_tokenizer without \"pattern\"");
    if (pat->contains("Regex") && (*pat)["Regex"].is_string()) {
      st.matcher = Matcher::regex((*pat)["Regex"].get<std::string>(), where);
    } else if (pat->contains("String") && (*pat)["String"].is_string()) {
      st.matcher = Matcher::literal((*pat)["String"].get<std::string>());
    } else {
      fail(where, ": Split pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
    st.behavior = parse_behavior(j.value("behavior", nlohmann::json()), where);
    st.invert = bool_or(j, "invert", false);
  } else if (type == "Digits") {
    st.matcher = Matcher::fast(Matcher::kDigit);
    st.behavior = bool_or(j, "individual_digits", false) ? SplitBehavior::Isolated
                                                         : SplitBehavior::Contiguous;
  } else if (type == "Metaspace") {
    st.kind = kMetaspace;
    st.replacement = str_or(j, "replacement", "\xE2\x96\x81");
    if (first_invalid_utf8(st.replacement) != std::string::npos || st.replacement.empty())
      fail(where, ": Metaspace replacement must be one character");
    std::string scheme = str_or(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = bool_or(j, "add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") st.prepend = 2;
    else if (scheme == "first") st.prepend = 1;
    else if (scheme == "never") st.prepend = 0;
    else fail(where, ": unknown Metaspace prepend_scheme '", scheme, "'");
    st.split = bool_or(j, "split", true);
  } else if (type == "Whitespace") {
    st.matcher = Matcher::regex(R"(\w+|[^\w\s]+)", where);
    st.behavior = SplitBehavior::Removed;
    st.invert = true;
  } else if (type == "WhitespaceSplit") {
    st.matcher = Matcher::fast(Matcher::kWhitespaceChar);
    st.behavior = SplitBehavior::Removed;
  } else if (type == "CharDelimiterSplit") {
    st.matcher = Matcher::literal(str_or(j, "delimiter", " "));
    st.behavior = SplitBehavior::Removed;
  } else if (type == "Punctuation") {
    st.matcher = Matcher::regex(R"([\p{P}!-/:-@\[-`{-~])", where);
    st.behavior = parse_behavior(j.value("behavior", nlohmann::json("Isolated")), where);
  } else {
    fail(where, ": unsupported pre_tokenizer type '", type, "'");
  }
  return st;
}

PreTokenizer PreTokenizer::gpt2() {
  PreTokenizer p;
  Step st;
  st.kind = Step::kByteLevel;
  st.add_prefix_space = false;
  st.use_regex = true;
  st.matcher = Matcher::fast(Matcher::kGpt2);
  p.steps_.push_back(std::move(st));
  p.finish_setup();
  return p;
}

PreTokenizer PreTokenizer::exaone3() {
  PreTokenizer p;
  Step digits;
  digits.matcher = Matcher::fast(Matcher::kDigit);
  digits.behavior = SplitBehavior::Isolated;
  p.steps_.push_back(std::move(digits));
  PreTokenizer g = gpt2();
  p.steps_.push_back(std::move(g.steps_[0]));
  p.finish_setup();
  return p;
}

PreTokenizer PreTokenizer::regex_list(const std::vector<std::string>& patterns,
                                      const std::string& where) {
  PreTokenizer p;
  for (const auto& pat : patterns) {
    Step st;
    st.matcher = Matcher::regex(pat, where);
    st.behavior = SplitBehavior::Isolated;
    p.steps_.push_back(std::move(st));
  }
  Step bl;
  bl.kind = Step::kByteLevel;
  bl.add_prefix_space = false;
  bl.use_regex = false;
  p.steps_.push_back(std::move(bl));
  p.finish_setup();
  return p;
}

PreTokenizer PreTokenizer::superbpe() { return regex_list({std::string(kSuperBpePattern)}, "SuperBPE"); }

PreTokenizer PreTokenizer::metaspace(std::string replacement, bool prepend, bool split) {
  PreTokenizer p;
  Step st;
  st.kind = Step::kMetaspace;
  st.replacement = std::move(replacement);
  st.prepend = prepend ? 2 : 0;
  st.split = split;
  p.steps_.push_back(std::move(st));
  p.finish_setup();
  return p;
}

void PreTokenizer::run(std::string_view text, bool at_origin, Pieces& out) const {
  using Piece = Pieces::Piece;
  std::vector<Piece> cur, next;
  cur.push_back({text, at_origin});
  std::vector<Span> m;
  bool mapped = false;
  for (const Step& st : steps_) {
    next.clear();
    for (const Piece& pc : cur) {
      std::string_view s = pc.text;
      switch (st.kind) {
        case Step::kSplit: {
          m.clear();
          st.matcher->find(s, m);
          apply_split(s, m, st.behavior, st.invert, [&](uint32_t b, uint32_t e) {
            next.push_back({s.substr(b, e - b), pc.at_origin && b == 0});
          });
          break;
        }
        case Step::kByteLevel: {
          if (st.add_prefix_space && (s.empty() || s[0] != ' ')) {
            out.arena.push_back(" " + std::string(s));
            s = out.arena.back();
          }
          const size_t first = next.size();
          if (st.use_regex) {
            m.clear();
            match_gpt2(s, m);
            for (const Span& sp : m)
              if (sp.end > sp.begin)
                next.push_back({s.substr(sp.begin, sp.end - sp.begin), pc.at_origin && sp.begin == 0});
          } else if (!s.empty()) {
            next.push_back({s, pc.at_origin});
          }
          if (st.map_now) {
            for (size_t k = first; k < next.size(); ++k) {
              out.arena.push_back(map_byte_level(next[k].text));
              next[k].text = out.arena.back();
            }
          }
          break;
        }
        case Step::kMetaspace: {
          std::string r;
          r.reserve(s.size() + 3);
          const bool starts = s.substr(0, st.replacement.size()) == st.replacement ||
                              (!s.empty() && s[0] == ' ');
          if ((st.prepend == 2 || (st.prepend == 1 && pc.at_origin)) && !starts) r += st.replacement;
          for (char ch : s) {
            if (ch == ' ') r += st.replacement;
            else r += ch;
          }
          out.arena.push_back(std::move(r));
          std::string_view w = out.arena.back();
          if (st.split) {
            m.clear();
            for (size_t pos = w.find(st.replacement); pos != std::string_view::npos;
                 pos = w.find(st.replacement, pos + st.replacement.size()))
              m.push_back({uint32_t(pos), uint32_t(pos + st.replacement.size())});
            apply_split(w, m, SplitBehavior::MergedWithNext, false, [&](uint32_t b, uint32_t e) {
              next.push_back({w.substr(b, e - b), pc.at_origin && b == 0});
            });
          } else if (!w.empty()) {
            next.push_back({w, pc.at_origin});
          }
          break;
        }
      }
    }
    std::swap(cur, next);
    if (st.kind == Step::kByteLevel && st.map_now) mapped = true;
  }
  if (mapped) {
    std::string bytes;
    for (Piece& pc : cur) {
      if (!unmap_byte_level(pc.text, bytes)) fail("tokenizer: a pre-tokenizer after ByteLevel produced characters outside the byte alphabet");
      out.arena.push_back(bytes);
      pc.text = out.arena.back();
    }
  }
  for (const Piece& pc : cur)
    if (!pc.text.empty()) out.items.push_back(pc);
}

}  // namespace kexa::tok
