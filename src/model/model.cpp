#include "model/model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "formats/gguf.h"
#include "formats/hf_checkpoint.h"
#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "model/backend.h"
#include "model/kv_cache.h"
#include "model/moe.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa {

// Attention's unit of work: up to this many consecutive tokens (times one KV head) share each
// cached row while it is in L1, with their scores kept in at most kAttentionScoreBytes per thread.
// Rows are walked kAttentionKeyBlock keys at a time (8 KiB for 64-wide heads).
constexpr int64_t kAttentionQueryBlock = 16;
constexpr int64_t kAttentionKeyBlock = 32;
constexpr int64_t kAttentionScoreBytes = int64_t{4} << 20;

using model_detail::LayerWeights;
using model_detail::ModelWeights;

// ---- Binder -------------------------------------------------------------------------------------

namespace model_detail {

namespace {

bool matmul_dtype(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16:
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

bool vector_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

std::string Binder::where(const std::string& name) const {
  std::string file = source_.find(name) != nullptr ? source_.file_of(name) : origin_;
  return concat(file, ": tensor ", name);
}

const TensorView* Binder::check(const std::string& name, const std::vector<int64_t>& shape, bool matrix) {
  used_.insert(name);
  const TensorView* t = source_.find(name);
  if (t == nullptr) {
    problems_.push_back(concat(origin_, ": tensor ", name, " is missing (expected shape ", shape_str(shape), ")"));
    return nullptr;
  }
  if (t->shape != shape) {
    problems_.push_back(concat(where(name), " has shape ", shape_str(t->shape), ", expected ", shape_str(shape)));
    return nullptr;
  }
  bool ok = matrix ? matmul_dtype(t->dtype) : vector_dtype(t->dtype);
  if (!ok) {
    problems_.push_back(concat(where(name), " has dtype ", dtype_name(t->dtype), ", expected ",
                               matrix ? "F32, F16, BF16 or a llama.cpp quantized type" : "F32, F16 or BF16"));
    return nullptr;
  }
  if (const DTypeInfo* info = dtype_info(t->dtype); info != nullptr && shape.back() % info->block_size != 0) {
    problems_.push_back(concat(where(name), " rows of ", shape.back(), " elements are not a multiple of the ",
                               dtype_name(t->dtype), " block size ", info->block_size));
    return nullptr;
  }
  if (t->nbytes != dtype_bytes(t->dtype, t->numel())) {
    problems_.push_back(concat(where(name), " holds ", t->nbytes, " bytes, expected ",
                               dtype_bytes(t->dtype, t->numel()), " for ", dtype_name(t->dtype), " ",
                               shape_str(shape)));
    return nullptr;
  }
  return t;
}

const kernels::Weight* Binder::bind(const TensorView* t) {
  if (t == nullptr) return nullptr;
  auto it = weights_.matrices.find(t->name);
  if (it == weights_.matrices.end()) it = weights_.matrices.emplace(t->name, kernels::Weight(*t)).first;
  return &it->second;
}

const kernels::Weight* Binder::matrix(const std::string& name, int64_t rows, int64_t cols) {
  return bind(check(name, {rows, cols}, true));
}

const kernels::Weight* Binder::optional_matrix(const std::string& name, int64_t rows, int64_t cols) {
  if (source_.find(name) == nullptr) {
    used_.insert(name);
    return nullptr;
  }
  return matrix(name, rows, cols);
}

const kernels::Weight* Binder::stacked(const std::string& name, const std::vector<int64_t>& shape) {
  return bind(check(name, shape, true));
}

std::vector<float> Binder::vector(const std::string& name, int64_t n) {
  const TensorView* t = check(name, {n}, false);
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  if (t != nullptr) kernels::to_f32(*t, 0, n, out.data());
  return out;
}

void Binder::ignore_prefix(const std::string& prefix) {
  for (const std::string& n : source_.names()) {
    if (n.compare(0, prefix.size(), prefix) == 0) used_.insert(n);
  }
}

void Binder::finish() {
  for (const std::string& n : source_.names()) {
    if (used_.count(n) == 0) problems_.push_back(concat(source_.file_of(n), ": unexpected tensor ", n));
  }
  if (problems_.empty()) return;
  std::string msg = concat(origin_, ": ", problems_.size(), " tensor problem", problems_.size() == 1 ? "" : "s");
  const size_t kShown = 40;
  for (size_t i = 0; i < problems_.size() && i < kShown; ++i) msg += "\n  " + problems_[i];
  if (problems_.size() > kShown) msg += concat("\n  ... and ", problems_.size() - kShown, " more");
  throw Error(msg);
}

}  // namespace model_detail

// ---- Model --------------------------------------------------------------------------------------

struct Model::Impl {
  std::string path;
  ModelConfig config;
  std::unique_ptr<TensorSource> source;
  ModelWeights w;
  std::unique_ptr<ThreadPool> pool;
  // Runs the decoder's matrix products, norms, SwiGLU and residual updates (model/backend.h).
  std::unique_ptr<model_detail::Backend> backend;
  std::string device_note;  // why the device asked for is not the one used; empty when it is
  KVType kv_type = KVType::F32;  // LoadOptions::kv_type
  std::vector<float> inv_freq;

  // Activations for up to `rows` tokens, reused across calls.
  int64_t rows = 0;
  std::vector<float> x, xn, q, k, v, att, o, gate, up, down;
  std::vector<float> scores;  // [threads][query heads per KV head][keys] attention scratch
  std::vector<float> rope_cos, rope_sin;  // [rows][head_dim / 2] for the chunk's positions
  std::vector<float> logits_tmp;          // output rows of a batch before they are scattered

  // Mixture-of-experts scratch: router logits [rows][E], choices [rows][k], rows grouped by expert.
  std::vector<float> moe_logits, moe_weights, moe_in, moe_gate, moe_up, moe_out, moe_route_scratch;
  std::vector<int32_t> moe_experts;
  std::vector<int64_t> moe_count, moe_start, moe_rows;  // per expert: count, offset into moe_rows
  std::vector<float> moe_row_w;                         // weight of each grouped row
  Model::ExpertStats expert_stats;

