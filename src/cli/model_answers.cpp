// The model-backed modes of `kexa rag`, `kexa sql` and `kexa web`: `kexa rag query` (grounded answer
// with citations), `kexa sql -m MODEL "question"` (text-to-SQL, executed read-only, answered) and
// `kexa web ask` (answer from fetched web pages with sources). cmd_rag.cpp, cmd_sql.cpp and
// cmd_web.cpp dispatch here before parsing their own options.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/web_args.h"
#include "rag/answer.h"
#include "rag/store.h"
#include "runtime/embedder.h"
#include "runtime/engine.h"
#include "runtime/job.h"
#include "runtime/turn.h"
#include "sql/generate.h"
#include "sql/sql.h"
#include "util/error.h"
#include "web/answer.h"

namespace kexa::cli {

namespace {

// The engine and one local sequence that rag/ and sql/ generate on, through a ChatFunction.
struct LocalChat {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<LocalGeneration> local;
  ChatFunction chat;

  LocalChat(const std::string& path, int threads, int64_t context) {
    EngineOptions eo;
    eo.n_threads = threads;
    engine = Engine::open(path, eo);
    (void)engine->chat_template();  // fails now, naming why, when the checkpoint has none
    local = std::make_unique<LocalGeneration>(engine->model(), context);
    chat = chat_function(*engine, *local);
  }
};

// --temperature and --seed, as every command that answers with a local model takes them.
void add_sampling_options(CLI::App& app, SamplingParams& sp) {
  app.add_option("--temperature", sp.temperature, "0 = greedy");
  app.add_option("--seed", sp.seed, "sampling seed");
}

// How a cited answer is generated (rag query, web ask): length, context, quoted bytes, sampling.
void add_answer_generation_options(CLI::App& app, rag::AnswerOptions& opt) {
  app.add_option("--max-tokens", opt.max_tokens, "answer length cap");
  app.add_option("--ctx", opt.context, "context size (prompt + answer)");
  app.add_option("--max-source-chars", opt.max_source_chars, "bytes of each chunk quoted");
  add_sampling_options(app, opt.sampling);
}

std::string dump(const nlohmann::json& j, int indent = 2) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string one_line(std::string s, size_t max_bytes) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (s.size() > max_bytes) {
    size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n) + "...";
  }
  return s;
}

std::string cell(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : dump(v, -1);
}

}  // namespace

