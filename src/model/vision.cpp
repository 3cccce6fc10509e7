#include "model/vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "formats/hf_checkpoint.h"
#include "kernels/kernels.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa {

namespace {

using json = nlohmann::json;

int64_t get_int(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key) || !o[key].is_number_integer()) fail(where, ": missing or non-integer \"", key, "\"");
  return o[key].get<int64_t>();
}

int64_t get_int_or(const json& o, const char* key, int64_t def) {
  return o.contains(key) && o[key].is_number_integer() ? o[key].get<int64_t>() : def;
}

std::array<float, 3> get_triplet(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key) || !o[key].is_array() || o[key].size() != 3) fail(where, ": \"", key, "\" must be 3 numbers");
  std::array<float, 3> v{};
  for (size_t i = 0; i < 3; ++i) {
    if (!o[key][i].is_number()) fail(where, ": \"", key, "\" must be 3 numbers");
    v[i] = o[key][i].get<float>();
  }
  return v;
}

void check_config(const VisionConfig& c, const std::string& origin) {
  if (c.hidden_size <= 0 || c.n_heads <= 0 || c.n_layers <= 0 || c.intermediate_size <= 0 || c.out_hidden_size <= 0)
    fail(origin, ": vision tower sizes must be positive (hidden ", c.hidden_size, ", heads ", c.n_heads, ", layers ",
         c.n_layers, ", intermediate ", c.intermediate_size, ", output ", c.out_hidden_size, ")");
  if (c.hidden_size % c.n_heads != 0) fail(origin, ": vision hidden size ", c.hidden_size, " is not a multiple of ", c.n_heads, " heads");
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    fail(origin, ": vision key/value heads ", c.n_kv_heads, " do not divide ", c.n_heads, " heads");
  if (c.head_dim % 4 != 0) fail(origin, ": vision head size ", c.head_dim, " is not a multiple of 4 (2-D rotary sections)");
  if (c.pre.merge_size != 2)
    fail(origin, ": vision merge size ", c.pre.merge_size, " is not supported (the exaone4_5 merger groups 2x2 patches)");
  if (c.pre.patch_size <= 0) fail(origin, ": vision patch size must be positive");
  if (c.pre.min_pixels < 0 || c.pre.max_pixels <= 0 || (c.pre.min_pixels > c.pre.max_pixels))
    fail(origin, ": image pixel bounds [", c.pre.min_pixels, ", ", c.pre.max_pixels, "] are invalid");
}

}  // namespace