  // y[t] = sum over t's chosen experts (+ shared experts) for the n rows of `in`.
  void moe_ffn(const model_detail::MoeWeights& m, const float* in, int64_t n, float* y);

  // One sequence's share of a step: `n` tokens appended to `cache` (n <= cache.chunk()).
  struct Segment {
    const int32_t* tokens = nullptr;
    int64_t n = 0;
    KVCache* cache = nullptr;
    float* logits = nullptr;  // [n][V] when all_logits, else [V] for the last row; may be null
    bool all_logits = false;
    float* hidden = nullptr;  // [n][H] final-normed hidden states (MTP input); may be null
  };
  // Per-row bookkeeping of the current step (rows of all segments, in order).
  std::vector<int32_t> row_seg;
  std::vector<int64_t> row_pos;
  std::vector<int64_t> out_rows;  // rows that go through the output projection

  void check_input(std::span<const int32_t> tokens, const KVCache& cache) const;
  void reserve(int64_t n, int64_t max_keys);
  // Evaluates every segment in one pass over the weights (each matmul sees all rows).
  void run_step(const std::vector<Segment>& segs);
  void attention(int64_t layer, int64_t window, int64_t n, const std::vector<Segment>& segs);
  void attention_block(const model_detail::LayerWeights& l, const LayerPlan& plan, int64_t cache_layer, int64_t n,
                       const std::vector<Segment>& segs);
  void mlp_block(const model_detail::LayerWeights& l, int64_t n);
  void dense_ffn(const model_detail::LayerWeights& l, const float* in, int64_t n);
  // Matrix products of the forward pass; with exact_rows (speculative verification) every row of
  // a batch is bit for bit what evaluating it alone gives (model/exact_matmul.h).
  bool exact_rows = false;
  void mm(const kernels::Weight& W, const float* in, int64_t n, float* out);
  void mm_many(std::span<const kernels::MatmulOut> outs, const float* in, int64_t n);
  // MTP (see the section at the end of this file).
  std::vector<float> mtp_u;  // [rows][2H] fc input
  void store_hidden(const std::vector<Segment>& segs);
  void mtp_step(const Segment& sg, const float* hidden, float* out_hidden);

  // Runs fn(t) for t < n: inline for a few tokens (decode), spread over the pool otherwise.
  template <typename Fn>
  void for_tokens(int64_t n, Fn&& fn) {
    if (n < 4 || pool->size() == 1) {
      for (int64_t t = 0; t < n; ++t) fn(t);
      return;
    }
    pool->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) fn(t);
    });
  }
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

const ModelConfig& Model::config() const { return impl_->config; }
const std::string& Model::path() const { return impl_->path; }
std::string Model::backend_name() const { return impl_->backend->name(); }
const std::string& Model::device_note() const { return impl_->device_note; }
KVType Model::kv_type() const { return impl_->kv_type; }
ThreadPool& Model::pool() { return *impl_->pool; }
bool Model::tied_embeddings() const { return impl_->w.tied; }

size_t Model::weight_bytes() const {
  const ModelWeights& w = impl_->w;
  size_t total = w.output->nbytes + w.output_norm.size() * sizeof(float);
  for (const LayerWeights& l : w.layers) {
    for (const kernels::Weight* t : {l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down}) total += t != nullptr ? t->nbytes : 0;
    if (l.moe != nullptr) {
      // A decoded token reads the router, the shared experts and k routed experts.
      const model_detail::MoeWeights& m = *l.moe;
      total += m.router.nbytes + static_cast<size_t>(impl_->config.router.n_used) * m.expert_bytes;
      for (const kernels::Weight* t : {m.shared_gate, m.shared_up, m.shared_down}) total += t != nullptr ? t->nbytes : 0;
    }
  }
  return total;
}

size_t Model::expert_bytes() const {
  size_t total = 0;
  for (const LayerWeights& l : impl_->w.layers) {
    if (l.moe != nullptr) total += l.moe->expert_bytes * l.moe->gate.size();
  }
  return total;
}

Model::ExpertStats Model::expert_stats() const { return impl_->expert_stats; }
void Model::reset_expert_stats() { impl_->expert_stats = {};
}

namespace {

// llama.cpp carries llama3 rope scaling as a tensor of per-frequency divisors.
void read_rope_freqs(const TensorSource& src, ModelConfig& c, model_detail::Binder& binder) {
  const std::string name = "rope_freqs.weight";
  const TensorView* t = src.find(name);
  if (t == nullptr) return;
  std::vector<float> div = binder.vector(name, c.head_dim / 2);
  // A misshapen or mistyped tensor is reported (with everything else) by binder.finish().
  const bool usable = t->shape == std::vector<int64_t>{c.head_dim / 2} &&
                      (t->dtype == DType::F32 || t->dtype == DType::F16 || t->dtype == DType::BF16);
  if (!usable) return;
  for (size_t i = 0; i < div.size(); ++i) {
    if (!(div[i] > 0.0f) || !std::isfinite(div[i])) {
      fail(src.file_of(name), ": tensor ", name, "[", i, "] = ", div[i], " is not a positive divisor");
    }
  }
  c.rope_freq_divisors = std::move(div);
}

// Rearranges the dense matrices in place for the packed kernels when this CPU runs them
// (kernels/packed.h). Routed MoE experts stay as stored: they are mapped lazily and a step reads
// only a few of them, so rewriting them all would read and dirty the whole file.
void pack_weights(TensorSource& source, model_detail::ModelWeights& w, ThreadPool& pool) {
  auto pack = [&](const kernels::Weight* t) {
    if (t == nullptr) return;
    kernels::Weight& m = w.matrices.find(t->name)->second;
    if (!kernels::should_pack(m)) return;  // also when packed already (a tied matrix seen twice)
    const bool packed = source.rewrite_in_place(m.name, [&](const TensorView& v, uint8_t* bytes) {
      kernels::pack_rows(v.dtype, v.rows(), v.cols(), bytes, &pool);
    });
    if (packed) m.row_group = kernels::kPackRows;
  };
  auto pack_layer = [&](const LayerWeights& l) {
    for (const kernels::Weight* t : {l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down}) pack(t);
    if (l.moe != nullptr)
      for (const kernels::Weight* t : {l.moe->shared_gate, l.moe->shared_up, l.moe->shared_down}) pack(t);
  };
  pack(w.output);  // also the embedding when tied: lookups unpack their row (kernels::to_f32)
  for (const LayerWeights& l : w.layers) pack_layer(l);
  if (w.mtp != nullptr) {
    pack(w.mtp->fc);
    pack_layer(w.mtp->layer);
  }
}

}  // namespace