int rag_query_main(int argc, char** argv) {
  CLI::App app{"Answer a question from the documents of a store, citing them: the best chunks are\n"
               "quoted as numbered sources, the model answers through its chat template, and every\n"
               "[n] of the answer is mapped back to its source file and span. Abstains when no\n"
               "chunk scores at least --min-score."};
  app.name("kexa rag query");
  std::string store_path, model_path, question;
  rag::AnswerOptions opt;
  bool json = false, stream = false;
  int threads = 0;
  app.add_option("--store", store_path, "store file")->required();
  app.add_option("-m,--model", model_path, "model folder or .gguf")->required()->type_name("PATH");
  app.add_option("question", question, "the question")->required();
  app.add_option("-k", opt.k, "chunks quoted as sources")->check(CLI::Range(1, 50));
  app.add_option("--min-score", opt.min_score,
                 "abstain unless the best chunk's BM25 score reaches this (default 2.0: one occurrence "
                 "of a term found in about 1 chunk in 8)");
  add_answer_generation_options(app, opt);
  app.add_flag("--think", opt.enable_thinking, "enable_thinking=true (reasoning returned separately)");
  app.add_option("-t,--threads", threads, "threads (0 = all)");
  app.add_flag("--json", json, "print the result as JSON");
  app.add_flag("--stream", stream, "print the answer as it is generated (text mode)");
  std::string dump_prompt;
  app.add_option("--dump-prompt", dump_prompt, "write the rendered prompt to this file (inspection, tests)");
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  opt.sampling.validate();
  rag::Store store(store_path, /*read_only=*/true);
  LocalChat m(model_path, threads, opt.context);
  if (stream && !json)
    opt.on_delta = [](std::string_view d) {
      std::fwrite(d.data(), 1, d.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  rag::AnswerResult r = rag::answer(rag::retriever(store), m.chat, opt, question);
  if (!dump_prompt.empty()) {
    std::ofstream out(dump_prompt, std::ios::binary);
    out << r.prompt;
    if (!out) fail("rag query: cannot write ", dump_prompt);
  }
  if (json) {
    nlohmann::json j = r.to_json();
    std::cout << dump(j) << '\n';
    return 0;
  }
  if (stream) std::printf("\n");
  else std::printf("%s\n", r.answer.c_str());
  if (r.abstained) {
    std::printf("\n(abstained: no chunk scored at least %.2f", opt.min_score);
    if (!r.sources.empty()) std::printf("; best was %.2f", r.sources.front().score);
    std::printf(")\n");
    return 0;
  }
  std::printf("\nCitations:\n");
  if (r.citations.empty()) std::printf("  (the answer cites no source)\n");
  for (const rag::Citation& c : r.citations)
    std::printf("  [%d] %s %s %lld-%lld: %s\n", c.number, c.source.path.c_str(), c.source.unit.c_str(),
                static_cast<long long>(c.source.begin), static_cast<long long>(c.source.end),
                one_line(c.source.text, 100).c_str());
  if (!r.dropped_citations.empty()) {
    std::printf("  (dropped citations of missing sources:");
    for (int n : r.dropped_citations) std::printf(" [%d]", n);
    std::printf(")\n");
  }
  return 0;
}

int sql_ask_main(int argc, char** argv) {
  CLI::App app{"Answer a question from a database: link the schema, generate one SELECT under a\n"
               "grammar of the linked tables, validate it with the database (retrying with its error\n"
               "message), run it read-only with row/time caps, and answer from the rows."};
  app.name("kexa sql");
  std::string db_url, model_path, question;
  sql::AskOptions opt;
  bool json = false, free_sql = false, no_answer = false;
  int threads = 0;
  app.add_option("--db", db_url, "sqlite:PATH or postgresql://...")->required();
  app.add_option("-m,--model", model_path, "model folder or .gguf")->required()->type_name("PATH");
  app.add_option("question", question, "the question")->required();
  app.add_option("--retries", opt.max_retries, "attempts after a rejected statement")->check(CLI::Range(0, 5));
  app.add_flag("--no-grammar", free_sql, "generate without the SQL grammar (first statement of the reply)");
  app.add_flag("--no-answer", no_answer, "print SQL and rows only");
  app.add_option("--max-rows", opt.limits.max_rows, "row cap");
  app.add_option("--timeout-ms", opt.limits.timeout_ms, "time cap per statement");
  app.add_option("--max-sql-tokens", opt.max_sql_tokens, "SQL length cap in tokens");
  app.add_option("--max-tokens", opt.max_answer_tokens, "answer length cap");
  app.add_option("--ctx", opt.context, "context size");
  add_sampling_options(app, opt.sampling);
  app.add_option("-t,--threads", threads, "threads (0 = all)");
  app.add_flag("--json", json, "print the result as JSON");
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  opt.constrain = !free_sql;
  opt.answer = !no_answer;
  opt.sampling.validate();
  std::unique_ptr<sql::Executor> db = sql::open_database(db_url);
  LocalChat m(model_path, threads, opt.context);
  sql::AskResult r = sql::ask(*db, m.chat, opt, question);
  if (json) {
    std::cout << dump(r.to_json()) << '\n';
    return r.executed ? 0 : 4;
  }
  for (size_t i = 0; i + 1 < r.attempts.size() || (!r.executed && i < r.attempts.size()); ++i)
    std::printf("-- rejected: %s\n--   %s\n", one_line(r.attempts[i].sql, 400).c_str(),
                one_line(r.attempts[i].error, 300).c_str());
  if (!r.executed) {
    std::fprintf(stderr, "kexa sql: %s\n", r.error.c_str());
    return 4;
  }
  std::printf("SQL: %s\n\n", r.sql.c_str());
  for (size_t i = 0; i < r.result.columns.size(); ++i)
    std::printf("%s%s", i ? "\t" : "", r.result.columns[i].c_str());
  std::printf("\n");
  for (const auto& row : r.result.rows) {
    for (size_t i = 0; i < row.size(); ++i) std::printf("%s%s", i ? "\t" : "", cell(row[i]).c_str());
    std::printf("\n");
  }
  std::printf("(%zu row%s%s)\n", r.result.rows.size(), r.result.rows.size() == 1 ? "" : "s",
              r.result.truncated ? ", truncated" : "");
  if (opt.answer) std::printf("\nAnswer: %s\n", r.answer.c_str());
  return 0;
}

int web_ask_main(int argc, char** argv) {
  CLI::App app{"Answer a question from the live web, citing pages: the model writes search queries (given\n"
               "today's date), the results are fetched under the address policy, their main content is\n"
               "chunked and ranked (BM25, Korean-aware; fused with dense similarity with --embed-model), the\n"
               "best chunks are quoted as numbered sources and every [n] of the answer is mapped to a page URL, title and span of its text. Without -m: the\n"
               "sources that would be quoted, no model."};
  app.name("kexa web ask");
  std::string model_path, question, dump_prompt, embed_model;
  WebArgs w;
  web::WebOptions opt;
  bool json = false, stream = false, no_rewrite = false;
  int threads = 0;
  w.add(app);
  app.add_option("-m,--model", model_path, "model folder or .gguf (omit: print the sources only)");
  app.add_option("question", question, "the question")->required();
  app.add_option("-k", opt.answer.k, "chunks quoted as sources")->check(CLI::Range(1, 50));
  app.add_option("--pages", opt.max_pages, "pages fetched")->check(CLI::Range(1, 50));
  app.add_option("--queries", opt.max_queries, "model-written search queries besides the question")
      ->check(CLI::Range(0, 8));
  app.add_flag("--no-rewrite", no_rewrite, "search the question only");
  app.add_option("--embed-model", embed_model,
                 "embedding model (folder or .gguf): order the sources by BM25 and dense similarity fused");
  app.add_flag("--require-citation", opt.answer.require_citation,
               "constrained decoding: the answer may end only after citing a source [n]");
  app.add_option("--date", opt.date, "today's date as told to the model (default: today, UTC)");
  app.add_option("--min-score", opt.answer.min_score, "abstain unless the best chunk's BM25 score reaches this");
  add_answer_generation_options(app, opt.answer);
  app.add_option("-t,--threads", threads, "threads (0 = all)");
  app.add_flag("--json", json, "print the result as JSON (with each page's extracted text)");
  app.add_flag("--stream", stream, "print the answer as it is generated (text mode)");
  app.add_option("--dump-prompt", dump_prompt, "write the rendered prompt to this file (inspection, tests)");
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  opt.rewrite = !no_rewrite;
  opt.answer.sampling.validate();
  std::unique_ptr<web::SearchService> search = web::make_search_service(w.search_spec, w.search);
  web::Fetcher fetcher(w.policy(), w.fetch_options());
  std::unique_ptr<LocalChat> m;
  if (!model_path.empty()) m = std::make_unique<LocalChat>(model_path, threads, opt.answer.context);
  std::unique_ptr<TextEmbedder> embedder;
  if (!embed_model.empty()) {
    embedder = std::make_unique<TextEmbedder>(embed_model, threads);
    opt.embed = [e = embedder.get()](std::string_view t) { return e->embed(t); };
  }
  if (stream && !json)
    opt.answer.on_delta = [](std::string_view d) {
      std::fwrite(d.data(), 1, d.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  web::WebAnswer r = web::web_answer(*search, fetcher, m ? &m->chat : nullptr, opt, question);
  if (!dump_prompt.empty()) {
    std::ofstream out(dump_prompt, std::ios::binary);
    out << r.result.prompt;
    if (!out) fail("web ask: cannot write ", dump_prompt);
  }
  if (json) {
    std::cout << dump(r.to_json()) << '\n';
    return 0;
  }
  if (m) {
    if (stream) std::printf("\n");
    else std::printf("%s\n", r.result.answer.c_str());
  } else if (r.result.abstained) {
    std::printf("%s\n", r.result.answer.c_str());
  }
  for (const std::string& e : r.search_errors) std::printf("(search failed: %s)\n", one_line(e, 200).c_str());
  for (const web::Page& p : r.pages)
    if (!p.ok()) std::printf("(not read: %s: %s)\n", p.url.c_str(), one_line(p.error, 200).c_str());
  const bool cited = m != nullptr;
  std::printf(cited ? "\nCitations:\n" : "\nSources:\n");
  if (cited && r.result.citations.empty() && !r.result.abstained) std::printf("  (the answer cites no source)\n");
  auto line = [](int n, const rag::Hit& h) {
    std::printf("  [%d] %s \"%s\" %lld-%lld: %s\n", n, h.path.c_str(), one_line(h.heading, 80).c_str(),
                static_cast<long long>(h.begin), static_cast<long long>(h.end), one_line(h.text, 100).c_str());
  };
  if (cited)
    for (const rag::Citation& c : r.result.citations) line(c.number, c.source);
  else
    for (size_t i = 0; i < r.result.sources.size(); ++i) line(static_cast<int>(i + 1), r.result.sources[i]);
  return 0;
}

}  // namespace kexa::cli
