// kexa chat: interactive chat through the checkpoint's own template, streaming the reply and
// splitting reasoning / tool calls with the output parser. Reads stdin line by line, so it also
// scripts well: each piped line is one user message.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/image_input.h"
#include "cli/device.h"
#include "model/config.h"
#include "runtime/engine.h"
#include "runtime/turn.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

using ojson = nlohmann::ordered_json;

const char* kHelp =
    "commands: /reset (forget the conversation), /system TEXT (set the system prompt and reset),\n"
    "          /think on|off (reasoning mode), /image PATH (attach a picture to the next message;\n"
    "          vision models), /exit. End a line with \\ to continue the message\n"
    "          on the next line, or enclose several lines between two lines of \"\"\".\n";

// Reads one user message: a line, "\"-continued lines, or a """ block. nullopt at end of input.
std::optional<std::string> read_message(bool interactive) {
  std::string line;
  if (interactive) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
  }
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line == "\"\"\"") {
    std::string msg, l;
    while (std::getline(std::cin, l)) {
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (l == "\"\"\"") break;
      msg += (msg.empty() ? "" : "\n") + l;
    }
    return msg;
  }
  std::string msg;
  while (!line.empty() && line.back() == '\\') {
    line.pop_back();
    msg += line + "\n";
    if (interactive) std::fputs(". ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
  }
  return msg + line;
}

// Streams one reply to the conversation (reasoning to stderr, dimmed on a terminal), then appends
// it to `messages`. False when the turn could not start (the message says why).
bool chat_turn(const Engine& engine, LocalGeneration& local, ojson& messages, const std::vector<RgbImage>& images,
               bool think, const SamplingParams& sp, int64_t n_predict, bool interactive) {
  TurnRequest req;
  req.messages = messages;
  req.images = images;
  req.kwargs = ojson{{"enable_thinking", think}};
  req.sampling = sp;
  req.max_tokens = n_predict;
  PreparedTurn turn;
  try {
    turn = prepare_turn(engine, req, local.context());
  } catch (const Error& e) {
    std::fprintf(stderr, "kexa chat: %s%s\n", e.what(),
                 std::string(e.what()).find("context") != std::string::npos ? "; use /reset" : "");
    return false;
  }
  bool in_reasoning_out = false;
  TurnCallbacks callbacks;
  callbacks.on_delta = [&](const TurnDelta& d) {
    if (!d.reasoning.empty()) {
      if (!in_reasoning_out) std::fputs(interactive ? "\x1b[2m" : "", stderr);
      in_reasoning_out = true;
      std::fwrite(d.reasoning.data(), 1, d.reasoning.size(), stderr);
    }
    if (!d.content.empty() || !d.tool_calls.empty()) {
      if (in_reasoning_out) std::fputs(interactive ? "\x1b[0m\n" : "\n", stderr);
      in_reasoning_out = false;
    }
    std::fwrite(d.content.data(), 1, d.content.size(), stdout);
    for (const auto& c : d.tool_calls)
      std::printf("\n[tool call %s] %s(%s)", c.id.c_str(), c.name.c_str(), c.arguments.c_str());
    for (const auto& e : d.errors) std::fprintf(stderr, "\n[unparsed tool call: %s]\n", e.message.c_str());
    std::fflush(stdout);
    return true;
  };
  TurnResult r = run_turn(engine, turn, local, callbacks);
  if (in_reasoning_out) std::fputs(interactive ? "\x1b[0m\n" : "\n", stderr);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  if (r.finish == StopReason::Error) std::fprintf(stderr, "kexa chat: generation failed: %s\n", r.error.c_str());
  messages.push_back(r.assistant_message());
  return true;
}

// The conversation kept across turns of `kexa chat`.
struct Conversation {
  std::string system_prompt;
  bool think = false;
  ojson messages = ojson::array();
  std::vector<RgbImage> images;   // every picture of the conversation, in order
  std::vector<RgbImage> pending;  // /image: attached to the next user message
  void reset() {
    messages = ojson::array();
    images.clear();
    pending.clear();
    if (!system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", system_prompt}});
  }
};

// Carries out `msg` when it is one of the slash commands of kHelp (or looks like an unknown one)
// and says whether it was; any other line is a user message.
bool run_command(const std::string& msg, Conversation& c) {
  if (msg == "/help") {
    std::fputs(kHelp, stderr);
    return true;
  }
  if (msg == "/reset") {
    c.reset();
    std::fprintf(stderr, "[conversation reset]\n");
    return true;
  }
  if (msg.rfind("/system", 0) == 0 && (msg.size() == 7 || msg[7] == ' ')) {
    c.system_prompt = msg.size() > 8 ? msg.substr(8) : "";
    c.reset();
    std::fprintf(stderr, "[system prompt set; conversation reset]\n");
    return true;
  }
  if (msg == "/think on" || msg == "/think off") {
    c.think = msg == "/think on";
    std::fprintf(stderr, "[reasoning %s]\n", c.think ? "on" : "off");
    return true;
  }
  if (msg.rfind("/image", 0) == 0 && (msg.size() == 6 || msg[6] == ' ')) {
    const std::string path = msg.size() > 7 ? msg.substr(7) : "";
    if (path.empty()) {
      std::fprintf(stderr, "usage: /image PATH\n");
      return true;
    }
    try {
      c.pending.push_back(load_image_file(path));
      const RgbImage& picture = c.pending.back();
      std::fprintf(stderr, "[image %ux%u attached to the next message]\n", picture.width, picture.height);
    } catch (const Error& e) {
      std::fprintf(stderr, "kexa chat: %s\n", e.what());
    }
    return true;
  }
  if (msg[0] == '/' && msg.find(' ') == std::string::npos && msg.size() < 16) {
    std::fprintf(stderr, "unknown command %s\n%s", msg.c_str(), kHelp);
    return true;
  }
  return false;
}

}  // namespace

