#include "rag/rank.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace kexa::rag {

double bm25_idf(double n_chunks, double df) { return std::log(1.0 + (n_chunks - df + 0.5) / (df + 0.5)); }

double bm25_term(const Bm25Params& p, double idf, double tf, double length, double avg_length) {
  double norm = p.k1 * (1.0 - p.b + p.b * length / avg_length);
  return idf * tf * (p.k1 + 1.0) / (tf + norm);
}

std::vector<float> unit_vector(std::vector<float> v) {
  double n = 0;
  for (float x : v) n += static_cast<double>(x) * x;
  if (n > 0) {
    auto inv = static_cast<float>(1.0 / std::sqrt(n));
    for (float& x : v) x *= inv;
  }
  return v;
}

double dot(std::span<const float> a, std::span<const float> b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

void keep_best(Ranking& v, std::size_t depth) {
  std::size_t n = std::min(depth, v.size());
  std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  v.resize(n);
}

Ranking fuse_rankings(std::span<const Ranking> rankings, std::size_t k) {
  std::unordered_map<std::int64_t, double> fused;
  for (const Ranking& list : rankings)
    for (std::size_t r = 0; r < list.size(); ++r) fused[list[r].second] += 1.0 / (kRrfK + static_cast<double>(r + 1));
  Ranking out;
  out.reserve(fused.size());
  for (const auto& [id, s] : fused) out.emplace_back(s, id);
  keep_best(out, k);
  return out;
}

}  // namespace kexa::rag
