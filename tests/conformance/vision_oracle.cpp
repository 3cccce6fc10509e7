// Test-side helper for tests/conformance/vision.sh: asks llama.cpp's multimodal library (libmtmd,
// built under /tmp, never part of kexa) what it does with images, through its public API only.
// The script compiles it against that build.
//
//   vision_oracle sizes TEXT.gguf MMPROJ WxH...           -> "WxH resized_w resized_h tokens" per size
//   vision_oracle embed TEXT.gguf MMPROJ IMAGE OUT         -> OUT.rgb ("W H\n" + decoded RGB bytes),
//                    OUT.pre (the normalised planar image), OUT.emb (f32 rows), "tokens W H" on stdout
//   vision_oracle generate TEXT.gguf MMPROJ PROMPT N IMAGE... -> N greedy ids (EOS not special)
// PROMPT is a file whose text holds one <__media__> marker per image.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"

namespace {

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "vision_oracle: %s\n", m.c_str());
  std::exit(1);
}

// The preprocessed image as the tower receives it (the graph input "inp_raw": W, H, 3 planes),
// seen through the public eval callback on the first node that reads it.
struct Captured {
  int64_t w = 0, h = 0;
  std::vector<float> pixels;
} captured;

bool observe(ggml_tensor* t, bool ask, void*) {
  for (ggml_tensor* src : t->src) {
    if (src == nullptr || std::string(ggml_get_name(src)) != "inp_raw") continue;
    if (!ask) {
      captured.w = src->ne[0];
      captured.h = src->ne[1];
      const float* d = static_cast<const float*>(src->data);
      captured.pixels.assign(d, d + ggml_nelements(src));
    }
    return true;
  }
  return ask ? false : true;
}

