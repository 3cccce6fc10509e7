#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "runtime/embedder.h"
#include "sql/generate.h"
#include "sql/sql.h"
#include "util/error.h"

namespace kexa::cli {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("sql: cannot open ", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("sql: ", path, " is not valid JSON: ", e.what());
  }
}

// Questions of a Spider/BIRD dev.json (one array) or of a .jsonl file (one object a line, as
// bench/schema-linking-data/ko_*.jsonl).
nlohmann::json read_questions(const std::string& path) {
  if (path.size() < 6 || path.compare(path.size() - 6, 6, ".jsonl") != 0) return read_json(path);
  std::ifstream in(path);
  if (!in) fail("sql: cannot open ", path);
  nlohmann::json all = nlohmann::json::array();
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      all.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      fail("sql: ", path, " has a line that is not valid JSON: ", e.what());
    }
  }
  return all;
}

// Hidden benchmark: schema-linking recall and table share on Spider/BIRD-format files.
// `field` names the question text ("question", or "question_en" of the Korean sets); questions
// with a "split" are also counted per split.
int bench_linking(const std::string& tables_path, const std::string& questions_path,
                  const std::string& db_dir, size_t samples, const std::string& field, bool evidence) {
  auto schemas = sql::schemas_from_spider_json(read_json(tables_path));
  std::map<std::string, sql::Schema> by_id;
  std::map<std::string, std::unique_ptr<sql::SqliteExecutor>> dbs;
  for (auto& [id, s] : schemas) {
    // Sample values come from the databases themselves when they are at hand, and so do the
    // values a question names (sql::add_question_values).
    std::string file = db_dir + "/" + id + "/" + id + ".sqlite";
    if (!db_dir.empty() && samples > 0 && std::filesystem::exists(file)) {
      sql::SqliteExecutor& ex = *(dbs[id] = std::make_unique<sql::SqliteExecutor>(file));
      sql::Schema live = ex.schema(samples);
      for (auto& t : s.tables) {
        int lt = live.find(t.name);
        if (lt < 0) continue;
        for (auto& c : t.columns) {
          for (auto& lc : live.tables[static_cast<size_t>(lt)].columns) {
            if (lc.name == c.name) c.samples = lc.samples;
          }
        }
      }
    }
    by_id[id] = std::move(s);
  }
  auto questions = read_questions(questions_path);
  size_t total = 0, covered = 0, skipped = 0;
  double share = 0;
  struct Tally {
    size_t total = 0, covered = 0;
    double share = 0;
  };
  std::map<std::string, Tally> per_split;
  for (const auto& q : questions) {
    std::string id = q.at("db_id");
    std::string gold = q.contains("query") ? q.at("query").get<std::string>() : q.at("SQL").get<std::string>();
    std::string text = q.at(field);
    if (evidence && q.contains("evidence")) text += " " + q.at("evidence").get<std::string>();
    auto it = by_id.find(id);
    if (it == by_id.end()) fail("sql: question for unknown db_id ", id);
    auto need = sql::tables_in_sql(it->second, gold);
    if (need.empty()) {
      ++skipped;
      continue;
    }
    sql::LinkOptions lo;
    if (const char* e = std::getenv("KEXA_SQL_KEEP")) lo.keep_ratio = std::atof(e);
    if (const char* e = std::getenv("KEXA_SQL_NEIGH")) lo.neighbour_ratio = std::atof(e);
    if (const char* e = std::getenv("KEXA_SQL_SIZE_REF")) lo.size_ref = std::atof(e);
    if (const char* e = std::getenv("KEXA_SQL_SIZE_EXP")) lo.size_exponent = std::atof(e);
    sql::LinkResult got;
    if (auto db = dbs.find(id); db != dbs.end()) {
      sql::Schema with_values = it->second;
      sql::add_question_values(*db->second, with_values, text);
      got = sql::link_schema(with_values, text, lo);
    } else {
      got = sql::link_schema(it->second, text, lo);
    }
    bool ok = true;
    for (auto& t : need) {
      if (std::find(got.tables.begin(), got.tables.end(), t) == got.tables.end()) ok = false;
    }
    ++total;
    covered += ok;
    double q_share = static_cast<double>(got.tables.size()) / static_cast<double>(it->second.tables.size());
    share += q_share;
    if (q.contains("split")) {
      Tally& s = per_split[q.at("split").get<std::string>()];
      ++s.total;
      s.covered += ok;
      s.share += q_share;
    }
    // KEXA_SQL_BENCH_MISSES=1 prints the misses, =all every question.
    const char* trace = std::getenv("KEXA_SQL_BENCH_MISSES");
    if (trace && (!ok || std::string(trace) == "all")) {
      std::printf("%s %s | %s | need:", ok ? "HIT" : "MISS", id.c_str(), text.c_str());
      for (auto& t : need) std::printf(" %s", t.c_str());
      std::printf(" | got:");
      for (auto& t : got.tables) std::printf(" %s", t.c_str());
      std::printf("\n");
    }
  }
  nlohmann::json out = {{"questions", total},
                        {"skipped_no_table_in_gold", skipped},
                        {"recall", total ? static_cast<double>(covered) / static_cast<double>(total) : 0.0},
                        {"mean_table_share", total ? share / static_cast<double>(total) : 0.0}};
  for (const auto& [name, s] : per_split) {
    double n = static_cast<double>(s.total);
    out[name] = {{"questions", s.total}, {"recall", static_cast<double>(s.covered) / n}, {"mean_table_share", s.share / n}};
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int sql_ask_main(int argc, char** argv);  // model_answers.cpp

int sql_main(int argc, char** argv) {
  // With a model (-m/--model) the question is answered by text-to-SQL (model_answers.cpp).
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-m" || a == "--model" || a.rfind("--model=", 0) == 0) return sql_ask_main(argc, argv);
  }
  CLI::App app{"Run SQL safely against a database, or show its schema linked to a question.\n"
               "Only one read-only statement (SELECT/WITH/VALUES) is ever run; anything else is\n"
               "refused with a named reason and a non-zero exit."};
  app.name("kexa sql");
  std::string db, execute, question, model, bench_tables, bench_questions, bench_db_dir;
  std::string bench_field = "question", embedder_path;
  bool json = false, show_schema = false, all_tables = false, no_evidence = false;
  bool explain = false;
  sql::Limits limits;
  size_t samples = 3;
  app.add_option("--db", db, "database: sqlite:PATH or postgresql://user@host:port/db (?host=/socket/dir)")
      ->type_name("DB");
  app.add_option("--execute", execute, "run this one statement through the safe executor");
  app.add_flag("--explain", explain, "with --execute: validate and print the query plan only (dry run)");
  app.add_flag("--schema", show_schema, "print the schema (tables, columns, keys, sample values)");
  app.add_option("--question", question, "with --schema: only the tables linked to this question (what a prompt "
                 "keeps when the whole schema does not fit)");
  app.add_option("--embedder", embedder_path, "with --schema --question: an embedding model (folder or .gguf) whose "
                 "question-table similarity is one more linking signal");
  app.add_flag("--all", all_tables, "with --schema --question: every table, most relevant first");
  app.add_option("--samples", samples, "sample values per column in --schema");
  app.add_flag("--json", json, "print JSON");
  app.add_option("--max-rows", limits.max_rows, "row cap (default 1000)");
  app.add_option("--timeout-ms", limits.timeout_ms, "time cap in milliseconds (default 5000)");
  app.add_option("-m,--model", model, "model: answer question_text by text-to-SQL (kexa sql -m MODEL --db ... \"question\")");
  app.add_option("--bench-linking-tables", bench_tables)->group("");
  app.add_option("--bench-linking-questions", bench_questions)->group("");
  app.add_option("--bench-linking-db-dir", bench_db_dir)->group("");
  app.add_option("--bench-linking-field", bench_field)->group("");
  app.add_flag("--bench-linking-no-evidence", no_evidence)->group("");
  std::string positional;
  app.add_option("question_text", positional, "natural-language question (needs -m MODEL)");
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  if (!bench_tables.empty()) return bench_linking(bench_tables, bench_questions, bench_db_dir, samples, bench_field, !no_evidence);
  if (!positional.empty()) {
    fail("sql: answering a question needs a model: kexa sql -m MODEL --db ... \"question\" "
         "(or use --execute \"SQL\", or --schema --question \"...\")");
  }
  if (db.empty()) fail("sql: --db sqlite:PATH or --db postgresql://... is required");
  std::unique_ptr<sql::Executor> exec_ptr = sql::open_database(db);
  sql::Executor& ex = *exec_ptr;
  if (!execute.empty()) {
    try {
      if (explain) {
        for (auto& line : ex.explain(execute)) std::printf("%s\n", line.c_str());
        return 0;
      }
      sql::Result r = ex.execute(execute, limits);
      if (json) {
        std::printf("%s\n", r.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        for (size_t i = 0; i < r.columns.size(); ++i) std::printf("%s%s", i ? "\t" : "", r.columns[i].c_str());
        std::printf("\n");
        for (auto& row : r.rows) {
          for (size_t i = 0; i < row.size(); ++i) {
            std::string v = row[i].is_string() ? row[i].get<std::string>()
                                               : row[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            std::printf("%s%s", i ? "\t" : "", v.c_str());
          }
          std::printf("\n");
        }
        if (r.truncated) std::fprintf(stderr, "(truncated at %zu rows)\n", limits.max_rows);
      }
      return 0;
    } catch (const sql::Refused& e) {
      if (json) {
        nlohmann::json err = {{"error", {{"reason", e.reason()}, {"message", e.what()}}}};
        std::printf("%s\n", err.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      }
      std::fprintf(stderr, "kexa sql: %s\n", e.what());
      return 3;
    }
  }
  if (show_schema) {
    sql::Schema s = ex.schema(samples);
    if (!question.empty()) {
      sql::add_question_values(ex, s, question);
      sql::LinkOptions lo;
      std::unique_ptr<TextEmbedder> embedder;
      if (!embedder_path.empty()) {
        embedder = std::make_unique<TextEmbedder>(embedder_path);
        lo.embed = [&](const std::string& text) { return embedder->embed(text); };
      }
      sql::LinkResult link = sql::link_schema(s, question, lo);
      sql::Schema sub;
      for (auto& name : all_tables ? sql::ranked_tables(s, link) : link.tables)
        sub.tables.push_back(s.tables[static_cast<size_t>(s.find(name))]);
      s = std::move(sub);
    }
    if (json) {
      std::printf("%s\n", s.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      for (auto& t : s.tables) {
        std::printf("TABLE %s\n", t.name.c_str());
        for (auto& c : t.columns) {
          std::printf("  %s %s%s", c.name.c_str(), c.type.c_str(), c.primary_key ? " PRIMARY KEY" : "");
          if (!c.samples.empty()) {
            std::printf("  -- e.g.");
            for (auto& v : c.samples) std::printf(" '%s'", v.c_str());
          }
          std::printf("\n");
        }
        for (auto& f : t.foreign_keys) {
          std::printf("  FOREIGN KEY %s -> %s(%s)\n", f.column.c_str(), f.ref_table.c_str(), f.ref_column.c_str());
        }
      }
    }
    return 0;
  }
  fail("sql: nothing to do: give --execute \"SQL\" or --schema");
}

}  // namespace kexa::cli
