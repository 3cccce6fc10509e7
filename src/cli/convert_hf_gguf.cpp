// Hugging Face folder -> GGUF with llama.cpp's architecture names, metadata keys and tensor names
// (llama.cpp's convert_hf_to_gguf.py classes ExaoneModel / Exaone4Model), so llama.cpp loads it.
// Metadata comes from ModelConfig's writer (model/config_gguf.cpp) and the tokenizer's
// (tokenizer/gguf_writer.cpp); this file plans and moves the tensors.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include "cli/convert.h"
#include "formats/dtype_convert.h"
#include "formats/gguf.h"
#include "formats/hf_checkpoint.h"
#include "model/config.h"
#include "model/vision.h"
#include "tokenizer/gguf_writer.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

// llama.cpp's LLAMA_FTYPE values for the dominant weight type.
uint32_t file_type_of(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::BF16: return 32;
    default: return 0;
  }
}

// ------------------------------------------------------------------------------------------------
// Tensors

struct Planned {
  std::string hf;    // source name
  std::string gguf;  // destination name
  std::vector<int64_t> shape;
  bool optional = false;
  // Experts stacked into one [E, rows, cols] tensor: `hf` is a pattern with "{E}" for the index.
  int64_t stack = 0;
  bool force_f32 = false;  // llama.cpp keeps the MoE router in F32
  std::string alt = {};    // another name the same tensor may have (transformers 5 naming)
  // transformers 5 fuses each MoE layer's experts: `fused` [E, fused_rows, cols] holds this
  // tensor's rows [fused_row0, fused_row0 + rows) of every expert.
  std::string fused = {};
  int64_t fused_rows = 0, fused_row0 = 0;
};

std::string expert_name(const std::string& pattern, int64_t e) {
  std::string s = pattern;
  s.replace(s.find("{E}"), 3, std::to_string(e));
  return s;
}

// Names of the transformers-named (exaone4 / exaone_moe) blocks, `s` the HF prefix, `b` the GGUF one.
struct LlamaPlanner {
  const ModelConfig& c;
  std::vector<Planned>& p;

