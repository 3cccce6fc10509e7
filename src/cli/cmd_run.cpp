// kexa run: one prompt in, generated text (or ids) out on stdout; diagnostics on stderr.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/speculative.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa::cli {

namespace {

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  std::string s = text;
  for (char& c : s)
    if (c == ',') c = ' ';
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX)
      fail("--tokens: '", word, "' is not a token id (expected non-negative integers separated by "
           "spaces or commas)");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) fail("--tokens: no token ids given");
  return ids;
}

// Loads the tokenizer from the model path, or returns nullptr when the model has none.
std::unique_ptr<Tokenizer> try_load_tokenizer(const std::string& path, const std::string& model_type,
                                              std::string* why) {
  try {
    return Tokenizer::load(path, model_type);
  } catch (const Error& e) {
    *why = e.what();
    return nullptr;
  }
}

double mib(size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace

namespace {

// Peak resident set of this process (Linux reports ru_maxrss in KiB).
double peak_rss_mib() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Resident set now (/proc/self/statm: pages), including the mapped weight pages touched so far.
double current_rss_mib() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// after_prefill: the expert counters when the first token came out (the prompt evaluated).
void print_stats(const Model& model, const GenerateResult& r, const Model::ExpertStats& after_prefill) {
  const double mb = 1048576.0;
  std::fprintf(stderr, "kexa run: stats | RSS %.1f MiB (peak %.1f MiB) | weights read per decoded token %.1f MiB\n",
               current_rss_mib(), peak_rss_mib(), static_cast<double>(model.weight_bytes()) / mb);
  const size_t total = model.expert_bytes();
  if (total == 0) return;
  const Model::ExpertStats st = model.expert_stats();
  const int64_t moe_layers = [&] {
    int64_t n = 0;
    for (const LayerPlan& l : model.config().layers) n += l.moe ? 1 : 0;
    return n;
  }();
  // Single-row steps are plain decode steps; each evaluates every MoE layer once.
  const double decode_tokens = moe_layers > 0 ? static_cast<double>(st.decode_layer_steps) / static_cast<double>(moe_layers) : 0;
  const double per_token = decode_tokens > 0 ? static_cast<double>(st.decode_bytes) / decode_tokens : 0;
  std::fprintf(stderr,
               "kexa run: stats | experts %.1f MiB in all | decode reads %.2f MiB of experts per token "
               "(%.2f%% of all experts, over %.0f single-token steps) | all steps: %.1f MiB of experts "
               "read for %zu generated tokens\n",
               static_cast<double>(total) / mb, per_token / mb, 100.0 * per_token / static_cast<double>(total),
               decode_tokens, static_cast<double>(st.bytes_touched) / mb, r.tokens.size());
  // Over the whole decode loop (speculative verify steps included): expert bytes per token after the first.
  if (r.tokens.size() > 1) {
    const double loop = static_cast<double>(st.bytes_touched - after_prefill.bytes_touched) /
                        static_cast<double>(r.tokens.size() - 1);
    std::fprintf(stderr,
                 "kexa run: stats | decode loop: %.2f MiB of experts read per generated token (%.2f%% of all "
                 "experts)\n",
                 loop / mb, 100.0 * loop / static_cast<double>(total));
  }
}

}  // namespace

int run_main(int argc, char** argv) {
  CLI::App app{
      "Generate from a prompt. Stdout gets only the generated text (the prompt is not echoed; a "
      "newline ends the output) or, with --print-ids, the generated ids; a one-line summary goes "
      "to stderr.\nDefault sampling is greedy (temperature 0), so runs are deterministic; set "
      "--temp > 0 to sample (seeded by --seed).",
      "kexa run"};
  std::string model_path, prompt, tokens_text, dump_path;
  int64_t n_predict = 128, threads = 0, ctx = 0, chunk = 512;
  SamplingParams sp;
  std::optional<uint64_t> seed;
  bool print_ids = false, no_bos = false, ignore_eos = false, verbose = false;

  app.add_option("-m,--model", model_path, "model: Hugging Face folder or .gguf file")->required();
  auto* opt_prompt = app.add_option("-p,--prompt", prompt, "prompt text (needs the tokenizer)");
  auto* opt_tokens = app.add_option("--tokens", tokens_text,
                                    "prompt as token ids \"ID ID ...\" (no tokenizer needed, "
                                    "no BOS added)");
  opt_prompt->excludes(opt_tokens);
  opt_tokens->excludes(opt_prompt);
  app.add_option("-n,--n-predict", n_predict, "tokens to generate (default 128)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--temp", sp.temperature, "temperature; 0 = greedy (default 0)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", sp.top_k, "keep the k most likely tokens; 0 = off (default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", sp.top_p, "nucleus sampling threshold in (0, 1]; 1 = off (default)");
  app.add_option("--min-p", sp.min_p, "drop tokens below min-p x p(max) in [0, 1]; 0 = off (default)");
  app.add_option("--repeat-penalty", sp.repeat_penalty,
                 "divide positive / multiply negative logits of recent tokens; 1 = off (default)");
  app.add_option("--presence-penalty", sp.presence_penalty,
                 "subtract from recent tokens' logits once; 0 = off (default)");
  app.add_option("--frequency-penalty", sp.frequency_penalty,
                 "subtract per occurrence in recent tokens; 0 = off (default)");
  app.add_option("--repeat-last-n", sp.penalty_last_n,
                 "recent tokens the penalties look at (prompt included); -1 = all (default 64)");
  app.add_option("--seed", seed, "random seed for sampling (default: random, printed with -v)");
  app.add_option("-t,--threads", threads, "threads; 0 = all CPUs (default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("-c,--ctx", ctx,
                 "context size (KV cache positions); 0 = prompt + n, capped at the model's "
                 "maximum (default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--chunk", chunk, "prefill chunk: most tokens per forward pass (default 512)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--print-ids", print_ids,
               "print the generated ids (space separated, one line; the stop id included) "
               "instead of text");
  app.add_option("--dump-logits", dump_path,
                 "write the logits of every evaluated position (prompt, then generated; the last "
                 "generated token is not evaluated) as little-endian float32 [positions x vocab]");
  app.add_flag("--no-bos", no_bos, "-p: do not add the tokenizer's BOS / special tokens");
  app.add_flag("--ignore-eos", ignore_eos, "do not stop at the model's EOS ids");
  app.add_flag("-v,--verbose", verbose, "more detail on stderr");
  bool stats = false;
  app.add_flag("--stats", stats,
               "print memory use (peak RSS) and, for mixture-of-experts models, the expert bytes "
               "read per decoded token against the total expert bytes");
  // MTP speculative decoding (K-EXAONE): -1 = default (2 when the model has an MTP block).
  int64_t mtp_draft = -1;
  app.add_option("--mtp", mtp_draft,
                 "draft tokens per step for MTP speculative decoding; 0 = off (default 2 when the "
                 "model has an MTP block)")
      ->check(CLI::NonNegativeNumber);
  bool mtp_compare = false;
  app.add_flag("--mtp-compare", mtp_compare,
               "with MTP on: afterwards decode the same prompt again without MTP (output not "
               "printed) and report the measured speed-up; greedy runs also check that both "
               "outputs are identical (exit 1 when not)");

  try {
    app.parse(argc, argv);
    if (!opt_prompt->count() && !opt_tokens->count())
      throw CLI::RequiredError("one of -p/--prompt or --tokens");
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  sp.seed = seed ? *seed : std::random_device{}();
  try {
    sp.validate();
  } catch (const Error& e) {
    std::fprintf(stderr, "kexa run: %s\n", e.what());
    return 2;
  }
  std::vector<int32_t> prompt_ids;
  if (opt_tokens->count()) {
    try {
      prompt_ids = parse_token_list(tokens_text);
    } catch (const Error& e) {
      std::fprintf(stderr, "kexa run: %s\n", e.what());
      return 2;
    }
  }

  const auto t_load = std::chrono::steady_clock::now();
  LoadOptions lo;
  lo.n_threads = static_cast<int>(threads);
  std::unique_ptr<Model> model = Model::load(model_path, lo);
  const ModelConfig& cfg = model->config();

  std::string no_tok_reason;
  std::unique_ptr<Tokenizer> tok;
  if (opt_prompt->count() || !print_ids) tok = try_load_tokenizer(model_path, cfg.model_type, &no_tok_reason);
  if (opt_prompt->count()) {
    if (!tok) fail("-p needs a tokenizer, and none could be loaded from ", model_path, ": ",
                   no_tok_reason, " (use --tokens to give ids)");
    prompt_ids = tok->encode(prompt, /*add_special_tokens=*/!no_bos);
    if (prompt_ids.empty()) fail("-p: the prompt encodes to no tokens");
  } else if (!tok && !print_ids) {
    std::fprintf(stderr, "kexa run: warning: no tokenizer (%s); printing ids instead of text\n",
                 no_tok_reason.c_str());
    print_ids = true;
  }
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  for (int32_t id : prompt_ids)
    if (id >= cfg.vocab_size) {
      std::fprintf(stderr, "kexa run: --tokens: id %d is outside the model's vocabulary [0, %lld)\n",
                   id, static_cast<long long>(cfg.vocab_size));
      return 2;
    }

  const int64_t n_prompt = static_cast<int64_t>(prompt_ids.size());
  if (ctx == 0) {
    ctx = n_prompt + std::max<int64_t>(n_predict, 1);
    if (cfg.max_position > 0) ctx = std::min(ctx, std::max(cfg.max_position, n_prompt));
  }
  KVCache cache(cfg, ctx, chunk);
  Generator gen(*model, cache, sp);

  std::unique_ptr<std::ofstream> dump;
  GenerateOptions go;
  go.max_tokens = n_predict;
  go.use_model_eos = !ignore_eos;
  int64_t dumped_rows = 0;
  if (!dump_path.empty()) {
    static_assert(std::endian::native == std::endian::little,
                  "--dump-logits writes the host's float layout, which must be little-endian");
    dump = std::make_unique<std::ofstream>(dump_path, std::ios::binary | std::ios::trunc);
    if (!*dump) fail("--dump-logits: cannot open ", dump_path, " for writing");
    go.on_logits = [&](std::span<const float> row) {
      dump->write(reinterpret_cast<const char*>(row.data()),
                  static_cast<std::streamsize>(row.size_bytes()));
      ++dumped_rows;
    };
  }

  if (verbose) {
    std::fprintf(stderr,
                 "kexa run: %s | %s | loaded in %.2f s | threads %d | kernels %s | weights %.1f "
                 "MiB | KV cache %.2f MiB (ctx %lld, chunk %lld) | seed %llu\n",
                 model_path.c_str(), cfg.summary().c_str(), load_s, model->pool().size(),
                 kernels::path_name(kernels::active_path()).c_str(), mib(model->weight_bytes()),
                 mib(cache.bytes()), static_cast<long long>(ctx),
                 static_cast<long long>(cache.chunk()), static_cast<unsigned long long>(sp.seed));
    std::fprintf(stderr, "kexa run: prompt ids:");
    for (int32_t id : prompt_ids) std::fprintf(stderr, " %d", id);
    std::fprintf(stderr, "\n");
  }

  std::unique_ptr<StreamDecoder> decoder;
  if (!print_ids) {
    decoder = std::make_unique<StreamDecoder>(*tok, /*skip_special=*/true);
    // The prompt goes through the decoder first (output dropped) so the first generated piece
    // keeps its leading space exactly as in decode(prompt + generated).
    for (int32_t id : prompt_ids) (void)decoder->push(id);
  }
  std::vector<int32_t> stop_ids;
  if (!ignore_eos)
    for (int64_t id : cfg.eos_token_ids) stop_ids.push_back(static_cast<int32_t>(id));
  bool first_id = true;
  Model::ExpertStats after_prefill{};
  bool prefill_done = false;
  auto on_token = [&](int32_t id) {
    if (!prefill_done) {
      after_prefill = model->expert_stats();
      prefill_done = true;
    }
    if (print_ids) {
      std::printf(first_id ? "%d" : " %d", id);
      first_id = false;
    } else if (std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) {
      const std::string piece = decoder->push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    }
    std::fflush(stdout);
    return true;
  };

  // MTP speculative decoding: same output as plain decoding (greedy: token for token).
  if (mtp_draft > 0 && !model->has_mtp())
    fail("--mtp ", mtp_draft, ": ", model_path, " has no MTP block (use --mtp 0)");
  const int64_t n_draft = mtp_draft >= 0 ? mtp_draft : (model->has_mtp() ? 2 : 0);
  std::unique_ptr<SpeculativeGenerator> spec;
  if (n_draft > 0) spec = std::make_unique<SpeculativeGenerator>(*model, cache, sp, static_cast<int>(n_draft));
  model->reset_expert_stats();
  GenerateResult r = spec ? spec->generate(prompt_ids, go, on_token) : gen.generate(prompt_ids, go, on_token);
  if (decoder) {
    const std::string rest = decoder->finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  std::printf("\n");
  std::fflush(stdout);
  if (dump) {
    dump->flush();
    if (!*dump) fail("--dump-logits: writing ", dump_path, " failed");
  }

  const double pp = r.prefill_seconds > 0 ? static_cast<double>(r.prompt_evaluated) / r.prefill_seconds : 0;
  // Tokens after the first one per second of the decode loop (a speculative step yields several).
  const double tg = r.decode_seconds > 0 && !r.tokens.empty()
                        ? static_cast<double>(r.tokens.size() - 1) / r.decode_seconds : 0;
  if (spec) {
    const SpeculativeStats& st = spec->stats();
    const double steps = st.steps > 0 ? static_cast<double>(st.steps) : 1.0;
    std::fprintf(stderr,
                 "kexa run: mtp %lld drafts/step | acceptance %.1f%% (%lld of %lld drafts) | %lld verify "
                 "steps | %.2f tokens/step | verify %.1f ms/step, drafting %.1f ms/step | decode %.1f tok/s | "
                 "MTP KV cache %.2f MiB\n",
                 static_cast<long long>(n_draft), 100.0 * st.acceptance(), static_cast<long long>(st.accepted),
                 static_cast<long long>(st.drafted), static_cast<long long>(st.steps),
                 st.steps > 0 ? static_cast<double>(r.tokens.size() - 1) / steps : 0.0, 1e3 * st.verify_seconds / steps,
                 1e3 * st.draft_seconds / steps, tg, mib(spec->mtp_cache().bytes()));
  }
  std::fprintf(stderr,
               "kexa run: prompt %lld tok (%.1f tok/s) | generated %zu tok (%.1f tok/s) | stop %s | "
               "KV cache %.2f MiB (%zu bytes, ctx %lld)%s\n",
               static_cast<long long>(n_prompt), pp, r.tokens.size(), tg, stop_reason_name(r.reason),
               mib(cache.bytes()), cache.bytes(), static_cast<long long>(ctx),
               dump ? concat(" | dumped ", dumped_rows, " logit rows").c_str() : "");
  if (stats) print_stats(*model, r, after_prefill);
  if (mtp_compare && !spec) std::fprintf(stderr, "kexa run: --mtp-compare: MTP is off, nothing to compare\n");
  if (spec && mtp_compare) {
    // The same prompt decoded plainly (same cache, same sampling settings), timed the same way.
    GenerateOptions plain_opt = go;
    plain_opt.on_logits = nullptr;
    const GenerateResult p = gen.generate(prompt_ids, plain_opt);
    const double ptg = p.decode_seconds > 0 && !p.tokens.empty()
                           ? static_cast<double>(p.tokens.size() - 1) / p.decode_seconds : 0;
    const bool same = p.tokens == r.tokens;
    std::fprintf(stderr, "kexa run: mtp speed-up %.2fx over plain decoding (%zu tok at %.1f tok/s, mtp %.1f tok/s)%s\n",
                 ptg > 0 ? tg / ptg : 0.0, p.tokens.size(), ptg, tg,
                 sp.greedy() ? (same ? " | greedy outputs identical" : " | greedy outputs DIFFER") : "");
    if (sp.greedy() && !same) {
      std::fprintf(stderr, "kexa run: error: --mtp %lld and plain greedy decoding gave different tokens\n",
                   static_cast<long long>(n_draft));
      return 1;
    }
  }
  return 0;
}

}  // namespace kexa::cli
