// Tokenizer::load: tokenizer.json, the "slow" vocab.json + merges.txt files, and GGUF metadata.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace kexa {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail(p.string(), ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(std::string_view text, const std::string& where) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) fail(where, ": not valid JSON");
  return j;
}

std::optional<json> read_json_if_exists(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return std::nullopt;
  return parse_json(read_file(p), p.string());
}

bool get_bool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : def;
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::optional<std::string> token_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

void add_ids(std::vector<int32_t>& out, const json& v) {
  if (v.is_number_integer()) {
    out.push_back(v.get<int32_t>());
  } else if (v.is_array()) {
    for (const auto& e : v)
      if (e.is_number_integer()) out.push_back(e.get<int32_t>());
  }
}

void push_unique(std::vector<int32_t>& v, int32_t id) {
  if (std::find(v.begin(), v.end(), id) == v.end()) v.push_back(id);
}

AddedToken added_from_json(const json& t, int32_t id, const std::string& where) {
  if (!t.is_object() || !t.contains("content") || !t["content"].is_string())
    fail(where, ": added token ", id, " has no \"content\" string");
  AddedToken a;
  a.id = id;
  a.content = t["content"].get<std::string>();
  a.special = get_bool(t, "special", false);
  a.lstrip = get_bool(t, "lstrip", false);
  a.rstrip = get_bool(t, "rstrip", false);
  a.normalized = get_bool(t, "normalized", !a.special);
  a.single_word = get_bool(t, "single_word", false);
  return a;
}

// Special ids from tokenizer_config.json / config.json / generation_config.json next to the
// tokenizer, so callers know BOS/EOS/PAD and the end-of-turn tokens.
void read_side_configs(Tokenizer::Impl& m, const fs::path& dir, const json* tokenizer_config) {
  auto id_of = [&](const std::string& s) -> std::optional<int32_t> {
    auto it = m.token_to_id.find(s);
    if (it == m.token_to_id.end()) return std::nullopt;
    return it->second;
  };
  std::optional<json> tc;
  if (!tokenizer_config) {
    tc = read_json_if_exists(dir / "tokenizer_config.json");
    if (tc) tokenizer_config = &*tc;
  }
  if (tokenizer_config) {
    if (auto s = token_string(*tokenizer_config, "bos_token"); s && !m.bos) m.bos = id_of(*s);
    if (auto s = token_string(*tokenizer_config, "eos_token"))
      if (auto id = id_of(*s)) push_unique(m.eos, *id);
    if (auto s = token_string(*tokenizer_config, "pad_token"); s && !m.pad) m.pad = id_of(*s);
  }
  for (const char* name : {"config.json", "generation_config.json"}) {
    auto c = read_json_if_exists(dir / name);
    if (!c || !c->is_object()) continue;
    std::vector<int32_t> ids;
    if (c->contains("eos_token_id")) add_ids(ids, (*c)["eos_token_id"]);
    for (int32_t id : ids) push_unique(m.eos, id);
    if (!m.bos && c->contains("bos_token_id") && (*c)["bos_token_id"].is_number_integer())
      m.bos = (*c)["bos_token_id"].get<int32_t>();
    if (!m.pad && c->contains("pad_token_id") && (*c)["pad_token_id"].is_number_integer())
      m.pad = (*c)["pad_token_id"].get<int32_t>();
  }
}

