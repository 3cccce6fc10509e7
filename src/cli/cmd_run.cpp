// kexa run: one prompt in, generated text (or ids) out on stdout; diagnostics on stderr.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/image_input.h"
#include "cli/device.h"
#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/speculative.h"
#include "runtime/turn.h"
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

namespace {

struct RunArgs {
  std::string model_path, prompt, tokens_text, dump_path, mmproj, device = "auto", cache_type = "f32";
  bool has_prompt = false;
  int64_t n_predict = 128, threads = 0, ctx = 0, chunk = 512, gpu_layers = -1;
  SamplingParams sp;
  bool print_ids = false, no_bos = false, ignore_eos = false, verbose = false, stats = false;
  int64_t mtp_draft = -1;  // -1 = default (2 when the model has an MTP block)
  bool mtp_compare = false;
  std::vector<std::string> images;  // --image: the prompt becomes a chat message with these pictures
};

// Parses the command line into `a`; returns the exit code when the run must end here.
std::optional<int> parse_run_args(int argc, char** argv, RunArgs& a) {
  CLI::App app{
      "Generate from a prompt. Stdout gets only the generated text (the prompt is not echoed; a "
      "newline ends the output) or, with --print-ids, the generated ids; a one-line summary goes "
      "to stderr.\nDefault sampling is greedy (temperature 0), so runs are deterministic; set "
      "--temp > 0 to sample (seeded by --seed).",
      "kexa run"};
  std::optional<uint64_t> seed;
  SamplingParams& sp = a.sp;
  // --help lists the options by concern (as cmd_serve does).
  CLI::App& model = *app.add_option_group("Model");
  model.add_option("-m,--model", a.model_path, "model: Hugging Face folder or .gguf file")
      ->required()
      ->type_name("PATH");
  add_mmproj_option(model, a.mmproj);
  model.add_option("-t,--threads", a.threads, "threads; 0 = all CPUs (default)")->check(CLI::NonNegativeNumber);
  add_device_option(model, a.device, a.gpu_layers);
  add_cache_type_option(model, a.cache_type);
  model
      .add_option("-c,--ctx", a.ctx,
                  "context size (KV cache positions); 0 = prompt + n, capped at the model's maximum (default)")
      ->check(CLI::NonNegativeNumber);
  model.add_option("--chunk", a.chunk, "prefill chunk: most tokens per forward pass (default 512)")
      ->check(CLI::PositiveNumber);
  model
      .add_option("--mtp", a.mtp_draft,
                  "draft tokens per step for MTP speculative decoding; 0 = off (default 2 when the model has an "
                  "MTP block)")
      ->check(CLI::NonNegativeNumber);

  CLI::App& input = *app.add_option_group("Prompt");
  auto* opt_prompt = input.add_option("-p,--prompt", a.prompt, "prompt text (needs the tokenizer)");
  auto* opt_tokens = input.add_option("--tokens", a.tokens_text,
                                      "prompt as token ids \"ID ID ...\" (no tokenizer needed, no BOS added)")
                           ->type_name("IDS");
  opt_prompt->excludes(opt_tokens);
  opt_tokens->excludes(opt_prompt);
  auto* opt_image = input
                        .add_option("--image", a.images,
                                    "a picture (PNG, JPEG, WebP, GIF, BMP) for a vision model; repeatable. The "
                                    "prompt then goes through the chat template as one user message: the pictures, "
                                    "then the -p text (as the server's /v1/chat/completions reads it)")
                        ->allow_extra_args(false)
                        ->type_name("FILE");
  opt_image->excludes(opt_tokens);
  input.add_flag("--no-bos", a.no_bos, "-p: do not add the tokenizer's BOS / special tokens");
  input.add_option("-n,--n-predict", a.n_predict, "tokens to generate (default 128)")->check(CLI::NonNegativeNumber);
  input.add_flag("--ignore-eos", a.ignore_eos, "do not stop at the model's EOS ids");

  CLI::App& sampling = *app.add_option_group("Sampling");
  sampling.add_option("--temp", sp.temperature, "temperature; 0 = greedy (default 0)")->check(CLI::NonNegativeNumber);
  sampling.add_option("--top-k", sp.top_k, "keep the k most likely tokens; 0 = off (default)")
      ->check(CLI::NonNegativeNumber);
  sampling.add_option("--top-p", sp.top_p, "nucleus sampling threshold in (0, 1]; 1 = off (default)");
  sampling.add_option("--min-p", sp.min_p, "drop tokens below min-p x p(max) in [0, 1]; 0 = off (default)");
  sampling.add_option("--repeat-penalty", sp.repeat_penalty,
                      "divide positive / multiply negative logits of recent tokens; 1 = off (default)");
  sampling.add_option("--presence-penalty", sp.presence_penalty,
                      "subtract from recent tokens' logits once; 0 = off (default)");
  sampling.add_option("--frequency-penalty", sp.frequency_penalty,
                      "subtract per occurrence in recent tokens; 0 = off (default)");
  sampling.add_option("--repeat-last-n", sp.penalty_last_n,
                      "recent tokens the penalties look at (prompt included); -1 = all (default 64)");
  sampling.add_option("--seed", seed, "random seed for sampling (default: random, printed with -v)");

  CLI::App& report = *app.add_option_group("Output and diagnostics");
  report.add_flag("--print-ids", a.print_ids,
                  "print the generated ids (space separated, one line; the stop id included) instead of text");
  report.add_option("--dump-logits", a.dump_path,
                    "write the logits of every evaluated position (prompt, then generated; the last generated "
                    "token is not evaluated) as little-endian float32 [positions x vocab]")
      ->type_name("FILE");
  report.add_flag("-v,--verbose", a.verbose, "more detail on stderr");
  report.add_flag("--stats", a.stats,
                  "print memory use (peak RSS) and, for mixture-of-experts models, the expert bytes read per "
                  "decoded token against the total expert bytes");
  report.add_flag("--mtp-compare", a.mtp_compare,
                  "with MTP on: afterwards decode the same prompt again without MTP (output not printed) and "
                  "report the measured speed-up; greedy runs also check that both outputs are identical (exit 1 "
                  "when not)");
  if (std::optional<int> rc = parse_args(app, argc, argv, [&] {
        if (!opt_prompt->count() && !opt_tokens->count()) throw CLI::RequiredError("one of -p/--prompt or --tokens");
      }))
    return rc;
  a.has_prompt = opt_prompt->count() > 0;
  sp.seed = seed ? *seed : std::random_device{}();
  try {
    sp.validate();
  } catch (const Error& e) {
    std::fprintf(stderr, "kexa run: %s\n", e.what());
    return 2;
  }
  return std::nullopt;
}

// The prompt's ids (from -p through the tokenizer, or --tokens); decides print_ids when the
// checkpoint has no tokenizer. Returns the exit code when the prompt is unusable.
std::optional<int> prompt_ids_of(const Engine& engine, RunArgs& a, std::vector<int32_t>& ids) {
  try {
    if (!a.has_prompt) ids = parse_token_list(a.tokens_text);
  } catch (const Error& e) {
    std::fprintf(stderr, "kexa run: %s\n", e.what());
    return 2;
  }
  if (a.has_prompt) {
    if (!engine.has_tokenizer())
      fail("-p needs a tokenizer, and none could be loaded from ", engine.path(), ": ", engine.tokenizer_error(),
           " (use --tokens to give ids)");
    ids = engine.tokenizer().encode(a.prompt, /*add_special_tokens=*/!a.no_bos);
    if (ids.empty()) fail("-p: the prompt encodes to no tokens");
  } else if (!engine.has_tokenizer() && !a.print_ids) {
    std::fprintf(stderr, "kexa run: warning: no tokenizer (%s); printing ids instead of text\n",
                 engine.tokenizer_error().c_str());
    a.print_ids = true;
  }
  const int64_t vocab = engine.config().vocab_size;
  for (int32_t id : ids)
    if (id >= vocab) {
      std::fprintf(stderr, "kexa run: --tokens: id %d is outside the model's vocabulary [0, %lld)\n", id,
                   static_cast<long long>(vocab));
      return 2;
    }
  return std::nullopt;
}

// Streams the generated tokens to stdout, stop ids left out: text, or ids (the stop id included).
// A chat turn's text (--image) is split as the server splits it: content to stdout, reasoning to
// stderr.
class TokenPrinter {
 public:
  TokenPrinter(const Engine& engine, const RunArgs& a, std::span<const int32_t> prompt, std::vector<int32_t> stop_ids,
               const PreparedTurn* turn)
      : print_ids_(a.print_ids), stop_ids_(std::move(stop_ids)) {
    if (print_ids_) return;
    if (turn != nullptr) {
      turn_ = std::make_unique<TurnOutput>(engine.tokenizer(), *turn, turn_result_);
      return;
    }
    decoder_ = std::make_unique<StreamDecoder>(engine.tokenizer(), /*skip_special=*/true);
    // The prompt goes through the decoder first (output dropped) so the first generated piece
    // keeps its leading space exactly as in decode(prompt + generated).
    for (int32_t id : prompt) (void)decoder_->push(id);
  }
  void print(int32_t id) {
    if (print_ids_) {
      std::printf(first_ ? "%d" : " %d", id);
      first_ = false;
    } else if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) {
      if (turn_) {
        event_.tokens.assign(1, id);
        write(turn_->feed(event_));
      } else {
        const std::string piece = decoder_->push(id);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
      }
    }
    std::fflush(stdout);
  }
  void finish() {
    if (turn_) write(turn_->finish());
    if (decoder_) {
      const std::string rest = decoder_->finish();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
    }
    std::printf("\n");
    std::fflush(stdout);
  }

