#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace kexa {

// ----------------------------------------------------------------------------- added tokens

void AddedTokenTrie::build(const std::vector<AddedToken>& tokens, bool normalized_set,
                           const tok::Normalizer* normalizer) {
  nodes_.assign(1, Node{});
  std::fill(std::begin(first_), std::end(first_), false);
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t].normalized != normalized_set) continue;
    std::string pattern = tokens[t].content;
    if (normalized_set && normalizer && !normalizer->empty()) pattern = normalizer->apply(pattern);
    if (pattern.empty()) continue;
    first_[static_cast<uint8_t>(pattern[0])] = true;
    int32_t node = 0;
    for (char ch : pattern) {
      const uint8_t b = static_cast<uint8_t>(ch);
      auto& kids = nodes_[node].kids;
      auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t(-1)));
      if (it != kids.end() && it->first == b) {
        node = it->second;
      } else {
        const int32_t fresh = int32_t(nodes_.size());
        kids.insert(it, {b, fresh});
        nodes_.push_back(Node{});
        node = fresh;
      }
    }
    // HF keeps one value per pattern; a later duplicate content wins there too.
    nodes_[node].token = int32_t(t);
  }
}

bool AddedTokenTrie::match_at(std::string_view s, size_t pos, int32_t& index, size_t& len) const {
  int32_t node = 0;
  bool found = false;
  for (size_t i = pos; i < s.size(); ++i) {
    const auto& kids = nodes_[node].kids;
    const uint8_t b = static_cast<uint8_t>(s[i]);
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t(-1)));
    if (it == kids.end() || it->first != b) break;
    node = it->second;
    if (nodes_[node].token >= 0) {
      index = nodes_[node].token;
      len = i + 1 - pos;
      found = true;
    }
  }
  return found;
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t k = s.size() - 1;
  while (k > 0 && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
  Utf8Char c = decode_utf8(s, k);
  return c.len == s.size() - k && tok::is_word_char(c.cp);
}
bool starts_with_word(std::string_view s) {
  return !s.empty() && tok::is_word_char(decode_utf8(s, 0).cp);
}
size_t leading_space(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    Utf8Char c = decode_utf8(s, i);
    if (tok::char_class(c.cp) != tok::kSpace) break;
    i += c.len;
  }
  return i;
}
size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t k = e - 1;
    while (k > 0 && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
    Utf8Char c = decode_utf8(s, k);
    if (c.len != e - k || tok::char_class(c.cp) != tok::kSpace) break;
    e = k;
  }
  return e;
}

