// The token filter behind make_sql_filter, exposed inside src/sql so that one vocabulary trie
// can serve the filters of several generation attempts.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/generator.h"
#include "sql/grammar.h"

namespace kexa::sql {

// The vocabulary as a byte trie of token texts (special tokens and stop ids left out).
struct VocabTrie {
  struct Node {
    std::vector<std::pair<char, uint32_t>> kids;  // sorted by byte
    std::vector<int32_t> ids;                     // tokens whose text ends here
  };
  std::vector<std::string> pieces;  // by id; empty = never allowed as text
  std::vector<Node> nodes;

  VocabTrie(const Tokenizer& tok, const std::set<int32_t>& stops);
};

// Keeps the text of the accepted tokens a valid_prefix of `grammar` (which must outlive it);
// admits a stop id only once that text is complete.
class SqlFilter : public TokenFilter {
 public:
  SqlFilter(const SqlGrammar& grammar, std::shared_ptr<const VocabTrie> trie, std::set<int32_t> stops)
      : grammar_(grammar), stops_(std::move(stops)), trie_(std::move(trie)), pieces_(trie_->pieces) {}

  bool allows(int32_t token) override;
  void mask(std::span<float> logits) override;
  void accept(int32_t token) override;

 private:
  void walk(uint32_t node, std::string& buf, std::vector<char>& ok);

  const SqlGrammar& grammar_;
  std::set<int32_t> stops_;
  std::shared_ptr<const VocabTrie> trie_;
  const std::vector<std::string>& pieces_;
  std::string out_;
};

}  // namespace kexa::sql