 private:
  static void write(const TurnDelta& d) {
    std::fwrite(d.reasoning.data(), 1, d.reasoning.size(), stderr);
    std::fwrite(d.content.data(), 1, d.content.size(), stdout);
  }

  bool print_ids_;
  bool first_ = true;
  std::vector<int32_t> stop_ids_;
  std::unique_ptr<StreamDecoder> decoder_;
  TurnResult turn_result_;
  std::unique_ptr<TurnOutput> turn_;
  JobEvent event_;  // one token at a time into turn_, reused
};

void print_mtp_stats(const SpeculativeGenerator& spec, const GenerateResult& r, double tg) {
  const SpeculativeStats& st = spec.stats();
  const double steps = st.steps > 0 ? static_cast<double>(st.steps) : 1.0;
  std::fprintf(stderr,
               "kexa run: mtp %d drafts/step | acceptance %.1f%% (%lld of %lld drafts) | %lld verify "
               "steps | %.2f tokens/step | verify %.1f ms/step, drafting %.1f ms/step | decode %.1f tok/s | "
               "MTP KV cache %.2f MiB\n",
               spec.n_draft(), 100.0 * st.acceptance(), static_cast<long long>(st.accepted),
               static_cast<long long>(st.drafted), static_cast<long long>(st.steps),
               st.steps > 0 ? static_cast<double>(r.tokens.size() - 1) / steps : 0.0, 1e3 * st.verify_seconds / steps,
               1e3 * st.draft_seconds / steps, tg, mib(spec.mtp_cache().bytes()));
}

