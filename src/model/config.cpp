#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/config_detail.h"
#include "util/error.h"

namespace kexa {

namespace config_detail {

void require_positive(std::string_view origin, std::string_view what, int64_t v) {
  if (v <= 0) fail(origin, ": ", what, " must be positive, got ", v);
}

std::vector<bool> periodic_sliding(int64_t n_layers, int64_t n) {
  std::vector<bool> sliding(static_cast<size_t>(n_layers));
  for (int64_t i = 0; i < n_layers; ++i) sliding[static_cast<size_t>(i)] = (i + 1) % n != 0;
  return sliding;
}

void plan_layers(ModelConfig& c, const std::vector<int64_t>& windows, const std::vector<bool>& moe,
                 int64_t mtp_window) {
  const size_t L = static_cast<size_t>(c.n_layers);
  c.layers.assign(L, LayerPlan{});
  for (size_t i = 0; i < L; ++i) {
    c.layers[i].window = windows.empty() ? 0 : windows[i];
    c.layers[i].moe = !moe.empty() && moe[i];
  }
  // RoPE on every layer when the model has no sliding layers, otherwise only on the sliding ones
  // (EXAONE 4.0 / K-EXAONE global layers are NoPE). The MTP block follows the same rule.
  const bool any_sliding = c.has_sliding_layers();
  for (LayerPlan& l : c.layers) l.rope = !any_sliding || l.window > 0;
  c.mtp_layer = LayerPlan{mtp_window, mtp_window > 0 || !any_sliding, false};
}

std::vector<int64_t> windows_of(const std::vector<bool>& sliding, int64_t window) {
  std::vector<int64_t> out(sliding.size(), 0);
  for (size_t i = 0; i < sliding.size(); ++i) out[i] = sliding[i] ? window : 0;
  return out;
}

void validate(const ModelConfig& c, std::string_view origin) {
  require_positive(origin, "vocab_size", c.vocab_size);
  require_positive(origin, "hidden_size", c.hidden_size);
  require_positive(origin, "number of layers", c.n_layers);
  require_positive(origin, "num_attention_heads", c.n_heads);
  require_positive(origin, "num_key_value_heads", c.n_kv_heads);
  require_positive(origin, "head_dim", c.head_dim);
  require_positive(origin, "intermediate_size", c.intermediate_size);
  if (c.n_heads % c.n_kv_heads != 0) {
    fail(origin, ": num_attention_heads (", c.n_heads, ") must be a multiple of num_key_value_heads (",
         c.n_kv_heads, ")");
  }
  if (c.head_dim % 2 != 0) fail(origin, ": head_dim must be even for rotary embedding, got ", c.head_dim);
  if (!(c.norm_eps > 0)) fail(origin, ": RMSNorm epsilon must be positive, got ", c.norm_eps);
  if (static_cast<int64_t>(c.layers.size()) != c.n_layers) {
    fail(origin, ": internal: per-layer plan has ", c.layers.size(), " entries for ", c.n_layers, " layers");
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) fail(origin, ": eos_token_id ", id, " outside the vocabulary (", c.vocab_size, ")");
  }
}

}  // namespace config_detail

namespace {

using nlohmann::json;
using namespace config_detail;

// ---- config.json access -------------------------------------------------------------------------

// Reads config.json keys with the checkpoint path in every error message.
class JsonReader {
 public:
  JsonReader(const json& j, std::string_view origin) : j_(j), origin_(origin) {}

  const json* find(std::string_view key) const {
    auto it = j_.find(std::string(key));
    return it == j_.end() ? nullptr : &*it;
  }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  bool is_null(std::string_view key) const {
    const json* v = find(key);
    return v != nullptr && v->is_null();
  }

  // First present, non-null key among `keys`.
  const json* first(std::initializer_list<std::string_view> keys, std::string_view* which) const {
    for (std::string_view k : keys) {
      const json* v = find(k);
      if (v != nullptr && !v->is_null()) {
        if (which != nullptr) *which = k;
        return v;
      }
    }
    return nullptr;
  }

