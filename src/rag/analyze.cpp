#include "rag/analyze.h"

#include <cstdlib>
#include <cstring>

#include <utf8proc.h>

#include "util/korean.h"
#include "util/utf8.h"

namespace kexa::rag {

namespace {

enum class Kind { kSep, kWord, kHangul, kCjk };

Kind classify(utf8proc_int32_t c) {
  if ((c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3131 && c <= 0x318E))
    return Kind::kHangul;
  if ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x3040 && c <= 0x30FF) ||
      (c >= 0xF900 && c <= 0xFAFF))
    return Kind::kCjk;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return Kind::kWord;
    default:
      return Kind::kSep;
  }
}

// NFKC + case fold of the text; invalid bytes become spaces so one bad byte cannot hide a document.
std::vector<utf8proc_int32_t> normalize(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) { clean.push_back(' '); ++p; --left; continue; }
    clean.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    p += n;
    left -= n;
  }
  utf8proc_uint8_t* mapped = nullptr;
  utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(clean.c_str()),
                                      static_cast<utf8proc_ssize_t>(clean.size()), &mapped,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                                                     UTF8PROC_COMPAT | UTF8PROC_CASEFOLD));
  std::vector<utf8proc_int32_t> cps;
  if (len < 0) return cps;
  const utf8proc_uint8_t* q = mapped;
  while (*q) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(q, -1, &c);
    if (n <= 0) break;
    cps.push_back(c);
    q += n;
  }
  std::free(mapped);
  return cps;
}

bool is_ascii_alpha(const std::string& w) {
  for (char ch : w)
    if (ch < 'a' || ch > 'z') return false;
  return true;
}

// Harman's S-stemmer: cheap, predictable plural folding for English words.
void stem_s(std::string& w) {
  if (w.size() < 4 || !is_ascii_alpha(w)) return;
  auto ends = [&](const char* s) {
    std::size_t n = std::strlen(s);
    return w.size() >= n && w.compare(w.size() - n, n, s) == 0;
  };
  if (ends("ies") && !ends("eies") && !ends("aies")) {
    w.resize(w.size() - 3);
    w += 'y';
  } else if (ends("es") && !ends("aes") && !ends("ees") && !ends("oes")) {
    w.resize(w.size() - 1);
  } else if (ends("s") && !ends("us") && !ends("ss")) {
    w.resize(w.size() - 1);
  }
}

// Korean interrogatives, longest first. In a question they name what is asked, not what the
// answer passage says ("무엇인가", "누구와", "어디에서"), and the passages that happen to contain them
// are not the relevant ones; queries drop them (analyze_query).
const char* const kInterrogatives[] = {"어떠한", "어떻게", "어째서", "무엇", "누구", "언제", "어디", "어느",
                                       "얼마", "무슨", "어떤", "왜", "몇"};
// What may follow an interrogative inside the same eojeol without adding content: a particle or
// a copula / question ending ("무엇+인가", "누구+였나", "얼마+나").
const char* const kQuestionEndings[] = {"인가요", "입니까", "일까요", "였는가", "이었나", "인가", "인지",
                                        "일까", "이다", "였나", "이며", "이고", "나", "든지", "이나"};

bool is_question_ending(std::string_view w) {
  if (w.empty() || is_korean_particle(w)) return true;
  for (const char* e : kQuestionEndings)
    if (w == e) return true;
  return false;
}

void emit_run(Kind kind, const std::vector<utf8proc_int32_t>& run, std::vector<std::string>& out);

// Query mode: an eojeol that starts with an interrogative loses it; nothing is left when the rest
// is only a particle or question ending, otherwise the rest is analysed ("어느학과에" -> "학과에").
// Returns false when the run holds no interrogative.
bool emit_question_run(const std::vector<utf8proc_int32_t>& run, std::vector<std::string>& out) {
  std::string w;
  for (auto c : run) append_utf8(w, c);
  for (const char* q : kInterrogatives) {
    std::size_t n = std::strlen(q);
    if (w.compare(0, n, q) != 0) continue;
    std::string_view rest = std::string_view(w).substr(n);
    if (is_question_ending(rest)) return true;
    emit_run(Kind::kHangul, std::vector<utf8proc_int32_t>(run.begin() + static_cast<std::ptrdiff_t>(n / 3), run.end()),
             out);
    return true;
  }
  return false;
}

