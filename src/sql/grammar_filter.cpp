#include "sql/grammar_filter.h"

#include <algorithm>
#include <limits>

#include "tokenizer/tokenizer.h"

namespace kexa::sql {

VocabTrie::VocabTrie(const Tokenizer& tok, const std::set<int32_t>& stops) {
  const int32_t n = tok.vocab_size();
  pieces.resize(static_cast<size_t>(n));
  nodes.push_back({});
  for (int32_t id = 0; id < n; ++id) {
    if (stops.count(id) || tok.is_special(id)) continue;
    std::string p = tok.token_piece(id);
    if (p.empty()) continue;
    uint32_t node = 0;
    for (char c : p) {
      auto& kids = nodes[node].kids;
      auto it = std::lower_bound(kids.begin(), kids.end(), c,
                                 [](const std::pair<char, uint32_t>& x, char y) { return x.first < y; });
      if (it != kids.end() && it->first == c) {
        node = it->second;
      } else {
        const uint32_t fresh = static_cast<uint32_t>(nodes.size());
        kids.insert(it, {c, fresh});
        nodes.push_back({});
        node = fresh;
      }
    }
    nodes[node].ids.push_back(id);
    pieces[static_cast<size_t>(id)] = std::move(p);
  }
}

bool SqlFilter::allows(int32_t token) {
  if (stops_.count(token)) return grammar_.complete(out_);
  if (token < 0 || static_cast<size_t>(token) >= pieces_.size() || pieces_[static_cast<size_t>(token)].empty())
    return false;
  return grammar_.valid_prefix(out_ + pieces_[static_cast<size_t>(token)]);
}

void SqlFilter::mask(std::span<float> logits) {
  // The most likely tokens first: when some of them are allowed, sampling among those is what
  // sampling over the whole allowed set would do up to the tail beyond the top kTop (exact for
  // greedy), and it avoids walking the trie where nearly everything is allowed (inside a
  // string literal).
  constexpr size_t kTop = 256;
  std::vector<int32_t> top(std::min(kTop, logits.size()));
  {
    std::vector<int32_t> all(logits.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i);
    std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(top.size()), all.end(),
                      [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
    std::copy_n(all.begin(), top.size(), top.begin());
  }
  std::vector<int32_t> keep;
  for (int32_t t : top)
    if (logits[static_cast<size_t>(t)] != -std::numeric_limits<float>::infinity() && allows(t)) keep.push_back(t);
  if (!keep.empty()) {
    std::vector<float> kept(keep.size());
    for (size_t i = 0; i < keep.size(); ++i) kept[i] = logits[static_cast<size_t>(keep[i])];
    std::fill(logits.begin(), logits.end(), -std::numeric_limits<float>::infinity());
    for (size_t i = 0; i < keep.size(); ++i) logits[static_cast<size_t>(keep[i])] = kept[i];
    return;
  }
  std::vector<char> ok(logits.size(), 0);
  std::string buf = out_;
  walk(0, buf, ok);
  if (grammar_.complete(out_))
    for (int32_t s : stops_)
      if (s >= 0 && static_cast<size_t>(s) < ok.size()) ok[static_cast<size_t>(s)] = 1;
  for (size_t i = 0; i < logits.size(); ++i)
    if (!ok[i]) logits[i] = -std::numeric_limits<float>::infinity();
}

void SqlFilter::accept(int32_t token) {
  if (!stops_.count(token) && token >= 0 && static_cast<size_t>(token) < pieces_.size())
    out_ += pieces_[static_cast<size_t>(token)];
}

// Depth-first over the trie: a branch whose text is no longer a valid prefix is cut whole,
// since no extension of an invalid prefix is valid.
void SqlFilter::walk(uint32_t node, std::string& buf, std::vector<char>& ok) {
  for (const auto& [c, child] : trie_->nodes[node].kids) {
    buf.push_back(c);
    if (grammar_.valid_prefix(buf)) {
      for (int32_t id : trie_->nodes[child].ids)
        if (static_cast<size_t>(id) < ok.size()) ok[static_cast<size_t>(id)] = 1;
      walk(child, buf, ok);
    }
    buf.pop_back();
  }
}

std::unique_ptr<TokenFilter> make_sql_filter(const SqlGrammar& grammar, const Tokenizer& tokenizer,
                                             const std::vector<int32_t>& stop_ids) {
  std::set<int32_t> stops(stop_ids.begin(), stop_ids.end());
  return std::make_unique<SqlFilter>(grammar, std::make_shared<VocabTrie>(tokenizer, stops), stops);
}

}  // namespace kexa::sql
