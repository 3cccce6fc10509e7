// Pre-tokenization: splitting normalized text into the pieces BPE sees, exactly as HF tokenizers'
// pre-tokenizers do. The GPT-2, EXAONE 3.x (digits) and K-EXAONE SuperBPE regexes have
// hand-written scanners; any other Split regex runs on PCRE2 with Oniguruma-compatible \s.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/steps.h"

namespace kexa::tok {

// The regex strings that get fast paths (compared verbatim with tokenizer.json patterns).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kSuperBpePattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)";

struct Span {
  uint32_t begin, end;
};

// Regex scanners: append the matches of the pattern in `s` (offsets relative to s).
void match_gpt2(std::string_view s, std::vector<Span>& out);
void match_superbpe(std::string_view s, std::vector<Span>& out);
void match_digits(std::string_view s, bool individual, std::vector<Span>& out);

class Matcher;  // a compiled pattern (fast path, PCRE2 regex or literal)
// From a tokenizer.json pattern object ({"Regex": ...} or {"String": ...}).
std::shared_ptr<const Matcher> compile_pattern(const nlohmann::json& pattern, const std::string& where);
void find_matches(const Matcher& m, std::string_view s, std::vector<Span>& out);

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Pieces of one text segment. Pieces point into the segment or into `arena` (stable storage for
// text the pre-tokenizer rewrote, e.g. Metaspace's '▁').
struct Pieces {
  struct Piece {
    std::string_view text;
    bool at_origin;  // starts at offset 0 of the original input (Metaspace prepend_scheme=first)
  };
  std::vector<Piece> items;
  std::deque<std::string> arena;
  void clear() {
    items.clear();
    arena.clear();
  }
};

struct PreTokenizerStep;  // one pre-tokenizer of the sequence (defined in the .cpp)

class PreTokenizer : public Steps<PreTokenizer, PreTokenizerStep> {
 public:
  using Step = PreTokenizerStep;

  // From tokenizer.json's "pre_tokenizer" (null -> identity). Throws kexa::Error naming `where`.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& where);
  static PreTokenizer gpt2();      // ByteLevel(add_prefix_space=false, use_regex=true)
  static PreTokenizer exaone3();   // Digits(individual) + ByteLevel
  static PreTokenizer superbpe();  // Split(SuperBPE regex, Isolated) + ByteLevel(use_regex=false)
  // A sequence of Isolated regex splits followed by ByteLevel(use_regex=false) (llama.cpp style).
  static PreTokenizer regex_list(const std::vector<std::string>& patterns, const std::string& where);
  // SentencePiece-style: Metaspace(▁, prepend always, no split).
  static PreTokenizer metaspace(std::string replacement, bool prepend, bool split);

  // Splits `text` (one normalized segment between added tokens) into pieces. When byte_level()
  // is true the pieces are raw bytes (the GPT-2 byte->char mapping is folded into the vocab).
  void run(std::string_view text, bool at_origin, Pieces& out) const;
  bool byte_level() const { return byte_level_; }

 private:
  bool byte_level_ = false;
  void finish_setup();
};

}  // namespace kexa::tok
