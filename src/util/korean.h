// Korean particles (josa) shared by the document analyser (rag/analyze) and schema linking
// (sql/korean): both read nouns out of eojeol such as "대통령은", "공급업체의".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kexa {

// Whether `w` is exactly one particle or copula ending that glues onto a noun ("은", "에서", "이라는").
bool is_korean_particle(std::string_view w);

// `word` without its trailing particle (the longest one that matches; only one is removed), when at
// least `min_syllables_left` Hangul syllables remain; otherwise `word` unchanged. `word` is Hangul
// only (three bytes a syllable).
std::string strip_korean_particle(const std::string& word, std::size_t min_syllables_left);

}  // namespace kexa
