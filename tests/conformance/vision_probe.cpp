// Test-side helper for tests/conformance/vision.sh: kexa's side of what vision_oracle asks
// llama.cpp, through the engine (Engine::open, prepare_turn, LocalGeneration / Scheduler).
// Pictures come as raw RGB files ("W H\n" + bytes, as vision_oracle writes what stb_image
// decoded), so both sides see the same pixels.
//
//   vision_probe sizes MODEL WxH...                        -> "WxH resized_w resized_h tokens"
//   vision_probe preprocess MODEL IMAGE.rgb OUT.pre        -> the normalised planar image, "W H"
//   vision_probe embed MODEL IMAGE.rgb OUT.emb             -> f32 rows, "tokens" on stdout
//   vision_probe generate MODEL N PROMPT_OUT [--scheduler] [--mmproj F] [--text T] IMAGE.rgb...
//       -> N greedy ids (EOS not special); PROMPT_OUT gets the prompt with each image as
//          llama.cpp's media marker; the prompt's token count goes to stderr.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/vision.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "runtime/turn.h"
#include "util/error.h"
#include "util/rgb_image.h"

namespace {

kexa::RgbImage read_rgb(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  kexa::RgbImage im;
  f >> im.width >> im.height;
  f.get();
  im.rgb.resize(static_cast<size_t>(im.width) * im.height * 3);
  f.read(reinterpret_cast<char*>(im.rgb.data()), static_cast<std::streamsize>(im.rgb.size()));
  if (!f || im.width == 0) kexa::fail(path, ": not a raw RGB file");
  return im;
}

int run(int argc, char** argv) {
  if (argc < 3) kexa::fail("usage: vision_probe sizes|embed|generate MODEL ...");
  const std::string cmd = argv[1];
  kexa::EngineOptions opt;
  opt.n_threads = 2;
  std::vector<std::string> rest;
  bool use_scheduler = false;
  std::string text = "Describe the picture.";
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mmproj" && i + 1 < argc) opt.mmproj = argv[++i];
    else if (a == "--text" && i + 1 < argc) text = argv[++i];
    else if (a == "--scheduler") use_scheduler = true;
    else rest.push_back(a);
  }
  std::unique_ptr<kexa::Engine> engine = kexa::Engine::open(argv[2], opt);
  if (cmd == "sizes") {
    const kexa::VisionPreprocessConfig& pre = engine->vision().config().pre;
    for (const std::string& s : rest) {
      unsigned w = 0, h = 0;
      if (std::sscanf(s.c_str(), "%ux%u", &w, &h) != 2) kexa::fail("bad size ", s);
      const kexa::ImageSize t = kexa::vision_target_size({w, h}, pre);
      std::printf("%ux%u %lld %lld %lld\n", w, h, static_cast<long long>(t.width), static_cast<long long>(t.height),
                  static_cast<long long>(kexa::vision_token_count({w, h}, pre)));
    }
    return 0;
  }
  if (cmd == "preprocess") {
    if (rest.size() != 2) kexa::fail("usage: vision_probe preprocess MODEL IMAGE.rgb OUT.pre");
    const kexa::VisionInput in = kexa::vision_preprocess(read_rgb(rest[0]), engine->vision().config().pre);
    std::ofstream f(rest[1], std::ios::binary);
    f.write(reinterpret_cast<const char*>(in.pixels.data()), static_cast<std::streamsize>(in.pixels.size() * sizeof(float)));
    std::printf("%lld %lld\n", static_cast<long long>(in.width), static_cast<long long>(in.height));
    return 0;
  }
  if (cmd == "embed") {
    if (rest.size() != 2) kexa::fail("usage: vision_probe embed MODEL IMAGE.rgb OUT.emb");
    const std::vector<float> e = engine->encode_image(read_rgb(rest[0]));
    std::ofstream f(rest[1], std::ios::binary);
    f.write(reinterpret_cast<const char*>(e.data()), static_cast<std::streamsize>(e.size() * sizeof(float)));
    std::printf("%lld\n", static_cast<long long>(e.size() / static_cast<size_t>(engine->config().hidden_size)));
    return 0;
  }
  if (cmd == "generate") {
    if (rest.size() < 2) kexa::fail("usage: vision_probe generate MODEL N PROMPT_OUT IMAGE.rgb...");
    const int64_t n = std::atoll(rest[0].c_str());
    kexa::TurnRequest req;
    nlohmann::ordered_json content = nlohmann::ordered_json::array();
    for (size_t i = 2; i < rest.size(); ++i) {
      req.images.push_back(read_rgb(rest[i]));
      content.push_back({{"type", "image"}});
    }
    content.push_back({{"type", "text"}, {"text", text}});
    req.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", content}}});
    req.max_tokens = n;
    const int64_t context = 4096;
    std::unique_ptr<kexa::GenerationBackend> backend;
    if (use_scheduler) backend = std::make_unique<kexa::Scheduler>(engine->model(), 2, context, 4);
    else backend = std::make_unique<kexa::LocalGeneration>(engine->model(), context);
    kexa::PreparedTurn turn = kexa::prepare_turn(*engine, req, backend->context());
    turn.job.options.stop_ids.clear();  // 64 ids whatever they are, as the oracle
    std::string prompt = turn.prompt_text;
    const std::string image = "<vision><|image_pad|></vision>";
    for (size_t p = prompt.find(image); p != std::string::npos; p = prompt.find(image, p))
      prompt.replace(p, image.size(), "<__media__>");
    std::ofstream(rest[1], std::ios::binary) << prompt;
    std::vector<int32_t> ids;
    std::fprintf(stderr, "vision_probe: prompt tokens %zu\n", turn.job.prompt.size());
    kexa::JobEnd end = backend->run(std::move(turn.job), [&](const kexa::JobEvent& ev) {
      ids.insert(ids.end(), ev.tokens.begin(), ev.tokens.end());
      return true;
    });
    if (end.reason == kexa::StopReason::Error) kexa::fail(end.error);
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
    return 0;
  }
  kexa::fail("unknown command ", cmd);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const kexa::Error& e) {
    std::fprintf(stderr, "vision_probe: %s\n", e.what());
    return 1;
  }
}