  // The embedding, then layer(s, b, i) for every main layer i.
  template <class Layer>
  void main_stack(Layer layer) {
    p.push_back({"model.embed_tokens.weight", "token_embd.weight", {c.vocab_size, c.hidden_size}});
    for (int64_t l = 0; l < c.n_layers; ++l) layer(concat("model.layers.", l, "."), concat("blk.", l, "."), static_cast<size_t>(l));
  }
  void attention(const std::string& s, const std::string& b) {
    const int64_t H = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), hd = c.head_dim;
    p.push_back({s + "self_attn.q_proj.weight", b + "attn_q.weight", {q, H}});
    p.push_back({s + "self_attn.k_proj.weight", b + "attn_k.weight", {kv, H}});
    p.push_back({s + "self_attn.v_proj.weight", b + "attn_v.weight", {kv, H}});
    p.push_back({s + "self_attn.o_proj.weight", b + "attn_output.weight", {H, q}});
    p.push_back({s + "self_attn.q_norm.weight", b + "attn_q_norm.weight", {hd}});
    p.push_back({s + "self_attn.k_norm.weight", b + "attn_k_norm.weight", {hd}});
  }
  void pre_norm_attention(const std::string& s, const std::string& b) {
    p.push_back({s + "input_layernorm.weight", b + "attn_norm.weight", {c.hidden_size}});
    attention(s, b);
    p.push_back({s + "post_attention_layernorm.weight", b + "ffn_norm.weight", {c.hidden_size}});
  }
  void post_norm_layer(const std::string& s, const std::string& b) {
    attention(s, b);
    p.push_back({s + "post_attention_layernorm.weight", b + "post_attention_norm.weight", {c.hidden_size}});
    mlp(s, b);
    p.push_back({s + "post_feedforward_layernorm.weight", b + "post_ffw_norm.weight", {c.hidden_size}});
  }
  // c.n_mtp_layers MTP blocks after the main layers, as llama.cpp's converters rename them
  // (mtp.layers.k -> blk.(L+k), mtp.fc -> nextn.eh_proj); `layer(s, b)` plans a block's layer.
  template <class Layer>
  void mtp_blocks(Layer layer) {
    const int64_t H = c.hidden_size;
    for (int64_t k = 0; k < c.n_mtp_layers; ++k) {
      const std::string s = concat("mtp.layers.", k, "."), b = concat("blk.", c.n_layers + k, ".");
      const size_t first = p.size();
      layer(s, b);
      // mtp_share_layers checkpoints hold only mtp.layers.0, which every block then copies.
      for (size_t i = first; k > 0 && i < p.size(); ++i) p[i].alt = "mtp.layers.0." + p[i].hf.substr(s.size());
      // The fc and its norms are shared by every MTP block; llama.cpp stores a copy per block.
      p.push_back({"mtp.fc.weight", b + "nextn.eh_proj.weight", {H, 2 * H}});
      p.push_back({"mtp.pre_fc_norm_embedding.weight", b + "nextn.enorm.weight", {H}});
      p.push_back({"mtp.pre_fc_norm_hidden.weight", b + "nextn.hnorm.weight", {H}});
      p.push_back({"mtp.norm.weight", b + "nextn.shared_head_norm.weight", {H}});
    }
  }
  void mlp(const std::string& s, const std::string& b) {
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    p.push_back({s + "mlp.gate_proj.weight", b + "ffn_gate.weight", {I, H}});
    p.push_back({s + "mlp.up_proj.weight", b + "ffn_up.weight", {I, H}});
    p.push_back({s + "mlp.down_proj.weight", b + "ffn_down.weight", {H, I}});
  }
  void moe(const std::string& s, const std::string& b) {
    const int64_t H = c.hidden_size, E = c.router.n_experts, Im = c.moe_intermediate_size;
    const int64_t Is = c.moe_intermediate_size * c.n_shared_experts;
    Planned router{s + "mlp.gate.weight", b + "ffn_gate_inp.weight", {E, H}};
    router.force_f32 = true;
    p.push_back(router);
    Planned bias{s + "mlp.e_score_correction_bias", b + "exp_probs_b.bias", {E}};
    bias.optional = true;
    bias.alt = s + "mlp.gate.e_score_correction_bias";
    p.push_back(bias);
    for (const char* w : {"gate", "up", "down"}) {
      const bool down = std::string(w) == "down";
      Planned x{concat(s, "mlp.experts.{E}.", w, "_proj.weight"), concat(b, "ffn_", w, "_exps.weight"),
                down ? std::vector<int64_t>{E, H, Im} : std::vector<int64_t>{E, Im, H}};
      x.stack = E;
      x.fused = s + (down ? "mlp.experts.down_proj" : "mlp.experts.gate_up_proj");
      x.fused_rows = down ? H : 2 * Im;
      x.fused_row0 = std::string(w) == "up" ? Im : 0;
      p.push_back(x);
    }
    p.push_back({s + "mlp.shared_experts.gate_proj.weight", b + "ffn_gate_shexp.weight", {Is, H}});
    p.push_back({s + "mlp.shared_experts.up_proj.weight", b + "ffn_up_shexp.weight", {Is, H}});
    p.push_back({s + "mlp.shared_experts.down_proj.weight", b + "ffn_down_shexp.weight", {H, Is}});
  }
};

// K-EXAONE: pre-norm with QK-norm; leading dense layers, the rest MoE; MTP blocks appended after
// the main layers as llama.cpp's converter renames them (mtp.layers.k -> blk.(L+k), mtp.fc -> eh_proj).
void plan_exaone_moe(const ModelConfig& c, std::vector<Planned>& p) {
  const int64_t H = c.hidden_size, V = c.vocab_size;
  LlamaPlanner lp{c, p};
  lp.main_stack([&](const std::string& s, const std::string& b, size_t l) {
    lp.pre_norm_attention(s, b);
    if (c.layers[l].moe) {
      lp.moe(s, b);
    } else {
      lp.mlp(s, b);
    }
  });
  p.push_back({"model.norm.weight", "output_norm.weight", {H}});
  p.push_back({"lm_head.weight", "output.weight", {V, H}});
  lp.mtp_blocks([&](const std::string& s, const std::string& b) {
    lp.pre_norm_attention(s, b);
    lp.mlp(s, b);
  });
}