void parse_post_processor(Tokenizer::Impl& m, const json& pp, const std::string& where) {
  if (pp.is_null()) return;
  if (!pp.is_object() || !pp.contains("type")) fail(where, ": post_processor must have a \"type\"");
  const std::string type = pp["type"].get<std::string>();
  if (type == "Sequence") {
    if (pp.contains("processors") && pp["processors"].is_array())
      for (const auto& p : pp["processors"]) parse_post_processor(m, p, where);
  } else if (type == "ByteLevel") {
    // Offsets only; ids unchanged.
  } else if (type == "TemplateProcessing") {
    m.prefix_ids.clear();
    m.suffix_ids.clear();
    const json& single = pp.value("single", json::array());
    const json& specials = pp.value("special_tokens", json::object());
    bool seen_sequence = false;
    for (const auto& item : single) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].value("id", "");
        if (!specials.contains(name)) fail(where, ": TemplateProcessing uses undefined special token '", name, "'");
        std::vector<int32_t> ids;
        add_ids(ids, specials[name].value("ids", json::array()));
        auto& dst = seen_sequence ? m.suffix_ids : m.prefix_ids;
        dst.insert(dst.end(), ids.begin(), ids.end());
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_at = [&](const char* key) -> int32_t {
      if (!pp.contains(key) || !pp[key].is_array() || pp[key].size() != 2)
        fail(where, ": ", type, " needs \"", key, "\": [token, id]");
      return pp[key][1].get<int32_t>();
    };
    m.prefix_ids = {id_at("cls")};
    m.suffix_ids = {id_at("sep")};
  } else {
    fail(where, ": unsupported post_processor type '", type, "'");
  }
}

std::unique_ptr<Tokenizer> from_tokenizer_json(const json& j, const std::string& where,
                                               const fs::path& dir) {
  auto m = std::make_unique<Tokenizer::Impl>();
  m->source = where;
  if (!j.is_object() || !j.contains("model")) fail(where, ": no \"model\" in tokenizer.json");
  const json& model = j["model"];
  if (!model.is_object()) fail(where, ": \"model\" must be an object");
  if (model.contains("type") && !model["type"].is_string()) fail(where, ": model.type must be a string");
  const std::string mtype = model.value("type", std::string("BPE"));
  if (mtype != "BPE") fail(where, ": unsupported tokenizer model type '", mtype, "' (only BPE)");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(where, ": model.vocab must be an object");

  int32_t max_id = -1;
  for (const auto& [tok, idv] : model["vocab"].items()) {
    if (!idv.is_number_integer() || idv.get<int64_t>() < 0 || idv.get<int64_t>() > (1 << 30))
      fail(where, ": vocab entry '", tok, "' has an invalid id");
    const int32_t id = idv.get<int32_t>();
    m->token_to_id[tok] = id;
    max_id = std::max(max_id, id);
  }
  m->id_to_token.assign(size_t(max_id + 1), std::string());
  for (const auto& [tok, id] : m->token_to_id) m->id_to_token[size_t(id)] = tok;
  tok::TokenMap model_vocab = m->token_to_id;

  std::vector<std::pair<std::string, std::string>> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    size_t k = 0;
    for (const auto& mj : model["merges"]) {
      ++k;
      if (mj.is_string()) {
        const std::string s = mj.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail(where, ": merge ", k, " '", s, "' is not two tokens separated by one space");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
        merges.emplace_back(mj[0].get<std::string>(), mj[1].get<std::string>());
      } else {
        fail(where, ": merge ", k, " must be \"a b\" or [a, b]");
      }
    }
  }

  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& t : j["added_tokens"]) {
      if (!t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
          t["id"].get<int64_t>() > (1 << 30))
        fail(where, ": added token without a valid \"id\"");
      AddedToken a = added_from_json(t, t["id"].get<int32_t>(), where);
      // HF re-derives the id: a content that is already in the model vocab keeps the vocab's id.
      if (auto it = model_vocab.find(a.content); it != model_vocab.end()) a.id = it->second;
      m->added.push_back(std::move(a));
    }
  }

  m->normalizer = tok::Normalizer::from_json(j.value("normalizer", json()), where);
  m->pre = tok::PreTokenizer::from_json(j.value("pre_tokenizer", json()), where);
  m->decoder = tok::Decoder::from_json(j.value("decoder", json()), where);
  parse_post_processor(*m, j.value("post_processor", json()), where);

  tok::BpeOptions opts;
  opts.byte_level = m->pre.byte_level();
  opts.byte_fallback = get_bool(model, "byte_fallback", false);
  opts.ignore_merges = get_bool(model, "ignore_merges", false);
  opts.fuse_unk = get_bool(model, "fuse_unk", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    auto it = model_vocab.find(model["unk_token"].get<std::string>());
    if (it != model_vocab.end()) opts.unk = it->second;
  }
  if (model.contains("continuing_subword_prefix") && model["continuing_subword_prefix"].is_string())
    opts.continuing_subword_prefix = model["continuing_subword_prefix"].get<std::string>();
  if (model.contains("end_of_word_suffix") && model["end_of_word_suffix"].is_string())
    opts.end_of_word_suffix = model["end_of_word_suffix"].get<std::string>();
  m->bpe.build(model_vocab, merges, opts, where);
  m->finalize();

  // BOS from the template's first special token when the config does not name one.
  if (!dir.empty()) read_side_configs(*m, dir, nullptr);
  if (!m->bos && !m->prefix_ids.empty()) m->bos = m->prefix_ids.front();
  return std::make_unique<Tokenizer>(std::move(m));
}