void emit_run(Kind kind, const std::vector<utf8proc_int32_t>& run, std::vector<std::string>& out) {
  if (run.empty()) return;
  if (kind == Kind::kWord) {
    std::string w;
    for (auto c : run) append_utf8(w, c);
    stem_s(w);
    out.push_back(std::move(w));
    return;
  }
  if (run.size() == 1 || kind == Kind::kCjk) {
    // Han and kana characters carry meaning alone; a one-syllable Hangul run ("물") is a word.
    for (auto c : run) {
      std::string u;
      append_utf8(u, c);
      out.push_back(std::move(u));
    }
    if (run.size() == 1) return;
  }
  std::size_t limit = run.size();
  if (kind == Kind::kHangul) {
    // The eojeol without its particle as one more term ("=대통령" from "대통령은"): an exact
    // word match then counts for more than sharing syllable pairs. The '=' keeps these apart
    // from the bigrams.
    std::string w;
    for (auto c : run) append_utf8(w, c);
    std::string stem = strip_korean_particle(w, 2);
    // Bigrams stop at the particle: "령은" would match every word ending in 령 before 은.
    if (run.size() >= 3) limit = utf8_chars(stem);
    out.push_back("=" + stem);
  }
  for (std::size_t i = 0; i + 1 < limit; ++i) {
    std::string b;
    append_utf8(b, run[i]);
    append_utf8(b, run[i + 1]);
    out.push_back(std::move(b));
  }
}

bool all_digits(const std::vector<utf8proc_int32_t>& run) {
  for (auto c : run)
    if (c < '0' || c > '9') return false;
  return !run.empty();
}

}  // namespace

namespace {

std::vector<std::string> analyze_impl(std::string_view text, bool query) {
  std::vector<std::string> out;
  std::vector<utf8proc_int32_t> cps = normalize(text);
  std::vector<utf8proc_int32_t> run;
  Kind run_kind = Kind::kSep;
  for (auto c : cps) {
    Kind k = classify(c);
    if (k != run_kind) {
      // A number with its Korean counter or unit ("1990년", "2번", "3집") as one term, so dates
      // and counts match as a whole rather than as a number plus a common syllable.
      if (run_kind == Kind::kWord && k == Kind::kHangul && all_digits(run)) {
        std::string u = "#";
        for (auto d : run) u.push_back(static_cast<char>(d));
        append_utf8(u, c);
        out.push_back(std::move(u));
      }
      if (!(query && run_kind == Kind::kHangul && emit_question_run(run, out))) emit_run(run_kind, run, out);
      run.clear();
      run_kind = k;
    }
    if (k != Kind::kSep) run.push_back(c);
  }
  if (!(query && run_kind == Kind::kHangul && emit_question_run(run, out))) emit_run(run_kind, run, out);
  return out;
}

}  // namespace

std::vector<std::string> analyze(std::string_view text) { return analyze_impl(text, false); }

std::vector<std::string> analyze_query(std::string_view text) { return analyze_impl(text, true); }

std::size_t utf8_chars(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) ++n;
  return n;
}

namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

struct Sentence {
  Span span;
  std::size_t chars = 0;
  bool heading = false;     // this sentence is a Markdown heading line
  bool new_block = false;   // a blank line precedes it
  std::string heading_text; // heading in force for this sentence
};

bool is_heading_line(std::string_view line, std::string& title) {
  std::size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  std::size_t hashes = 0;
  while (i < line.size() && line[i] == '#') { ++i; ++hashes; }
  if (hashes == 0 || hashes > 6 || (i < line.size() && line[i] != ' ' && line[i] != '\t')) return false;
  std::size_t b = i, e = line.size();
  while (b < e && is_space(static_cast<unsigned char>(line[b]))) ++b;
  while (e > b && (is_space(static_cast<unsigned char>(line[e - 1])) || line[e - 1] == '#')) --e;
  title.assign(line.substr(b, e - b));
  return true;
}

// Length in bytes of a sentence terminator starting at i, or 0.
std::size_t terminator_at(std::string_view t, std::size_t i) {
  unsigned char c = static_cast<unsigned char>(t[i]);
  if (c == '.' || c == '?' || c == '!') return 1;
  // '。' U+3002, '？' U+FF1F, '！' U+FF01
  if (t.compare(i, 3, "\xE3\x80\x82") == 0 || t.compare(i, 3, "\xEF\xBC\x9F") == 0 ||
      t.compare(i, 3, "\xEF\xBC\x81") == 0)
    return 3;
  return 0;
}