  int64_t integer(std::initializer_list<std::string_view> keys) const {
    std::string_view which;
    const json* v = first(keys, &which);
    if (v == nullptr) fail(origin_, ": config.json lacks required key \"", *keys.begin(), "\"");
    return as_int(*v, which);
  }
  int64_t integer_or(std::initializer_list<std::string_view> keys, int64_t fallback) const {
    std::string_view which;
    const json* v = first(keys, &which);
    return v == nullptr ? fallback : as_int(*v, which);
  }
  double number_or(std::initializer_list<std::string_view> keys, double fallback) const {
    std::string_view which;
    const json* v = first(keys, &which);
    if (v == nullptr) return fallback;
    if (!v->is_number()) fail(origin_, ": config.json key \"", which, "\" must be a number, got ", v->dump());
    return v->get<double>();
  }
  bool boolean_or(std::string_view key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (!v->is_boolean()) fail(origin_, ": config.json key \"", key, "\" must be true/false, got ", v->dump());
    return v->get<bool>();
  }
  std::string string_or(std::initializer_list<std::string_view> keys, std::string fallback) const {
    std::string_view which;
    const json* v = first(keys, &which);
    if (v == nullptr) return fallback;
    if (!v->is_string()) fail(origin_, ": config.json key \"", which, "\" must be a string, got ", v->dump());
    return v->get<std::string>();
  }

  int64_t as_int(const json& v, std::string_view key) const {
    if (v.is_number_integer()) return v.get<int64_t>();
    // Some exporters write integral values as floats (e.g. 4096.0).
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
    }
    fail(origin_, ": config.json key \"", key, "\" must be an integer, got ", v.dump());
  }

  std::string_view origin() const { return origin_; }

 private:
  const json& j_;
  std::string_view origin_;
};

RopeScaling parse_rope_scaling_object(const json& r, std::string_view origin, std::string_view key) {
  RopeScaling s;
  if (r.is_null()) return s;
  if (!r.is_object()) fail(origin, ": config.json \"", key, "\" must be an object, got ", r.dump());
  JsonReader rr(r, origin);
  std::string type = rr.string_or({"rope_type", "type"}, "default");
  if (type == "default" || type == "none") return s;
  if (type != "llama3") {
    fail(origin, ": config.json \"", key, "\" has unsupported rope type \"", type,
         "\" (kexa supports default and llama3)");
  }
  s.type = RopeScaling::Type::Llama3;
  s.factor = rr.number_or({"factor"}, 8.0);
  s.low_freq_factor = rr.number_or({"low_freq_factor"}, 1.0);
  s.high_freq_factor = rr.number_or({"high_freq_factor"}, 4.0);
  s.original_max_position = rr.integer_or({"original_max_position_embeddings"}, 8192);
  if (!(s.factor > 0) || !(s.low_freq_factor > 0) || !(s.high_freq_factor > s.low_freq_factor) ||
      s.original_max_position <= 0) {
    fail(origin, ": config.json \"", key, "\" llama3 parameters are inconsistent (factor ", s.factor,
         ", low_freq_factor ", s.low_freq_factor, ", high_freq_factor ", s.high_freq_factor,
         ", original_max_position_embeddings ", s.original_max_position, ")");
  }
  return s;
}

