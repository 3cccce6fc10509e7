// Ranking arithmetic shared by the document store (rag/store.cpp, chunks in SQLite or PostgreSQL)
// and in-memory retrieval over fetched pages (web/answer.cpp), so both score a chunk identically:
// Okapi BM25 (idf with the +1 that keeps it positive), cosine similarity of unit vectors, and
// reciprocal-rank fusion of a BM25 and a dense ranking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace kexa::rag {

struct Bm25Params {
  double k1 = 0.9;
  double b = 0.75;
};

// (score, chunk id) pairs; "best first" means score descending, then id ascending.
using Ranking = std::vector<std::pair<double, std::int64_t>>;

inline constexpr double kRrfK = 60;              // reciprocal-rank constant (Cormack et al.)
inline constexpr std::size_t kFuseDepth = 100;   // ranks taken from each list before fusing

// idf of a term found in `df` of `n_chunks` chunks.
double bm25_idf(double n_chunks, double df);
// One term's contribution to a chunk of `length` terms holding it `tf` times (average length avg_length).
double bm25_term(const Bm25Params& p, double idf, double tf, double length, double avg_length);

// `v` scaled to length 1 (unchanged when it is all zeros).
std::vector<float> unit_vector(std::vector<float> v);
// Dot product in double precision (the cosine when both are unit vectors).
double dot(std::span<const float> a, std::span<const float> b);

// Keeps the best `depth` entries of `v`, best first.
void keep_best(Ranking& v, std::size_t depth);
// Each id scores the sum of 1 / (kRrfK + rank) over the rankings it appears in (rank from 1); the
// best `k`, best first.
Ranking fuse_rankings(std::span<const Ranking> rankings, std::size_t k);

}  // namespace kexa::rag