namespace {

// An exaone4_5 folder keeps its text tower under model.language_model.*, which the exaone4
// binder reads as model.*; the vision tower (model.visual.*) is VisionTower's, hidden here.
class LanguageModelSource : public TensorSource {
 public:
  explicit LanguageModelSource(std::unique_ptr<HFCheckpoint> inner) : inner_(std::move(inner)) {}
  const TensorView* find(std::string_view name) const override { return inner_->find(stored(name)); }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const std::string& n : inner_->names()) {
      if (n.rfind(kText, 0) == 0) out.push_back("model." + n.substr(kText.size()));
      else if (n.rfind("model.visual.", 0) != 0) out.push_back(n);
    }
    return out;
  }
  std::string file_of(std::string_view name) const override { return inner_->file_of(stored(name)); }

 private:
  static constexpr std::string_view kText = "model.language_model.";
  static std::string stored(std::string_view name) {
    if (name.rfind("model.", 0) == 0) return std::string(kText) + std::string(name.substr(6));
    return std::string(name);
  }
  std::unique_ptr<HFCheckpoint> inner_;
};

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::unique_ptr<HFCheckpoint> ckpt = HFCheckpoint::open(path);
    ModelConfig config = ModelConfig::from_hf_json(ckpt->config(), path + "/config.json");
    const nlohmann::json& raw = ckpt->config();
    if (raw.contains("model_type") && raw["model_type"] == "exaone4_5") {
      return from_source(std::move(config), std::make_unique<LanguageModelSource>(std::move(ckpt)), false, path,
                         options);
    }
    return from_source(std::move(config), std::move(ckpt), false, path, options);
  }
  if (!fs::exists(path, ec)) fail(path, ": no such file or directory (expected a Hugging Face folder or a .gguf file)");
  if (!gguf::has_magic(path)) {
    fail(path, ": not a GGUF file (no GGUF magic) and not a directory; expected a Hugging Face folder or a .gguf file");
  }
  return from_gguf(gguf::File::open(path), options);
}

std::unique_ptr<Model> Model::from_gguf(std::unique_ptr<gguf::File> file, const LoadOptions& options) {
  ModelConfig config = ModelConfig::from_gguf(*file);
  const std::string path = file->path();
  return from_source(std::move(config), std::move(file), true, path, options);
}

std::unique_ptr<Model> Model::from_source(ModelConfig config, std::unique_ptr<TensorSource> source,
                                          bool gguf_names, const std::string& origin,
                                          const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  Impl& d = *m->impl_;
  d.path = origin;
  model_detail::Binder binder(*source, origin, d.w);
  if (gguf_names) read_rope_freqs(*source, config, binder);
  switch (config.arch) {
    case Arch::Exaone:
      model_detail::bind_exaone(config, gguf_names, binder, d.w);
      break;
    case Arch::Exaone4:
      model_detail::bind_exaone4(config, gguf_names, binder, d.w);
      break;
    case Arch::ExaoneMoe:
      model_detail::bind_exaone_moe(config, gguf_names, binder, d.w);
      break;
  }
  // Configs may lack num_nextn_predict_layers (K-EXAONE's, spec 4.1); the mtp.* tensors then decide.
  if (config.arch != Arch::Exaone) {
    if (config.n_mtp_layers == 0 && !gguf_names && binder.has("mtp.fc.weight")) config.n_mtp_layers = 1;
    // EXAONE 4.5 text towers converted without their MTP weights still declare the layers.
    if (config.arch == Arch::Exaone4 && !gguf_names && !binder.has("mtp.fc.weight")) config.n_mtp_layers = 0;
    model_detail::bind_mtp(config, gguf_names, binder, d.w);
  }
  binder.finish();
  config.tie_word_embeddings = d.w.tied;
  d.config = std::move(config);
  d.source = std::move(source);
  d.kv_type = options.kv_type;
  d.pool = std::make_unique<ThreadPool>(options.n_threads);
  pack_weights(*d.source, d.w, *d.pool);
  model_detail::check_gpu_layers(options, d.config.n_layers);
  d.backend = model_detail::make_backend(options, *d.pool, d.device_note);
  d.backend->prepare(d.w);
  d.inv_freq = d.config.rope_inv_freq();
  return m;
}

void Model::Impl::reserve(int64_t n, int64_t max_keys) {
  const ModelConfig& c = config;
  if (n > rows) {
    rows = n;
    const size_t N = static_cast<size_t>(n);
    x.resize(N * c.hidden_size);
    xn.resize(N * c.hidden_size);
    o.resize(N * c.hidden_size);
    down.resize(N * c.hidden_size);
    q.resize(N * c.q_dim());
    att.resize(N * c.q_dim());
    k.resize(N * c.kv_dim());
    v.resize(N * c.kv_dim());
    gate.resize(N * c.intermediate_size);
    up.resize(N * c.intermediate_size);
    if (c.router.n_experts > 0) {
      const size_t E = static_cast<size_t>(c.router.n_experts), K = static_cast<size_t>(c.router.n_used);
      const size_t width = static_cast<size_t>(std::max(c.moe_intermediate_size, c.shared_intermediate_size));
      moe_logits.resize(N * E);
      moe_weights.resize(N * K);
      moe_experts.resize(N * K);
      moe_rows.resize(N * K);
      moe_row_w.resize(N * K);
      moe_in.resize(N * c.hidden_size);
      moe_out.resize(N * c.hidden_size);
      moe_gate.resize(N * width);
      moe_up.resize(N * width);
    }
    rope_cos.resize(N * static_cast<size_t>(c.head_dim / 2));
    rope_sin.resize(N * static_cast<size_t>(c.head_dim / 2));
  }
  // Per thread, one row of scores per query head of a KV group for each token of a query block:
  // as many tokens as fit kAttentionScoreBytes, at least one.
  const int64_t row_floats = (c.n_heads / c.n_kv_heads) * max_keys;
  const int64_t block = std::clamp<int64_t>(kAttentionScoreBytes / (4 * row_floats), 1, kAttentionQueryBlock);
  const size_t need = static_cast<size_t>(pool->size()) * static_cast<size_t>(block * row_floats);
  if (scores.size() < need) scores.resize(need);
}

