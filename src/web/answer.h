// Answers from the live web: question -> search queries (the model rewrites the question, given
// today's date; the question itself is always searched) -> search -> fetch (web/fetch.h: address
// policy, robots.txt, caps) -> chunks of each page's main content ranked by BM25 with rag's
// Korean-aware analysis (fused with dense similarity when an embedder is set) -> rag::answer,
// which quotes the best chunks as numbered, untrusted sources
// and maps the answer's [n] back to them. A citation therefore names a fetched page (its final URL
// and title) and the exact span [begin, end) of that page's extracted text that was quoted.
//
// Failures are explicit: a search service that fails throws kexa::Error (after its retries); when
// no page could be read, or nothing read supports an answer, the result abstains with a fixed
// answer and `failure` says why (each failed page keeps its own error in `pages`).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rag/analyze.h"
#include "rag/answer.h"
#include "rag/store.h"
#include "runtime/turn.h"
#include "web/fetch.h"
#include "web/search.h"

namespace kexa::web {

// The answer when nothing fetched supports one (the reason is in WebAnswer::failure).
inline constexpr std::string_view kWebAbstainAnswer = "I cannot answer that from the web: no page that was read supports an answer.";

struct WebOptions {
  rag::AnswerOptions answer;     // k (sources quoted), min_score (abstain threshold), generation
  std::size_t max_pages = 8;     // pages fetched (the search results' first, across queries)
  std::size_t max_queries = 3;   // model-written queries besides the question
  bool rewrite = true;           // ask the model for queries (needs a chat function)
  std::string date;              // given to the model as today ("YYYY-MM-DD"); "" = today, UTC
  rag::ChunkOptions chunk{600, 900, 100};
  rag::Embedder embed;           // when set: dense similarity fused with BM25 to order the sources
};

struct WebAnswer {
  std::string question;
  std::vector<std::string> queries;
  std::vector<std::string> search_errors;  // queries whose search failed (others succeeded)
  std::vector<SearchResult> results;       // de-duplicated, in the order fetched
  std::vector<Page> pages;                 // results[i] -> pages[i]
  rag::AnswerResult result;                // sources: Hit.path = page URL, heading = title
  std::string failure;                     // why it abstained without asking the model
  nlohmann::json to_json(bool include_page_text = true) const;
};

// Model-written search queries for `question` (at most max_queries lines of its reply).
std::vector<std::string> rewrite_queries(const ChatFunction& chat, std::string_view question,
                                         std::string_view date, std::size_t max_queries);

// Chunks the readable pages and returns a retriever over them: the chunks BM25 scores above zero
// (rag's analysis and rag's default k1/b), in BM25 order, or, with `embed` set, in the order of
// BM25 and cosine similarity fused by reciprocal rank (rag/rank.h); Hit.score is the BM25 score
// either way (so AnswerOptions::min_score keeps its meaning). Hit.path is the page's final URL,
// heading its title, [begin, end) byte offsets into Page::text (unit "text").
rag::Retriever page_retriever(const std::vector<Page>& pages, const rag::ChunkOptions& chunk,
                              const rag::Embedder& embed = {});

// The whole pipeline. `chat` may be null: then no query rewriting and no generation: the result
// holds the sources that would be quoted (result.sources) and abstains when there are none.
WebAnswer web_answer(SearchService& search, Fetcher& fetcher, const ChatFunction* chat, const WebOptions& options,
                     std::string_view question);

}  // namespace kexa::web