std::string model_type_of(const fs::path& dir, std::string_view hint) {
  if (auto c = read_json_if_exists(dir / "config.json"); c && c->is_object()) {
    if (c->contains("model_type") && (*c)["model_type"].is_string())
      return (*c)["model_type"].get<std::string>();
  }
  return std::string(hint);
}

std::unique_ptr<Tokenizer> from_slow_files(const fs::path& dir, std::string_view hint) {
  auto m = std::make_unique<Tokenizer::Impl>();
  m->source = dir.string();
  const fs::path vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt";
  const json vocab = parse_json(read_file(vocab_path), vocab_path.string());
  if (!vocab.is_object()) fail(vocab_path.string(), ": expected a JSON object {token: id}");
  int32_t max_id = -1;
  for (const auto& [tok, idv] : vocab.items()) {
    if (!idv.is_number_integer() || idv.get<int64_t>() < 0 || idv.get<int64_t>() > (1 << 30))
      fail(vocab_path.string(), ": entry '", tok, "' has an invalid id");
    m->token_to_id[tok] = idv.get<int32_t>();
    max_id = std::max(max_id, idv.get<int32_t>());
  }
  m->id_to_token.assign(size_t(max_id + 1), std::string());
  for (const auto& [tok, id] : m->token_to_id) m->id_to_token[size_t(id)] = tok;
  tok::TokenMap model_vocab = m->token_to_id;

  std::vector<std::pair<std::string, std::string>> merges;
  {
    const std::string text = read_file(merges_path);
    std::istringstream in(text);
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (lineno == 1 && line.rfind("#version", 0) == 0) continue;
      if (line.empty()) continue;
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() ||
          line.find(' ', sp + 1) != std::string::npos)
        fail(merges_path.string(), ":", lineno, ": expected two tokens separated by one space, got '", line, "'");
      merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    }
  }

  std::optional<json> tc = read_json_if_exists(dir / "tokenizer_config.json");
  const std::string tc_where = (dir / "tokenizer_config.json").string();
  if (tc && tc->contains("added_tokens_decoder")) {
    const json& atd = (*tc)["added_tokens_decoder"];
    if (!atd.is_object()) fail(tc_where, ": added_tokens_decoder must be an object");
    for (const auto& [key, t] : atd.items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (...) {
        id = -1;
      }
      if (id < 0 || id > (1 << 30)) fail(tc_where, ": added_tokens_decoder key '", key, "' is not an id");
      m->added.push_back(added_from_json(t, int32_t(id), tc_where));
    }
    std::sort(m->added.begin(), m->added.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  }

  const std::string mt = model_type_of(dir, hint);
  if (mt == "exaone") {
    m->pre = tok::PreTokenizer::exaone3();
  } else if (mt == "exaone_moe") {
    m->pre = tok::PreTokenizer::superbpe();
    m->normalizer = tok::Normalizer::nfc();
  } else {
    m->pre = tok::PreTokenizer::gpt2();  // exaone4 and plain GPT2Tokenizer
  }
  m->decoder = tok::Decoder::byte_level();
  tok::BpeOptions opts;
  opts.byte_level = true;
  m->bpe.build(model_vocab, merges, opts, merges_path.string());
  m->finalize();
  read_side_configs(*m, dir, tc ? &*tc : nullptr);
  if (tc) {
    if (get_bool(*tc, "add_bos_token", false) && m->bos) m->prefix_ids = {*m->bos};
    if (get_bool(*tc, "add_eos_token", false) && !m->eos.empty()) m->suffix_ids = {m->eos.front()};
  }
  return std::make_unique<Tokenizer>(std::move(m));
}