// Causal (and, on sliding layers, windowed) attention of the chunk's queries against the cache,
// which already holds the chunk's own keys. A unit of work is a block of consecutive tokens times
// one KV head: the query heads sharing that KV head go through its cached rows together, and the
// rows are walked in key blocks that stay in L1 while every token of the block uses them, so a
// long prompt reads each cached row about once per query block instead of once per query head.
// Each (token, head) is still computed exactly as alone: its scores are per-key dot products, its
// softmax is over its own row, its output sums its keys in order.
void Model::Impl::attention(int64_t layer, int64_t window, int64_t n, const std::vector<Segment>& segs) {
  const ModelConfig& c = config;
  const int64_t hd = c.head_dim, nKV = c.n_kv_heads, group = c.n_heads / c.n_kv_heads;
  const int64_t qd = c.q_dim();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  // Visible keys of token t: positions [lo, pos], `nk` of them, from ring slot lo % slots.
  struct Keys {
    const void* K;
    const void* V;
    bool f16;
    int64_t slots, first_slot, count;
  };
  auto keys_of = [&](int64_t t) {
    const int64_t pos = row_pos[static_cast<size_t>(t)];
    KVCache& cache = *segs[static_cast<size_t>(row_seg[static_cast<size_t>(t)])].cache;
    const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
    return Keys{cache.keys(layer), cache.values(layer), cache.type() == KVType::F16, cache.slots(layer),
                lo % cache.slots(layer), pos - lo + 1};
  };
  // Calls fn(first slot, first key index, count) over the contiguous pieces of a token's keys
  // [j0, j1): the visible keys wrap past the ring's end at most once.
  auto pieces = [&](const Keys& k, int64_t j0, int64_t j1, auto&& fn) {
    const int64_t s = (k.first_slot + j0) % k.slots;
    const int64_t run = std::min(j1 - j0, k.slots - s);
    if (run > 0) fn(s, j0, run);
    if (j1 - j0 > run) fn(0, j0 + run, j1 - j0 - run);
  };

  int64_t longest = 1;
  for (int64_t t = 0; t < n; ++t) longest = std::max(longest, keys_of(t).count);
  const int64_t row = group * longest;  // floats of one token's scores
  const int64_t per_thread = static_cast<int64_t>(scores.size()) / pool->size();
  const int64_t block = std::clamp<int64_t>(per_thread / row, 1, kAttentionQueryBlock);
  const int64_t n_blocks = (n + block - 1) / block;
  const int64_t items = n_blocks * nKV;
  // Later tokens see more keys: hand out the last blocks first so the threads finish together.
  std::atomic<int64_t> next{0};

  pool->run([&](int thread, int) {
    float* sc = scores.data() + static_cast<size_t>(thread) * static_cast<size_t>(per_thread);
    // KV head g's rows from slot s of K or V (head-major: contiguous, hd elements apart).
    auto rows_at = [&](const Keys& k, const void* base, int64_t g, int64_t s) {
      return static_cast<const char*>(base) + (g * k.slots + s) * hd * (k.f16 ? 2 : 4);
    };
    for (int64_t it = next.fetch_add(1); it < items; it = next.fetch_add(1)) {
      const int64_t b = n_blocks - 1 - it / nKV, g = it % nKV;
      const int64_t t0 = b * block, t1 = std::min(n, t0 + block);
      Keys span[kAttentionQueryBlock];
      int64_t most = 0;
      for (int64_t t = t0; t < t1; ++t) {
        span[t - t0] = keys_of(t);
        most = std::max(most, span[t - t0].count);
      }
      for (int64_t j0 = 0; j0 < most; j0 += kAttentionKeyBlock) {
        for (int64_t t = t0; t < t1; ++t) {
          const Keys& k = span[t - t0];
          const float* qg = q.data() + t * qd + g * group * hd;
          float* st = sc + (t - t0) * row;
          pieces(k, j0, std::min(k.count, j0 + kAttentionKeyBlock), [&](int64_t s, int64_t j, int64_t cnt) {
            const char* rows = rows_at(k, k.K, g, s);
            if (k.f16)
              kernels::dot_rows_f16(qg, group, hd, reinterpret_cast<const uint16_t*>(rows), hd, cnt, hd, scale,
                                    st + j, longest);
            else
              kernels::dot_rows(qg, group, hd, reinterpret_cast<const float*>(rows), hd, cnt, hd, scale, st + j,
                                longest);
          });
        }
      }
      for (int64_t t = t0; t < t1; ++t) {
        float* st = sc + (t - t0) * row;
        for (int64_t h = 0; h < group; ++h) kernels::softmax(st + h * longest, span[t - t0].count);
        float* out = att.data() + t * qd + g * group * hd;
        std::fill(out, out + group * hd, 0.0f);
      }
      for (int64_t j0 = 0; j0 < most; j0 += kAttentionKeyBlock) {
        for (int64_t t = t0; t < t1; ++t) {
          const Keys& k = span[t - t0];
          const float* st = sc + (t - t0) * row;
          float* out = att.data() + t * qd + g * group * hd;
          pieces(k, j0, std::min(k.count, j0 + kAttentionKeyBlock), [&](int64_t s, int64_t j, int64_t cnt) {
            const char* rows = rows_at(k, k.V, g, s);
            if (k.f16)
              kernels::accumulate_rows_f16(st + j, group, longest, reinterpret_cast<const uint16_t*>(rows), hd, cnt,
                                           hd, out, hd);
            else
              kernels::accumulate_rows(st + j, group, longest, reinterpret_cast<const float*>(rows), hd, cnt, hd,
                                       out, hd);
          });
        }
      }
    }
  });
}

