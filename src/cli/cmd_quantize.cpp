// kexa quantize SRC DST --type Q8_0|Q4_0|Q4_K_M|Q5_K_M|Q6_K|BF16 [--threads N]
//
// SRC is a GGUF file or a Hugging Face folder (converted first by `kexa convert`'s code into a
// temporary GGUF next to DST, so the metadata and tensor naming live in one place). The per-tensor
// type choice follows llama.cpp's llama-quantize for the same recipe (which tensors get Q6_K in
// the _M mixes, the output matrix, fallbacks for rows that are not a multiple of 256), so the
// result loads in llama.cpp and matches its files tensor for tensor.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/convert.h"
#include "formats/dtype_convert.h"
#include "formats/gguf.h"
#include "kernels/quant_matmul.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa::cli {

namespace {

struct Recipe {
  const char* name;
  uint32_t ftype;    // llama.cpp's llama_ftype, written to general.file_type
  DType base;        // type of most weight matrices
  bool k_mix;        // _M mixture rules
};

constexpr Recipe kRecipes[] = {
    {"Q8_0", 7, DType::Q8_0, false},   {"Q4_0", 2, DType::Q4_0, false},
    {"Q4_1", 3, DType::Q4_1, false},   {"Q5_0", 8, DType::Q5_0, false},
    {"Q5_1", 9, DType::Q5_1, false},   {"Q4_K_M", 15, DType::Q4_K, true},
    {"Q5_K_M", 17, DType::Q5_K, true}, {"Q6_K", 18, DType::Q6_K, false},
    {"BF16", 32, DType::BF16, false},  {"F16", 1, DType::F16, false},
    {"F32", 0, DType::F32, false},
};

void usage() {
  std::fprintf(stderr,
               "usage: kexa quantize SRC DST --type TYPE [--threads N]\n"
               "  SRC   a GGUF file or a Hugging Face folder (config.json + safetensors)\n"
               "  DST   the GGUF file to write\n"
               "  TYPE  Q8_0 | Q4_0 | Q4_K_M | Q5_K_M | Q6_K | BF16 (also Q4_1, Q5_0, Q5_1, F16, F32)\n"
               "  The _M mixes use Q6_K for the output matrix and for attn_v / ffn_down of the\n"
               "  layers llama.cpp picks, exactly as llama-quantize does.\n");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// llama.cpp's rule for spending more bits on some layers (first and last eighth, every third).
bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// Which tensors llama-quantize leaves in their source type.
bool allows_quantization(const TensorView& t) {
  if (t.shape.size() < 2) return false;
  const std::string& n = t.name;
  if (!ends_with(n, "weight")) return false;
  if (n.find("_norm.weight") != std::string::npos) return false;
  if (n.find("ffn_gate_inp.weight") != std::string::npos) return false;
  return true;
}

// The block-size fallback llama-quantize applies when a row length does not fit the type.
DType fallback(DType type, int64_t cols) {
  const int64_t bs = dtype_info(type)->block_size;
  if (cols % bs == 0) return type;
  DType f = type;
  switch (type) {
    case DType::Q2_K: case DType::Q3_K: f = DType::Q4_0; break;
    case DType::Q4_K: f = DType::Q5_0; break;
    case DType::Q5_K: f = DType::Q5_1; break;
    case DType::Q6_K: f = DType::Q8_0; break;
    default: break;
  }
  return cols % dtype_info(f)->block_size == 0 ? f : DType::F16;
}

struct Plan {
  const TensorView* src;
  DType out;
};

// n_experts: the GGUF's expert_count (0 for dense models). llama-quantize gives 8-expert models
// (Mixtral-like) extra bits on attention; expert tensors are otherwise treated like dense ones,
// with ffn_down_exps / ffn_down_shexp taking the layer from their name.
DType choose_type(const Recipe& r, const TensorView& t, bool tied_embeddings, int n_layers,
                  int n_attn_v, int64_t n_experts) {
  if (!allows_quantization(t)) return t.dtype;
  DType type = r.base;
  if (!kernels::is_quantized(type)) return type;  // BF16 / F16 / F32: no mixture
  const std::string& n = t.name;
  const bool output = n == "output.weight";
  const bool embd = n == "token_embd.weight";
  if (output || (tied_embeddings && embd)) {
    // The output matrix (or the tied embedding that doubles as it) gets Q6_K unless Q8_0.
    if (t.cols() % dtype_info(type)->block_size != 0)
      type = DType::Q8_0;
    else if (type != DType::Q8_0)
      type = DType::Q6_K;
  } else if (n.find("attn_v.weight") != std::string::npos) {
    if (r.k_mix && use_more_bits(layer_of(n), n_attn_v)) type = DType::Q6_K;
    if (n_experts == 8) type = DType::Q8_0;
  } else if (n.find("attn_k.weight") != std::string::npos) {
    if (n_experts == 8) type = DType::Q8_0;
  } else if (n.find("attn_output.weight") != std::string::npos) {
    if (n_experts == 8 && r.k_mix && r.base == DType::Q4_K) type = DType::Q5_K;
  } else if (r.k_mix && n.find("ffn_down") != std::string::npos) {
    if (use_more_bits(layer_of(n), n_layers)) type = DType::Q6_K;
  }
  return fallback(type, t.cols());
}

// llama.cpp's loader order: tensors without a layer first, then by layer, by name within one.
bool weight_order(const TensorView* a, const TensorView* b) {
  const int la = layer_of(a->name), lb = layer_of(b->name);
  if (la != lb) return la < lb;
  return a->name < b->name;
}

class Progress {
 public:
  explicit Progress(size_t total) : total_(std::max<size_t>(total, 1)), tty_(isatty(2) != 0) {}
  void advance(size_t done_bytes, const std::string& what) {
    done_ += done_bytes;
    const int pct = static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_));
    if (!tty_ && pct / 10 == last_ / 10 && done_ < total_) return;
    last_ = pct;
    const int width = 30, fill = pct * width / 100;
    std::string bar(static_cast<size_t>(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s[%s] %3d%% %-40.40s%s", tty_ ? "\r" : "", bar.c_str(), pct, what.c_str(),
                 tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  void finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  size_t total_, done_ = 0;
  bool tty_;
  int last_ = -100;
};

// Removes a temporary file when the command ends, also on error.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) std::remove(path.c_str());
  }
};

void quantize_gguf(const std::string& src_path, const std::string& dst, const Recipe& recipe,
                   int n_threads) {
  auto src = gguf::File::open(src_path);
  std::vector<const TensorView*> order;
  for (const TensorView& t : src->tensors()) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), weight_order);

  const std::string arch = src->architecture();
  int n_layers = 0;
  if (const gguf::Value* v = src->get(arch + ".block_count")) n_layers = static_cast<int>(v->as_int(arch + ".block_count"));
  bool tied = src->find("output.weight") == nullptr;
  int64_t n_experts = 0;
  if (const gguf::Value* v = src->get(arch + ".expert_count")) n_experts = v->as_int(arch + ".expert_count");
  int n_attn_v = 0;
  for (const TensorView* t : order)
    if (t->name.find("attn_v.weight") != std::string::npos) ++n_attn_v;

  std::vector<Plan> plan;
  size_t total = 0;
  int requant = 0;
  for (const TensorView* t : order) {
    const DType out = choose_type(recipe, *t, tied, n_layers, n_attn_v, n_experts);
    if (out != t->dtype) {
      if (kernels::is_quantized(t->dtype)) ++requant;
      else if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
        fail(src_path, ": tensor ", t->name, " has type ", dtype_name(t->dtype), ", which kexa cannot convert to ",
             dtype_name(out));
    }
    plan.push_back({t, out});
    total += static_cast<size_t>(t->numel());
  }
  if (requant > 0)
    std::fprintf(stderr,
                 "kexa quantize: warning: %d tensors are already quantized and will be requantized "
                 "(quality is lower than quantizing from 16 or 32 bit)\n", requant);

  gguf::Writer w;
  for (const auto& [key, value] : src->metadata()) w.set(key, value);
  w.set("general.quantization_version", gguf::Value::u32(2));
  w.set("general.file_type", gguf::Value::u32(recipe.ftype));

  ThreadPool pool(n_threads);
  Progress progress(total);
  for (const Plan& p : plan) {
    const TensorView* t = p.src;
    const DType out = p.out;
    w.add_tensor(t->name, out, t->shape, [t, out, &pool, &progress](uint8_t* dst_bytes, size_t nbytes) {
      if (out == t->dtype) {
        std::memcpy(dst_bytes, t->data, nbytes);
      } else {
        const int64_t rows = t->rows(), cols = t->cols();
        const size_t in_row = dtype_bytes(t->dtype, cols), out_row = dtype_bytes(out, cols);
        pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
          std::vector<float> row(static_cast<size_t>(cols));
          for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* in = t->data + in_row * static_cast<size_t>(r);
            uint8_t* o = dst_bytes + out_row * static_cast<size_t>(r);
            if (kernels::is_quantized(t->dtype))
              kernels::dequantize(t->dtype, in, cols, row.data());
            else
              convert_elements(t->dtype, in, DType::F32, reinterpret_cast<uint8_t*>(row.data()),
                               static_cast<size_t>(cols));
            if (kernels::is_quantized(out))
              kernels::quantize(out, row.data(), cols, o);
            else
              convert_elements(DType::F32, reinterpret_cast<const uint8_t*>(row.data()), out, o,
                               static_cast<size_t>(cols));
          }
        });
      }
      progress.advance(static_cast<size_t>(t->numel()),
                       t->name + " " + dtype_name(t->dtype) + "->" + dtype_name(out));
    });
  }
  w.write(dst, src->alignment());
  progress.finish();
  std::fprintf(stderr, "kexa quantize: wrote %s (%s)\n", dst.c_str(), recipe.name);
}

}  // namespace