VisionConfig VisionConfig::from_hf_json(const json& config, const json* preprocessor, const std::string& origin) {
  if (!config.contains("vision_config") || !config["vision_config"].is_object())
    fail(origin, ": exaone4_5 config lacks \"vision_config\" (the vision tower)");
  const json& v = config["vision_config"];
  const std::string where = origin + " vision_config";
  VisionConfig c;
  c.n_layers = get_int(v, "depth", where);
  c.hidden_size = get_int(v, "hidden_size", where);
  c.intermediate_size = get_int(v, "intermediate_size", where);
  c.n_heads = get_int(v, "num_heads", where);
  c.n_kv_heads = get_int_or(v, "num_key_value_heads", c.n_heads);
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  c.out_hidden_size = get_int(v, "out_hidden_size", where);
  c.image_size = get_int_or(v, "image_size", 560);
  c.window_size = get_int_or(v, "window_size", 0);
  c.pre.patch_size = get_int(v, "patch_size", where);
  c.pre.merge_size = get_int_or(v, "spatial_merge_size", 2);
  if (get_int_or(v, "temporal_patch_size", 2) != 2)
    fail(where, ": temporal_patch_size ", v["temporal_patch_size"], " is not supported (images are two frames)");
  if (get_int_or(v, "in_chans", get_int_or(v, "in_channels", 3)) != 3) fail(where, ": the tower must take 3 channels");
  if (v.contains("hidden_act") && v["hidden_act"] != "silu") fail(where, ": hidden_act ", v["hidden_act"], " is not silu");
  if (v.contains("rms_norm_eps") && v["rms_norm_eps"].is_number()) c.norm_eps = v["rms_norm_eps"].get<double>();
  else if (config.contains("rms_norm_eps") && config["rms_norm_eps"].is_number()) c.norm_eps = config["rms_norm_eps"].get<double>();
  if (v.contains("fullatt_block_indexes") && v["fullatt_block_indexes"].is_array() && !v["fullatt_block_indexes"].empty()) {
    const json& f = v["fullatt_block_indexes"];
    std::vector<int64_t> idx;
    for (const json& e : f) {
      if (!e.is_number_integer()) fail(where, ": fullatt_block_indexes must hold integers");
      idx.push_back(e.get<int64_t>());
    }
    // llama.cpp stores a period: blocks p-1, 2p-1, ... attend fully.
    c.n_wa_pattern = idx[0] + 1;
    for (size_t i = 1; i < idx.size(); ++i) {
      if (idx[i] - idx[i - 1] != c.n_wa_pattern)
        fail(where, ": fullatt_block_indexes ", f.dump(), " are not evenly spaced (every n-th block)");
    }
  }
  if (config.contains("image_token_id") && config["image_token_id"].is_number_integer())
    c.image_token_id = config["image_token_id"].get<int64_t>();

  const json empty = json::object();
  const json& p = preprocessor ? *preprocessor : empty;
  const std::string pwhere = origin + " preprocessor_config.json";
  auto pick = [&](const char* key, const char* size_key) -> int64_t {
    if (p.contains(key) && p[key].is_number_integer()) return p[key].get<int64_t>();
    if (p.contains("size") && p["size"].is_object() && p["size"].contains(size_key) && p["size"][size_key].is_number_integer())
      return p["size"][size_key].get<int64_t>();
    if (v.contains(key) && v[key].is_number_integer()) return v[key].get<int64_t>();
    fail(pwhere, ": missing \"", key, "\"");
  };
  c.pre.min_pixels = pick("min_pixels", "shortest_edge");
  c.pre.max_pixels = pick("max_pixels", "longest_edge");
  c.pre.mean = get_triplet(p.contains("image_mean") ? p : v, "image_mean", pwhere);
  c.pre.std = get_triplet(p.contains("image_std") ? p : v, "image_std", pwhere);
  if (p.contains("merge_size") && p["merge_size"].is_number_integer() && p["merge_size"].get<int64_t>() != c.pre.merge_size)
    fail(pwhere, ": merge_size ", p["merge_size"].get<int64_t>(), " disagrees with the tower's spatial_merge_size ",
         c.pre.merge_size);
  if (p.contains("patch_size") && p["patch_size"].is_number_integer() && p["patch_size"].get<int64_t>() != c.pre.patch_size)
    fail(pwhere, ": patch_size ", p["patch_size"].get<int64_t>(), " disagrees with the tower's patch_size ", c.pre.patch_size);
  check_config(c, origin);
  return c;
}

