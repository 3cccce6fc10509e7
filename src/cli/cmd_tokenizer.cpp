// kexa tokenizer train | stats | encode: train byte-level BPE / SuperBPE vocabularies and measure
// tokenizers on text.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/arg_cursor.h"
#include "cli/commands.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"
#include "util/error.h"
#include "util/read_file.h"
#include "util/utf8.h"

namespace kexa::cli {

namespace {

constexpr const char* kUsage =
    "usage:\n"
    "  kexa tokenizer train --corpus FILE|DIR... --vocab-size N --out DIR\n"
    "        [--superword [--transition-at M|P%]] [--normalizer nfc|none]\n"
    "        [--special TOKEN...] [--threads N] [--min-frequency N] [--max-pretokens N] [--quiet]\n"
    "      Byte-level BPE; --superword adds the SuperBPE stage: the first M merges (default 90%\n"
    "      of the merge budget) use the word-bounded GPT-2 regex, the rest K-EXAONE's\n"
    "      cross-space regex. Writes tokenizer.json, vocab.json, merges.txt. Stops early (with a\n"
    "      warning) when no pair occurs --min-frequency times (default 2). --max-pretokens\n"
    "      (default 4194304) bounds the distinct pre-tokens kept in memory; rarer ones are pruned.\n"
    "  kexa tokenizer stats -m PATH --file F... [--json]\n"
    "      Tokens, bytes/token, words/token and share of multi-word tokens per file.\n"
    "  kexa tokenizer encode -m PATH --file F [--lines]\n"
    "      Token ids (space-separated; one line per input line with --lines), without BOS/EOS;\n"
    "      invalid UTF-8 is read as U+FFFD first.\n"
    "  PATH: a tokenizer.json, or a directory with tokenizer.json or vocab.json + merges.txt.\n";

uint64_t parse_count(const std::string& flag, const std::string& v) {
  size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || v[0] == '-') {
    fail(flag, " expects a non-negative integer, got '", v, "'");
  }
  return n;
}

int train_main(int argc, char** argv) {
  bpe::TrainOptions opt;
  opt.progress = isatty(2);
  std::string out_dir, transition;
  bool have_vocab = false;
  for (ArgCursor arg(argc, argv); arg.next();) {
    const std::string& a = arg.arg();
    if (arg.is({"--corpus"})) {
      for (auto& v : arg.values()) opt.corpus.push_back(v);
    } else if (arg.is({"--special"})) {
      for (auto& v : arg.values()) opt.specials.push_back(v);
    } else if (arg.is({"--vocab-size"})) {
      opt.vocab_size = parse_count(a, arg.value());
      have_vocab = true;
    } else if (arg.is({"--superword"})) {
      opt.superword = true;
    } else if (arg.is({"--transition-at"})) {
      transition = arg.value();
    } else if (arg.is({"--normalizer"})) {
      std::string v = arg.value();
      if (v == "nfc" || v == "NFC") opt.nfc = true;
      else if (v == "none") opt.nfc = false;
      else fail("--normalizer expects nfc or none, got '", v, "'");
    } else if (arg.is({"--threads"})) {
      opt.threads = int(parse_count(a, arg.value()));
    } else if (arg.is({"--min-frequency"})) {
      opt.min_frequency = parse_count(a, arg.value());
    } else if (arg.is({"--max-pretokens"})) {
      opt.max_pretokens = parse_count(a, arg.value());
      if (opt.max_pretokens < 2) fail("--max-pretokens must be at least 2");
    } else if (arg.is({"--quiet"})) {
      opt.progress = false;
    } else if (arg.is({"--out"})) {
      out_dir = arg.value();
    } else {
      return arg.help_or_unknown("tokenizer train: unknown option '", kUsage);
    }
  }
  if (opt.corpus.empty()) fail("tokenizer train: --corpus is required");
  if (!have_vocab) fail("tokenizer train: --vocab-size is required");
  if (out_dir.empty()) fail("tokenizer train: --out is required");
  if (!transition.empty()) {
    if (!opt.superword) fail("--transition-at needs --superword");
    if (transition.back() == '%') {
      uint64_t pct = parse_count("--transition-at", transition.substr(0, transition.size() - 1));
      if (pct > 100) fail("--transition-at ", transition, " is over 100%");
      size_t fixed = 256 + opt.specials.size();
      uint64_t budget = opt.vocab_size > fixed ? opt.vocab_size - fixed : 0;
      opt.transition_merges = int64_t(budget * pct / 100);
    } else {
      opt.transition_merges = int64_t(parse_count("--transition-at", transition));
    }
  }
  auto bpe = bpe::train(opt);
  bpe::write_tokenizer_files(bpe, out_dir);
  const auto& s = bpe.stats;
  std::fprintf(stderr,
               "trained %s: vocab %zu (%zu specials), merges %llu word-bounded + %llu "
               "cross-space; corpus %llu bytes, %llu + %llu distinct pre-tokens (%llu pruned); "
               "counting %.2f s, merging %.2f s -> %s\n",
               opt.superword ? "SuperBPE" : "BPE", bpe.vocab.size(), bpe.n_specials,
               (unsigned long long)s.merges_stage1, (unsigned long long)s.merges_stage2,
               (unsigned long long)s.corpus_bytes, (unsigned long long)s.distinct_stage1,
               (unsigned long long)s.distinct_stage2, (unsigned long long)s.pruned,
               s.seconds_counting, s.seconds_merging, out_dir.c_str());
  if (s.invalid_utf8) {
    std::fprintf(stderr, "warning: %llu invalid UTF-8 sequences were read as U+FFFD\n",
                 (unsigned long long)s.invalid_utf8);
  }
  if (s.saturated) {
    std::fprintf(stderr,
                 "warning: the corpus saturated at %zu tokens: no pair occurs %llu times or "
                 "more (asked for %zu; lower --min-frequency or add text)\n",
                 bpe.vocab.size(), (unsigned long long)opt.min_frequency, opt.vocab_size);
  }
  return 0;
}

// stats and encode read text files (--file) with the tokenizer of -m.
auto open_tokenizer(const char* command, const std::string& model, bool have_files) {
  if (model.empty() || !have_files) fail(command, ": -m and --file are required");
  return Engine::open_tokenizer(model);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int stats_main(int argc, char** argv) {
  std::string model;
  std::vector<std::string> files;
  bool json = false;
  for (ArgCursor arg(argc, argv); arg.next();) {
    if (arg.is({"-m", "--model"})) {
      model = arg.value();
    } else if (arg.is({"--file"})) {
      for (auto& v : arg.values()) files.push_back(v);
    } else if (arg.is({"--json"})) {
      json = true;
    } else {
      arg.unknown("tokenizer stats: unknown option '", kUsage);
    }
  }
  // Measured with the engine's tokenizer, so any vocabulary kexa runs (GGUF, EXAONE 3.x digit
  // splitting, ...) can be compared, not only the ones this trainer writes.
  auto tok = open_tokenizer("tokenizer stats", model, !files.empty());
  if (!json) {
    std::printf("%-40s %10s %10s %8s %8s %10s\n", "file", "bytes", "tokens", "B/tok",
                "words/tok", "multiword");
  }
  for (const auto& f : files) {
    std::string text = read_file(f);
    // Line by line (each with its newline): batches encode in parallel, and the counts match an
    // HF encodeBatch over the same lines.
    std::vector<std::string> lines;
    for (size_t start = 0; start < text.size();) {
      size_t nl = text.find('\n', start);
      size_t end = nl == std::string::npos ? text.size() : nl + 1;
      lines.emplace_back(text, start, end - start);
      start = end;
    }
    std::vector<int32_t> ids;
    for (auto& line_ids : tok->encode_batch(lines, false, true)) {
      ids.insert(ids.end(), line_ids.begin(), line_ids.end());
    }
    uint64_t words = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!is_space(text[i]) && (i == 0 || is_space(text[i - 1]))) ++words;
    }
    uint64_t multi = 0;
    for (int32_t id : ids) {
      const std::string t = tok->token_piece(id);
      size_t b = 0, e = t.size();
      while (b < e && is_space(t[b])) ++b;
      while (e > b && is_space(t[e - 1])) --e;
      for (size_t i = b; i < e; ++i) {
        if (is_space(t[i])) {
          ++multi;
          break;
        }
      }
    }
    double n = double(std::max<size_t>(ids.size(), 1));
    if (json) {
      std::string name;
      for (char c : f) {
        if (c == '"' || c == '\\') name += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) name += c;
      }
      std::printf(
          "{\"file\":\"%s\",\"bytes\":%zu,\"tokens\":%zu,\"bytes_per_token\":%.4f,"
          "\"words_per_token\":%.4f,\"multiword_share\":%.4f}\n",
          name.c_str(), text.size(), ids.size(), double(text.size()) / n, double(words) / n,
          double(multi) / n);
    } else {
      std::printf("%-40s %10zu %10zu %8.3f %8.3f %9.2f%%\n", f.c_str(), text.size(), ids.size(),
                  double(text.size()) / n, double(words) / n, 100.0 * double(multi) / n);
    }
  }
  return 0;
}

