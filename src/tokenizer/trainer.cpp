#include "tokenizer/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/model.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/json_string.h"
#include "util/utf8.h"

namespace kexa::bpe {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Throttled single-line progress bar on stderr.
class Progress {
 public:
  Progress(bool enabled, std::string label, uint64_t total)
      : enabled_(enabled), label_(std::move(label)), total_(total), start_(Clock::now()) {}
  ~Progress() { finish(); }
  void update(uint64_t done) {
    if (!enabled_) return;
    auto now = Clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    draw(done);
  }
  void finish() {
    if (!enabled_ || finished_) return;
    finished_ = true;
    std::fputc('\n', stderr);
  }
  void set_total(uint64_t total) { total_ = total; }

 private:
  void draw(uint64_t done) {
    const int width = 30;
    double frac = total_ ? std::min(1.0, double(done) / double(total_)) : 1.0;
    int fill = int(frac * width);
    std::fprintf(stderr, "\r%-22s [%.*s%*s] %llu/%llu %5.1f s", label_.c_str(), fill,
                 "##############################", width - fill, "",
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_),
                 seconds_since(start_));
    std::fflush(stderr);
  }
  bool enabled_;
  bool finished_ = false;
  std::string label_;
  uint64_t total_;
  Clock::time_point start_, last_{};
};

// ---- corpus streaming -------------------------------------------------------------------------

std::vector<std::string> list_corpus(const std::vector<std::string>& paths, uint64_t& total) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    auto st = fs::status(p, ec);
    if (ec || !fs::exists(st)) fail("corpus path not found: ", p);
    if (fs::is_directory(st)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::end(it);
           it.increment(ec)) {
        if (it->is_regular_file() && it->path().filename().string()[0] != '.') {
          found.push_back(it->path().string());
        }
      }
      if (ec) fail("cannot list corpus directory ", p, ": ", ec.message());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  total = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) fail("cannot read corpus file ", f, ": ", std::strerror(errno));
    std::error_code ec;
    auto size = fs::file_size(f, ec);
    if (ec) fail("cannot read corpus file ", f, ": ", ec.message());
    char probe;
    in.read(&probe, 1);
    if (in.bad()) fail("cannot read corpus file ", f, ": read error");
    total += size;
  }
  return files;
}

// Yields blocks of about block_bytes that end at a line break (or a file's end); a line longer
// than 16 blocks is cut at a UTF-8 character boundary so memory stays bounded.
class BlockReader {
 public:
  BlockReader(const std::vector<std::string>& files, size_t block_bytes)
      : files_(files), block_(block_bytes) {}

