// Byte-level BPE training with the SuperBPE curriculum (kexa tokenizer train).
//
// Stage 1 learns ordinary subword merges on word-bounded pre-tokens (GPT-2 / EXAONE 4.0 regex).
// With `superword`, stage 2 re-reads the corpus with K-EXAONE's cross-space regex, segments the
// new pre-tokens with the stage-1 merges exactly as the final tokenizer will, and keeps merging,
// so tokens can span several words. The written tokenizer.json uses the last stage's regex; the
// stage-1 merges stay valid there because a merge never combines symbols of two pre-tokens.
//
// Memory: the corpus is streamed in blocks; only distinct pre-tokens and their counts are kept,
// and rare ones are pruned when the table passes `max_pretokens`. Results depend only on the
// corpus and the options, never on the thread count: blocks are fixed-size, merged in order, and
// merge ties are broken by the byte strings of the pair.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace kexa::bpe {

struct TrainOptions {
  std::vector<std::string> corpus;  // files and directories (searched recursively, sorted)
  size_t vocab_size = 0;            // total, including the 256 bytes and the special tokens
  bool superword = false;           // SuperBPE curriculum
  int64_t transition_merges = -1;   // stage-1 merges; -1: 90% of the merge budget
  bool nfc = true;
  std::vector<std::string> specials;  // get ids 0..k-1, matched before normalisation
  int threads = 0;                    // 0: hardware concurrency
  uint64_t min_frequency = 2;         // stop when the best pair is rarer than this
  size_t max_pretokens = size_t(1) << 22;  // distinct pre-tokens kept in memory per stage
  size_t block_bytes = size_t(1) << 20;    // streaming unit (part of the determinism contract)
  bool progress = false;                   // progress bar on stderr
};

struct TrainStats {
  uint64_t corpus_bytes = 0;
  uint64_t invalid_utf8 = 0;       // sequences replaced by U+FFFD
  uint64_t distinct_stage1 = 0;    // distinct pre-tokens kept
  uint64_t distinct_stage2 = 0;
  uint64_t pruned = 0;             // distinct pre-tokens dropped by the memory budget
  uint64_t merges_stage1 = 0;
  uint64_t merges_stage2 = 0;
  bool saturated = false;          // stopped before vocab_size: no pair reached min_frequency
  double seconds_counting = 0, seconds_merging = 0;
};

struct TrainedBpe {
  std::vector<std::string> vocab;  // id -> raw bytes; special tokens: their text
  size_t n_specials = 0;
  std::vector<std::array<uint32_t, 3>> merges;  // left id, right id, result id (rank order)
  std::string pattern;                          // final pre-tokenizer regex (HF syntax)
  bool nfc = true;
  TrainStats stats;
};

// Throws kexa::Error for an empty corpus, unreadable paths, a vocabulary smaller than the byte
// alphabet plus the special tokens, or an impossible transition point.
TrainedBpe train(const TrainOptions& options);

// The HF fast-tokenizer file (deterministic bytes).
std::string tokenizer_json(const TrainedBpe& bpe);
// Writes tokenizer.json, vocab.json and merges.txt into out_dir (created if needed).
void write_tokenizer_files(const TrainedBpe& bpe, const std::string& out_dir);

}  // namespace kexa::bpe