void plan_exaone(const ModelConfig& c, std::vector<Planned>& p) {
  const int64_t H = c.hidden_size, V = c.vocab_size, I = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  p.push_back({"transformer.wte.weight", "token_embd.weight", {V, H}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string s = concat("transformer.h.", l, "."), b = concat("blk.", l, ".");
    p.push_back({s + "ln_1.weight", b + "attn_norm.weight", {H}});
    p.push_back({s + "attn.attention.q_proj.weight", b + "attn_q.weight", {q, H}});
    p.push_back({s + "attn.attention.k_proj.weight", b + "attn_k.weight", {kv, H}});
    p.push_back({s + "attn.attention.v_proj.weight", b + "attn_v.weight", {kv, H}});
    p.push_back({s + "attn.attention.out_proj.weight", b + "attn_output.weight", {H, q}});
    p.push_back({s + "ln_2.weight", b + "ffn_norm.weight", {H}});
    p.push_back({s + "mlp.c_fc_0.weight", b + "ffn_gate.weight", {I, H}});
    p.push_back({s + "mlp.c_fc_1.weight", b + "ffn_up.weight", {I, H}});
    p.push_back({s + "mlp.c_proj.weight", b + "ffn_down.weight", {H, I}});
  }
  p.push_back({"transformer.ln_f.weight", "output_norm.weight", {H}});
}

// EXAONE 4.0 / the EXAONE 4.5 text tower: post-norm layers (its MTP blocks too); lm_head optional
// (tied embeddings).
void plan_exaone4(const ModelConfig& c, std::vector<Planned>& p) {
  LlamaPlanner lp{c, p};
  lp.main_stack([&](const std::string& s, const std::string& b, size_t) { lp.post_norm_layer(s, b); });
  p.push_back({"model.norm.weight", "output_norm.weight", {c.hidden_size}});
  p.push_back({"lm_head.weight", "output.weight", {c.vocab_size, c.hidden_size}, true});
  lp.mtp_blocks([&](const std::string& s, const std::string& b) { lp.post_norm_layer(s, b); });
}

// Every tensor the GGUF holds, in llama.cpp's order; c.n_mtp_layers MTP blocks (exaone4, exaone_moe).
std::vector<Planned> plan_tensors(const ModelConfig& c) {
  std::vector<Planned> p;
  if (c.arch == Arch::ExaoneMoe) {
    plan_exaone_moe(c, p);
  } else if (c.arch == Arch::Exaone4) {
    plan_exaone4(c, p);
  } else {
    plan_exaone(c, p);
    p.push_back({"lm_head.weight", "output.weight", {c.vocab_size, c.hidden_size}, true});
  }
  return p;
}

// One GGUF tensor: its source tensor(s) (one, or one per stacked expert) and output type.
struct Job {
  std::string name;
  std::vector<const TensorView*> srcs;
  std::vector<int64_t> shape;
  DType out;
};

// Finds every planned tensor in the checkpoint, with the shape the config implies, and fails on
// anything missing, misshapen or left over. Jobs may point into the builder's slices of fused
// expert tensors: keep it alive until the file is written.
class JobBuilder {
 public:
  JobBuilder(const HFCheckpoint& ck, const ModelConfig& cfg) : ck_(ck), cfg_(cfg) {}
  // exaone4_5: the text tower's names carry "model.language_model."; the vision tower goes to the
  // mmproj file (its own check).
  void set_vision_language(bool on) { vision_language_ = on; }

  std::vector<Job> build(const std::vector<Planned>& plan, const ConvertOptions& opt) {
    std::vector<Job> jobs;
    for (const Planned& p : plan) {
      Job job{p.gguf, {}, p.shape, DType::F32};
      if (p.stack > 0 && !p.fused.empty() && ck_.find(p.fused) != nullptr) {
        slice_fused(p, job);
      } else if (p.stack > 0) {
        const std::vector<int64_t> one(p.shape.begin() + 1, p.shape.end());
        for (int64_t e = 0; e < p.stack; ++e) job.srcs.push_back(lookup(expert_name(p.hf, e), one));
      } else {
        std::string hf = p.hf;
        if (vision_language_ && hf.rfind("model.", 0) == 0) hf = "model.language_model." + hf.substr(6);
        if (ck_.find(hf) == nullptr && !p.alt.empty() && ck_.find(p.alt) != nullptr) hf = p.alt;
        if (p.optional && ck_.find(hf) == nullptr) continue;
        job.srcs.push_back(lookup(hf, p.shape));
      }
      // llama.cpp keeps 1-D tensors (norm weights, biases) and the router in F32.
      const DType src_type = job.srcs.front()->dtype;
      job.out = p.shape.size() == 1 || p.force_f32 ? DType::F32 : opt.out_type.value_or(src_type);
      jobs.push_back(std::move(job));
    }
    for (const std::string& n : ck_.names()) {
      if (vision_language_ && n.rfind("model.visual.", 0) == 0) continue;
      if (!used_.count(n)) fail(ck_.file_of(n), ": unexpected tensor '", n, "' for model_type ", cfg_.model_type);
    }
    return jobs;
  }

 private:
  const TensorView* lookup(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView* t = ck_.find(name);
    if (t == nullptr) {
      fail(ck_.dir(), ": missing tensor '", name, "' (", cfg_.model_type, " with ", cfg_.n_layers, " layers)");
    }
    if (t->shape != shape) {
      TensorView want;
      want.shape = shape;
      fail(ck_.file_of(name), ": tensor '", name, "' has shape ", t->shape_string(), ", config.json implies ",
           want.shape_string());
    }
    used_.insert(name);
    return t;
  }

  // Row slices [fused_row0, fused_row0 + rows) of each expert of a transformers-5 fused tensor.
  void slice_fused(const Planned& p, Job& job) {
    const int64_t rows = p.shape[1], cols = p.shape[2];
    const TensorView* f = lookup(p.fused, {p.stack, p.fused_rows, cols});
    const size_t row_bytes = dtype_bytes(f->dtype, cols);
    for (int64_t e = 0; e < p.stack; ++e) {
      auto v = std::make_unique<TensorView>();
      v->name = concat(p.fused, "[", e, "]");
      v->dtype = f->dtype;
      v->shape = {rows, cols};
      v->data = f->data + row_bytes * static_cast<size_t>(e * p.fused_rows + p.fused_row0);
      v->nbytes = row_bytes * static_cast<size_t>(rows);
      job.srcs.push_back(v.get());
      slices_.push_back(std::move(v));
    }
  }

  const HFCheckpoint& ck_;
  const ModelConfig& cfg_;
  bool vision_language_ = false;
  std::set<std::string> used_;
  std::vector<std::unique_ptr<TensorView>> slices_;
};

void add_tokenizer(const std::string& dir, const ModelConfig& cfg, gguf::Writer& w) {
  GgufTokenizerOptions t;
  t.n_vocab = cfg.vocab_size;
  t.pre = gguf_architecture(cfg.arch);  // llama.cpp's pre-tokenizer names equal the architecture's
  t.bos_id = cfg.bos_token_id;
  t.eos_id = cfg.eos_token_ids.empty() ? -1 : cfg.eos_token_ids.front();
  t.pad_id = cfg.pad_token_id;
  try {
    if (!write_gguf_tokenizer(dir, t, w)) {
      std::fprintf(stderr, "kexa convert: %s has no tokenizer.json or vocab.json+merges.txt; GGUF without a tokenizer\n",
                   dir.c_str());
    }
  } catch (const nlohmann::json::exception& e) {
    fail(dir, ": malformed tokenizer files: ", e.what());
  } catch (const std::logic_error& e) {  // std::stoll on a non-numeric added_tokens_decoder key
    fail(dir, ": malformed tokenizer files: ", e.what());
  }
}

// The vision tower of an exaone4_5 folder as llama.cpp's mmproj GGUF (converter class
// Exaone4_5VisionModel): clip.* metadata, v.* / mm.* tensors, the patch embedding's two frames as
// v.patch_embd.weight and .weight.1, 1-D tensors in F32.
void write_mmproj(const HFCheckpoint& ck, const std::string& name, const std::string& dst, const ConvertOptions& opt) {
  const VisionConfig vc = VisionConfig::from_hf_dir(ck.dir(), ck.config());
  if (ck.find("model.visual.patch_embed.proj.weight") == nullptr)
    fail(ck.dir(), ": exaone4_5 checkpoint has no vision tower (no model.visual.* tensors)");
  gguf::Writer w;
  vc.write_gguf_metadata(name, w);
  std::set<std::string> used;
  DType main = DType::F32;
  for (const VisionTensorName& t : vision_tensor_names(vc)) {
    const TensorView* src = ck.find(t.hf);
    if (src == nullptr) {
      if (t.optional) continue;
      fail(ck.dir(), ": missing vision tensor '", t.hf, "'");
    }
    std::vector<int64_t> want = t.shape;
    if (t.frame >= 0) want = {t.shape[0], t.shape[1], 2, t.shape[2], t.shape[3]};
    if (src->shape != want) {
      TensorView w2;
      w2.shape = want;
      fail(ck.file_of(t.hf), ": vision tensor '", t.hf, "' has shape ", src->shape_string(), ", config implies ",
           w2.shape_string());
    }
    used.insert(t.hf);
    DType out = t.shape.size() == 1 ? DType::F32 : opt.out_type.value_or(src->dtype);
    // llama.cpp keeps the patch embedding in F32 unless the whole file is F16.
    if (t.frame >= 0 && out != DType::F16) out = DType::F32;
    if (t.gguf == "mm.0.weight") main = out;
    const int frame = t.frame;
    const int64_t plane = t.frame >= 0 ? t.shape[2] * t.shape[3] : 0;
    w.add_tensor(t.gguf, out, t.shape, [src, out, frame, plane](uint8_t* dst_bytes, size_t) {
      if (frame < 0) {
        convert_elements(src->dtype, src->data, out, dst_bytes, static_cast<size_t>(src->numel()));
        return;
      }
      // [C, 3, 2, p, p] -> frame's [C, 3, p, p]: one p*p plane per (C, 3) pair.
      const int64_t planes = src->numel() / (2 * plane);
      const size_t in_plane = dtype_bytes(src->dtype, plane), out_plane = dtype_bytes(out, plane);
      for (int64_t i = 0; i < planes; ++i)
        convert_elements(src->dtype, src->data + (static_cast<size_t>(i * 2 + frame)) * in_plane, out,
                         dst_bytes + static_cast<size_t>(i) * out_plane, static_cast<size_t>(plane));
    });
  }
  for (const std::string& n : ck.names()) {
    if (n.rfind("model.visual.", 0) == 0 && !used.count(n)) fail(ck.file_of(n), ": unexpected vision tensor '", n, "'");
  }
  w.set("general.file_type", gguf::Value::u32(file_type_of(main)));
  w.write(dst);
}

}  // namespace