std::unique_ptr<Tokenizer> from_gguf_file(const gguf::File& gguf_file) {
  const gguf::File* file = &gguf_file;
  const std::string& path = gguf_file.path();
  auto m = std::make_unique<Tokenizer::Impl>();
  m->source = path;
  auto need = [&](const char* key) -> const gguf::Value& {
    const gguf::Value* v = file->get(key);
    if (!v) fail(path, ": GGUF has no ", key);
    return *v;
  };
  const std::string model = need("tokenizer.ggml.model").as_string("tokenizer.ggml.model");
  const auto& tokens = need("tokenizer.ggml.tokens").as_strings("tokenizer.ggml.tokens");
  std::vector<int64_t> types;
  if (const gguf::Value* v = file->get("tokenizer.ggml.token_type")) types = v->as_ints("tokenizer.ggml.token_type");
  if (!types.empty() && types.size() != tokens.size())
    fail(path, ": tokenizer.ggml.token_type has ", types.size(), " entries, tokenizer.ggml.tokens ", tokens.size());
  m->id_to_token = tokens;
  for (size_t i = 0; i < tokens.size(); ++i) m->token_to_id.emplace(tokens[i], int32_t(i));
  tok::TokenMap model_vocab = m->token_to_id;
  // llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == 2 || types[i] == 3 || types[i] == 4) {
      AddedToken a;
      a.id = int32_t(i);
      a.content = tokens[i];
      a.special = types[i] != 4;
      m->added.push_back(std::move(a));
    }
  }
  auto opt_id = [&](const char* key) -> std::optional<int32_t> {
    const gguf::Value* v = file->get(key);
    if (!v) return std::nullopt;
    int64_t id = v->as_int(key);
    if (id < 0 || size_t(id) >= tokens.size()) return std::nullopt;
    return int32_t(id);
  };
  m->bos = opt_id("tokenizer.ggml.bos_token_id");
  m->pad = opt_id("tokenizer.ggml.padding_token_id");
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = opt_id(k)) push_unique(m->eos, *id);
  const std::optional<int32_t> unk = opt_id("tokenizer.ggml.unknown_token_id");

  bool add_bos = false;
  if (model == "gpt2") {
    std::vector<std::pair<std::string, std::string>> merges;
    for (const std::string& s : need("tokenizer.ggml.merges").as_strings("tokenizer.ggml.merges")) {
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) fail(path, ": tokenizer.ggml.merges entry '", s, "' has no space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
    std::string pre = "default";
    if (const gguf::Value* v = file->get("tokenizer.ggml.pre")) pre = v->as_string("tokenizer.ggml.pre");
    if (pre == "exaone") {
      m->pre = tok::PreTokenizer::exaone3();
    } else if (pre == "exaone4" || pre == "gpt-2" || pre == "gpt2") {
      m->pre = tok::PreTokenizer::gpt2();
    } else if (pre == "exaone-moe") {
      // llama.cpp applies no normalizer here; kexa follows the converter's reference.
      m->pre = tok::PreTokenizer::superbpe();
    } else if (pre == "default") {
      m->pre = tok::PreTokenizer::regex_list(
          {R"([\p{P}\$\+<=>\^~\|]+)", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
           R"(\p{N}+)", R"([0-9][0-9][0-9])"},
          path);
    } else {
      fail(path, ": unsupported tokenizer.ggml.pre '", pre, "' (supported: exaone, exaone4, exaone-moe, gpt-2, default)");
    }
    m->decoder = tok::Decoder::byte_level();
    tok::BpeOptions opts;
    opts.byte_level = true;
    m->bpe.build(model_vocab, merges, opts, path);
  } else if (model == "llama") {
    std::vector<float> scores(tokens.size(), 0.0f);
    if (const gguf::Value* v = file->get("tokenizer.ggml.scores")) {
      const auto& s = v->as_floats("tokenizer.ggml.scores");
      if (s.size() != tokens.size()) fail(path, ": tokenizer.ggml.scores has ", s.size(), " entries, expected ", tokens.size());
      for (size_t i = 0; i < s.size(); ++i) scores[i] = float(s[i]);
    }
    m->model_kind = Tokenizer::Impl::ModelKind::kSpm;
    m->spm.build(m->token_to_id, std::move(scores), unk);
    m->decoder = tok::Decoder::sentencepiece();
    m->spm_space_prefix = true;
    if (const gguf::Value* v = file->get("tokenizer.ggml.add_space_prefix")) m->spm_space_prefix = v->as_bool("tokenizer.ggml.add_space_prefix");
    add_bos = true;
  } else {
    fail(path, ": unsupported tokenizer.ggml.model '", model, "' (supported: gpt2, llama)");
  }
  if (const gguf::Value* v = file->get("tokenizer.ggml.add_bos_token")) add_bos = v->as_bool("tokenizer.ggml.add_bos_token");
  bool add_eos = false;
  if (const gguf::Value* v = file->get("tokenizer.ggml.add_eos_token")) add_eos = v->as_bool("tokenizer.ggml.add_eos_token");
  m->finalize();
  if (m->model_kind == Tokenizer::Impl::ModelKind::kSpm) {
    // SPM's token_to_id must keep the vocab's own strings (finalize maps added contents too,
    // which are the same strings here), and SpmModel points at it: rebuild after finalize.
    std::vector<float> scores(tokens.size(), 0.0f);
    if (const gguf::Value* v = file->get("tokenizer.ggml.scores")) {
      const auto& s = v->as_floats("tokenizer.ggml.scores");
      for (size_t i = 0; i < s.size(); ++i) scores[i] = float(s[i]);
    }
    m->spm.build(m->token_to_id, std::move(scores), unk);
  }
  if (add_bos && m->bos) m->prefix_ids = {*m->bos};
  if (add_eos && !m->eos.empty()) m->suffix_ids = {m->eos.front()};
  return std::make_unique<Tokenizer>(std::move(m));
}