  bool next(std::string& out) {
    out.clear();
    out.swap(pending_);
    while (true) {
      if (!in_.is_open()) {
        if (!out.empty()) return true;
        if (index_ >= files_.size()) return false;
        in_.open(files_[index_], std::ios::binary);
        if (!in_) fail("cannot read corpus file ", files_[index_], ": ", std::strerror(errno));
      }
      size_t old = out.size();
      size_t want = block_ > old ? block_ - old : 0;
      out.resize(old + want);
      in_.read(out.data() + old, std::streamsize(want));
      out.resize(old + size_t(in_.gcount()));
      if (in_.bad()) fail("read error in corpus file ", files_[index_]);
      if (in_.eof()) {
        close();
        continue;  // a block never spans two files
      }
      // Extend to the end of the line, but not without bound.
      const size_t limit = block_ * 16;
      char ch;
      while (out.size() < limit && in_.get(ch)) {
        out += ch;
        if (ch == '\n') break;
      }
      if (in_.bad()) fail("read error in corpus file ", files_[index_]);
      if (in_.eof()) close();
      if (out.size() >= limit && out.back() != '\n') {
        // Overlong line: carry its last (possibly incomplete) character to the next block.
        // At most 3 continuation bytes are stepped over, so invalid text cannot stall this.
        size_t cut = out.size() - 1;
        while (cut + 3 > out.size() - 1 && cut > 0 &&
               (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) {
          --cut;
        }
        pending_.assign(out, cut, std::string::npos);
        out.resize(cut);
      }
      return true;
    }
  }

 private:
  const std::vector<std::string>& files_;
  size_t block_;
  size_t index_ = 0;
  std::ifstream in_;
  std::string pending_;

  void close() {
    in_.close();
    in_.clear();
    ++index_;
  }
};

using Counts = std::unordered_map<std::string, uint64_t>;

// Removes the rarest entries until the table is at most half the budget (deterministic: the
// outcome depends only on the table's contents).
uint64_t prune(Counts& counts, size_t budget) {
  uint64_t removed = 0;
  for (uint64_t threshold = 1; counts.size() > budget / 2; ++threshold) {
    for (auto it = counts.begin(); it != counts.end();) {
      if (it->second <= threshold) {
        it = counts.erase(it);
        ++removed;
      } else {
        ++it;
      }
    }
  }
  return removed;
}

// Counts distinct pre-tokens over the whole corpus with `threads` workers.
std::vector<std::pair<std::string, uint64_t>> count_pretokens(
    const std::vector<std::string>& files, uint64_t total_bytes, const tok::PreTokenizer& pre,
    const TrainOptions& opt, int threads, const char* label, TrainStats& stats) {
  Counts global;
  BlockReader reader(files, opt.block_bytes);
  Progress bar(opt.progress, label, total_bytes);
  uint64_t done_bytes = 0;
  std::atomic<uint64_t> invalid{0};
  const size_t batch = size_t(std::max(2, threads * 2));
  std::vector<std::string> blocks(batch);
  while (true) {
    size_t n = 0;
    while (n < batch && reader.next(blocks[n])) ++n;
    if (n == 0) break;
    std::vector<std::string> text(n);
    std::vector<std::unordered_map<std::string_view, uint64_t>> local(n);
    std::atomic<size_t> next{0};
    std::vector<std::string> errors(static_cast<size_t>(threads));
    auto work = [&](int t) {
      try {
        tok::Pieces pieces;
        for (size_t i; (i = next.fetch_add(1)) < n;) {
          size_t bad = 0;
          const std::string clean = sanitize_utf8(blocks[i], &bad);
          invalid += bad;
          // Special tokens never take part in merges: cut them out first.
          std::vector<std::string_view> parts{clean};
          for (const auto& sp : opt.specials) {
            std::vector<std::string_view> split_parts;
            for (auto part : parts) {
              size_t pos = 0, hit;
              while ((hit = part.find(sp, pos)) != std::string_view::npos) {
                split_parts.push_back(part.substr(pos, hit - pos));
                pos = hit + sp.size();
              }
              split_parts.push_back(part.substr(pos));
            }
            parts.swap(split_parts);
          }
          // Normalised parts go into one buffer (the counted views point into it); the
          // ranges keep text on both sides of a special token apart.
          std::string& norm = text[i];
          std::vector<std::pair<size_t, size_t>> ranges;
          for (auto part : parts) {
            if (part.empty()) continue;
            size_t begin = norm.size();
            norm += opt.nfc ? tok::normalize(part, tok::NormForm::NFC) : std::string(part);
            ranges.emplace_back(begin, norm.size() - begin);
          }
          // The trainer's pre-tokenizers (ByteLevel last, no prefix space) never rewrite
          // text, so every piece is a view into norm.
          for (auto [begin, len] : ranges) {
            pieces.clear();
            pre.run(std::string_view(norm).substr(begin, len), false, pieces);
            for (const auto& p : pieces.items) ++local[i][p.text];
          }
        }
      } catch (const std::exception& e) {
        errors[size_t(t)] = e.what();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    for (auto& e : errors) {
      if (!e.empty()) fail(e);
    }
    for (size_t i = 0; i < n; ++i) {
      for (auto& [k, v] : local[i]) global[std::string(k)] += v;
      if (global.size() > opt.max_pretokens) stats.pruned += prune(global, opt.max_pretokens);
      done_bytes += blocks[i].size();
    }
    bar.update(done_bytes);
  }
  bar.update(total_bytes);
  stats.invalid_utf8 += invalid;
  std::vector<std::pair<std::string, uint64_t>> out(global.begin(), global.end());
  std::sort(out.begin(), out.end());
  return out;
}

// ---- merge learning ---------------------------------------------------------------------------

struct Word {
  std::vector<uint32_t> sym;
  uint64_t count;
};

class MergeLearner {
 public:
  MergeLearner(TrainedBpe& bpe, std::unordered_map<std::string, uint32_t>& ids,
               std::unordered_set<uint64_t>& merged)
      : bpe_(bpe), ids_(ids), merged_(merged), heap_(Less{&bpe.vocab}) {}

  void set_words(std::vector<Word> words) {
    words_ = std::move(words);
    counts_.clear();
    where_.clear();
    heap_ = Heap(Less{&bpe_.vocab});
    for (uint32_t w = 0; w < words_.size(); ++w) {
      const auto& s = words_[w].sym;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t k = pair_key(s[i], s[i + 1]);
        counts_[k] += int64_t(words_[w].count);
        where_[k].push_back(w);
      }
    }
    // Seed the queue in a fixed order so equal entries behave the same on every run.
    std::vector<std::pair<uint64_t, int64_t>> all(counts_.begin(), counts_.end());
    std::sort(all.begin(), all.end());
    for (auto& [k, c] : all) heap_.push({c, uint32_t(k >> 32), uint32_t(k)});
  }

  // Learns merges until the vocabulary has target_vocab entries or max_merges merges were
  // recorded; returns false when it ran out of pairs at min_frequency.
  bool run(size_t target_vocab, uint64_t max_merges, uint64_t min_frequency, Progress& bar,
           uint64_t& recorded) {
    while (bpe_.vocab.size() < target_vocab && recorded < max_merges) {
      if (heap_.empty()) return false;
      Entry top = heap_.top();
      heap_.pop();
      uint64_t key = pair_key(top.a, top.b);
      auto it = counts_.find(key);
      int64_t cur = it == counts_.end() ? 0 : it->second;
      if (cur != top.count) {
        if (cur > 0 && cur < top.count) heap_.push({cur, top.a, top.b});
        continue;  // a fresher entry is (or now is) queued
      }
      if (uint64_t(cur) < std::max<uint64_t>(min_frequency, 1)) return false;
      if (apply(top.a, top.b)) ++recorded;
      bar.update(bpe_.vocab.size());
    }
    return true;
  }

 private:
  struct Entry {
    int64_t count;
    uint32_t a, b;
  };
  // Highest count first; ties go to the pair whose (left, right) byte strings sort first.
  struct Less {
    const std::vector<std::string>* tok;
    bool operator()(const Entry& x, const Entry& y) const {
      if (x.count != y.count) return x.count < y.count;
      int c = (*tok)[x.a].compare((*tok)[y.a]);
      if (c != 0) return c > 0;
      return (*tok)[x.b].compare((*tok)[y.b]) > 0;
    }
  };
  using Heap = std::priority_queue<Entry, std::vector<Entry>, Less>;

  // Merges every occurrence of (a, b); returns whether a new merge rule was recorded (a pair
  // merged before through a duplicate token string is applied again but not re-recorded).
  bool apply(uint32_t a, uint32_t b) {
    std::string joined = bpe_.vocab[a] + bpe_.vocab[b];
    uint32_t c;
    auto found = ids_.find(joined);
    if (found != ids_.end()) {
      c = found->second;
    } else {
      c = uint32_t(bpe_.vocab.size());
      bpe_.vocab.push_back(joined);
      ids_.emplace(std::move(joined), c);
    }
    uint64_t key = pair_key(a, b);
    bool record = merged_.insert(key).second;
    if (record) bpe_.merges.push_back({a, b, c});

    std::vector<uint32_t> list = std::move(where_[key]);
    where_.erase(key);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    touched_.clear();
    for (uint32_t w : list) {
      auto& sym = words_[w].sym;
      const int64_t cnt = int64_t(words_[w].count);
      const long n = long(sym.size());
      out_.clear();
      newpos_.clear();
      long last_old = -1;
      for (long i = 0; i < n;) {
        if (i + 1 < n && sym[size_t(i)] == a && sym[size_t(i + 1)] == b) {
          // Old pairs touching this occurrence, each counted once.
          for (long j = i - 1; j <= i + 1; ++j) {
            if (j >= 0 && j + 1 < n && j > last_old) {
              add(pair_key(sym[size_t(j)], sym[size_t(j + 1)]), -cnt);
              last_old = j;
            }
          }
          newpos_.push_back(long(out_.size()));
          out_.push_back(c);
          i += 2;
        } else {
          out_.push_back(sym[size_t(i)]);
          ++i;
        }
      }
      if (newpos_.empty()) continue;
      const long m = long(out_.size());
      long last_new = -1;
      for (long k : newpos_) {
        for (long j = k - 1; j <= k; ++j) {
          if (j >= 0 && j + 1 < m && j > last_new) {
            uint64_t nk = pair_key(out_[size_t(j)], out_[size_t(j + 1)]);
            add(nk, cnt);
            where_[nk].push_back(w);
            touched_.push_back(nk);
            last_new = j;
          }
        }
      }
      sym.assign(out_.begin(), out_.end());
    }
    counts_.erase(key);
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (uint64_t k : touched_) {
      auto it = counts_.find(k);
      if (it != counts_.end() && it->second > 0) {
        heap_.push({it->second, uint32_t(k >> 32), uint32_t(k)});
      }
    }
    return record;
  }

  void add(uint64_t k, int64_t delta) {
    auto it = counts_.find(k);
    if (it == counts_.end()) {
      counts_.emplace(k, delta);
    } else if ((it->second += delta) == 0) {
      counts_.erase(it);
    }
  }

  TrainedBpe& bpe_;
  std::unordered_map<std::string, uint32_t>& ids_;
  std::unordered_set<uint64_t>& merged_;
  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> counts_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where_;
  Heap heap_;
  std::vector<uint32_t> out_;
  std::vector<long> newpos_;
  std::vector<uint64_t> touched_;
};

// The learned merges as the tokenizer's BPE model, which segments the second stage's pre-tokens
// exactly as the written tokenizer will. Special tokens stay out: they never reach the model.
tok::BpeModel stage1_model(const TrainedBpe& bpe) {
  tok::TokenMap vocab;
  for (size_t id = bpe.n_specials; id < bpe.vocab.size(); ++id) {
    vocab.emplace(tok::map_byte_level(bpe.vocab[id]), int32_t(id));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(bpe.merges.size());
  for (const auto& m : bpe.merges) {
    merges.emplace_back(tok::map_byte_level(bpe.vocab[m[0]]), tok::map_byte_level(bpe.vocab[m[1]]));
  }
  tok::BpeOptions options;
  options.byte_level = true;
  tok::BpeModel model;
  model.build(vocab, merges, std::move(options), "trainer stage 1");
  return model;
}

}  // namespace

TrainedBpe train(const TrainOptions& opt) {
  const size_t k = opt.specials.size();
  {
    std::unordered_set<std::string> uniq;
    for (const auto& s : opt.specials) {
      if (s.empty()) fail("special tokens must not be empty");
      if (!uniq.insert(s).second) fail("special token '", s, "' given twice");
    }
  }
  if (opt.vocab_size < 256 + k + 1) {
    fail("vocab size ", opt.vocab_size, " is too small: the byte alphabet needs 256 entries",
         k ? concat(" plus ", k, " special tokens") : std::string(),
         ", so the vocab size must be at least ", 256 + k + 1);
  }
  const uint64_t budget = opt.vocab_size - 256 - k;  // merges that add a token
  uint64_t transition = budget;
  if (opt.superword) {
    transition = opt.transition_merges < 0 ? budget * 9 / 10 : uint64_t(opt.transition_merges);
    if (transition > budget) {
      fail("--transition-at ", transition, " exceeds the ", budget,
           " merges a vocab size of ", opt.vocab_size, " allows");
    }
  } else if (opt.transition_merges >= 0) {
    fail("--transition-at needs --superword");
  }
  const int threads = opt.threads > 0 ? opt.threads
                                      : int(std::max(1u, std::thread::hardware_concurrency()));

  TrainedBpe bpe;
  bpe.nfc = opt.nfc;
  bpe.n_specials = k;
  bpe.pattern = opt.superword ? tok::kSuperBpePattern : tok::kGpt2Pattern;
  std::unordered_map<std::string, uint32_t> ids;
  for (const auto& s : opt.specials) bpe.vocab.push_back(s);
  for (int b = 0; b < 256; ++b) {
    ids.emplace(std::string(1, char(b)), uint32_t(bpe.vocab.size()));
    bpe.vocab.push_back(std::string(1, char(b)));
  }
  std::unordered_set<uint64_t> merged;
  TrainStats& st = bpe.stats;

  uint64_t total_bytes = 0;
  auto files = list_corpus(opt.corpus, total_bytes);
  st.corpus_bytes = total_bytes;
  if (files.empty() || total_bytes == 0) {
    fail("empty corpus: no text in ", files.empty() ? "the given paths" : "any corpus file");
  }

  auto t0 = Clock::now();
  auto counted = count_pretokens(files, total_bytes, tok::PreTokenizer::gpt2(), opt, threads,
                                 "counting words", st);
  st.seconds_counting += seconds_since(t0);
  st.distinct_stage1 = counted.size();
  if (counted.empty()) fail("empty corpus: no text in any corpus file");

  std::vector<Word> words;
  words.reserve(counted.size());
  for (auto& [text, count] : counted) {
    Word w{{}, count};
    w.sym.reserve(text.size());
    for (unsigned char ch : text) w.sym.push_back(uint32_t(k + ch));
    words.push_back(std::move(w));
  }
  counted.clear();
  counted.shrink_to_fit();

  auto t1 = Clock::now();
  MergeLearner learner(bpe, ids, merged);
  learner.set_words(std::move(words));
  bool more = true;
  {
    Progress bar(opt.progress, opt.superword ? "merging (subwords)" : "merging",
                 256 + k + transition);
    more = learner.run(opt.vocab_size, opt.superword ? transition : UINT64_MAX, opt.min_frequency,
                       bar, st.merges_stage1);
  }
  st.seconds_merging += seconds_since(t1);

  if (opt.superword && bpe.vocab.size() < opt.vocab_size) {
    // Stage 2: cross-space pre-tokens, pre-segmented by the stage-1 merges.
    auto t2 = Clock::now();
    const uint64_t invalid_once = st.invalid_utf8;  // the second pass sees the same bytes
    auto phrases = count_pretokens(files, total_bytes, tok::PreTokenizer::superbpe(), opt, threads,
                                   "counting phrases", st);
    st.invalid_utf8 = invalid_once;
    st.distinct_stage2 = phrases.size();
    const tok::BpeModel seg = stage1_model(bpe);
    std::vector<Word> pw(phrases.size());
    {
      std::atomic<size_t> next{0};
      const size_t chunk = 4096;
      auto work = [&] {
        std::vector<int32_t> ids;
        for (size_t s; (s = next.fetch_add(chunk)) < phrases.size();) {
          for (size_t i = s; i < std::min(phrases.size(), s + chunk); ++i) {
            ids.clear();
            seg.encode(phrases[i].first, ids);
            pw[i].sym.assign(ids.begin(), ids.end());
            pw[i].count = phrases[i].second;
          }
        }
      };
      std::vector<std::thread> pool;
      for (int t = 1; t < threads; ++t) pool.emplace_back(work);
      work();
      for (auto& th : pool) th.join();
    }
    phrases.clear();
    phrases.shrink_to_fit();
    st.seconds_counting += seconds_since(t2);
    auto t3 = Clock::now();
    learner.set_words(std::move(pw));
    Progress bar(opt.progress, "merging (superwords)", opt.vocab_size);
    more = learner.run(opt.vocab_size, UINT64_MAX, opt.min_frequency, bar, st.merges_stage2);
    st.seconds_merging += seconds_since(t3);
  }
  st.saturated = !more && bpe.vocab.size() < opt.vocab_size;
  return bpe;
}

// ---- output -----------------------------------------------------------------------------------

namespace {

std::vector<std::string> vocab_strings(const TrainedBpe& bpe) {
  std::vector<std::string> out;
  out.reserve(bpe.vocab.size());
  std::unordered_set<std::string> seen;
  for (size_t id = 0; id < bpe.vocab.size(); ++id) {
    out.push_back(id < bpe.n_specials ? bpe.vocab[id] : tok::map_byte_level(bpe.vocab[id]));
    if (!seen.insert(out.back()).second) {
      fail("special token '", out.back(), "' has the same text as a learned token");
    }
  }
  return out;
}

}  // namespace

// Written by hand rather than through a JSON object: the vocabulary is large and its order (by
// id) is part of the byte-identical output.
std::string tokenizer_json(const TrainedBpe& bpe) {
  auto names = vocab_strings(bpe);
  std::string j;
  j += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  j += "  \"added_tokens\": [";
  for (size_t id = 0; id < bpe.n_specials; ++id) {
    j += id ? ",\n" : "\n";
    j += "    {\"id\": " + std::to_string(id) + ", \"content\": " + json_string(bpe.vocab[id]) +
         ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false,"
         " \"special\": true}";
  }
  j += bpe.n_specials ? "\n  ],\n" : "],\n";
  j += bpe.nfc ? "  \"normalizer\": {\"type\": \"NFC\"},\n" : "  \"normalizer\": null,\n";
  j += "  \"pre_tokenizer\": {\n    \"type\": \"Sequence\",\n    \"pretokenizers\": [\n";
  j += "      {\"type\": \"Split\", \"pattern\": {\"Regex\": " + json_string(bpe.pattern) +
       "}, \"behavior\": \"Isolated\", \"invert\": false},\n";
  j += "      {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
       " \"use_regex\": false}\n    ]\n  },\n";
  j += "  \"post_processor\": null,\n";
  j += "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true,"
       " \"use_regex\": true},\n";
  j += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
       "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
       "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n";
  j += "    \"vocab\": {";
  for (size_t id = 0; id < names.size(); ++id) {
    j += id ? ",\n      " : "\n      ";
    j += json_string(names[id]) + ": " + std::to_string(id);
  }
  j += "\n    },\n    \"merges\": [";
  for (size_t r = 0; r < bpe.merges.size(); ++r) {
    j += r ? ",\n      [" : "\n      [";
    j += json_string(names[bpe.merges[r][0]]) + ", " + json_string(names[bpe.merges[r][1]]) + "]";
  }
  j += bpe.merges.empty() ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n";
  return j;
}

void write_tokenizer_files(const TrainedBpe& bpe, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("cannot create output directory ", out_dir, ": ", ec.message());
  auto write = [&](const std::string& name, const std::string& data) {
    fs::path p = fs::path(out_dir) / name;
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot write ", p.string(), ": ", std::strerror(errno));
    out.write(data.data(), std::streamsize(data.size()));
    if (!out) fail("cannot write ", p.string());
  };
  auto names = vocab_strings(bpe);
  write("tokenizer.json", tokenizer_json(bpe));
  std::string vocab = "{";
  for (size_t id = 0; id < names.size(); ++id) {
    vocab += (id ? ", " : "") + json_string(names[id]) + ": " + std::to_string(id);
  }
  write("vocab.json", vocab + "}\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& m : bpe.merges) merges += names[m[0]] + " " + names[m[1]] + "\n";
  write("merges.txt", merges);
}

}  // namespace kexa::bpe