// Tokens after the first one per second of the decode loop (a speculative step yields several).
double decode_rate(const GenerateResult& r) {
  return r.decode_seconds > 0 && !r.tokens.empty() ? static_cast<double>(r.tokens.size() - 1) / r.decode_seconds : 0;
}

// --mtp-compare: the same prompt decoded plainly (same cache, same sampling settings), timed the
// same way. Returns the exit code.
int compare_with_plain(Generator& gen, const GenerateOptions& go, std::span<const int32_t> prompt,
                       const GenerateResult& r, const RunArgs& a, int n_draft) {
  GenerateOptions plain_opt = go;
  plain_opt.on_logits = nullptr;
  const GenerateResult p = gen.generate(prompt, plain_opt);
  const double ptg = decode_rate(p), tg = decode_rate(r);
  const bool same = p.tokens == r.tokens;
  std::fprintf(stderr, "kexa run: mtp speed-up %.2fx over plain decoding (%zu tok at %.1f tok/s, mtp %.1f tok/s)%s\n",
               ptg > 0 ? tg / ptg : 0.0, p.tokens.size(), ptg, tg,
               a.sp.greedy() ? (same ? " | greedy outputs identical" : " | greedy outputs DIFFER") : "");
  if (a.sp.greedy() && !same) {
    std::fprintf(stderr, "kexa run: error: --mtp %d and plain greedy decoding gave different tokens\n", n_draft);
    return 1;
  }
  return 0;
}