VisionConfig VisionConfig::from_gguf(const gguf::File& f) {
  const std::string origin = f.path();
  auto get = [&](const std::string& key) -> const gguf::Value& {
    const gguf::Value* v = f.get(key);
    if (v == nullptr) fail(origin, ": mmproj lacks ", key);
    return *v;
  };
  if (f.architecture() != "clip") fail(origin, ": not an mmproj file (general.architecture is \"", f.architecture(), "\", not \"clip\")");
  const gguf::Value* has = f.get("clip.has_vision_encoder");
  if (has == nullptr || !has->as_bool("clip.has_vision_encoder")) fail(origin, ": mmproj has no vision encoder");
  const std::string proj = get("clip.projector_type").as_string("clip.projector_type");
  if (proj != "exaone4_5") fail(origin, ": mmproj projector type is \"", proj, "\"; EXAONE 4.5 needs \"exaone4_5\"");
  VisionConfig c;
  c.hidden_size = get("clip.vision.embedding_length").as_int("clip.vision.embedding_length");
  c.intermediate_size = get("clip.vision.feed_forward_length").as_int("clip.vision.feed_forward_length");
  c.n_layers = get("clip.vision.block_count").as_int("clip.vision.block_count");
  c.n_heads = get("clip.vision.attention.head_count").as_int("clip.vision.attention.head_count");
  const gguf::Value* kv = f.get("clip.vision.attention.head_count_kv");
  c.n_kv_heads = kv ? kv->as_int("clip.vision.attention.head_count_kv") : c.n_heads;
  c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  c.out_hidden_size = get("clip.vision.projection_dim").as_int("clip.vision.projection_dim");
  c.image_size = get("clip.vision.image_size").as_int("clip.vision.image_size");
  c.pre.patch_size = get("clip.vision.patch_size").as_int("clip.vision.patch_size");
  if (const gguf::Value* m = f.get("clip.vision.spatial_merge_size")) c.pre.merge_size = m->as_int("clip.vision.spatial_merge_size");
  if (const gguf::Value* w = f.get("clip.vision.window_size")) c.window_size = w->as_int("clip.vision.window_size");
  if (const gguf::Value* w = f.get("clip.vision.n_wa_pattern")) c.n_wa_pattern = w->as_int("clip.vision.n_wa_pattern");
  if (const gguf::Value* e = f.get("clip.vision.attention.layer_norm_epsilon"))
    c.norm_eps = e->as_float("clip.vision.attention.layer_norm_epsilon");
  c.pre.min_pixels = get("clip.vision.image_min_pixels").as_int("clip.vision.image_min_pixels");
  c.pre.max_pixels = get("clip.vision.image_max_pixels").as_int("clip.vision.image_max_pixels");
  auto triplet = [&](const char* key) {
    const std::vector<double>& d = get(key).as_floats(key);
    if (d.size() != 3) fail(origin, ": ", key, " must hold 3 numbers");
    return std::array<float, 3>{static_cast<float>(d[0]), static_cast<float>(d[1]), static_cast<float>(d[2])};
  };
  c.pre.mean = triplet("clip.vision.image_mean");
  c.pre.std = triplet("clip.vision.image_std");
  check_config(c, origin);
  return c;
}

void VisionConfig::write_gguf_metadata(const std::string& name, gguf::Writer& w) const {
  using gguf::Value;
  auto floats = [](const std::array<float, 3>& a) {
    return Value::floats(gguf::ValueType::FLOAT32, {a[0], a[1], a[2]});
  };
  w.set("general.architecture", Value::str("clip"));
  w.set("general.type", Value::str("mmproj"));
  if (!name.empty()) w.set("general.name", Value::str(name));
  w.set("general.file_type", Value::u32(0));
  w.set("clip.has_vision_encoder", Value::boolean(true));
  w.set("clip.vision.projection_dim", Value::u32(static_cast<uint32_t>(out_hidden_size)));
  w.set("clip.vision.image_size", Value::u32(static_cast<uint32_t>(image_size)));
  w.set("clip.vision.patch_size", Value::u32(static_cast<uint32_t>(pre.patch_size)));
  w.set("clip.vision.embedding_length", Value::u32(static_cast<uint32_t>(hidden_size)));
  w.set("clip.vision.feed_forward_length", Value::u32(static_cast<uint32_t>(intermediate_size)));
  w.set("clip.vision.block_count", Value::u32(static_cast<uint32_t>(n_layers)));
  w.set("clip.vision.attention.head_count", Value::u32(static_cast<uint32_t>(n_heads)));
  w.set("clip.vision.image_mean", floats(pre.mean));
  w.set("clip.vision.image_std", floats(pre.std));
  w.set("clip.projector_type", Value::str("exaone4_5"));
  w.set("clip.use_silu", Value::boolean(true));
  w.set("clip.vision.image_min_pixels", Value::u32(static_cast<uint32_t>(pre.min_pixels)));
  w.set("clip.vision.image_max_pixels", Value::u32(static_cast<uint32_t>(pre.max_pixels)));
  w.set("clip.vision.attention.head_count_kv", Value::u32(static_cast<uint32_t>(n_kv_heads)));
  w.set("clip.vision.attention.layer_norm_epsilon", Value::f32(static_cast<float>(norm_eps)));
  if (window_size > 0) w.set("clip.vision.window_size", Value::u32(static_cast<uint32_t>(window_size)));
  if (n_wa_pattern > 0) w.set("clip.vision.n_wa_pattern", Value::u32(static_cast<uint32_t>(n_wa_pattern)));
}

