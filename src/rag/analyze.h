// Text analysis and chunking for the document store (retrieval for grounded answers).
// Korean is written without reliable word boundaries for a search engine: particles and endings
// glue onto nouns ("대통령은", "대통령이"), so whole-word tokens rarely match between a question and
// a passage. Overlapping character bigrams of Hangul runs match the shared stem regardless.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kexa::rag {

// Index terms of `text`: NFKC + case folded; Latin/digit words (English plural 's' stripped, as the
// Harman S-stemmer does); Hangul runs as overlapping syllable bigrams (a one-syllable run as
// itself); Han/kana runs as unigrams plus bigrams. Invalid UTF-8 bytes are treated as separators.
std::vector<std::string> analyze(std::string_view text);

// Terms of a search query: analyze(), except that Korean interrogatives are dropped together with
// a particle or question ending glued to them ("무엇인가", "누구와", "몇"): they say what is asked,
// and passages holding them are no more likely to answer it. What follows an interrogative in the
// same eojeol is kept ("어느학과에" -> the terms of "학과에").
std::vector<std::string> analyze_query(std::string_view text);

// A half-open byte range [begin, end) into the source text.
struct Span {
  std::size_t begin = 0;
  std::size_t end = 0;
};

struct ChunkOptions {
  std::size_t target_chars = 1000;  // a chunk is closed once it holds this many characters
  std::size_t max_chars = 1500;     // a single sentence longer than this is cut at a space
  std::size_t overlap_chars = 150;  // trailing sentences repeated at the start of the next chunk
};

struct ChunkSpan {
  Span span;            // byte offsets into the text; always on UTF-8 character boundaries
  std::string heading;  // nearest Markdown heading above the chunk ("" if none)
};

// Splits `text` into chunks made of whole sentences. Sentences end at '.', '?', '!' (and their
// full-width forms, '。') followed by white space or the end, and at line breaks; a Markdown
// heading line or a blank line starts a new block, and a heading always starts a new chunk.
// Chunks overlap by whole sentences up to overlap_chars. Spans exclude surrounding white space.
std::vector<ChunkSpan> chunk_text(std::string_view text, const ChunkOptions& opt = {});

// Number of UTF-8 characters in `s` (continuation bytes not counted).
std::size_t utf8_chars(std::string_view s);

}  // namespace kexa::rag