// Attention sub-block of one layer on the step's n rows of x (residual add included). The
// layer's keys go to layer `cache_layer` of each row's cache; the MTP head runs its own block
// through here with its own cache.
void Model::Impl::attention_block(const LayerWeights& l, const LayerPlan& plan, int64_t cache_layer, int64_t n,
                                  const std::vector<Segment>& segs) {
  const ModelConfig& c = config;
  const int64_t H = c.hidden_size, hd = c.head_dim, half = hd / 2;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim();
  const double eps = c.norm_eps;
  const bool pre = c.norm == NormPlacement::Pre;
  const int64_t li = cache_layer;

  // 4.0 (post-norm) feeds the raw residual stream to the projections.
  const float* in = x.data();
  if (pre) {
    backend->rmsnorm(x.data(), l.attn_norm.data(), n, H, eps, xn.data());
    in = xn.data();
  }
  const kernels::MatmulOut qkv[] = {{l.wq, q.data()}, {l.wk, k.data()}, {l.wv, v.data()}};
  mm_many(qkv, in, n);
  for_tokens(n, [&](int64_t t) {
    const int64_t pos = row_pos[static_cast<size_t>(t)];
    KVCache& cache = *segs[static_cast<size_t>(row_seg[static_cast<size_t>(t)])].cache;
    const int64_t slots = cache.slots(li);
    void* kc = cache.keys(li);
    void* vc = cache.values(li);
    const float* cs = rope_cos.data() + t * half;
    const float* sn = rope_sin.data() + t * half;
    for (int64_t h = 0; h < c.n_heads; ++h) {
      float* qh = q.data() + t * qd + h * hd;
      if (c.qk_norm) kernels::rmsnorm(qh, l.q_norm.data(), hd, eps, qh);
      if (plan.rope) kernels::rope_neox_cs(qh, hd, cs, sn);
    }
    for (int64_t h = 0; h < c.n_kv_heads; ++h) {
      float* kh = k.data() + t * kvd + h * hd;
      if (c.qk_norm) kernels::rmsnorm(kh, l.k_norm.data(), hd, eps, kh);
      if (plan.rope) kernels::rope_neox_cs(kh, hd, cs, sn);
    }
    // Distinct positions of one chunk never share a slot (slots >= W-1+chunk). Head-major rows.
    const int64_t slot = pos % slots;
    for (int64_t h = 0; h < c.n_kv_heads; ++h) {
      const int64_t at = (h * slots + slot) * hd;
      const float* kh = k.data() + t * kvd + h * hd;
      const float* vh = v.data() + t * kvd + h * hd;
      if (cache.type() == KVType::F16) {
        kernels::f32_array_to_f16(kh, hd, static_cast<uint16_t*>(kc) + at);
        kernels::f32_array_to_f16(vh, hd, static_cast<uint16_t*>(vc) + at);
      } else {
        std::memcpy(static_cast<float*>(kc) + at, kh, sizeof(float) * hd);
        std::memcpy(static_cast<float*>(vc) + at, vh, sizeof(float) * hd);
      }
    }
  });
  attention(li, plan.window, n, segs);
  mm(*l.wo, att.data(), n, o.data());
  backend->add_residual(x.data(), o.data(), pre ? nullptr : l.post_attn_norm.data(), n, H, eps);
}

// MLP sub-block of one layer on the step's n rows of x (norm, feed-forward, residual add).
void Model::Impl::mlp_block(const LayerWeights& l, int64_t n) {
  const ModelConfig& c = config;
  const int64_t H = c.hidden_size;
  const double eps = c.norm_eps;
  const bool pre = c.norm == NormPlacement::Pre;
  const float* in = x.data();
  if (pre) {
    backend->rmsnorm(x.data(), l.ffn_norm.data(), n, H, eps, xn.data());
    in = xn.data();
  }
  if (l.moe != nullptr) {
    moe_ffn(*l.moe, in, n, down.data());
  } else {
    dense_ffn(l, in, n);
  }
  backend->add_residual(x.data(), down.data(), pre ? nullptr : l.post_ffn_norm.data(), n, H, eps);
}

// Dense SwiGLU feed-forward of n rows of `in`; the result is left in `down`.
void Model::Impl::dense_ffn(const LayerWeights& l, const float* in, int64_t n) {
  const int64_t I = l.gate->shape[0];
  const kernels::MatmulOut gate_up[] = {{l.gate, gate.data()}, {l.up, up.data()}};
  mm_many(gate_up, in, n);
  backend->swiglu(gate.data(), up.data(), n, I);
  mm(*l.down, gate.data(), n, down.data());
}