int chat_main(int argc, char** argv) {
  CLI::App app{"Chat with a model through its own chat template. Each line of input is a user message; "
               "the reply streams to stdout (reasoning to stderr). " +
                   std::string(kHelp),
               "kexa chat"};
  std::string model_path, system_prompt, mmproj, device = "auto";
  bool think = false;
  int64_t n_predict = 512, threads = 0, ctx = 4096;
  SamplingParams sp;
  std::optional<uint64_t> seed;
  app.add_option("-m,--model", model_path, "model: Hugging Face folder or .gguf file")->required()->type_name("PATH");
  app.add_option("--system", system_prompt, "system prompt");
  app.add_flag("--think", think, "start with reasoning on (enable_thinking=true)");
  app.add_option("-n,--n-predict", n_predict, "most tokens per reply (default 512)")->check(CLI::PositiveNumber);
  app.add_option("--temp", sp.temperature, "temperature; 0 = greedy (default)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", sp.top_p, "nucleus sampling threshold in (0, 1]");
  app.add_option("--seed", seed, "random seed");
  app.add_option("-t,--threads", threads, "threads; 0 = all CPUs (default)")->check(CLI::NonNegativeNumber);
  add_mmproj_option(app, mmproj);
  app.add_option("-c,--ctx", ctx, "context size in tokens (default 4096, capped at the model's maximum)")
      ->check(CLI::PositiveNumber);
  int64_t gpu_layers = -1;
  add_device_option(app, device, gpu_layers);
  std::string cache_type = "f32";
  add_cache_type_option(app, cache_type);
  if (std::optional<int> rc = list_devices_if_asked(argc, argv)) return *rc;
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  sp.seed = seed ? *seed : std::random_device{}();
  sp.validate();

  EngineOptions eo;
  eo.n_threads = static_cast<int>(threads);
  eo.mmproj = mmproj;
  eo.device = device_of(device);
  eo.gpu_layers = gpu_layers;
  eo.kv_type = kv_type_of(cache_type);
  std::unique_ptr<Engine> engine = Engine::open(model_path, eo);
  report_device(engine->model());
  const ModelConfig& cfg = engine->config();
  (void)engine->chat_template();  // fails now, naming why, when the checkpoint has none
  if (cfg.max_position > 0) ctx = std::min<int64_t>(ctx, cfg.max_position);
  // One sequence kept across turns: each turn evaluates only what the conversation added.
  LocalGeneration local(engine->model(), ctx);

  const bool interactive = isatty(STDIN_FILENO) != 0;
  if (interactive) std::fprintf(stderr, "kexa chat: %s\n%s", model_path.c_str(), kHelp);

  Conversation c;
  c.system_prompt = system_prompt;
  c.think = think;
  c.reset();

  while (auto input = read_message(interactive)) {
    std::string msg = *input;
    if (msg.empty()) continue;
    if (msg == "/exit" || msg == "/quit") break;
    if (run_command(msg, c)) continue;

    const size_t images_before = c.images.size();
    if (c.pending.empty()) {
      c.messages.push_back({{"role", "user"}, {"content", msg}});
    } else {
      // The parts the EXAONE 4.5 template renders as its image placeholders, then the text.
      ojson content = ojson::array();
      for (RgbImage& picture : c.pending) {
        content.push_back(ojson{{"type", "image"}});
        c.images.push_back(std::move(picture));
      }
      c.pending.clear();
      content.push_back(ojson{{"type", "text"}, {"text", msg}});
      ojson message = ojson::object();
      message["role"] = "user";
      message["content"] = content;
      c.messages.push_back(message);
    }
    if (!chat_turn(*engine, local, c.messages, c.images, c.think, sp, n_predict, interactive)) {
      c.messages.erase(c.messages.size() - 1);
      c.images.resize(images_before);
    }
  }
  return 0;
}

}  // namespace kexa::cli