std::vector<VisionTensorName> vision_tensor_names(const VisionConfig& c) {
  const int64_t C = c.hidden_size, I = c.intermediate_size, p = c.pre.patch_size, m = c.pre.merge_size;
  const int64_t qkv = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
  std::vector<VisionTensorName> t;
  const std::string hv = "model.visual.";
  t.push_back({"v.patch_embd.weight", hv + "patch_embed.proj.weight", {C, 3, p, p}, 0});
  t.push_back({"v.patch_embd.weight.1", hv + "patch_embed.proj.weight", {C, 3, p, p}, 1});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string g = "v.blk." + std::to_string(i) + ".", h = hv + "blocks." + std::to_string(i) + ".";
    t.push_back({g + "ln1.weight", h + "norm1.weight", {C}});
    t.push_back({g + "ln1.bias", h + "norm1.bias", {C}, -1, true});
    t.push_back({g + "attn_qkv.weight", h + "attn.qkv.weight", {qkv, C}});
    t.push_back({g + "attn_qkv.bias", h + "attn.qkv.bias", {qkv}});
    t.push_back({g + "attn_out.weight", h + "attn.proj.weight", {C, c.n_heads * c.head_dim}});
    t.push_back({g + "attn_out.bias", h + "attn.proj.bias", {C}});
    t.push_back({g + "ln2.weight", h + "norm2.weight", {C}});
    t.push_back({g + "ln2.bias", h + "norm2.bias", {C}, -1, true});
    t.push_back({g + "ffn_gate.weight", h + "mlp.gate_proj.weight", {I, C}});
    t.push_back({g + "ffn_gate.bias", h + "mlp.gate_proj.bias", {I}});
    t.push_back({g + "ffn_up.weight", h + "mlp.up_proj.weight", {I, C}});
    t.push_back({g + "ffn_up.bias", h + "mlp.up_proj.bias", {I}});
    t.push_back({g + "ffn_down.weight", h + "mlp.down_proj.weight", {C, I}});
    t.push_back({g + "ffn_down.bias", h + "mlp.down_proj.bias", {C}});
  }
  t.push_back({"v.post_ln.weight", hv + "merger.ln_q.weight", {C}});
  t.push_back({"v.post_ln.bias", hv + "merger.ln_q.bias", {C}, -1, true});
  t.push_back({"mm.0.weight", hv + "merger.mlp.0.weight", {C * m * m, C * m * m}});
  t.push_back({"mm.0.bias", hv + "merger.mlp.0.bias", {C * m * m}});
  t.push_back({"mm.2.weight", hv + "merger.mlp.2.weight", {c.out_hidden_size, C * m * m}});
  t.push_back({"mm.2.bias", hv + "merger.mlp.2.bias", {c.out_hidden_size}});
  return t;
}

// Every tensor as f32, owned: the tower is small next to the text model and runs once per image.
struct VisionTower::Weights {
  struct Matrix {
    std::vector<float> data;
    kernels::Weight w;
    std::vector<float> bias;
  };
  struct Block {
    std::vector<float> ln1, ln1_b, ln2, ln2_b;
    Matrix qkv, out, gate, up, down;
  };
  Matrix patch;  // both frames' kernels summed: [C][3 * p * p]
  std::vector<Block> blocks;
  std::vector<float> post_ln, post_ln_b;
  Matrix mm0, mm2;
};