// --image: one chat turn, the template, the pictures, then the -p text as one user message (as
// the server reads /v1/chat/completions); its image tokens expanded and their rows encoded
// (prepare_turn). The turn's stop ids end the reply (none with --ignore-eos).
PreparedTurn image_turn(const Engine& engine, const RunArgs& a, std::vector<RgbImage> pictures) {
  using ojson = nlohmann::ordered_json;
  ojson content = ojson::array();
  for (size_t i = 0; i < pictures.size(); ++i) content.push_back(ojson{{"type", "image"}});
  content.push_back(ojson{{"type", "text"}, {"text", a.prompt}});
  ojson message = ojson::object();
  message["role"] = "user";
  message["content"] = content;
  TurnRequest req;
  req.messages = ojson::array();
  req.messages.push_back(message);
  req.images = std::move(pictures);
  req.sampling = a.sp;
  req.max_tokens = a.n_predict;
  // The context is sized from the prompt below; here only an explicit one (or the model's
  // maximum) bounds it.
  int64_t limit = a.ctx > 0 ? a.ctx : engine.config().max_position;
  if (limit <= 0) limit = std::numeric_limits<int64_t>::max();
  PreparedTurn turn = prepare_turn(engine, req, limit);
  if (a.ignore_eos) turn.job.options.stop_ids.clear();
  return turn;
}

}  // namespace

