// kexa tokenize: text -> token ids with the model's own tokenizer.
#include <cstdio>
#include <cstring>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/json_string.h"
#include "util/thread_pool.h"
#include "util/utf8.h"

namespace kexa::cli {

namespace {

constexpr const char* kUsage =
    "usage: kexa tokenize -m PATH (--text T | --file F) [--lines] [--pieces] [--count] [--no-special]\n"
    "  -m PATH        model folder, tokenizer folder, tokenizer.json or .gguf\n"
    "  --text T       text to encode          --file F   read the text from F ('-' = stdin)\n"
    "  --lines        encode each line on its own; one output line of ids per input line\n"
    "  --pieces       print 'id<TAB>piece' per token (piece JSON-escaped; with --lines, a blank line after each)\n"
    "  --count        print only the number of tokens\n"
    "  --no-special   no BOS/EOS and special tokens in the text are plain text\n"
    "  --type T       model type for slow tokenizer files without config.json (exaone, exaone4, exaone_moe)\n"
    "  --threads N    threads for --lines (default: all CPUs)   --time  report encode MB/s on stderr\n"
    "  --jsonl        with --lines: every input line is a JSON string (texts with newlines)\n"
    "  --check-roundtrip  also check decode(encode(x)) == x (without BOS/EOS); failures on stderr, exit 3\n";

void warn_invalid(std::string_view text, long line) {
  const size_t bad = tok::first_invalid_utf8(text);
  if (bad == std::string_view::npos) return;
  if (line >= 0)
    std::fprintf(stderr, "kexa tokenize: warning: line %ld: invalid UTF-8 at byte offset %zu (encoded as raw bytes)\n", line, bad);
  else
    std::fprintf(stderr, "kexa tokenize: warning: invalid UTF-8 at byte offset %zu (encoded as raw bytes)\n", bad);
}

void print_ids(const Tokenizer& t, const std::vector<int32_t>& ids, bool pieces, bool count, std::string& out) {
  if (count) {
    out += std::to_string(ids.size());
    out += '\n';
    return;
  }
  if (pieces) {
    for (int32_t id : ids) {
      out += std::to_string(id);
      out += '\t';
      append_json_string(out, sanitize_utf8(t.token_piece(id)));
      out += '\n';
    }
    return;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
}

}  // namespace

int tokenize_main(int argc, char** argv) {
  std::string model, text, file, type;
  bool have_text = false, lines = false, pieces = false, count = false, no_special = false;
  bool jsonl = false, roundtrip = false, timing = false;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) fail("kexa tokenize: ", name, " needs a value");
      return argv[++i];
    };
    if (a == "-m" || a == "--model") model = value("-m");
    else if (a.rfind("--model=", 0) == 0) model = a.substr(8);
    else if (a == "--text") text = value("--text"), have_text = true;
    else if (a == "--file") file = value("--file");
    else if (a == "--type") type = value("--type");
    else if (a == "--lines") lines = true;
    else if (a == "--pieces") pieces = true;
    else if (a == "--count") count = true;
    else if (a == "--no-special") no_special = true;
    else if (a == "--jsonl") jsonl = lines = true;
    else if (a == "--check-roundtrip") roundtrip = true;
    else if (a == "--time") timing = true;
    else if (a == "--threads") threads = std::stoi(value("--threads"));
    else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "kexa tokenize: unknown argument '%s'\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (model.empty() || have_text == !file.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (!file.empty()) {
    std::ostringstream ss;
    if (file == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in(file, std::ios::binary);
      if (!in) fail(file, ": cannot open file");
      ss << in.rdbuf();
    }
    text = ss.str();
  }
  auto tokenizer = Engine::open_tokenizer(model, type);
  const bool add_special = !no_special, parse_special = !no_special;
  std::string out;
  if (lines) {
    std::vector<std::string> items;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      std::string line = text.substr(pos, nl - pos);
      if (jsonl) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_string())
          fail(file.empty() ? "--text" : file, ":", items.size() + 1, ": --jsonl line is not a JSON string");
        line = j.get<std::string>();
      }
      items.push_back(std::move(line));
      pos = nl + 1;
    }
    for (size_t i = 0; i < items.size(); ++i) warn_invalid(items[i], long(i + 1));
    ThreadPool pool(threads);
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    auto all = tokenizer->encode_batch(items, add_special, parse_special, &pool);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu_secs = double(std::clock() - c0) / CLOCKS_PER_SEC;
    if (timing) {
      size_t bytes = 0, n_tokens = 0;
      for (const auto& it : items) bytes += it.size();
      for (const auto& ids : all) n_tokens += ids.size();
      std::fprintf(stderr, "kexa tokenize: %zu texts, %zu bytes, %zu tokens in %.3f s: %.2f MB/s with %d threads (%.2f MB per CPU-second)\n",
                   items.size(), bytes, n_tokens, secs, bytes / 1e6 / secs, pool.size(), bytes / 1e6 / cpu_secs);
    }
    for (const auto& ids : all) {
      print_ids(*tokenizer, ids, pieces, count, out);
      if (pieces && !count) out += '\n';  // a blank line ends each input line's pieces
    }
    if (roundtrip) {
      size_t bad = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        const auto& ids = add_special ? tokenizer->encode(items[i], false, parse_special) : all[i];
        if (tokenizer->decode(ids) == items[i]) continue;
        if (++bad <= 5) std::fprintf(stderr, "kexa tokenize: line %zu: decode(encode(x)) != x\n", i + 1);
      }
      std::fprintf(stderr, "kexa tokenize: roundtrip: %zu texts, %zu failures\n", items.size(), bad);
      std::fwrite(out.data(), 1, out.size(), stdout);
      return bad ? 3 : 0;
    }
  } else {
    warn_invalid(text, -1);
    print_ids(*tokenizer, tokenizer->encode(text, add_special, parse_special), pieces, count, out);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace kexa::cli