// HF AddedVocabulary::find_matches: calls piece(token_index or -1, begin, end) over a cover of s.
template <typename F>
void split_added(std::string_view s, const AddedTokenTrie& trie, const std::vector<AddedToken>& added,
                 bool parse_special, F&& piece) {
  if (s.empty()) return;
  if (trie.empty()) {
    piece(-1, 0, s.size());
    return;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    if (!trie.may_start(static_cast<uint8_t>(s[pos]))) {
      ++pos;
      continue;
    }
    int32_t index;
    size_t len;
    if (!trie.match_at(s, pos, index, len)) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;  // the automaton resumes after the raw match, whatever happens to it below
    const AddedToken& t = added[index];
    if (t.special && !parse_special) continue;
    if (t.single_word) {
      const bool start_ok = start == 0 || !ends_with_word(s.substr(0, start));
      const bool stop_ok = stop == s.size() || !starts_with_word(s.substr(stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) start = std::max(trailing_space_start(s.substr(0, start)), start_offset);
    if (t.rstrip) stop += leading_space(s.substr(stop));
    start = std::max(start, start_offset);
    if (start_offset < start) piece(-1, start_offset, start);
    piece(index, start, stop);
    start_offset = stop;
    pos = std::max(pos, stop);
  }
  if (start_offset < s.size()) piece(-1, start_offset, s.size());
}

std::string piece_of_token(const std::string& tok, bool byte_level_decoder) {
  std::string out;
  if (byte_level_decoder) {
    if (tok::unmap_byte_level(tok, out)) return out;
    return tok;
  }
  if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>') {
    int v = 0;
    bool ok = true;
    for (int k = 3; k < 5; ++k) {
      char c = tok[k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      ok &= d >= 0;
      v = v * 16 + d;
    }
    if (ok) return std::string(1, char(v));
  }
  static constexpr std::string_view kMeta = "\xE2\x96\x81";
  for (size_t i = 0; i < tok.size();) {
    if (tok.compare(i, kMeta.size(), kMeta) == 0) {
      out += ' ';
      i += kMeta.size();
    } else {
      out += tok[i++];
    }
  }
  return out;
}

}  // namespace

void Tokenizer::Impl::finalize() {
  int32_t n = int32_t(id_to_token.size());
  for (const AddedToken& t : added) n = std::max(n, t.id + 1);
  id_to_token.resize(size_t(n));
  special.assign(size_t(n), 0);
  for (const AddedToken& t : added) {
    if (t.id < 0) fail(source, ": added token '", t.content, "' has a negative id");
    id_to_token[size_t(t.id)] = t.content;
    token_to_id[t.content] = t.id;
    if (t.special) special[size_t(t.id)] = 1;
  }
  raw_trie.build(added, false, nullptr);
  norm_trie.build(added, true, &normalizer);
  const bool bl = decoder.is_byte_level_only();
  id_piece.resize(size_t(n));
  for (int32_t id = 0; id < n; ++id) id_piece[size_t(id)] = piece_of_token(id_to_token[size_t(id)], bl);
}

void Tokenizer::Impl::encode_segment(std::string_view text, bool at_origin, bool& prev_special,
                                     std::vector<int32_t>& out, tok::Pieces& scratch) const {
  if (text.empty()) return;
  if (model_kind == ModelKind::kSpm) {
    std::string s;
    s.reserve(text.size() + 8);
    if (spm_space_prefix && prev_special) s += "\xE2\x96\x81";
    for (char ch : text) {
      if (ch == ' ') s += "\xE2\x96\x81";
      else s += ch;
    }
    spm.encode(s, out);
    prev_special = false;
    return;
  }
  prev_special = false;
  if (pre.empty()) {
    bpe.encode(text, out);
    return;
  }
  scratch.clear();
  pre.run(text, at_origin, scratch);
  for (const auto& p : scratch.items) bpe.encode(p.text, out);
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out = m.prefix_ids;
  tok::Pieces scratch;
  bool prev_special = true;
  split_added(text, m.raw_trie, m.added, parse_special, [&](int32_t index, size_t b, size_t e) {
    if (index >= 0) {
      out.push_back(m.added[size_t(index)].id);
      prev_special = true;
      return;
    }
    std::string_view seg = text.substr(b, e - b);
    std::string normalized;
    if (!m.normalizer.empty()) {
      normalized = m.normalizer.apply(seg);
      seg = normalized;
    }
    if (m.norm_trie.empty()) {
      m.encode_segment(seg, b == 0, prev_special, out, scratch);
      return;
    }
    split_added(seg, m.norm_trie, m.added, parse_special, [&](int32_t index2, size_t b2, size_t e2) {
      if (index2 >= 0) {
        out.push_back(m.added[size_t(index2)].id);
        prev_special = true;
      } else {
        m.encode_segment(seg.substr(b2, e2 - b2), b == 0 && b2 == 0, prev_special, out, scratch);
      }
    });
  });
  if (add_special_tokens) out.insert(out.end(), m.suffix_ids.begin(), m.suffix_ids.end());
  return out;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(std::span<const std::string> texts,
                                                          bool add_special_tokens,
                                                          bool parse_special,
                                                          ThreadPool* pool) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  if (pool) {
    pool->parallel_for(int64_t(texts.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        out[size_t(i)] = encode(texts[size_t(i)], add_special_tokens, parse_special);
    });
    return out;
  }
  const size_t n_threads =
      std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), texts.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    // Dynamic scheduling: texts vary a lot in length.
    for (size_t i; (i = next.fetch_add(1)) < texts.size();)
      out[i] = encode(texts[i], add_special_tokens, parse_special);
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  const size_t n = m.id_to_token.size();
  if (m.decoder.is_byte_level_only()) {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || size_t(id) >= n || (skip_special && m.special[size_t(id)])) continue;
      out += m.id_piece[size_t(id)];
    }
    return out;
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= n || (skip_special && m.special[size_t(id)])) continue;
    tokens.push_back(m.id_to_token[size_t(id)]);
  }
  return m.decoder.decode(std::move(tokens));
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->id_to_token.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->token_to_id.find(token);
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_to_token.size()) return {};
  return impl_->id_to_token[size_t(id)];
}

std::string Tokenizer::token_piece(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_piece.size()) return {};
  return impl_->id_piece[size_t(id)];
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[size_t(id)];
}
bool Tokenizer::adds_bos() const {
  return impl_->bos && std::find(impl_->prefix_ids.begin(), impl_->prefix_ids.end(), *impl_->bos) !=
                           impl_->prefix_ids.end();
}
const std::string& Tokenizer::source_path() const { return impl_->source; }

// ----------------------------------------------------------------------------- streaming

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tok_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  const std::string before = tok_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  const std::string now = tok_.decode(all.subspan(prefix_), skip_special_);
  if (now.size() <= before.size() || now.compare(0, before.size(), before) != 0) {
    // Decoders that rewrite earlier text (none of the supported ones in practice) or tokens that
    // add nothing: wait for more.
    if (now.size() < before.size() || now.compare(0, before.size(), before) != 0) {
      prefix_ = read_;
      read_ = ids_.size();
    }
    return {};
  }
  std::string_view fresh = std::string_view(now).substr(before.size());
  if (tok::complete_utf8_prefix(fresh) != fresh.size()) return {};  // a character is cut off
  std::string out = sanitize_utf8(fresh);
  prefix_ = read_;
  read_ = ids_.size();
  if (prefix_ >= 256) {  // only the window is ever decoded again: drop what lies before it
    ids_.erase(ids_.begin(), ids_.begin() + std::ptrdiff_t(prefix_));
    read_ -= prefix_;
    prefix_ = 0;
  }
  return out;
}

std::string StreamDecoder::finish() {
  std::span<const int32_t> all(ids_);
  const std::string before = tok_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  const std::string now = tok_.decode(all.subspan(prefix_), skip_special_);
  prefix_ = read_ = ids_.size();
  if (now.size() <= before.size() || now.compare(0, before.size(), before) != 0) return {};
  return sanitize_utf8(std::string_view(now).substr(before.size()));
}

}  // namespace kexa
