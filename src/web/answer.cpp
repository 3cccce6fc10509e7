#include "web/answer.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "rag/store.h"
#include "util/error.h"
#include "web/text.h"

namespace kexa::web {

namespace {

std::string today_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// One chunk of one page, with its index terms.
struct IndexedChunk {
  rag::Hit hit;
  std::unordered_map<std::string, int> tf;
  std::size_t length = 0;
  std::vector<float> vector;  // unit embedding of the chunk, when an embedder is set
};

}  // namespace

std::vector<std::string> rewrite_queries(const ChatFunction& chat, std::string_view question, std::string_view date,
                                         std::size_t max_queries) {
  if (max_queries == 0 || !chat.turn) return {};
  TurnRequest req;
  req.messages = nlohmann::ordered_json::array();
  req.messages.push_back(
      {{"role", "system"},
       {"content", "You write web search queries. Today is " + std::string(date) +
                       ". Reply with up to " + std::to_string(max_queries) +
                       " short search queries for the user's question, one per line, in the question's "
                       "language, and nothing else."}});
  req.messages.push_back({{"role", "user"}, {"content", std::string(question)}});
  req.kwargs["enable_thinking"] = false;
  req.max_tokens = 64;
  TurnResult r = chat.turn(req, {});
  std::vector<std::string> out;
  size_t pos = 0;
  const std::string& text = r.content;
  while (pos < text.size() && out.size() < max_queries) {
    size_t nl = text.find('\n', pos);
    std::string line = trim_space(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
    // "1. q", "- q", "\"q\"" -> q
    size_t i = 0;
    while (i < line.size() && (std::isdigit(static_cast<unsigned char>(line[i])) || line[i] == '.' || line[i] == ')' ||
                               line[i] == '-' || line[i] == '*' || line[i] == ' ' || line[i] == '"'))
      ++i;
    line = line.substr(i);
    while (!line.empty() && line.back() == '"') line.pop_back();
    if (line.size() > 200) line.resize(200);
    if (!line.empty() && line != question && std::find(out.begin(), out.end(), line) == out.end()) out.push_back(line);
  }
  return out;
}

rag::Retriever page_retriever(const std::vector<Page>& pages, const rag::ChunkOptions& chunk, const rag::Embedder& embed) {
  auto chunks = std::make_shared<std::vector<IndexedChunk>>();
  for (const Page& p : pages) {
    if (!p.ok()) continue;
    for (const rag::ChunkSpan& cs : rag::chunk_text(p.text, chunk)) {
      IndexedChunk c;
      c.hit.chunk_id = static_cast<std::int64_t>(chunks->size() + 1);
      c.hit.path = p.final_url.empty() ? p.url : p.final_url;
      c.hit.unit = "text";
      c.hit.begin = static_cast<std::int64_t>(cs.span.begin);
      c.hit.end = static_cast<std::int64_t>(cs.span.end);
      c.hit.heading = p.title;
      c.hit.text = p.text.substr(cs.span.begin, cs.span.end - cs.span.begin);
      // The title and section heading describe every chunk of the page, as in a store's index.
      const std::string described = p.title + "\n" + cs.heading + "\n" + c.hit.text;
      for (const std::string& t : rag::analyze(described)) ++c.tf[t];
      for (const auto& [t, n] : c.tf) c.length += static_cast<std::size_t>(n);
      if (embed) c.vector = rag::unit_vector(embed(described));
      chunks->push_back(std::move(c));
    }
  }
  // Rankings hold indexes into *chunks.
  auto rank_bm25 = [chunks](std::string_view query) {
    const rag::Bm25Params bm;
    std::vector<std::string> terms = rag::analyze_query(query);
    std::sort(terms.begin(), terms.end());
    terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
    double n = static_cast<double>(chunks->size()), avg = 0;
    for (const IndexedChunk& c : *chunks) avg += static_cast<double>(c.length);
    avg = n > 0 ? avg / n : 1;
    std::vector<double> score(chunks->size(), 0.0);
    for (const std::string& t : terms) {
      double df = 0;
      for (const IndexedChunk& c : *chunks) df += c.tf.count(t) ? 1 : 0;
      if (df == 0) continue;
      double idf = rag::bm25_idf(n, df);
      for (std::size_t i = 0; i < chunks->size(); ++i) {
        auto it = (*chunks)[i].tf.find(t);
        if (it == (*chunks)[i].tf.end()) continue;
        score[i] += rag::bm25_term(bm, idf, it->second, static_cast<double>((*chunks)[i].length), avg);
      }
    }
    rag::Ranking ranked;
    for (std::size_t i = 0; i < score.size(); ++i)
      if (score[i] > 0) ranked.emplace_back(score[i], static_cast<std::int64_t>(i));
    rag::keep_best(ranked, ranked.size());
    return ranked;
  };
  return [chunks, rank_bm25, embed](std::string_view query, std::size_t k) {
    rag::Ranking ranked = rank_bm25(query);
    // Dense similarity only reorders pages that BM25 found: a chunk sharing no term with the
    // question is not a source, and the abstention threshold stays a BM25 score.
    if (embed && !ranked.empty()) {
      std::vector<float> q = rag::unit_vector(embed(query));
      rag::Ranking dense;
      for (const auto& [s, i] : ranked) dense.emplace_back(rag::dot((*chunks)[static_cast<std::size_t>(i)].vector, q), i);
      rag::keep_best(dense, dense.size());
      std::unordered_map<std::int64_t, double> bm25_score;
      for (const auto& [s, i] : ranked) bm25_score[i] = s;
      const rag::Ranking lists[] = {ranked, dense};
      rag::Ranking fused = rag::fuse_rankings(lists, ranked.size());
      for (auto& [s, i] : fused) s = bm25_score[i];
      ranked = std::move(fused);
    }
    std::vector<rag::Hit> out;
    for (const auto& [score, i] : ranked) {
      if (out.size() >= k) break;
      out.push_back((*chunks)[static_cast<std::size_t>(i)].hit);
      out.back().score = score;
    }
    return out;
  };
}

WebAnswer web_answer(SearchService& search, Fetcher& fetcher, const ChatFunction* chat, const WebOptions& options,
                     std::string_view question) {
  WebAnswer w;
  w.question = std::string(question);
  w.queries.push_back(w.question);
  if (chat && options.rewrite) {
    std::string date = options.date.empty() ? today_utc() : options.date;
    for (std::string& q : rewrite_queries(*chat, question, date, options.max_queries)) w.queries.push_back(std::move(q));
  }
  std::vector<std::vector<SearchResult>> per_query;
  for (const std::string& q : w.queries) {
    try {
      per_query.push_back(search.search(q));
    } catch (const Error& e) {
      w.search_errors.push_back(e.what());
    }
  }
  if (per_query.empty()) fail("web search failed: ", w.search_errors.front());
  // Round robin across queries, so the question's own best results come first.
  std::vector<SearchResult> merged;
  for (std::size_t rank = 0;; ++rank) {
    bool any = false;
    for (const auto& list : per_query)
      if (rank < list.size()) merged.push_back(list[rank]), any = true;
    if (!any) break;
  }
  w.results = dedupe(std::move(merged));
  if (w.results.size() > options.max_pages) w.results.resize(options.max_pages);

  auto abstain = [&](std::string why) {
    w.failure = std::move(why);
    w.result = {};
    w.result.abstained = true;
    w.result.answer = std::string(kWebAbstainAnswer) + " (" + w.failure + ")";
    w.result.stop_reason = "abstained";
    if (options.answer.on_delta) options.answer.on_delta(w.result.answer);
  };
  if (w.results.empty()) {
    abstain("the search found no pages");
    return w;
  }

  std::vector<std::string> urls;
  for (const SearchResult& r : w.results) urls.push_back(r.url);
  w.pages = fetcher.fetch(urls);
  for (std::size_t i = 0; i < w.pages.size(); ++i)  // a PDF or text page has no <title>
    if (w.pages[i].title.empty()) w.pages[i].title = w.results[i].title;
  std::size_t readable = 0;
  for (const Page& p : w.pages) readable += p.ok() ? 1 : 0;
  if (readable == 0) {
    std::string why = "every page failed: ";
    for (std::size_t i = 0; i < w.pages.size() && i < 4; ++i)
      why += (i ? "; " : "") + w.pages[i].url + ": " + w.pages[i].error;
    if (w.pages.size() > 4) why += "; ...";
    abstain(why);
    return w;
  }

  rag::Retriever retrieve = page_retriever(w.pages, options.chunk, options.embed);
  std::vector<rag::Hit> hits = retrieve(question, options.answer.k);
  if (rag::should_abstain(hits, options.answer.min_score)) {
    abstain("none of the " + std::to_string(readable) + " pages read matches the question well enough");
    w.result.sources = hits;
    return w;
  }
  if (!chat) {
    w.result.sources = hits;
    w.result.stop_reason = "sources_only";
    return w;
  }
  // rag::answer quotes exactly these hits: retrieval has already been done above.
  rag::Retriever fixed = [&hits](std::string_view, std::size_t) { return hits; };
  w.result = rag::answer(fixed, *chat, options.answer, question);
  return w;
}

nlohmann::json WebAnswer::to_json(bool include_page_text) const {
  nlohmann::json j = result.to_json();
  // Web sources are pages: name their URL and title rather than a file path and heading.
  for (const char* list : {"sources", "citations"})
    for (auto& s : j[list]) {
      s["url"] = s["path"];
      s["title"] = s["heading"];
      s.erase("path");
      s.erase("heading");
    }
  j["question"] = question;
  j["queries"] = queries;
  j["search_errors"] = search_errors;
  if (!failure.empty()) j["failure"] = failure;
  nlohmann::json pages_json = nlohmann::json::array();
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const Page& p = pages[i];
    nlohmann::json pj = {{"url", p.url},          {"final_url", p.final_url},       {"title", p.title},
                         {"ok", p.ok()},          {"status", p.status},             {"content_type", p.content_type},
                         {"charset", p.charset},  {"cached", p.cached},             {"bytes", p.text.size()}};
    if (i < results.size()) pj["search_title"] = results[i].title;
    if (!p.ok()) pj["error"] = p.error;
    if (include_page_text && p.ok()) pj["text"] = p.text;
    pages_json.push_back(std::move(pj));
  }
  j["pages"] = pages_json;
  return j;
}

}  // namespace kexa::web