// rope_theta + rope_scaling (transformers 4) or rope_parameters (transformers 5, theta inside and
// possibly one entry per layer type).
void parse_rope(const JsonReader& r, std::string_view origin, ModelConfig& c) {
  c.rope_theta = r.number_or({"rope_theta"}, 10000.0);
  if (const json* p = r.find("rope_parameters"); p != nullptr && !p->is_null()) {
    const json* params = p;
    std::string key = "rope_parameters";
    if (p->is_object() && p->contains("full_attention")) {
      params = &(*p)["full_attention"];
      key = "rope_parameters.full_attention";
      if (p->contains("sliding_attention") && (*p)["sliding_attention"] != *params) {
        fail(origin, ": config.json rope_parameters differ between full_attention and "
             "sliding_attention layers; kexa supports one RoPE setting per model");
      }
    }
    if (!params->is_object()) fail(origin, ": config.json \"", key, "\" must be an object");
    JsonReader pr(*params, origin);
    c.rope_theta = pr.number_or({"rope_theta"}, c.rope_theta);
    c.rope_scaling = parse_rope_scaling_object(*params, origin, key);
    return;
  }
  if (const json* s = r.find("rope_scaling"); s != nullptr) {
    c.rope_scaling = parse_rope_scaling_object(*s, origin, "rope_scaling");
  }
  if (!(c.rope_theta > 0)) fail(origin, ": config.json rope_theta must be positive, got ", c.rope_theta);
}

void parse_token_ids(const JsonReader& r, ModelConfig& c) {
  c.bos_token_id = r.integer_or({"bos_token_id"}, -1);
  c.pad_token_id = r.integer_or({"pad_token_id"}, -1);
  c.eos_token_ids.clear();
  if (const json* e = r.find("eos_token_id"); e != nullptr && !e->is_null()) {
    if (e->is_array()) {
      for (const json& v : *e) c.eos_token_ids.push_back(r.as_int(v, "eos_token_id"));
    } else {
      c.eos_token_ids.push_back(r.as_int(*e, "eos_token_id"));
    }
  }
}

void check_activation(const JsonReader& r, std::initializer_list<std::string_view> keys) {
  std::string act = r.string_or(keys, "silu");
  if (act != "silu" && act != "swish") {
    fail(r.origin(), ": config.json activation \"", act, "\" is not supported (EXAONE uses silu)");
  }
}

// The attention dimensions every generation has. `layer_keys`: the layer-count key names in the
// order the generation's config class prefers them.
void parse_attention_dims(const JsonReader& r, std::string_view origin, std::initializer_list<std::string_view> layer_keys,
                          ModelConfig& c) {
  c.vocab_size = r.integer({"vocab_size"});
  c.hidden_size = r.integer({"hidden_size"});
  c.n_layers = r.integer(layer_keys);
  c.n_heads = r.integer({"num_attention_heads"});
  c.n_kv_heads = r.integer_or({"num_key_value_heads"}, c.n_heads);
  require_positive(origin, "num_attention_heads", c.n_heads);
  require_positive(origin, "hidden_size", c.hidden_size);
}

// Shared dimension keys of exaone4 / exaone_moe (transformers naming).
void parse_dims(const JsonReader& r, std::string_view origin, ModelConfig& c) {
  parse_attention_dims(r, origin, {"num_hidden_layers", "num_layers"}, c);
  c.head_dim = r.integer_or({"head_dim"}, c.hidden_size / c.n_heads);
  c.intermediate_size = r.integer({"intermediate_size"});
  c.norm_eps = r.number_or({"rms_norm_eps", "layer_norm_epsilon"}, 1e-5);
  c.max_position = r.integer_or({"max_position_embeddings"}, 0);
}