void push_trimmed(std::string_view text, std::size_t b, std::size_t e, std::vector<Sentence>& out,
                  const Sentence& proto, std::size_t max_chars) {
  while (b < e && is_space(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && is_space(static_cast<unsigned char>(text[e - 1]))) --e;
  if (b >= e) return;
  // Cut an over-long sentence at a space (or a character boundary) so no chunk grows unbounded.
  while (utf8_chars(text.substr(b, e - b)) > max_chars) {
    std::size_t cut = b, chars = 0, last_space = 0;
    while (cut < e && chars < max_chars) {
      ++cut;
      while (cut < e && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;
      ++chars;
      if (cut < e && is_space(static_cast<unsigned char>(text[cut]))) last_space = cut;
    }
    if (last_space > b + (cut - b) / 2) cut = last_space;
    Sentence s = proto;
    s.span = {b, cut};
    s.chars = utf8_chars(text.substr(b, cut - b));
    out.push_back(s);
    b = cut;
    while (b < e && is_space(static_cast<unsigned char>(text[b]))) ++b;
    if (b >= e) return;
  }
  Sentence s = proto;
  s.span = {b, e};
  s.chars = utf8_chars(text.substr(b, e - b));
  out.push_back(s);
}

}  // namespace

std::vector<ChunkSpan> chunk_text(std::string_view text, const ChunkOptions& opt) {
  std::vector<Sentence> sents;
  std::string heading;
  bool blank_before = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    std::string title;
    bool blank = true;
    for (char ch : line)
      if (!is_space(static_cast<unsigned char>(ch))) { blank = false; break; }
    if (blank) {
      blank_before = true;
    } else if (is_heading_line(line, title)) {
      heading = title;
      Sentence proto;
      proto.heading = true;
      proto.new_block = true;
      proto.heading_text = heading;
      push_trimmed(text, pos, eol, sents, proto, opt.max_chars);
      blank_before = false;
    } else {
      std::size_t start = pos;
      // text[start, end) as the next sentence(s) of the paragraph; only the first opens a block.
      auto push_sentence = [&](std::size_t end) {
        Sentence proto;
        proto.new_block = blank_before;
        proto.heading_text = heading;
        std::size_t before = sents.size();
        push_trimmed(text, start, end, sents, proto, opt.max_chars);
        if (sents.size() > before) blank_before = false;
      };
      for (std::size_t i = pos; i < eol;) {
        std::size_t n = terminator_at(text, i);
        if (n == 0) { ++i; continue; }
        std::size_t j = i + n;
        // Runs of terminators and closing quotes/brackets belong to the sentence they end.
        while (j < eol && (terminator_at(text, j) || text[j] == '"' || text[j] == '\'' || text[j] == ')')) {
          std::size_t m = terminator_at(text, j);
          j += m ? m : 1;
        }
        if (j >= eol || is_space(static_cast<unsigned char>(text[j])) || n == 3) {
          push_sentence(j);
          start = j;
        }
        i = j;
      }
      push_sentence(eol);
    }
    pos = eol + 1;
  }

  std::vector<ChunkSpan> chunks;
  std::size_t first = 0, chars = 0;  // current chunk = sents[first, i)
  bool fresh = true;                 // the current chunk holds sentences not yet emitted
  auto emit = [&](std::size_t end) {
    ChunkSpan c;
    c.span = {sents[first].span.begin, sents[end - 1].span.end};
    c.heading = sents[first].heading_text;
    chunks.push_back(std::move(c));
  };
  for (std::size_t i = 0; i < sents.size(); ++i) {
    const Sentence& s = sents[i];
    bool section = s.heading && i > first;
    bool full = i > first && chars + s.chars > opt.target_chars;
    bool block = s.new_block && i > first && chars >= opt.target_chars / 2;
    if (section || full || block) {
      if (fresh) emit(i);
      // Overlap: carry trailing sentences of the same section, but never the whole chunk.
      std::size_t keep = i, kept = 0;
      if (!section) {
        while (keep > first + 1 && kept + sents[keep - 1].chars <= opt.overlap_chars &&
               !sents[keep - 1].heading) {
          --keep;
          kept += sents[keep].chars;
        }
      }
      first = keep;
      chars = kept;
      fresh = false;
    }
    chars += s.chars;
    fresh = true;
  }
  if (first < sents.size() && fresh) emit(sents.size());
  return chunks;
}

}  // namespace kexa::rag
