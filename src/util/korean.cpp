#include "util/korean.h"

#include <cstring>

namespace kexa {
namespace {

// Josa and copula endings that glue onto a Korean noun, longest first.
const char* const kParticles[] = {
    "에서부터", "으로부터", "에서는", "에서도", "에서의", "에게서", "에게는", "으로서", "으로써", "으로는",
    "으로도", "으로의", "이라는", "이라고", "이었다", "이었던", "에서", "에게", "한테", "으로", "부터", "까지",
    "처럼", "보다", "마다", "조차", "라는", "라고", "이나", "이며", "이고", "와의", "과의", "에는", "에도",
    "에의", "로서", "로써", "로는", "로도", "였다", "였던", "은", "는", "이", "가", "을", "를", "의", "에",
    "도", "와", "과", "로", "만", "께"};

}  // namespace

bool is_korean_particle(std::string_view w) {
  for (const char* p : kParticles)
    if (w == p) return true;
  return false;
}

std::string strip_korean_particle(const std::string& word, std::size_t min_syllables_left) {
  const std::size_t syllables = word.size() / 3;
  for (const char* p : kParticles) {
    std::size_t n = std::strlen(p);
    if (word.size() > n && word.compare(word.size() - n, n, p) == 0 && syllables - n / 3 >= min_syllables_left)
      return word.substr(0, word.size() - n);
  }
  return word;
}

}  // namespace kexa
