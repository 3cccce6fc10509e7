// kexa bench: prefill and decode throughput in the manner of llama-bench (pp512 / tg128): random
// token ids, a fresh KV cache for every repeat, decode measured from an empty context or, with
// --depth N (llama-bench's -d), after N tokens already in the cache.
#include <algorithm>
#include <chrono>
#include <memory>
#include <span>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/device.h"
#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa::cli {

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int32_t> random_ids(std::mt19937_64& rng, int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

}  // namespace

int bench_main(int argc, char** argv) {
  CLI::App app{
      "Measure prefill (one forward over --prompt random tokens) and decode (--gen single-token "
      "forwards from an empty context, or after --depth tokens) speed; median of --repeats runs, each "
      "with a fresh KV cache, after one untimed warm-up. The last stdout line is a JSON object with "
      "the figures.",
      "kexa bench"};
  std::string model_path, device = "auto";
  int64_t threads = 0, n_prompt = 512, n_gen = 128, repeats = 3, depth = 0;
  uint64_t seed = 1234;
  app.add_option("-m,--model", model_path, "model: Hugging Face folder or .gguf file")->required()->type_name("PATH");
  app.add_option("-t,--threads", threads, "threads; 0 = all CPUs (default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--prompt", n_prompt, "prefill tokens (default 512; 0 = skip)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--gen", n_gen, "decoded tokens (default 128; 0 = skip)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--repeats", repeats, "timed runs of each test (default 3)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the random token ids (default 1234)");
  app.add_option("-d,--depth", depth,
                 "tokens already in the KV cache when each prefill and decode starts (untimed; default 0)")
      ->check(CLI::NonNegativeNumber);
  int64_t gpu_layers = -1;
  add_device_option(app, device, gpu_layers);
  std::string cache_type = "f32";
  add_cache_type_option(app, cache_type);
  if (std::optional<int> rc = list_devices_if_asked(argc, argv)) return *rc;
  if (std::optional<int> rc = parse_args(app, argc, argv, [&] {
        if (n_prompt == 0 && n_gen == 0) throw CLI::ValidationError("--prompt and --gen are both 0");
      }))
    return *rc;

  EngineOptions eo;
  eo.n_threads = static_cast<int>(threads);
  eo.device = device_of(device);
  eo.gpu_layers = gpu_layers;
  eo.kv_type = kv_type_of(cache_type);
  eo.require_tokenizer = false;  // the benchmark feeds random ids
  std::unique_ptr<Engine> engine = Engine::open(model_path, eo);
  Model* model = &engine->model();
  report_device(*model);
  const ModelConfig& cfg = model->config();
  const int64_t vocab = cfg.vocab_size;
  const int64_t ctx = depth + std::max<int64_t>({n_prompt, n_gen, 1});
  // The prompt in one forward; --depth's tokens in forwards of up to 512.
  const int64_t chunk = std::max<int64_t>({n_prompt, std::min<int64_t>(depth, 512), 1});
  if (cfg.max_position > 0 && ctx > cfg.max_position)
    fail("kexa bench: --depth ", depth, " plus the test's tokens (", ctx, ") exceed the model's context of ",
         cfg.max_position, " positions");
  std::mt19937_64 rng(seed);
  std::vector<float> logits(static_cast<size_t>(vocab));

  // A fresh cache holding `held` random tokens, fed a chunk at a time.
  auto fresh_cache = [&](int64_t held) {
    auto cache = std::make_unique<KVCache>(cfg, ctx, chunk, model->kv_type());
    const std::vector<int32_t> ids = random_ids(rng, held, vocab);
    for (int64_t i = 0; i < held; i += chunk)
      model->forward(std::span<const int32_t>(ids).subspan(static_cast<size_t>(i),
                                                           static_cast<size_t>(std::min(chunk, held - i))),
                     *cache, logits, /*all_logits=*/false);
    return cache;
  };
  auto prefill_once = [&](int64_t n, int64_t held) {
    std::unique_ptr<KVCache> cache = fresh_cache(held);
    const std::vector<int32_t> ids = random_ids(rng, n, vocab);
    const auto t0 = Clock::now();
    model->forward(ids, *cache, logits, /*all_logits=*/false);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto decode_once = [&](int64_t n, int64_t held) {
    std::unique_ptr<KVCache> cache = fresh_cache(held);
    const std::vector<int32_t> ids = random_ids(rng, n, vocab);
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i)
      model->forward(std::span<const int32_t>(&ids[static_cast<size_t>(i)], 1), *cache, logits,
                     /*all_logits=*/false);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  // Warm-up (from an empty cache, whatever --depth): touches every weight page and the thread pool once.
  if (n_prompt > 0) prefill_once(std::min<int64_t>(n_prompt, 16), 0);
  decode_once(std::min<int64_t>(std::max<int64_t>(n_gen, 1), 4), 0);

  std::vector<double> pp, tg;
  for (int64_t r = 0; r < repeats; ++r) {
    if (n_prompt > 0) pp.push_back(static_cast<double>(n_prompt) / prefill_once(n_prompt, depth));
    if (n_gen > 0) tg.push_back(static_cast<double>(n_gen) / decode_once(n_gen, depth));
  }
  const size_t kv_bytes = KVCache(cfg, ctx, chunk, model->kv_type()).bytes();
  const double pp_med = pp.empty() ? 0 : median(pp);
  const double tg_med = tg.empty() ? 0 : median(tg);
  const std::string path = kernels::path_name(kernels::active_path());
  const size_t weight_bytes = model->weight_bytes();

  std::printf("model    %s\n", model_path.c_str());
  std::printf("config   %s\n", cfg.summary().c_str());
  std::printf("device   %s\n", model->backend_name().c_str());
  std::printf("threads  %d   kernels %s   weights %.1f MiB   KV cache %.2f MiB (%s, ctx %lld)\n",
              model->pool().size(), path.c_str(), static_cast<double>(weight_bytes) / 1048576.0,
              static_cast<double>(kv_bytes) / 1048576.0, kv_type_name(model->kv_type()), static_cast<long long>(ctx));
  std::printf("%-16s %10s %12s   %s\n", "test", "tokens", "tok/s", "runs (tok/s)");
  auto row = [&](const char* name, int64_t n, double med, const std::vector<double>& runs) {
    std::string all;
    for (double v : runs) all += concat(all.empty() ? "" : " ", static_cast<int64_t>(v * 10) / 10.0);
    std::printf("%-16s %10lld %12.2f   %s\n", name, static_cast<long long>(n), med, all.c_str());
  };
  const std::string at = depth > 0 ? concat(" @ d", depth) : std::string();
  if (n_prompt > 0) row(concat("pp", n_prompt, at).c_str(), n_prompt, pp_med, pp);
  if (n_gen > 0) row(concat("tg", n_gen, at).c_str(), n_gen, tg_med, tg);

  nlohmann::ordered_json j;  // keys in the order written, "model" first
  j["model"] = model_path;
  j["device"] = model->backend_name();
  j["model_type"] = cfg.model_type;
  j["threads"] = model->pool().size();
  j["prompt_tokens"] = n_prompt;
  j["gen_tokens"] = n_gen;
  j["depth"] = depth;
  j["repeats"] = repeats;
  j["prefill_tok_s"] = pp_med;
  j["decode_tok_s"] = tg_med;
  j["prefill_runs"] = pp;
  j["decode_runs"] = tg;
  j["weight_bytes"] = weight_bytes;
  j["kv_bytes"] = kv_bytes;
  j["kv_type"] = kv_type_name(model->kv_type());
  j["path"] = path;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace kexa::cli