void Model::Impl::run_step(const std::vector<Segment>& segs) {
  const ModelConfig& c = config;
  const int64_t H = c.hidden_size, hd = c.head_dim;
  const double eps = c.norm_eps;
  const size_t V = static_cast<size_t>(c.vocab_size);

  int64_t n = 0, max_keys = 1;
  row_seg.clear();
  row_pos.clear();
  out_rows.clear();
  for (size_t si = 0; si < segs.size(); ++si) {
    const Segment& sg = segs[si];
    const int64_t p0 = sg.cache->n_past();
    for (int64_t t = 0; t < sg.n; ++t) {
      row_seg.push_back(static_cast<int32_t>(si));
      row_pos.push_back(p0 + t);
      if (sg.logits != nullptr && (sg.all_logits || t == sg.n - 1)) out_rows.push_back(n + t);
    }
    n += sg.n;
    max_keys = std::max(max_keys, std::min(sg.cache->max_context(), p0 + sg.n));
  }
  reserve(n, max_keys);

  const int64_t half = hd / 2;
  for (size_t si = 0, r = 0; si < segs.size(); ++si) {
    const InputEmbeddings* given = segs[si].cache->input_embeddings();
    for (int64_t t = 0; t < segs[si].n; ++t, ++r) {
      float* row = x.data() + static_cast<int64_t>(r) * H;
      const float* e = given ? given->row_at(row_pos[r]) : nullptr;
      if (e != nullptr) std::memcpy(row, e, static_cast<size_t>(H) * sizeof(float));
      else kernels::to_f32(*w.embed, segs[si].tokens[t] * H, H, row);
    }
  }
  for_tokens(n, [&](int64_t t) {
    // cos/sin of each position once per step, shared by every head and layer.
    kernels::rope_cos_sin(inv_freq.data(), half, row_pos[static_cast<size_t>(t)], rope_cos.data() + t * half,
                          rope_sin.data() + t * half);
  });

  for (int64_t li = 0; li < c.n_layers; ++li) {
    const LayerWeights& l = w.layers[static_cast<size_t>(li)];
    backend->begin_layer(li);
    attention_block(l, c.layers[static_cast<size_t>(li)], li, n, segs);
    mlp_block(l, n);
  }
  backend->begin_layer(-1);
  for (const Segment& sg : segs) sg.cache->advance(sg.n);
  store_hidden(segs);

  if (out_rows.empty()) return;
  // Only the rows whose logits are wanted go through the (large) output projection.
  const int64_t rows_out = static_cast<int64_t>(out_rows.size());
  for_tokens(rows_out, [&](int64_t r) {
    kernels::rmsnorm(x.data() + out_rows[static_cast<size_t>(r)] * H, w.output_norm.data(), H, eps, xn.data() + r * H);
  });
  // A single segment wanting all its rows writes straight into the caller's buffer.
  if (segs.size() == 1) {
    mm(*w.output, xn.data(), rows_out, segs[0].logits);
    return;
  }
  if (logits_tmp.size() < static_cast<size_t>(rows_out) * V) logits_tmp.resize(static_cast<size_t>(rows_out) * V);
  mm(*w.output, xn.data(), rows_out, logits_tmp.data());
  // A batch of decoded sequences scatters a vocabulary row (~400 KB) to each: on the pool.
  std::vector<std::pair<const Segment*, size_t>> wanted;  // segment, its first row in logits_tmp
  size_t r = 0;
  for (const Segment& sg : segs) {
    if (sg.logits == nullptr) continue;
    wanted.emplace_back(&sg, r);
    r += sg.all_logits ? static_cast<size_t>(sg.n) : 1;
  }
  for_tokens(static_cast<int64_t>(wanted.size()), [&](int64_t i) {
    const auto& [sg, row] = wanted[static_cast<size_t>(i)];
    const size_t rows = sg->all_logits ? static_cast<size_t>(sg->n) : 1;
    std::memcpy(sg->logits, logits_tmp.data() + row * V, rows * V * sizeof(float));
  });
}

// Routes every row, then runs each chosen expert once on all the rows that chose it (gathered into
// one matrix), so a prefill chunk reads each expert's weights once and a decoded token reads only
// its k experts.
void Model::Impl::moe_ffn(const model_detail::MoeWeights& m, const float* in, int64_t n, float* y) {
  const ModelConfig& c = config;
  const int64_t H = c.hidden_size, E = c.router.n_experts, K = c.router.n_used;
  const int64_t Im = c.moe_intermediate_size, Is = c.shared_intermediate_size;

  mm(m.router, in, n, moe_logits.data());
  for (int64_t t = 0; t < n; ++t) {
    moe::route(moe_logits.data() + t * E, m.bias.data(), c.router, moe_experts.data() + t * K, moe_weights.data() + t * K,
               moe_route_scratch);
  }
  // Bucket the (row, weight) pairs by expert, rows ascending within an expert.
  moe_count.assign(static_cast<size_t>(E), 0);
  moe_start.assign(static_cast<size_t>(E) + 1, 0);
  for (int64_t i = 0; i < n * K; ++i) ++moe_count[static_cast<size_t>(moe_experts[static_cast<size_t>(i)])];
  for (int64_t e = 0; e < E; ++e) moe_start[static_cast<size_t>(e) + 1] = moe_start[static_cast<size_t>(e)] + moe_count[static_cast<size_t>(e)];
  std::vector<int64_t>& fill = moe_count;  // reused as the per-expert write cursor
  for (int64_t e = 0; e < E; ++e) fill[static_cast<size_t>(e)] = moe_start[static_cast<size_t>(e)];
  for (int64_t i = 0; i < n * K; ++i) {
    const size_t e = static_cast<size_t>(moe_experts[static_cast<size_t>(i)]);
    const int64_t at = fill[e]++;
    moe_rows[static_cast<size_t>(at)] = i / K;
    moe_row_w[static_cast<size_t>(at)] = moe_weights[static_cast<size_t>(i)];
  }

  // Shared experts see every row with weight 1; they initialise the output.
  if (m.shared_gate != nullptr) {
    mm(*m.shared_gate, in, n, moe_gate.data());
    mm(*m.shared_up, in, n, moe_up.data());
    backend->swiglu(moe_gate.data(), moe_up.data(), n, Is);
    mm(*m.shared_down, moe_gate.data(), n, y);
  } else {
    std::fill(y, y + n * H, 0.0f);
  }

  size_t touched = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = moe_start[static_cast<size_t>(e)], cnt = moe_start[static_cast<size_t>(e) + 1] - r0;
    if (cnt == 0) continue;
    touched += m.expert_bytes;
    const float* x = in;
    if (n > 1) {
      for (int64_t j = 0; j < cnt; ++j) {
        std::memcpy(moe_in.data() + j * H, in + moe_rows[static_cast<size_t>(r0 + j)] * H, sizeof(float) * H);
      }
      x = moe_in.data();
    }
    mm(m.gate[static_cast<size_t>(e)], x, cnt, moe_gate.data());
    mm(m.up[static_cast<size_t>(e)], x, cnt, moe_up.data());
    backend->swiglu(moe_gate.data(), moe_up.data(), cnt, Im);
    mm(m.down[static_cast<size_t>(e)], moe_gate.data(), cnt, moe_out.data());
    for (int64_t j = 0; j < cnt; ++j) {
      const float wgt = moe_row_w[static_cast<size_t>(r0 + j)];
      float* yt = y + moe_rows[static_cast<size_t>(r0 + j)] * H;
      const float* ot = moe_out.data() + j * H;
      for (int64_t i = 0; i < H; ++i) yt[i] += wgt * ot[i];
    }
  }
  expert_stats.bytes_touched += touched;
  expert_stats.layer_steps += 1;
  if (n == 1) {
    expert_stats.decode_bytes += touched;
    expert_stats.decode_layer_steps += 1;
  }
}

