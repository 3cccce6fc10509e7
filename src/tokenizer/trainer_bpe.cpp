#include "tokenizer/trainer_bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "util/error.h"

namespace kexa::bpe {

namespace {

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::array<std::string, 256> make_alphabet() {
  std::array<std::string, 256> table;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    append_utf8(printable ? b : next++, table[b]);
  }
  return table;
}

// Oniguruma's \s in UTF-8 mode is Unicode White_Space; PCRE2's UCP \s leaves out U+0085, so the
// set is spelled out to split exactly like HF.
constexpr const char* kWs =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

std::string to_pcre(const std::string& hf) {
  const std::string ws = kWs;
  // Possessive forms of the known patterns: same matches, bounded backtracking state.
  if (hf == kWordPattern) {
    return replace_all(
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}++| ?\p{N}++| ?[^WS\p{L}\p{N}]++|[WS]+(?![^WS])|[WS]++)",
        "WS", ws);
  }
  if (hf == kSuperwordPattern) {
    return replace_all(
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*+(?: \p{L}\p{M}*+)*+)++|\p{N}| ?[^WS\p{L}\p{N}]++[\r\n/]?|[WS]*[\r\n]|[WS]+(?![^WS])|[WS]++)",
        "WS", ws);
  }
  // Generic rewrite of \s and \S, inside and outside character classes.
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < hf.size(); ++i) {
    char c = hf[i];
    if (c == '\\' && i + 1 < hf.size()) {
      char n = hf[i + 1];
      if (n == 's') {
        out += in_class ? ws : "[" + ws + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + ws + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) in_class = true;
    else if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

const std::array<std::string, 256>& byte_alphabet() {
  static const std::array<std::string, 256> table = make_alphabet();  // immutable after init
  return table;
}

std::string to_byte_level(std::string_view bytes) {
  const auto& table = byte_alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += table[b];
  return out;
}

bool from_byte_level(std::string_view text, std::string& bytes) {
  bytes.clear();
  size_t i = 0;
  while (i < text.size()) {
    utf8proc_int32_t cp = 0;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                              utf8proc_ssize_t(text.size() - i), &cp);
    if (n <= 0) return false;
    i += size_t(n);
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) {
      bytes += char(cp);
    } else if (cp >= 256 && cp < 256 + 68) {
      // The 68 remapped bytes, in increasing byte order.
      int k = cp - 256;
      uint32_t b = 0;
      for (; b < 256; ++b) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        if (!printable && k-- == 0) break;
      }
      bytes += char(b);
    } else {
      return false;
    }
  }
  return true;
}

size_t sanitize_utf8(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  size_t bad = 0, i = 0;
  while (i < in.size()) {
    unsigned char c = in[i];
    if (c < 0x80) {
      out += char(c);
      ++i;
      continue;
    }
    utf8proc_int32_t cp = 0;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(in.data() + i),
                              utf8proc_ssize_t(in.size() - i), &cp);
    if (n <= 0) {
      out += "\xEF\xBF\xBD";
      ++bad;
      ++i;
    } else {
      out.append(in.data() + i, size_t(n));
      i += size_t(n);
    }
  }
  return bad;
}

std::string nfc(std::string_view text) {
  bool ascii = std::all_of(text.begin(), text.end(), [](char c) { return (unsigned char)c < 0x80; });
  if (ascii) return std::string(text);
  utf8proc_uint8_t* dst = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                        utf8proc_ssize_t(text.size()), &dst,
                        utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) fail("NFC normalisation failed: ", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(dst), size_t(n));
  std::free(dst);
  return out;
}

// ---------------------------------------------------------------------------------------------

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

RegexSplitter::RegexSplitter(const std::string& hf_pattern)
    : hf_pattern_(hf_pattern), impl_(std::make_unique<Impl>()) {
  std::string pat = to_pcre(hf_pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("pre-tokenizer regex does not compile at offset ", off, ": ",
         reinterpret_cast<const char*>(msg), " (pattern ", hf_pattern, ")");
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  struct Match {
    pcre2_match_data* md;
    pcre2_match_context* mc = nullptr;
    pcre2_jit_stack* js = nullptr;
    ~Match() {
      pcre2_match_data_free(md);
      if (mc) pcre2_match_context_free(mc);
      if (js) pcre2_jit_stack_free(js);
    }
  } m{pcre2_match_data_create_from_pattern(impl_->code, nullptr)};
  if (impl_->jit && text.size() > 4096) {
    // Long inputs may need more than PCRE2's default 32 KiB JIT stack on generic patterns.
    m.mc = pcre2_match_context_create(nullptr);
    m.js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(m.mc, nullptr, m.js);
  }
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, m.md, m.mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("pre-tokenizer regex failed on a ", text.size(), "-byte text: ",
           reinterpret_cast<const char*>(msg));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    size_t s = ov[0], e = ov[1];
    if (e == s) {  // empty match: step over one character
      size_t step = 1;
      while (s + step < text.size() && (static_cast<unsigned char>(text[s + step]) & 0xC0) == 0x80)
        ++step;
      pos = s + step;
      continue;
    }
    if (s > gap) out.push_back(text.substr(gap, s - gap));
    out.push_back(text.substr(s, e - s));
    pos = gap = e;
  }
  if (gap < text.size()) out.push_back(text.substr(gap));
}