namespace {

void make_matrix(VisionTower::Weights::Matrix& m, std::vector<float> data, int64_t rows, int64_t cols) {
  m.data = std::move(data);
  TensorView v;
  v.dtype = DType::F32;
  v.shape = {rows, cols};
  v.data = reinterpret_cast<const uint8_t*>(m.data.data());
  v.nbytes = m.data.size() * sizeof(float);
  m.w = kernels::Weight(v);
}

// Reads tensors by name from a source, collecting every problem into one error.
class Reader {
 public:
  Reader(const TensorSource& s, std::string origin) : s_(s), origin_(std::move(origin)) {}
  std::vector<float> get(const std::string& name, const std::vector<int64_t>& shape, bool optional = false) {
    const TensorView* t = s_.find(name);
    if (t == nullptr) {
      if (!optional) problems_.push_back("missing tensor " + name);
      return {};
    }
    if (t->shape != shape) {
      problems_.push_back(name + " has shape " + t->shape_string() + ", expected " + shape_text(shape));
      return {};
    }
    if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16) {
      problems_.push_back(name + " has type " + dtype_name(t->dtype) + " (the vision tower reads F32, F16 or BF16)");
      return {};
    }
    std::vector<float> out(static_cast<size_t>(t->numel()));
    kernels::to_f32(kernels::Weight(*t), 0, t->numel(), out.data());
    return out;
  }
  void finish() const {
    if (problems_.empty()) return;
    std::string msg = origin_ + ": the vision tower does not match its config:";
    for (size_t i = 0; i < problems_.size() && i < 12; ++i) msg += "\n  " + problems_[i];
    if (problems_.size() > 12) msg += concat("\n  ... and ", problems_.size() - 12, " more");
    throw Error(msg);
  }

 private:
  static std::string shape_text(const std::vector<int64_t>& s) {
    std::string o = "[";
    for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
  }
  const TensorSource& s_;
  std::string origin_;
  std::vector<std::string> problems_;
};

}  // namespace

namespace {

std::unique_ptr<VisionTower::Weights> load_weights(const VisionConfig& c, const TensorSource& src, bool gguf_names,
                                                   const std::string& origin) {
  auto w = std::make_unique<VisionTower::Weights>();
  Reader r(src, origin);
  const std::vector<VisionTensorName> names = vision_tensor_names(c);
  const int64_t C = c.hidden_size, p = c.pre.patch_size, I = c.intermediate_size, mm = C * c.pre.merge_size * c.pre.merge_size;
  const int64_t qkv_rows = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
  size_t k = 0;
  auto next = [&](int64_t rows_hint = 0) {
    (void)rows_hint;
    const VisionTensorName& n = names[k++];
    return r.get(gguf_names ? n.gguf : n.hf, n.shape, n.optional);
  };
  // Patch embedding: HF keeps both frames in one [C, 3, 2, p, p] tensor.
  std::vector<float> patch(static_cast<size_t>(C * 3 * p * p), 0.0f);
  if (gguf_names) {
    std::vector<float> f0 = next(), f1 = next();
    if (!f0.empty() && !f1.empty())
      for (size_t i = 0; i < patch.size(); ++i) patch[i] = f0[i] + f1[i];
  } else {
    k += 2;
    std::vector<float> both = r.get(names[0].hf, {C, 3, 2, p, p});
    if (!both.empty()) {
      const size_t pp = static_cast<size_t>(p * p);
      for (size_t o = 0; o < static_cast<size_t>(C * 3); ++o)
        for (size_t i = 0; i < pp; ++i) patch[o * pp + i] = both[(o * 2) * pp + i] + both[(o * 2 + 1) * pp + i];
    }
  }
  make_matrix(w->patch, std::move(patch), C, 3 * p * p);
  w->blocks.resize(static_cast<size_t>(c.n_layers));
  for (auto& b : w->blocks) {
    b.ln1 = next();
    b.ln1_b = next();
    make_matrix(b.qkv, next(), qkv_rows, C);
    b.qkv.bias = next();
    make_matrix(b.out, next(), C, c.n_heads * c.head_dim);
    b.out.bias = next();
    b.ln2 = next();
    b.ln2_b = next();
    make_matrix(b.gate, next(), I, C);
    b.gate.bias = next();
    make_matrix(b.up, next(), I, C);
    b.up.bias = next();
    make_matrix(b.down, next(), C, I);
    b.down.bias = next();
  }
  w->post_ln = next();
  w->post_ln_b = next();
  make_matrix(w->mm0, next(), mm, mm);
  w->mm0.bias = next();
  make_matrix(w->mm2, next(), c.out_hidden_size, mm);
  w->mm2.bias = next();
  r.finish();
  return w;
}

}  // namespace

VisionTower::~VisionTower() = default;

VisionConfig VisionConfig::from_hf_dir(const std::string& dir, const json& config) {
  json pre;
  const std::string pre_path = dir + "/preprocessor_config.json";
  std::ifstream in(pre_path);
  if (in) {
    try {
      in >> pre;
    } catch (const std::exception& e) {
      fail(pre_path, ": not valid JSON (", e.what(), ")");
    }
  }
  return from_hf_json(config, in ? &pre : nullptr, dir + "/config.json");
}

