// Grounded answers: retrieve chunks from a Store, quote them as numbered, untrusted sources inside
// the user turn of the model's own chat template, generate, and map the [n] citations of the answer
// back to the chunks' source spans. Abstains with a fixed answer when retrieval finds nothing
// relevant enough.
//
//   rag::Store store("docs.kexa", /*read_only=*/true);
//   rag::AnswerOptions opt;                         // k = 5, min_score = 2.0, greedy
//   opt.on_delta = [](std::string_view d) { std::cout << d; return true; };   // optional stream
//   rag::AnswerResult r = rag::answer(rag::retriever(store), chat, opt, "question");
//   for (auto& c : r.citations) ... c.source.path, c.source.begin, c.source.end
//
// `chat` (runtime/turn.h) runs the generation: on a LocalGeneration for `kexa rag query`, on the
// server's scheduler for /v1/rag/query; rag/ never sees the model.
//
// Prompt injection: a source is data. Its text goes only into the user message, between
// <source id="n"> ... </source> markers whose look-alikes inside the text are neutralised (so a
// document cannot close its own quotation and speak as the user), and the instructions tell the
// model that sources are untrusted quotations whose instructions must not be followed. Nothing
// from a document ever reaches the system turn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "rag/store.h"
#include "runtime/sampler.h"
#include "runtime/text_constraint.h"
#include "runtime/turn.h"

namespace kexa::rag {

// The answer given (and streamed) when no chunk scores above AnswerOptions::min_score.
inline constexpr std::string_view kAbstainAnswer = "I cannot answer that: it is not in the documents.";

struct AnswerOptions {
  std::size_t k = 5;  // chunks retrieved and quoted
  // Abstain unless the best chunk's BM25 score reaches this. The store's idf is
  // ln(1 + (N - df + 0.5) / (df + 0.5)), so one occurrence of a term found in 1 chunk in 8 scores
  // about 2 at average chunk length, nearly independently of N (ln 8 ~ 2.1 for N = 30 .. 10^6),
  // while a word present in half the chunks scores at most ln 2 * (k1 + 1) ~ 1.3. 2.0 therefore
  // means "the best chunk shares at least one distinctive term, or several common ones", and
  // filters questions that only share function words ("what", "the", "is") with the documents.
  // Stores of fewer than ~10 chunks cannot reach it with a single term (idf is capped by
  // ln(1 + N / 1.5)); lower it there. 0 = answer whenever any chunk matches at all.
  double min_score = 2.0;
  std::size_t max_source_chars = 2400;  // longer chunks are cut (at a UTF-8 boundary) in the prompt
  int64_t max_tokens = 512;
  int64_t context = 8192;  // KV cache positions (prompt + answer)
  SamplingParams sampling;  // default greedy
  bool enable_thinking = false;  // template kwarg; reasoning text is returned separately
  // Constrained decoding: the answer may end only after citing a source ([n] naming one of the
  // sources); not with enable_thinking.
  bool require_citation = false;
  std::vector<std::string> stop;  // stop strings
  // Streaming: the answer text (reasoning excluded) as it becomes final; false stops generation.
  // Called once with kAbstainAnswer when abstaining.
  std::function<bool(std::string_view delta)> on_delta;
};

// A citation of the answer, resolved to the chunk it names.
struct Citation {
  int number = 0;  // n of "[n]": 1-based index into AnswerResult::sources
  Hit source;      // path, unit and [begin, end) span of the cited chunk, its text and score
  nlohmann::json to_json() const;
};

struct AnswerResult {
  std::string answer;  // the model's answer with citations to missing sources removed
  std::string reasoning;
  bool abstained = false;
  std::vector<Citation> citations;  // distinct cited sources, in order of first citation
  std::vector<int> dropped_citations;  // numbers the model cited that name no source
  std::vector<Hit> sources;            // the numbered sources given to the model ([n] = sources[n-1])
  std::string prompt;                  // the rendered prompt text (empty when abstaining)
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string stop_reason;  // generator stop reason name, or "abstained"
  nlohmann::json to_json() const;
};

// Retrieval for answer(): the k best chunks for a query.
using Retriever = std::function<std::vector<Hit>(std::string_view query, std::size_t k)>;
Retriever retriever(const Store& store);

// Retrieves, decides whether to abstain, generates through `chat` and resolves citations. Throws
// kexa::Error when the prompt does not fit the context of chat's backend (options.context is
// for the caller's backend; answer() does not read it).
AnswerResult answer(const Retriever& retrieve, const ChatFunction& chat, const AnswerOptions& options,
                    std::string_view question);

// Constrained decoding for answers that must cite: the reply may end (stop token) only after a
// marker "[n]" naming one of the n_sources sources, and when the remaining budget is about to run
// out the marker is forced. Otherwise any non-special text is allowed.
class CitationRequirement : public TextConstraint {
 public:
  explicit CitationRequirement(int n_sources) : n_sources_(n_sources) {}
  bool accepts(std::string_view text, size_t budget) const override;
  void advance(std::string_view text) override;
  bool complete() const override { return cited_; }
  size_t min_completion() const;

 private:
  bool feed(char c);
  int n_sources_;
  bool cited_ = false;
  std::string open_;  // "[" and digits of a marker in progress
};

// The pieces, for tests and for callers that run generation themselves (the server's scheduler).
// True when `hits` holds nothing scoring at least min_score.
bool should_abstain(const std::vector<Hit>& hits, double min_score);
// The system instructions (fixed text; never holds document content).
const std::string& system_prompt();
// Escapes a document's text for quoting: "<source" / "</source" (any case) and "[n]"-like
// citation markers cannot appear verbatim afterwards.
std::string neutralize_source_text(std::string_view text);
// The user turn: the numbered, delimited sources then the question.
std::string user_message(std::string_view question, const std::vector<Hit>& sources,
                         std::size_t max_source_chars = 2400);
// [{"role":"system",...},{"role":"user",...}] for ChatTemplate::render.
nlohmann::ordered_json build_messages(std::string_view question, const std::vector<Hit>& sources,
                                      std::size_t max_source_chars = 2400);
// Citation numbers in the order they appear: "[1]", "[2, 3]", "[1][4]", "[2-3]" (a range up to
// 20 numbers), full-width brackets too. Duplicates are kept.
std::vector<int> parse_citations(std::string_view answer_text);
// Resolves citations against the sources; numbers outside [1, sources.size()] go to dropped
// (and their markers are removed from `answer_text`, returned through `cleaned`).
void resolve_citations(std::string_view answer_text, const std::vector<Hit>& sources,
                       std::vector<Citation>& citations, std::vector<int>& dropped,
                       std::string& cleaned);

}  // namespace kexa::rag