// nlohmann reports a value of the wrong JSON type (a list where a string belongs, say) with its
// own exception; callers of the tokenizer API get kexa::Error naming the file instead.
template <class Load>
std::unique_ptr<Tokenizer> naming_json_errors(const std::string& where, Load&& load) {
  try {
    return load();
  } catch (const json::exception& e) {
    fail(where, ": malformed tokenizer file: ", e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_json(std::string_view text, const std::string& origin) {
  return naming_json_errors(origin, [&] { return from_tokenizer_json(parse_json(text, origin), origin, {}); });
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path, std::string_view model_type_hint) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p / "tokenizer.json", ec)) {
      const fs::path tj = p / "tokenizer.json";
      auto t = naming_json_errors(tj.string(), [&] {
        return from_tokenizer_json(parse_json(read_file(tj), tj.string()), tj.string(), p);
      });
      t->impl_->source = path;
      return t;
    }
    if (fs::is_regular_file(p / "vocab.json", ec) && fs::is_regular_file(p / "merges.txt", ec))
      return naming_json_errors(path, [&] { return from_slow_files(p, model_type_hint); });
    fail(path, ": no tokenizer.json, nor vocab.json + merges.txt, in this folder");
  }
  if (!fs::is_regular_file(p, ec)) fail(path, ": no such file or folder");
  if (gguf::has_magic(p.string())) return from_gguf_file(*gguf::File::open(path));
  return naming_json_errors(path, [&] { return from_tokenizer_json(parse_json(read_file(p), path), path, p.parent_path()); });
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) { return from_gguf_file(file); }

}  // namespace kexa