// ---------------------------------------------------------------------------------------------

ByteLevelBpe::ByteLevelBpe(ByteLevelBpe&&) noexcept = default;
ByteLevelBpe& ByteLevelBpe::operator=(ByteLevelBpe&&) noexcept = default;
ByteLevelBpe::~ByteLevelBpe() = default;

ByteLevelBpe::ByteLevelBpe(std::vector<std::string> vocab_bytes,
                           const std::vector<std::array<uint32_t, 3>>& merges,
                           std::string hf_pattern, bool nfc, std::vector<std::string> added_tokens)
    : vocab_(std::move(vocab_bytes)),
      splitter_(std::make_unique<RegexSplitter>(hf_pattern)),
      nfc_(nfc) {
  for (uint32_t r = 0; r < merges.size(); ++r) {
    merges_.emplace(pair_key(merges[r][0], merges[r][1]), std::make_pair(r, merges[r][2]));
  }
  for (auto& t : added_tokens) {
    for (uint32_t id = 0; id < vocab_.size(); ++id) {
      if (vocab_[id] == t) {
        added_.emplace_back(t, id);
        break;
      }
    }
  }
  finish_init();
}

void ByteLevelBpe::finish_init() {
  std::vector<bool> seen(256, false);
  std::vector<bool> added(vocab_.size(), false);
  for (auto& a : added_) added[a.second] = true;
  for (uint32_t id = 0; id < vocab_.size(); ++id) {
    if (vocab_[id].size() == 1 && !added[id] && !seen[uint8_t(vocab_[id][0])]) {
      seen[uint8_t(vocab_[id][0])] = true;
      byte_id_[uint8_t(vocab_[id][0])] = id;
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (!seen[b]) byte_id_[b] = UINT32_MAX;  // HF drops characters it has no id for
  }
  std::stable_sort(added_.begin(), added_.end(),
                   [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
}

bool ByteLevelBpe::is_added(uint32_t id) const {
  for (auto& a : added_) {
    if (a.second == id) return true;
  }
  return false;
}

void ByteLevelBpe::encode_piece(std::string_view piece, std::vector<uint32_t>& ids) const {
  struct Sym {
    uint32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Sym> sym;
  sym.reserve(piece.size());
  for (unsigned char b : piece) {
    if (byte_id_[b] == UINT32_MAX) continue;
    int i = int(sym.size());
    sym.push_back({byte_id_[b], i - 1, i + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Cand {
    uint32_t rank;
    int pos;
    uint32_t id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int pos) {
    int nx = sym[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(sym[pos].id, sym[nx].id));
    if (it != merges_.end()) heap.push({it->second.first, pos, it->second.second});
  };
  for (int i = 0; i + 1 < int(sym.size()); ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& s = sym[c.pos];
    if (!s.alive || s.next < 0) continue;
    auto it = merges_.find(pair_key(s.id, sym[s.next].id));
    if (it == merges_.end() || it->second.second != c.id) continue;
    Sym& r = sym[s.next];
    r.alive = false;
    s.id = c.id;
    s.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.pos;
    if (s.prev >= 0) push(s.prev);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
}

void ByteLevelBpe::encode(std::string_view text, std::vector<uint32_t>& ids, Cache* cache) const {
  std::vector<std::string_view> pieces;
  auto encode_plain = [&](std::string_view part) {
    if (part.empty()) return;
    std::string normalized = nfc_ ? nfc(part) : std::string(part);
    pieces.clear();
    splitter_->split(normalized, pieces);
    for (auto p : pieces) {
      if (cache) {
        auto it = cache->find(std::string(p));
        if (it != cache->end()) {
          ids.insert(ids.end(), it->second.begin(), it->second.end());
          continue;
        }
        std::vector<uint32_t> tmp;
        encode_piece(p, tmp);
        ids.insert(ids.end(), tmp.begin(), tmp.end());
        cache->emplace(std::string(p), std::move(tmp));
      } else {
        encode_piece(p, ids);
      }
    }
  };
  size_t start = 0, i = 0;
  while (i < text.size() && !added_.empty()) {
    bool hit = false;
    for (auto& [tok, id] : added_) {
      if (!tok.empty() && text.compare(i, tok.size(), tok) == 0) {
        encode_plain(text.substr(start, i - start));
        ids.push_back(id);
        i += tok.size();
        start = i;
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
  encode_plain(text.substr(start));
}

ByteLevelBpe ByteLevelBpe::load(const std::string& path) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) fail("cannot open ", p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  auto parse = [&](const fs::path& p) {
    try {
      return json::parse(read(p));
    } catch (const json::exception& e) {
      fail(p.string(), ": invalid JSON: ", e.what());
    }
  };
  ByteLevelBpe t;
  std::string pattern = kWordPattern;
  std::vector<std::pair<std::string, std::string>> merge_strs;
  json vocab;
  std::vector<std::pair<std::string, uint32_t>> added;
  fs::path p(path);
  fs::path tj = fs::is_directory(p) ? p / "tokenizer.json" : p;
  if (fs::exists(tj) && !fs::is_directory(tj)) {
    json j = parse(tj);
    const json& model = j.at("model");
    if (model.value("type", "") != "BPE") fail(tj.string(), ": model.type is not BPE");
    vocab = model.at("vocab");
    for (const auto& m : model.at("merges")) {
      if (m.is_string()) {
        std::string s = m.get<std::string>();
        auto sp = s.find(' ');
        if (sp == std::string::npos) fail(tj.string(), ": bad merge '", s, "'");
        merge_strs.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else {
        merge_strs.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
      }
    }
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const auto& a : j["added_tokens"]) added.emplace_back(a.at("content"), a.at("id"));
    }
    const json& norm = j.contains("normalizer") ? j["normalizer"] : json();
    if (!norm.is_null()) {
      if (norm.value("type", "") != "NFC") {
        fail(tj.string(), ": unsupported normalizer ", norm.dump(), " (only NFC or null)");
      }
      t.nfc_ = true;
    }
    const json& pre = j.at("pre_tokenizer");
    auto unsupported = [&] { fail(tj.string(), ": unsupported pre_tokenizer ", pre.dump()); };
    if (pre.is_null()) unsupported();
    if (pre.value("type", "") == "ByteLevel") {
      if (!pre.value("use_regex", true) || pre.value("add_prefix_space", false)) unsupported();
    } else if (pre.value("type", "") == "Sequence") {
      const json& seq = pre.at("pretokenizers");
      if (seq.size() != 2 || seq[0].value("type", "") != "Split" ||
          seq[1].value("type", "") != "ByteLevel" || seq[1].value("use_regex", true) ||
          seq[1].value("add_prefix_space", false) || seq[0].value("invert", false) ||
          seq[0].value("behavior", "") != "Isolated" || !seq[0].at("pattern").contains("Regex")) {
        unsupported();
      }
      pattern = seq[0]["pattern"]["Regex"].get<std::string>();
    } else {
      unsupported();
    }
  } else {
    vocab = parse(p / "vocab.json");
    std::istringstream in(read(p / "merges.txt"));
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.rfind("#version", 0) == 0 || line.empty()) continue;
      auto sp = line.find(' ');
      if (sp == std::string::npos) fail((p / "merges.txt").string(), ":", n, ": no space");
      merge_strs.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    }
    fs::path cfg = p / "tokenizer_config.json";
    if (fs::exists(cfg)) {
      json c = parse(cfg);
      if (c.contains("added_tokens_decoder")) {
        for (auto& [k, v] : c["added_tokens_decoder"].items()) {
          added.emplace_back(v.at("content"), uint32_t(std::stoul(k)));
        }
      }
    }
  }
  std::unordered_map<std::string, uint32_t> str_id;
  uint32_t max_id = 0;
  for (auto& [tok, id] : vocab.items()) {
    str_id[tok] = id.get<uint32_t>();
    max_id = std::max(max_id, id.get<uint32_t>());
  }
  for (auto& a : added) max_id = std::max(max_id, a.second);
  t.vocab_.assign(size_t(max_id) + 1, std::string());
  std::string bytes;
  for (auto& [tok, id] : str_id) t.vocab_[id] = from_byte_level(tok, bytes) ? bytes : tok;
  for (auto& a : added) {
    t.vocab_[a.second] = a.first;
    t.added_.push_back(a);
  }
  for (uint32_t r = 0; r < merge_strs.size(); ++r) {
    auto& [l, rr] = merge_strs[r];
    auto a = str_id.find(l), b = str_id.find(rr), c = str_id.find(l + rr);
    if (a == str_id.end() || b == str_id.end() || c == str_id.end()) {
      fail(path, ": merge ", r, " '", l, " ", rr, "' uses a token missing from the vocab");
    }
    // A repeated pair keeps its last rank, as in HF's merge map.
    t.merges_.insert_or_assign(pair_key(a->second, b->second), std::make_pair(r, c->second));
  }
  t.splitter_ = std::make_unique<RegexSplitter>(pattern);
  t.finish_init();
  return t;
}

}  // namespace kexa::bpe