void Model::Impl::check_input(std::span<const int32_t> tokens, const KVCache& cache) const {
  const ModelConfig& c = config;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (cache.n_layers() != c.n_layers || cache.heads() != c.n_kv_heads || cache.head_dim() != c.head_dim) {
    fail("KV cache was made for another model (", cache.n_layers(), " layers of ", cache.heads(), " KV heads x ",
         cache.head_dim(), "; this model has ", c.n_layers, " of ", c.n_kv_heads, " x ", c.head_dim, ")");
  }
  if (cache.n_past() + n > cache.max_context()) {
    fail("context overflow: ", cache.n_past(), " cached + ", n, " new tokens exceed the context size ",
         cache.max_context());
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[static_cast<size_t>(i)] < 0 || tokens[static_cast<size_t>(i)] >= c.vocab_size) {
      fail("token id ", tokens[static_cast<size_t>(i)], " at input index ", i, " is outside the vocabulary [0, ",
           c.vocab_size, ")");
    }
  }
}

void Model::forward(std::span<const int32_t> tokens, KVCache& cache, std::span<float> logits,
                    bool all_logits) {
  forward_hidden(tokens, cache, logits, all_logits, {});
}

void Model::forward_hidden(std::span<const int32_t> tokens, KVCache& cache, std::span<float> logits,
                           bool all_logits, std::span<float> hidden) {
  Impl& d = *impl_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return;
  d.check_input(tokens, cache);
  const size_t V = static_cast<size_t>(d.config.vocab_size);
  if (!logits.empty()) {
    size_t need = all_logits ? static_cast<size_t>(n) * V : V;
    if (logits.size() < need) fail("logits buffer holds ", logits.size(), " floats, need ", need);
  }
  const size_t Hs = static_cast<size_t>(d.config.hidden_size);
  if (!hidden.empty() && hidden.size() < static_cast<size_t>(n) * Hs) {
    fail("hidden-state buffer holds ", hidden.size(), " floats, need ", static_cast<size_t>(n) * Hs);
  }
  const int64_t chunk = cache.chunk();
  std::vector<Impl::Segment> segs(1);
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t m = std::min(chunk, n - start);
    const bool last = start + m == n;
    Impl::Segment& sg = segs[0];
    sg.tokens = tokens.data() + start;
    sg.n = m;
    sg.cache = &cache;
    sg.all_logits = all_logits;
    sg.logits = nullptr;
    if (!logits.empty() && (all_logits || last)) {
      sg.logits = logits.data() + (all_logits ? static_cast<size_t>(start) * V : 0);
    }
    sg.hidden = hidden.empty() ? nullptr : hidden.data() + static_cast<size_t>(start) * Hs;
    d.run_step(segs);
  }
}

void Model::forward_batch(std::span<BatchItem> items) {
  Impl& d = *impl_;
  const size_t V = static_cast<size_t>(d.config.vocab_size);
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& it = items[i];
    if (it.cache == nullptr) fail("forward_batch: item ", i, " has no KV cache");
    for (size_t j = 0; j < i; ++j) {
      if (items[j].cache == it.cache) fail("forward_batch: items ", j, " and ", i, " share one KV cache");
    }
    d.check_input(it.tokens, *it.cache);
    if (!it.logits.empty() && it.logits.size() < V) {
      fail("forward_batch: item ", i, " logits buffer holds ", it.logits.size(), " floats, need ", V);
    }
  }
  // Rounds of at most one cache chunk per item keep every sliding ring large enough.
  std::vector<size_t> done(items.size(), 0);
  std::vector<Impl::Segment> segs;
  for (;;) {
    segs.clear();
    for (size_t i = 0; i < items.size(); ++i) {
      const BatchItem& it = items[i];
      const size_t left = it.tokens.size() - done[i];
      if (left == 0) continue;
      const size_t m = std::min(left, static_cast<size_t>(it.cache->chunk()));
      Impl::Segment sg;
      sg.tokens = it.tokens.data() + done[i];
      sg.n = static_cast<int64_t>(m);
      sg.cache = it.cache;
      sg.logits = (m == left && !it.logits.empty()) ? it.logits.data() : nullptr;
      sg.all_logits = false;
      segs.push_back(sg);
      done[i] += m;
    }
    if (segs.empty()) break;
    d.run_step(segs);
  }
}

// ---- Multi-token prediction ---------------------------------------------------------------------
// K-EXAONE's MTP block (spec 4.6): u = fc([enorm(embed(x_{p+1})), hnorm(hid_p)]), one pre-norm
// layer (the decoder's own attention and dense MLP code, with the block's weights and its own
// one-layer cache, at position p), then its own final norm and the shared lm_head.

void Model::Impl::store_hidden(const std::vector<Segment>& segs) {
  const int64_t H = config.hidden_size;
  int64_t r0 = 0;
  for (const Segment& sg : segs) {
    if (sg.hidden != nullptr) {
      for_tokens(sg.n, [&](int64_t t) {
        kernels::rmsnorm(x.data() + (r0 + t) * H, w.output_norm.data(), H, config.norm_eps, sg.hidden + t * H);
      });
    }
    r0 += sg.n;
  }
}

bool Model::has_mtp() const { return impl_->w.mtp != nullptr; }

void Model::set_exact_rows(bool on) { impl_->exact_rows = on; }

void Model::Impl::mm(const kernels::Weight& W, const float* in, int64_t n, float* out) {
  backend->matmul(W, in, n, out, exact_rows);
}

