// Korean questions over English schemas: the English database words a Korean question names.
// Used by schema linking (schema_link.cpp); generic vocabulary only, no database's own names.
#pragma once

#include <string>
#include <vector>

namespace kexa::sql {

// English words (lower case, as written in the lexicon; the caller stems them) for the Korean
// nouns of `question`. Each Hangul eojeol is split greedily, longest lexicon entry first, into
// lexicon nouns ("공급업체의" -> 공급업체; "등록일" -> 등록 + 일; "백화점" -> department store); a
// one-syllable entry counts only as a word of its own or as the last noun of a compound, with at
// most a particle after it ("수가", "등록일"), so that "가수" never reads as "수". Every
// alternative of an entry is returned ("나라" -> country, nation). The lexicon
// (sql/ko_lexicon.inc) is parsed once.
std::vector<std::string> korean_english_words(const std::string& question);

}  // namespace kexa::sql