void quiet(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

struct Session {
  llama_model* model = nullptr;
  llama_context* ctx = nullptr;
  mtmd_context* mtmd = nullptr;
  Session(const char* text, const char* mmproj, bool need_ctx) {
    llama_log_set(quiet, nullptr);
    mtmd_helper_log_set(quiet, nullptr);
    llama_backend_init();
    // llama.cpp built with loadable backends (node-llama-cpp's prebuilt libraries) finds its CPU
    // backend in this folder; a build with the backend linked in needs nothing.
    if (const char* dir = std::getenv("KEXA_GGML_BACKENDS")) ggml_backend_load_all_from_path(dir);
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    model = llama_model_load_from_file(text, mp);
    if (!model) die(std::string("cannot load ") + text);
    if (need_ctx) {
      llama_context_params cp = llama_context_default_params();
      cp.n_ctx = 4096;
      cp.n_batch = 2048;
      cp.n_ubatch = 2048;
      cp.n_threads = cp.n_threads_batch = 1;  // tiny model: threads would only spin
      cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
      ctx = llama_init_from_model(model, cp);
      if (!ctx) die("cannot create a context");
    }
    mtmd_context_params p = mtmd_context_params_default();
    p.use_gpu = false;
    p.n_threads = 1;
    p.print_timings = false;
    p.warmup = false;
    p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // f32 attention, as kexa's
    p.cb_eval = observe;
    mtmd = mtmd_init_from_file(mmproj, model, p);
    if (!mtmd) die(std::string("cannot load ") + mmproj);
  }
  ~Session() {
    mtmd_free(mtmd);
    if (ctx) llama_free(ctx);
    llama_model_free(model);
  }
};

mtmd_input_chunks* tokenize(Session& s, const std::string& text, std::vector<mtmd_bitmap*>& bitmaps) {
  mtmd_input_chunks* chunks = mtmd_input_chunks_init();
  mtmd_input_text in{text.c_str(), text.size(), false, true};
  std::vector<const mtmd_bitmap*> b(bitmaps.begin(), bitmaps.end());
  if (mtmd_tokenize(s.mtmd, chunks, &in, b.data(), b.size()) != 0) die("mtmd_tokenize failed");
  return chunks;
}

const mtmd_input_chunk* image_chunk(mtmd_input_chunks* chunks) {
  for (size_t i = 0; i < mtmd_input_chunks_size(chunks); ++i) {
    const mtmd_input_chunk* c = mtmd_input_chunks_get(chunks, i);
    if (mtmd_input_chunk_get_type(c) == MTMD_INPUT_CHUNK_TYPE_IMAGE) return c;
  }
  die("no image chunk");
}

// A deterministic picture of any size (only its size matters for the preprocessing check).
mtmd_bitmap* pattern(uint32_t w, uint32_t h) {
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>((i * 7 + i / 3) & 255);
  return mtmd_bitmap_init(w, h, px.data());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) die("usage: vision_oracle sizes|embed|generate TEXT.gguf MMPROJ ...");
  const std::string cmd = argv[1];
  if (cmd == "sizes") {
    Session s(argv[2], argv[3], false);
    for (int i = 4; i < argc; ++i) {
      unsigned w = 0, h = 0;
      if (std::sscanf(argv[i], "%ux%u", &w, &h) != 2) die(std::string("bad size ") + argv[i]);
      std::vector<mtmd_bitmap*> b{pattern(w, h)};
      mtmd_input_chunks* chunks = tokenize(s, mtmd_default_marker(), b);
      const mtmd_input_chunk* c = image_chunk(chunks);
      captured = {};
      if (mtmd_encode_chunk(s.mtmd, c) != 0) die("mtmd_encode_chunk failed");
      std::printf("%ux%u %lld %lld %zu\n", w, h, static_cast<long long>(captured.w), static_cast<long long>(captured.h),
                  mtmd_input_chunk_get_n_tokens(c));
      mtmd_input_chunks_free(chunks);
      mtmd_bitmap_free(b[0]);
    }
    return 0;
  }
  if (cmd == "embed") {
    if (argc != 6) die("usage: vision_oracle embed TEXT.gguf MMPROJ IMAGE OUT");
    Session s(argv[2], argv[3], false);
    mtmd_helper_bitmap_wrapper bw = mtmd_helper_bitmap_init_from_file(s.mtmd, argv[4], false, mtmd_helper_init_opt_default());
    if (!bw.bitmap) die(std::string("cannot decode ") + argv[4]);
    const std::string out = argv[5];
    {
      std::ofstream f(out + ".rgb", std::ios::binary);
      f << mtmd_bitmap_get_nx(bw.bitmap) << " " << mtmd_bitmap_get_ny(bw.bitmap) << "\n";
      f.write(reinterpret_cast<const char*>(mtmd_bitmap_get_data(bw.bitmap)),
              static_cast<std::streamsize>(mtmd_bitmap_get_n_bytes(bw.bitmap)));
    }
    std::vector<mtmd_bitmap*> b{bw.bitmap};
    mtmd_input_chunks* chunks = tokenize(s, mtmd_default_marker(), b);
    const mtmd_input_chunk* c = image_chunk(chunks);
    if (mtmd_encode_chunk(s.mtmd, c) != 0) die("mtmd_encode_chunk failed");
    const size_t n = mtmd_input_chunk_get_n_tokens(c);
    const size_t width = static_cast<size_t>(llama_model_n_embd_inp(s.model));
    std::ofstream f(out + ".emb", std::ios::binary);
    f.write(reinterpret_cast<const char*>(mtmd_get_output_embd(s.mtmd)), static_cast<std::streamsize>(n * width * 4));
    std::ofstream pre(out + ".pre", std::ios::binary);
    pre.write(reinterpret_cast<const char*>(captured.pixels.data()), static_cast<std::streamsize>(captured.pixels.size() * 4));
    std::printf("%zu %lld %lld\n", n, static_cast<long long>(captured.w), static_cast<long long>(captured.h));
    mtmd_input_chunks_free(chunks);
    mtmd_bitmap_free(bw.bitmap);
    return 0;
  }
  if (cmd == "generate") {
    if (argc < 6) die("usage: vision_oracle generate TEXT.gguf MMPROJ PROMPT N IMAGE...");
    Session s(argv[2], argv[3], true);
    std::ifstream pf(argv[4]);
    std::stringstream ss;
    ss << pf.rdbuf();
    const int n_gen = std::atoi(argv[5]);
    std::vector<mtmd_bitmap*> b;
    for (int i = 6; i < argc; ++i) {
      mtmd_helper_bitmap_wrapper bw = mtmd_helper_bitmap_init_from_file(s.mtmd, argv[i], false, mtmd_helper_init_opt_default());
      if (!bw.bitmap) die(std::string("cannot decode ") + argv[i]);
      b.push_back(bw.bitmap);
    }
    mtmd_input_chunks* chunks = tokenize(s, ss.str(), b);
    llama_pos n_past = 0;
    if (mtmd_helper_eval_chunks(s.mtmd, s.ctx, chunks, 0, 0, 2048, true, &n_past) != 0) die("eval failed");
    std::fprintf(stderr, "vision_oracle: prompt positions %d\n", static_cast<int>(n_past));
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(s.model));
    for (int i = 0; i < n_gen; ++i) {
      const float* logits = llama_get_logits_ith(s.ctx, -1);
      llama_token best = 0;
      for (llama_token t = 1; t < n_vocab; ++t)
        if (logits[t] > logits[best]) best = t;
      std::printf("%s%d", i ? " " : "", best);
      llama_batch one = llama_batch_get_one(&best, 1);
      if (llama_decode(s.ctx, one) != 0) die("decode failed");
    }
    std::printf("\n");
    mtmd_input_chunks_free(chunks);
    for (mtmd_bitmap* x : b) mtmd_bitmap_free(x);
    return 0;
  }
  die("unknown command " + cmd);
}