std::unique_ptr<VisionTower> VisionTower::from_hf(const std::string& dir) {
  std::unique_ptr<HFCheckpoint> ckpt = HFCheckpoint::open(dir);
  std::unique_ptr<VisionTower> t(new VisionTower());
  t->config_ = VisionConfig::from_hf_dir(dir, ckpt->config());
  if (ckpt->find("model.visual.patch_embed.proj.weight") == nullptr)
    fail(dir, ": exaone4_5 checkpoint has no vision tower (no model.visual.* tensors)");
  t->path_ = dir;
  t->w_ = load_weights(t->config_, *ckpt, false, dir);
  return t;
}

std::unique_ptr<VisionTower> VisionTower::from_mmproj(const std::string& path, int64_t text_hidden) {
  std::unique_ptr<gguf::File> f = gguf::File::open(path);
  std::unique_ptr<VisionTower> t(new VisionTower());
  t->config_ = VisionConfig::from_gguf(*f);
  if (text_hidden > 0 && t->config_.out_hidden_size != text_hidden)
    fail(path, ": mmproj projects to width ", t->config_.out_hidden_size, " but the text model's width is ", text_hidden);
  t->path_ = path;
  t->w_ = load_weights(t->config_, *f, true, path);
  return t;
}

int64_t VisionTower::token_count(const RgbImage& image) const {
  return vision_token_count({image.width, image.height}, config_.pre);
}

std::vector<float> VisionTower::encode(const RgbImage& image, ThreadPool& pool) const {
  return encode(vision_preprocess(image, config_.pre), pool);
}

namespace {

void add_bias(float* y, const std::vector<float>& b, int64_t n, int64_t rows) {
  if (b.empty()) return;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < rows; ++i) y[t * rows + i] += b[static_cast<size_t>(i)];
}

void norm_rows(const float* x, const std::vector<float>& w, const std::vector<float>& b, int64_t n, int64_t C, double eps,
               float* out) {
  for (int64_t t = 0; t < n; ++t) {
    kernels::rmsnorm(x + t * C, w.data(), C, eps, out + t * C);
    if (!b.empty())
      for (int64_t i = 0; i < C; ++i) out[t * C + i] += b[static_cast<size_t>(i)];
  }
}

// GELU with tanh, as ggml's gelu (llama.cpp's merger).
float gelu(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

}  // namespace