// Per-layer sliding flags from layer_types or sliding_window_pattern (HF: layer i is sliding iff
// (i+1) % n != 0; llama.cpp's converter: pattern string character i % len == 'L').
std::vector<bool> sliding_flags(const JsonReader& r, std::string_view origin, int64_t n_layers) {
  std::vector<bool> sliding(static_cast<size_t>(n_layers), false);
  if (const json* lt = r.find("layer_types"); lt != nullptr && !lt->is_null()) {
    if (!lt->is_array() || static_cast<int64_t>(lt->size()) != n_layers) {
      fail(origin, ": config.json layer_types must be a list of ", n_layers, " entries (one per layer), got ",
           lt->is_array() ? std::to_string(lt->size()) + " entries" : lt->dump());
    }
    for (int64_t i = 0; i < n_layers; ++i) {
      const json& t = (*lt)[static_cast<size_t>(i)];
      if (t == "sliding_attention") {
        sliding[static_cast<size_t>(i)] = true;
      } else if (t != "full_attention") {
        fail(origin, ": config.json layer_types[", i, "] = ", t.dump(),
             " (expected \"sliding_attention\" or \"full_attention\")");
      }
    }
    return sliding;
  }
  const json* p = r.find("sliding_window_pattern");
  if (p != nullptr && p->is_null()) return sliding;  // explicit null: no sliding layers
  if (p == nullptr || p->is_number()) {
    int64_t n = p == nullptr ? 4 : r.as_int(*p, "sliding_window_pattern");
    if (n <= 0) fail(origin, ": config.json sliding_window_pattern must be positive, got ", n);
    return periodic_sliding(n_layers, n);
  }
  if (p->is_string()) {
    std::string s = p->get<std::string>();
    if (s.empty()) fail(origin, ": config.json sliding_window_pattern is an empty string");
    for (char ch : s) {
      if (ch != 'L' && ch != 'G') {
        fail(origin, ": config.json sliding_window_pattern \"", s, "\" may only contain L (local) and G (global)");
      }
    }
    for (int64_t i = 0; i < n_layers; ++i) sliding[static_cast<size_t>(i)] = s[static_cast<size_t>(i) % s.size()] == 'L';
    return sliding;
  }
  fail(origin, ": config.json sliding_window_pattern must be an integer, a string like \"LLLG\" or null, got ",
       p->dump());
}

// Sliding-window value of an exaone4/exaone_moe config: missing -> HF default 4096, null -> none.
int64_t window_value(const JsonReader& r, std::string_view origin) {
  const json* w = r.find("sliding_window");
  if (w == nullptr) return 4096;
  if (w->is_null()) return 0;
  int64_t v = r.as_int(*w, "sliding_window");
  if (v <= 0) fail(origin, ": config.json sliding_window must be positive or null, got ", v);
  return v;
}

// The one reading of a config.json's attention windows: sliding_windows (one per layer, 0 =
// global; K-EXAONE only, `per_layer_list`) > sliding_window on the layers that layer_types /
// sliding_window_pattern mark sliding. Records the declared sliding_window in c.sliding_window
// (0 when absent or null), which a model keeps even when no layer slides.
std::vector<int64_t> layer_windows(const JsonReader& r, std::string_view origin, bool per_layer_list, ModelConfig& c) {
  const size_t L = static_cast<size_t>(c.n_layers);
  if (const json* sw = r.find("sliding_windows"); per_layer_list && sw != nullptr && !sw->is_null()) {
    if (!sw->is_array() || sw->size() != L) {
      fail(origin, ": config.json sliding_windows must be a list of ", c.n_layers, " windows (0 = global)");
    }
    std::vector<int64_t> windows(L);
    for (size_t i = 0; i < L; ++i) {
      windows[i] = r.as_int((*sw)[i], "sliding_windows");
      if (windows[i] < 0) fail(origin, ": config.json sliding_windows[", i, "] is negative (", windows[i], ")");
    }
    return windows;
  }
  const int64_t window = window_value(r, origin);
  if (r.has("sliding_window") && !r.is_null("sliding_window")) c.sliding_window = window;
  // A null window turns every layer global; layer_types is still checked.
  std::vector<bool> sliding(L, false);
  if (const json* lt = r.find("layer_types"); window > 0 || (lt != nullptr && lt->is_array())) {
    sliding = sliding_flags(r, origin, c.n_layers);
  }
  return window > 0 ? windows_of(sliding, window) : std::vector<int64_t>{};
}

