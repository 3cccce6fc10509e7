#include "server/web_routes.h"

#include <httplib.h>

#include <algorithm>

#include "server/request.h"
#include "server/state.h"
#include "util/error.h"
#include "web/answer.h"

namespace kexa::server {

namespace {

// Counts every search of one request (query rewriting may search several times).
class CountedSearch : public web::SearchService {
 public:
  explicit CountedSearch(WebAccess& w) : w_(w) {}
  std::vector<web::SearchResult> search(std::string_view query) override { return w_.search(query); }
  std::string describe() const override { return w_.service().describe(); }

 private:
  WebAccess& w_;
};

WebAccess& web_or_404(ServerState& st) {
  if (!st.web) {
    throw BadRequest{"this server does not search the web (start kexa serve with --web-search SPEC)", "", 404,
                     "not_found_error"};
  }
  return *st.web;
}

// POST /v1/web/query {"question", "k", "pages", "queries", "max_tokens", "temperature", "seed",
// "require_citation", "min_score"}: the answer with numbered sources (URL, title, quoted span).
json web_query(ServerState& st, const json& body) {
  WebAccess& w = web_or_404(st);
  std::string question = required_string(body, "question", 4000);
  if (!st.engine->has_chat_template()) {
    throw BadRequest{"this model has no chat template (" + st.engine->chat_template_error() + ")", "question"};
  }
  web::WebOptions opt;
  opt.answer.k = static_cast<size_t>(int_field(body, "k", 1, 20).value_or(5));
  opt.answer.min_score = number_field(body, "min_score", 0, 1e6).value_or(opt.answer.min_score);
  opt.answer.require_citation = bool_field(body, "require_citation", false);
  opt.answer.max_tokens = int_field(body, "max_tokens", 1, 1 << 20).value_or(512);
  opt.answer.context = st.options.context;
  if (field(body, "temperature") != nullptr || field(body, "seed") != nullptr) opt.answer.sampling = sampling_from(body);
  opt.max_pages = static_cast<size_t>(int_field(body, "pages", 1, 20).value_or(8));
  opt.max_queries = static_cast<size_t>(int_field(body, "queries", 0, 5).value_or(2));
  opt.rewrite = opt.max_queries > 0;
  CountedSearch search(w);
  web::Fetcher fetcher = w.fetcher();
  ChatFunction chat = chat_function(*st.engine, *st.scheduler);
  web::WebAnswer r;
  try {
    r = web::web_answer(search, fetcher, &chat, opt, question);
  } catch (const Error& e) {
    w.count(fetcher);
    throw BadRequest{e.what(), "question", 502, "web_search_error"};
  }
  w.count(fetcher);
  json out = json::parse(r.to_json(/*include_page_text=*/false).dump(-1, ' ', false, json::error_handler_t::replace));
  out["object"] = "web.answer";
  out["model"] = st.model_name;
  return out;
}

}  // namespace

WebAccess::WebAccess(const ServerOptions& options) {
  web::SearchOptions so;
  search_ = web::make_search_service(options.web_search, so);
  for (const std::string& a : options.web_allow) policy_.allow(a);
  fetch_.cache_path = options.web_cache;
  fetch_.deadline_ms = options.web_deadline_ms;
}

std::vector<web::SearchResult> WebAccess::search(std::string_view query) {
  try {
    std::vector<web::SearchResult> r = search_->search(query);
    count_search(true);
    return r;
  } catch (const Error&) {
    count_search(false);
    throw;
  }
}

void WebAccess::count_search(bool ok) {
  ++searches_;
  if (!ok) ++search_failures_;
}

void WebAccess::count(const web::Fetcher& f) {
  const web::FetchCounters& c = f.counters();
  transfers_ += c.transfers;
  refusals_ += c.refusals;
  robots_denied_ += c.robots_denied;
  cache_hits_ += c.cache_hits;
  page_failures_ += c.failures;
}

std::string WebAccess::render_metrics() const {
  std::string out;
  auto counter = [&out](const char* name, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " +
           std::to_string(v) + "\n";
  };
  counter("kexa_web_searches_total", "Web searches made.", searches_);
  counter("kexa_web_search_failures_total", "Web searches that failed (service down, garbage).", search_failures_);
  counter("kexa_web_fetches_total", "HTTP requests made for pages, redirect hops and robots.txt.", transfers_);
  counter("kexa_web_refusals_total", "URLs and redirect hops refused by the address policy.", refusals_);
  counter("kexa_web_robots_denied_total", "Pages not fetched because robots.txt disallows them.", robots_denied_);
  counter("kexa_web_cache_hits_total", "Pages served from the page cache.", cache_hits_);
  counter("kexa_web_page_failures_total", "Pages that could not be read.", page_failures_);
  return out;
}

json web_tool_declaration() {
  return json::parse(R"J({"type": "function", "function": {"name": "kexa_web_search",
    "description": "Search the web; returns the result pages (URL, title) with their most relevant passages, numbered.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to search for"},
      "k": {"type": "integer", "description": "how many passages (1-10)"}}, "required": ["query"]}}})J");
}

json run_web_tool(ServerState& st, const json& args) {
  if (!args.contains("query") || !args["query"].is_string() || args["query"].get<std::string>().empty())
    return json{{"error", "'query' must be a non-empty string"}};
  size_t k = args.contains("k") && args["k"].is_number_integer()
                 ? static_cast<size_t>(std::clamp<int64_t>(args["k"].get<int64_t>(), 1, 10))
                 : 5;
  WebAccess& w = web_or_404(st);
  std::string query = args["query"].get<std::string>();
  CountedSearch search(w);
  web::Fetcher fetcher = w.fetcher();
  web::WebOptions opt;
  opt.answer.k = k;
  opt.answer.min_score = 0;
  opt.rewrite = false;
  web::WebAnswer r;
  try {
    r = web::web_answer(search, fetcher, nullptr, opt, query);
  } catch (const Error& e) {
    w.count(fetcher);
    return json{{"error", e.what()}};
  }
  w.count(fetcher);
  json results = json::array(), passages = json::array();
  for (size_t i = 0; i < r.results.size(); ++i) {
    json one = {{"url", r.results[i].url}, {"title", r.results[i].title}, {"snippet", r.results[i].snippet}};
    if (i < r.pages.size() && !r.pages[i].ok()) one["error"] = r.pages[i].error;
    results.push_back(std::move(one));
  }
  for (size_t i = 0; i < r.result.sources.size(); ++i) {
    const rag::Hit& h = r.result.sources[i];
    passages.push_back({{"number", i + 1}, {"url", h.path}, {"title", h.heading}, {"begin", h.begin},
                        {"end", h.end}, {"text", h.text}});
  }
  json out = {{"query", query}, {"results", results}, {"passages", passages}};
  if (!r.failure.empty()) out["failure"] = r.failure;
  return json::parse(out.dump(-1, ' ', false, json::error_handler_t::replace));
}

json web_tool_result_for_model(const json& result) {
  if (result.contains("error")) return result;
  json passages = json::array();
  for (const json& p : result.value("passages", json::array()))
    passages.push_back({{"number", p.value("number", 0)}, {"url", p.value("url", "")}, {"title", p.value("title", "")},
                        {"text", p.value("text", "")}});
  json out = {{"passages", passages}};
  if (result.contains("failure")) out["failure"] = result["failure"];
  return out;
}

void install_web_routes(httplib::Server& svr, ServerState& st) {
  svr.Post("/v1/web/query", guarded(st, "/v1/web/query", [&st](const auto& req, auto& res) {
             send_json(res, 200, web_query(st, parse_body(req.body)));
           }));
}

}  // namespace kexa::server