int encode_main(int argc, char** argv) {
  std::string model, file;
  bool lines = false;
  for (ArgCursor arg(argc, argv); arg.next();) {
    // A flag without its value is an unknown option here (as it always was for this command).
    if (arg.is({"-m", "--model", "--file"}) && arg.has_value()) {
      (arg.is({"--file"}) ? file : model) = arg.value();
    } else if (arg.is({"--lines"})) {
      lines = true;
    } else {
      arg.unknown("tokenizer encode: unknown option '", kUsage);
    }
  }
  auto tok = open_tokenizer("tokenizer encode", model, !file.empty());
  const std::string clean = sanitize_utf8(read_file(file));
  std::string out;
  auto emit = [&](std::string_view t) {
    const std::vector<int32_t> ids = tok->encode(t, false, true);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ' ';
      out += std::to_string(ids[i]);
    }
    out += '\n';
  };
  if (lines) {
    size_t start = 0;
    while (start < clean.size()) {
      size_t nl = clean.find('\n', start);
      size_t end = nl == std::string::npos ? clean.size() : nl;
      emit(std::string_view(clean).substr(start, end - start));
      start = end + 1;
    }
  } else {
    emit(clean);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

int tokenizer_main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string sub = argv[1];
  if (sub == "train") return train_main(argc - 1, argv + 1);
  if (sub == "stats") return stats_main(argc - 1, argv + 1);
  if (sub == "encode") return encode_main(argc - 1, argv + 1);
  fail("kexa tokenizer: unknown subcommand '", sub, "'\n", kUsage);
}

}  // namespace kexa::cli