int run_main(int argc, char** argv) {
  RunArgs a;
  if (std::optional<int> rc = list_devices_if_asked(argc, argv)) return *rc;
  if (std::optional<int> rc = parse_run_args(argc, argv, a)) return *rc;
  // Pictures first: a bad one fails before the model loads.
  std::vector<RgbImage> pictures;
  for (const std::string& path : a.images) pictures.push_back(load_image_file(path));

  const auto t_load = std::chrono::steady_clock::now();
  EngineOptions eo;
  eo.n_threads = static_cast<int>(a.threads);
  eo.mmproj = a.mmproj;
  eo.device = device_of(a.device);
  eo.gpu_layers = a.gpu_layers;
  eo.kv_type = kv_type_of(a.cache_type);
  eo.require_tokenizer = false;  // --tokens runs models that carry none
  std::unique_ptr<Engine> engine = Engine::open(a.model_path, eo);
  Model& model = engine->model();
  report_device(model);
  const ModelConfig& cfg = engine->config();
  std::vector<int32_t> prompt_ids;
  std::optional<PreparedTurn> turn;  // --image
  if (a.images.empty()) {
    if (std::optional<int> rc = prompt_ids_of(*engine, a, prompt_ids)) return *rc;
  } else {
    turn = image_turn(*engine, a, std::move(pictures));
    prompt_ids = turn->job.prompt;
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  const int64_t n_prompt = static_cast<int64_t>(prompt_ids.size());
  int64_t ctx = a.ctx;
  if (ctx == 0) {
    ctx = n_prompt + std::max<int64_t>(a.n_predict, 1);
    if (cfg.max_position > 0) ctx = std::min(ctx, std::max(cfg.max_position, n_prompt));
  }
  KVCache cache(cfg, ctx, a.chunk, model.kv_type());
  // The pictures' rows: the inputs at their image-token positions, for plain and MTP decoding.
  if (turn) cache.set_input_embeddings(turn->job.embeddings);
  Generator gen(model, cache, a.sp);

  std::unique_ptr<std::ofstream> dump;
  GenerateOptions go;
  go.max_tokens = a.n_predict;
  go.use_model_eos = !a.ignore_eos;
  if (turn) {
    go.stop_ids = turn->job.options.stop_ids;  // the end of a reply (end-of-turn too)
    go.use_model_eos = false;
  }
  int64_t dumped_rows = 0;
  if (!a.dump_path.empty()) {
    static_assert(std::endian::native == std::endian::little,
                  "--dump-logits writes the host's float layout, which must be little-endian");
    dump = std::make_unique<std::ofstream>(a.dump_path, std::ios::binary | std::ios::trunc);
    if (!*dump) fail("--dump-logits: cannot open ", a.dump_path, " for writing");
    go.on_logits = [&](std::span<const float> row) {
      dump->write(reinterpret_cast<const char*>(row.data()), static_cast<std::streamsize>(row.size_bytes()));
      ++dumped_rows;
    };
  }
  if (a.verbose) {
    std::fprintf(stderr,
                 "kexa run: %s | %s | loaded in %.2f s | device %s | threads %d | kernels %s | weights %.1f "
                 "MiB | KV cache %.2f MiB (ctx %lld, chunk %lld) | seed %llu\n",
                 a.model_path.c_str(), cfg.summary().c_str(), load_s, model.backend_name().c_str(), model.pool().size(),
                 kernels::path_name(kernels::active_path()).c_str(), mib(model.weight_bytes()), mib(cache.bytes()),
                 static_cast<long long>(ctx), static_cast<long long>(cache.chunk()),
                 static_cast<unsigned long long>(a.sp.seed));
    std::fprintf(stderr, "kexa run: prompt ids:");
    for (int32_t id : prompt_ids) std::fprintf(stderr, " %d", id);
    std::fprintf(stderr, "\n");
  }

  TokenPrinter printer(*engine, a, prompt_ids, stop_ids(go, cfg.eos_token_ids), turn ? &*turn : nullptr);
  Model::ExpertStats after_prefill{};
  bool prefill_done = false;
  auto on_token = [&](int32_t id) {
    if (!prefill_done) {
      after_prefill = model.expert_stats();
      prefill_done = true;
    }
    printer.print(id);
    return true;
  };
  // MTP speculative decoding: same output as plain decoding (greedy: token for token).
  if (a.mtp_draft > 0 && !engine->has_mtp())
    fail("--mtp ", a.mtp_draft, ": ", a.model_path, " has no MTP block (use --mtp 0)");
  const int n_draft = static_cast<int>(a.mtp_draft >= 0 ? a.mtp_draft : (engine->has_mtp() ? 2 : 0));
  std::unique_ptr<SpeculativeGenerator> spec;
  if (n_draft > 0) spec = engine->mtp_drafter(cache, a.sp, n_draft);
  model.reset_expert_stats();
  GenerateResult r = spec ? spec->generate(prompt_ids, go, on_token) : gen.generate(prompt_ids, go, on_token);
  printer.finish();
  if (dump) {
    dump->flush();
    if (!*dump) fail("--dump-logits: writing ", a.dump_path, " failed");
  }

  const double pp = r.prefill_seconds > 0 ? static_cast<double>(r.prompt_evaluated) / r.prefill_seconds : 0;
  const double tg = decode_rate(r);
  if (spec) print_mtp_stats(*spec, r, tg);
  std::fprintf(stderr,
               "kexa run: %sprompt %lld tok (%.1f tok/s) | generated %zu tok (%.1f tok/s) | stop %s | "
               "KV cache %.2f MiB (%zu bytes, ctx %lld)%s\n",
               turn ? concat(a.images.size(), " image(s) | ").c_str() : "", static_cast<long long>(n_prompt), pp,
               r.tokens.size(), tg, stop_reason_name(r.reason),
               mib(cache.bytes()), cache.bytes(), static_cast<long long>(ctx),
               dump ? concat(" | dumped ", dumped_rows, " logit rows").c_str() : "");
  if (a.stats) print_stats(model, r, after_prefill);
  if (a.mtp_compare && !spec) std::fprintf(stderr, "kexa run: --mtp-compare: MTP is off, nothing to compare\n");
  if (spec && a.mtp_compare) return compare_with_plain(gen, go, prompt_ids, r, a, n_draft);
  return 0;
}

}  // namespace kexa::cli