int quantize_main(int argc, char** argv) {
  std::string type;
  int n_threads = 0;
  std::vector<std::string> pos;
  size_t positional_before_type = 0;
  const bool go = walk_args(argc, argv, "kexa quantize", usage, 3, [&](const std::string& a, const ArgValue& value) {
    if (a == "--type" || a == "-t") {
      type = value("--type");
      positional_before_type = pos.size();
    } else if (a == "--threads") {
      const std::string v = value("--threads");
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 0 || n > 1024) fail("kexa quantize: bad --threads '", v, "'");
      n_threads = static_cast<int>(n);
    } else {
      return false;
    }
    return true;
  }, pos);
  if (!go) return 0;
  // llama-quantize's positional form SRC DST TYPE; a later --type overrides TYPE.
  if (pos.size() == 3 && type.empty()) {
    type = pos[2];
  } else if (pos.size() == 3 && positional_before_type < 3) {
    usage();
    fail("kexa quantize: unexpected argument '", pos[2], "'");
  }
  const std::string src = pos.size() > 0 ? pos[0] : "", dst = pos.size() > 1 ? pos[1] : "";
  if (src.empty() || dst.empty() || type.empty()) {
    usage();
    return 2;
  }
  std::string upper = type;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const Recipe* recipe = nullptr;
  for (const Recipe& r : kRecipes)
    if (upper == r.name) recipe = &r;
  if (recipe == nullptr) {
    usage();
    fail("kexa quantize: unknown --type '", type, "'");
  }

  struct stat st {};
  if (::stat(src.c_str(), &st) != 0) fail(src, ": ", std::strerror(errno));
  TempFile tmp;
  std::string gguf_src = src;
  if (S_ISDIR(st.st_mode)) {
    tmp.path = dst + ".kexa-convert.tmp.gguf";
    std::fprintf(stderr, "kexa quantize: converting %s to GGUF first\n", src.c_str());
    ConvertOptions opt;  // keep each tensor's source type; only the quantizer rounds
    convert_hf_to_gguf(src, tmp.path, opt);
    gguf_src = tmp.path;
  }
  quantize_gguf(gguf_src, dst, *recipe, n_threads);
  return 0;
}

}  // namespace kexa::cli