// The MTP block's window (K-EXAONE: mtp_sliding_windows [0] / mtp_layer_types
// ["full_attention"], i.e. global); `fallback` when the config names neither.
int64_t mtp_window(const JsonReader& r, std::string_view origin, int64_t fallback) {
  int64_t window = fallback;
  if (const json* sw = r.find("mtp_sliding_windows"); sw != nullptr && !sw->is_null()) {
    if (!sw->is_array() || sw->empty()) fail(origin, ": config.json mtp_sliding_windows must be a non-empty list");
    window = r.as_int((*sw)[0], "mtp_sliding_windows");
    if (window < 0) fail(origin, ": config.json mtp_sliding_windows[0] is negative (", window, ")");
  } else if (const json* lt = r.find("mtp_layer_types"); lt != nullptr && !lt->is_null()) {
    if (!lt->is_array() || lt->empty()) fail(origin, ": config.json mtp_layer_types must be a non-empty list");
    const json& t = (*lt)[0];
    window = 0;
    if (t == "sliding_attention") {
      window = window_value(r, origin);
    } else if (t != "full_attention") {
      fail(origin, ": config.json mtp_layer_types[0] = ", t.dump(), " (expected \"sliding_attention\" or \"full_attention\")");
    }
  }
  return window;
}

ModelConfig parse_exaone(const JsonReader& r, std::string_view origin) {
  ModelConfig c;
  c.arch = Arch::Exaone;
  c.model_type = "exaone";
  parse_attention_dims(r, origin, {"num_layers", "num_hidden_layers"}, c);
  // The remote modeling code ignores head_dim and always uses hidden_size / heads.
  if (c.hidden_size % c.n_heads != 0) {
    fail(origin, ": hidden_size (", c.hidden_size, ") must be divisible by num_attention_heads (", c.n_heads, ")");
  }
  c.head_dim = c.hidden_size / c.n_heads;
  c.intermediate_size = r.integer_or({"intermediate_size"}, 4 * c.hidden_size);
  check_activation(r, {"activation_function", "hidden_act"});
  c.norm_eps = r.number_or({"layer_norm_epsilon", "rms_norm_eps"}, 1e-5);
  c.max_position = r.integer_or({"max_position_embeddings"}, 0);
  // ExaoneConfig does not set it, so PretrainedConfig's default (true) applies; the loader falls
  // back to the presence of lm_head.weight.
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", true);
  c.norm = NormPlacement::Pre;
  c.qk_norm = false;
  parse_rope(r, origin, c);
  plan_layers(c, {}, {}, 0);
  return c;
}

// The keys exaone4 and exaone_moe share (transformers naming, QK-norm).
ModelConfig parse_llama_style(const JsonReader& r, std::string_view origin, Arch arch, const char* model_type,
                              NormPlacement norm) {
  ModelConfig c;
  c.arch = arch;
  c.model_type = model_type;
  parse_dims(r, origin, c);
  check_activation(r, {"hidden_act"});
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
  c.norm = norm;
  c.qk_norm = true;
  parse_rope(r, origin, c);
  require_positive(origin, "num_hidden_layers", c.n_layers);
  return c;
}

ModelConfig parse_exaone4(const JsonReader& r, std::string_view origin) {
  ModelConfig c = parse_llama_style(r, origin, Arch::Exaone4, "exaone4", NormPlacement::Post);
  const std::vector<int64_t> windows = layer_windows(r, origin, false, c);
  c.n_mtp_layers = r.integer_or({"num_nextn_predict_layers"}, 0);
  if (c.n_mtp_layers < 0) fail(origin, ": num_nextn_predict_layers is negative");
  // EXAONE 4.5 names no MTP layer type; vLLM builds its MTP layer as text layer 0 (the index in
  // mtp.layers.0), so it attends as layer 0 does (sliding with RoPE under LLLG).
  plan_layers(c, windows, {}, mtp_window(r, origin, windows.empty() ? 0 : windows[0]));
  return c;
}