void Model::Impl::mm_many(std::span<const kernels::MatmulOut> outs, const float* in, int64_t n) {
  backend->matmul_many(outs, in, n, exact_rows);
}

std::unique_ptr<KVCache> Model::make_mtp_cache(int64_t max_context, int64_t chunk) const {
  const ModelConfig& c = impl_->config;
  if (!has_mtp()) fail(impl_->path, ": the model has no MTP block (", c.summary(), ")");
  return std::make_unique<KVCache>(std::vector<LayerPlan>{c.mtp_layer}, c.n_kv_heads, c.head_dim, max_context, chunk,
                                   impl_->kv_type);
}

void Model::Impl::mtp_step(const Segment& sg, const float* hidden, float* out_hidden) {
  const ModelConfig& c = config;
  const model_detail::MtpWeights& m = *w.mtp;
  const int64_t H = c.hidden_size, n = sg.n, half = c.head_dim / 2;
  const double eps = c.norm_eps;
  const int64_t p0 = sg.cache->n_past();
  const std::vector<Segment> segs{sg};
  row_seg.assign(static_cast<size_t>(n), 0);
  row_pos.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) row_pos[static_cast<size_t>(t)] = p0 + t;
  reserve(n, std::min(sg.cache->max_context(), p0 + n));
  if (mtp_u.size() < static_cast<size_t>(n * 2 * H)) mtp_u.resize(static_cast<size_t>(n * 2 * H));

  // Row p's input is position p + 1's: an image row there replaces the token's embedding, as the
  // main model reads it (vLLM's MTP drafter takes the multimodal embeddings shifted by one).
  const InputEmbeddings* given = sg.cache->input_embeddings();
  for_tokens(n, [&](int64_t t) {
    float* u = mtp_u.data() + t * 2 * H;
    // Embedding first, hidden second (spec 4.6 item 3).
    const float* e = given ? given->row_at(row_pos[static_cast<size_t>(t)] + 1) : nullptr;
    if (e != nullptr) std::memcpy(xn.data() + t * H, e, static_cast<size_t>(H) * sizeof(float));
    else kernels::to_f32(*w.embed, static_cast<int64_t>(sg.tokens[t]) * H, H, xn.data() + t * H);
    kernels::rmsnorm(xn.data() + t * H, m.enorm.data(), H, eps, u);
    kernels::rmsnorm(hidden + t * H, m.hnorm.data(), H, eps, u + H);
    kernels::rope_cos_sin(inv_freq.data(), half, row_pos[static_cast<size_t>(t)], rope_cos.data() + t * half,
                          rope_sin.data() + t * half);
  });
  mm(*m.fc, mtp_u.data(), n, x.data());
  backend->begin_layer(-1);
  attention_block(m.layer, c.mtp_layer, 0, n, segs);
  mlp_block(m.layer, n);
  sg.cache->advance(n);

  backend->rmsnorm(x.data(), m.norm.data(), n, H, eps, xn.data());
  if (out_hidden != nullptr) std::memcpy(out_hidden, xn.data(), sizeof(float) * static_cast<size_t>(n * H));
  if (sg.logits == nullptr) return;
  if (sg.all_logits) {
    mm(*w.output, xn.data(), n, sg.logits);
  } else {
    mm(*w.output, xn.data() + (n - 1) * H, 1, sg.logits);
  }
}

void Model::mtp_forward(std::span<const int32_t> tokens, std::span<const float> hidden, KVCache& mtp_cache,
                        std::span<float> logits, bool all_logits, std::span<float> out_hidden) {
  Impl& d = *impl_;
  const ModelConfig& c = d.config;
  if (!has_mtp()) fail(d.path, ": the model has no MTP block (", c.summary(), ")");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return;
  const size_t H = static_cast<size_t>(c.hidden_size), V = static_cast<size_t>(c.vocab_size);
  if (mtp_cache.n_layers() != 1 || mtp_cache.heads() != c.n_kv_heads || mtp_cache.head_dim() != c.head_dim) {
    fail("mtp_forward: the KV cache was not made by make_mtp_cache (", mtp_cache.n_layers(), " layers of ",
         mtp_cache.heads(), " KV heads x ", mtp_cache.head_dim(), ")");
  }
  if (mtp_cache.n_past() + n > mtp_cache.max_context()) {
    fail("mtp_forward: context overflow: ", mtp_cache.n_past(), " cached + ", n, " new rows exceed the context size ",
         mtp_cache.max_context());
  }
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = tokens[static_cast<size_t>(i)];
    if (id < 0 || id >= c.vocab_size) {
      fail("mtp_forward: token id ", id, " at input index ", i, " is outside the vocabulary [0, ", c.vocab_size, ")");
    }
  }
  if (hidden.size() < static_cast<size_t>(n) * H) {
    fail("mtp_forward: hidden holds ", hidden.size(), " floats, need ", static_cast<size_t>(n) * H);
  }
  if (!out_hidden.empty() && out_hidden.size() < static_cast<size_t>(n) * H) {
    fail("mtp_forward: out_hidden holds ", out_hidden.size(), " floats, need ", static_cast<size_t>(n) * H);
  }
  if (!logits.empty() && logits.size() < (all_logits ? static_cast<size_t>(n) * V : V)) {
    fail("mtp_forward: logits buffer holds ", logits.size(), " floats, need ", all_logits ? static_cast<size_t>(n) * V : V);
  }
  const int64_t chunk = mtp_cache.chunk();
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t m = std::min(chunk, n - start);
    const bool last = start + m == n;
    Impl::Segment sg;
    sg.tokens = tokens.data() + start;
    sg.n = m;
    sg.cache = &mtp_cache;
    sg.all_logits = all_logits;
    if (!logits.empty() && (all_logits || last)) {
      sg.logits = logits.data() + (all_logits ? static_cast<size_t>(start) * V : 0);
    }
    d.mtp_step(sg, hidden.data() + static_cast<size_t>(start) * H,
               out_hidden.empty() ? nullptr : out_hidden.data() + static_cast<size_t>(start) * H);
  }
}

}  // namespace kexa