std::vector<float> VisionTower::encode(const VisionInput& in, ThreadPool& pool) const {
  const VisionConfig& c = config_;
  const int64_t p = c.pre.patch_size, C = c.hidden_size, hd = c.head_dim;
  const int64_t nH = c.n_heads, nKV = c.n_kv_heads, I = c.intermediate_size;
  if (in.width % (2 * p) != 0 || in.height % (2 * p) != 0 || in.width <= 0 || in.height <= 0)
    fail("vision input ", in.width, "x", in.height, " is not a multiple of ", 2 * p, " pixels a side");
  const int64_t px = in.width / p, py = in.height / p, N = px * py;
  const int64_t mw = px / 2, mh = py / 2, G = mw * mh;  // merged grid
  const size_t plane = static_cast<size_t>(in.width * in.height);

  // Window grouping of the merged grid (llama.cpp's window_idx / inv_window_idx): groups of 2x2
  // patches reordered window by window; win_lo/win_hi bound each group's window in that order.
  const bool windowed = c.n_wa_pattern > 0;
  std::vector<int64_t> idx(static_cast<size_t>(G)), inv(static_cast<size_t>(G));
  std::vector<int64_t> win_lo(static_cast<size_t>(G), 0), win_hi(static_cast<size_t>(G), G);
  for (int64_t g = 0; g < G; ++g) idx[g] = inv[g] = g;
  if (windowed) {
    const int64_t gw = std::max<int64_t>(1, (c.window_size > 0 ? c.window_size : 112) / p / 2);
    int64_t dst = 0;
    for (int64_t y = 0; y < mh; y += gw)
      for (int64_t x = 0; x < mw; x += gw) {
        const int64_t h = std::min(gw, mh - y), w = std::min(gw, mw - x), d0 = dst;
        for (int64_t dy = 0; dy < h; ++dy)
          for (int64_t dx = 0; dx < w; ++dx) {
            const int64_t src = (y + dy) * mw + (x + dx);
            idx[static_cast<size_t>(src)] = dst;
            inv[static_cast<size_t>(dst)] = src;
            ++dst;
          }
        for (int64_t d = d0; d < dst; ++d) {
          win_lo[static_cast<size_t>(d)] = d0;
          win_hi[static_cast<size_t>(d)] = dst;
        }
      }
  }

  // Patches in (window) group order, each group 2x2 in (dy, dx) order; their (y, x) positions.
  const int64_t K = 3 * p * p;
  std::vector<float> cols(static_cast<size_t>(N * K));
  std::vector<int64_t> pos_y(static_cast<size_t>(N)), pos_x(static_cast<size_t>(N));
  for (int64_t g = 0; g < G; ++g) {
    const int64_t src = inv[static_cast<size_t>(g)], my = src / mw, mx = src % mw;
    for (int64_t s = 0; s < 4; ++s) {
      const int64_t t = g * 4 + s, y = 2 * my + s / 2, x = 2 * mx + s % 2;
      pos_y[static_cast<size_t>(t)] = y;
      pos_x[static_cast<size_t>(t)] = x;
      float* col = cols.data() + t * K;
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t ky = 0; ky < p; ++ky)
          for (int64_t kx = 0; kx < p; ++kx)
            col[(ch * p + ky) * p + kx] =
                in.pixels[static_cast<size_t>(ch) * plane + static_cast<size_t>((y * p + ky) * in.width + x * p + kx)];
    }
  }
  std::vector<float> x(static_cast<size_t>(N * C));
  kernels::matmul(w_->patch.w, cols.data(), N, x.data(), pool);
  cols.clear();
  cols.shrink_to_fit();

  // 2-D rotary angles: pair i < hd/4 turns with y, hd/4 <= i < hd/2 with x, each section's
  // frequencies theta^(-4j/hd) built by repeated products in float as ggml does.
  const int64_t half = hd / 2, quarter = hd / 4;
  std::vector<float> cosv(static_cast<size_t>(N * half)), sinv(static_cast<size_t>(N * half));
  const float theta_scale = std::pow(c.rope_theta, -2.0f / static_cast<float>(half));
  for (int64_t t = 0; t < N; ++t) {
    float ty = static_cast<float>(pos_y[static_cast<size_t>(t)]), tx = static_cast<float>(pos_x[static_cast<size_t>(t)]);
    for (int64_t i = 0; i < half; ++i) {
      float th;
      if (i < quarter) {
        th = ty;
        ty *= theta_scale;
      } else {
        th = tx;
        tx *= theta_scale;
      }
      cosv[static_cast<size_t>(t * half + i)] = std::cos(th);
      sinv[static_cast<size_t>(t * half + i)] = std::sin(th);
    }
  }

  const int64_t QKV = (nH + 2 * nKV) * hd;
  std::vector<float> xn(static_cast<size_t>(N * C)), qkv(static_cast<size_t>(N * QKV)), att(static_cast<size_t>(N * nH * hd));
  std::vector<float> o(static_cast<size_t>(N * C)), gate(static_cast<size_t>(N * I)), up(static_cast<size_t>(N * I));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t li = 0; li < c.n_layers; ++li) {
    const Weights::Block& b = w_->blocks[static_cast<size_t>(li)];
    const bool full = !windowed || (li + 1) % c.n_wa_pattern == 0;
    norm_rows(x.data(), b.ln1, b.ln1_b, N, C, c.norm_eps, xn.data());
    kernels::matmul(b.qkv.w, xn.data(), N, qkv.data(), pool);
    add_bias(qkv.data(), b.qkv.bias, N, QKV);
    for (int64_t t = 0; t < N; ++t) {
      float* row = qkv.data() + t * QKV;
      for (int64_t h = 0; h < nH + nKV; ++h)
        kernels::rope_neox_cs(row + h * hd, hd, cosv.data() + t * half, sinv.data() + t * half);
    }
    // One job per (patch, KV head): its group of query heads against the keys of its window.
    const int64_t group = nH / nKV;
    pool.parallel_for(N * nKV, [&](int64_t begin, int64_t end) {
      std::vector<float> s(static_cast<size_t>(group * N));
      for (int64_t job = begin; job < end; ++job) {
        const int64_t t = job / nKV, kvh = job % nKV, g = t / 4;
        const int64_t lo = full ? 0 : win_lo[static_cast<size_t>(g)] * 4, hi = full ? N : win_hi[static_cast<size_t>(g)] * 4;
        const float* q = qkv.data() + t * QKV + kvh * group * hd;
        kernels::dot_rows(q, group, hd, qkv.data() + lo * QKV + (nH + kvh) * hd, QKV, hi - lo, hd, scale, s.data(), N);
        for (int64_t h = 0; h < group; ++h) {
          // Softmax with std::exp (see the MLP's SiLU below).
          float* row = s.data() + h * N;
          float mx = -INFINITY;
          for (int64_t j = 0; j < hi - lo; ++j) mx = std::max(mx, row[j]);
          double sum = 0;
          for (int64_t j = 0; j < hi - lo; ++j) {
            row[j] = std::exp(row[j] - mx);
            sum += row[j];
          }
          const float inv = static_cast<float>(1.0 / sum);
          for (int64_t j = 0; j < hi - lo; ++j) row[j] *= inv;
        }
        float* out = att.data() + (t * nH + kvh * group) * hd;
        std::fill(out, out + group * hd, 0.0f);
        kernels::accumulate_rows(s.data(), group, N, qkv.data() + lo * QKV + (nH + nKV + kvh) * hd, QKV, hi - lo, hd,
                                 out, hd);
      }
    });
    kernels::matmul(b.out.w, att.data(), N, o.data(), pool);
    add_bias(o.data(), b.out.bias, N, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    norm_rows(x.data(), b.ln2, b.ln2_b, N, C, c.norm_eps, xn.data());
    kernels::matmul(b.gate.w, xn.data(), N, gate.data(), pool);
    add_bias(gate.data(), b.gate.bias, N, I);
    kernels::matmul(b.up.w, xn.data(), N, up.data(), pool);
    add_bias(up.data(), b.up.bias, N, I);
    // SiLU with std::exp: the kernels' fast swiglu is close enough for the decoder but its error,
    // amplified through the tower, moved the image rows by ~3e-4 of their range.
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    kernels::matmul(b.down.w, gate.data(), N, o.data(), pool);
    add_bias(o.data(), b.down.bias, N, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  }

  // Merger: RMSNorm per patch, then each group's four patches as one row of 4C.
  norm_rows(x.data(), w_->post_ln, w_->post_ln_b, N, C, c.norm_eps, xn.data());
  const int64_t M = 4 * C, D = c.out_hidden_size;
  std::vector<float> h1(static_cast<size_t>(G * M)), merged(static_cast<size_t>(G * D));
  kernels::matmul(w_->mm0.w, xn.data(), G, h1.data(), pool);
  add_bias(h1.data(), w_->mm0.bias, G, M);
  for (float& v : h1) v = gelu(v);
  kernels::matmul(w_->mm2.w, h1.data(), G, merged.data(), pool);
  add_bias(merged.data(), w_->mm2.bias, G, D);
  if (!windowed) return merged;
  std::vector<float> out(merged.size());
  for (int64_t g = 0; g < G; ++g)
    std::memcpy(out.data() + g * D, merged.data() + idx[static_cast<size_t>(g)] * D, static_cast<size_t>(D) * sizeof(float));
  return out;
}

std::string find_mmproj_beside(const std::string& text_gguf) {
  namespace fs = std::filesystem;
  const fs::path p(text_gguf);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  const fs::path named = dir / ("mmproj-" + p.filename().string());
  if (fs::is_regular_file(named, ec)) return named.string();
  std::string found;
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("mmproj", 0) == 0 && n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0 && e.is_regular_file(ec)) {
      found = e.path().string();
      ++count;
    }
  }
  return count == 1 ? found : std::string();
}

}  // namespace kexa