std::string mmproj_path_for(const std::string& dst) {
  const size_t slash = dst.find_last_of('/');
  return slash == std::string::npos ? "mmproj-" + dst : dst.substr(0, slash + 1) + "mmproj-" + dst.substr(slash + 1);
}

void convert_hf_to_gguf(const std::string& src_dir, const std::string& dst, const ConvertOptions& opt) {
  auto ck = HFCheckpoint::open(src_dir);
  const std::string cfg_path = ck->dir() + "/config.json";
  ModelConfig cfg = ModelConfig::from_hf_json(ck->config(), cfg_path);
  // MTP blocks are converted when the checkpoint carries them (a config may announce them for a
  // checkpoint that was saved without); the GGUF's config then counts what it holds.
  cfg.n_mtp_layers = cfg.arch != Arch::Exaone && ck->find("mtp.fc.weight") != nullptr
                         ? std::max<int64_t>(cfg.n_mtp_layers, 1)
                         : 0;

  const bool vision_language = ck->config().value("model_type", "") == "exaone4_5";
  JobBuilder builder(*ck, cfg);
  builder.set_vision_language(vision_language);
  const std::vector<Job> jobs = builder.build(plan_tensors(cfg), opt);
  if (cfg.tie_word_embeddings && ck->find("lm_head.weight") != nullptr) {
    std::fprintf(stderr, "kexa convert: note: tie_word_embeddings is set but lm_head.weight exists; writing output.weight\n");
  }

  gguf::Writer w;
  GgufGeneral general;
  general.name = opt.name;
  if (general.name.empty()) {
    const std::string& d = ck->dir();
    size_t slash = d.find_last_of('/');
    general.name = slash == std::string::npos ? d : d.substr(slash + 1);
  }
  general.file_type = file_type_of(jobs.empty() ? DType::F32 : jobs.front().out);
  write_gguf_metadata(cfg, general, cfg_path, w);
  add_tokenizer(ck->dir(), cfg, w);

  if (cfg.rope_scaling.type == RopeScaling::Type::Llama3) {
    std::vector<float> div = cfg.llama3_rope_freq_divisors();
    w.add_tensor("rope_freqs.weight", DType::F32, {static_cast<int64_t>(div.size())},
                 [div](uint8_t* out, size_t) { std::memcpy(out, div.data(), 4 * div.size()); });
  }
  for (const Job& j : jobs) {
    const std::vector<const TensorView*> srcs = j.srcs;
    const DType out = j.out;
    w.add_tensor(j.name, out, j.shape, [srcs, out](uint8_t* dst, size_t) {
      for (const TensorView* t : srcs) {
        const size_t n = static_cast<size_t>(t->numel());
        convert_elements(t->dtype, t->data, out, dst, n);
        dst += dtype_bytes(out, static_cast<int64_t>(n));
      }
    });
  }
  w.write(dst);
  if (vision_language) {
    const std::string mm = mmproj_path_for(dst);
    write_mmproj(*ck, general.name, mm, opt);
    std::fprintf(stderr, "kexa convert: wrote the vision tower to %s\n", mm.c_str());
  }
}

}  // namespace kexa::cli