ModelConfig parse_exaone_moe(const JsonReader& r, std::string_view origin) {
  ModelConfig c = parse_llama_style(r, origin, Arch::ExaoneMoe, "exaone_moe", NormPlacement::Pre);
  const size_t L = static_cast<size_t>(c.n_layers);
  const std::vector<int64_t> windows = layer_windows(r, origin, true, c);

  c.router.n_experts = r.integer({"num_experts", "num_local_experts", "n_routed_experts"});
  c.router.n_used = r.integer({"num_experts_per_tok"});
  c.moe_intermediate_size = r.integer({"moe_intermediate_size"});
  c.n_shared_experts = r.integer_or({"num_shared_experts", "n_shared_experts"}, 0);
  c.router.n_group = r.integer_or({"n_group"}, 1);
  c.router.topk_group = r.integer_or({"topk_group"}, 1);
  c.router.norm_topk_prob = r.boolean_or("norm_topk_prob", true);
  c.router.scaling = r.number_or({"routed_scaling_factor"}, 1.0);
  c.n_mtp_layers = r.integer_or({"num_nextn_predict_layers"}, 0);
  require_positive(origin, "num_experts", c.router.n_experts);
  require_positive(origin, "num_experts_per_tok", c.router.n_used);
  require_positive(origin, "moe_intermediate_size", c.moe_intermediate_size);
  if (c.router.n_used > c.router.n_experts) {
    fail(origin, ": num_experts_per_tok (", c.router.n_used, ") exceeds num_experts (", c.router.n_experts, ")");
  }
  if (c.router.n_group <= 0 || c.router.n_experts % c.router.n_group != 0 || c.router.topk_group <= 0 || c.router.topk_group > c.router.n_group) {
    fail(origin, ": config.json n_group (", c.router.n_group, ") / topk_group (", c.router.topk_group,
         ") do not divide num_experts (", c.router.n_experts, ")");
  }
  if (c.n_mtp_layers < 0) fail(origin, ": num_nextn_predict_layers is negative");
  if (c.n_shared_experts < 0) fail(origin, ": config.json num_shared_experts is negative (", c.n_shared_experts, ")");
  c.shared_intermediate_size = c.moe_intermediate_size * c.n_shared_experts;

  // MLP type per layer: mlp_layer_types > first_k_dense_replace (> legacy is_moe_layer).
  std::vector<bool> moe(L, false);
  if (const json* mt = r.find("mlp_layer_types"); mt != nullptr && !mt->is_null()) {
    if (!mt->is_array() || mt->size() != L) {
      fail(origin, ": config.json mlp_layer_types must be a list of ", c.n_layers, " entries");
    }
    for (size_t i = 0; i < L; ++i) {
      const json& t = (*mt)[i];
      if (t == "sparse") {
        moe[i] = true;
      } else if (t != "dense") {
        fail(origin, ": config.json mlp_layer_types[", i, "] = ", t.dump(), " (expected \"dense\" or \"sparse\")");
      }
    }
  } else if (r.has("first_k_dense_replace") && !r.is_null("first_k_dense_replace")) {
    int64_t k = r.integer({"first_k_dense_replace"});
    for (size_t i = 0; i < L; ++i) moe[i] = static_cast<int64_t>(i) >= k;
  } else if (const json* im = r.find("is_moe_layer"); im != nullptr && im->is_array() && im->size() == L) {
    for (size_t i = 0; i < L; ++i) moe[i] = (*im)[i].is_boolean() && (*im)[i].get<bool>();
  } else {
    for (size_t i = 0; i < L; ++i) moe[i] = i >= 1;
  }
  plan_layers(c, windows, moe, mtp_window(r, origin, 0));
  return c;
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& config, std::string_view origin) {
  if (!config.is_object()) fail(origin, ": config.json is not a JSON object");
  JsonReader r(config, origin);
  const json* mt = r.find("model_type");
  if (mt == nullptr || !mt->is_string()) fail(origin, ": config.json lacks \"model_type\" (a string)");
  std::string type = mt->get<std::string>();
  if (type == "exaone4_5") {
    // The vision-language checkpoint: its text tower is an exaone4 decoder (old name
    // exaone4_5_text) in text_config; ids and tying may sit at the top level.
    const json* tc = r.find("text_config");
    if (tc == nullptr || !tc->is_object()) fail(origin, ": exaone4_5 config lacks \"text_config\" (an object)");
    json text = *tc;
    text["model_type"] = "exaone4";
    for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings",
                            "num_nextn_predict_layers", "mtp_share_layers"}) {
      if (!text.contains(key) && config.contains(key)) text[key] = config[key];
    }
    return from_hf_json(text, origin);
  }
  if (type == "exaone4_5_text") type = "exaone4";
  ModelConfig c;
  if (type == "exaone") {
    c = parse_exaone(r, origin);
  } else if (type == "exaone4") {
    c = parse_exaone4(r, origin);
  } else if (type == "exaone_moe") {
    c = parse_exaone_moe(r, origin);
  } else {
    fail(origin, ": unknown model_type \"", type, "\" (kexa supports exaone, exaone4, exaone_moe)");
  }
  parse_token_ids(r, c);
  validate(c, origin);
  return c;
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const double kPi = 3.14159265358979323846;
  for (int64_t i = 0; i < half; ++i) {
    // As in HF: the exponent 2i/hd and the power are evaluated in fp32.
    float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    float base = 1.0f / std::pow(static_cast<float>(rope_theta), exponent);
    double f = base;
    if (rope_scaling.type == RopeScaling::Type::Llama3) {
      const RopeScaling& s = rope_scaling;
      double orig = static_cast<double>(s.original_max_position);
      double low_wl = orig / s.low_freq_factor;
      double high_wl = orig / s.high_freq_factor;
      double wavelen = 2.0 * kPi / f;
      if (wavelen < high_wl) {
        // high frequency: unchanged
      } else if (wavelen > low_wl) {
        f = f / s.factor;
      } else {
        double smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    if (!rope_freq_divisors.empty()) f = f / static_cast<double>(rope_freq_divisors[static_cast<size_t>(i)]);
    inv[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return inv;
}

bool ModelConfig::has_sliding_layers() const { return n_sliding_layers() > 0; }

int64_t ModelConfig::n_sliding_layers() const {
  int64_t n = 0;
  for (const LayerPlan& l : layers) n += l.window > 0 ? 1 : 0;
  return n;
}

std::string ModelConfig::summary() const {
  std::ostringstream o;
  o << model_type << " L=" << n_layers << " H=" << hidden_size << " heads=" << n_heads << "/" << n_kv_heads
    << "x" << head_dim << " I=" << intermediate_size << " V=" << vocab_size << " theta=" << rope_theta
    << (rope_scaling.type == RopeScaling::Type::Llama3 ? " llama3" : "")
    << (rope_freq_divisors.empty() ? "" : " rope_freqs") << (tie_word_embeddings ? " tied" : " untied")
    << " norm=" << (norm == NormPlacement::Pre ? "pre" : "post") << (qk_norm ? " qk_norm" : "");
  int64_t sliding = n_sliding_layers();
  if (sliding > 0) {
    int64_t w = 0;
    for (const LayerPlan& l : layers) w = std::max(w, l.window);
    o << " sliding=" << sliding << "/" << n_layers << " W=" << w;
  }
  int64_t nope = 0;
  for (const LayerPlan& l : layers) nope += l.rope ? 0 : 1;
  if (nope > 0) o << " nope=" << nope;
  if (router.n_experts > 0) o << " experts=" << router.n_experts << "/" << router.n_used;
  return o.str();
}

}  // namespace kexa
