// kexa convert SRC DST [--type f32|f16|bf16] [--tokenizer TOKENIZER.bin] [--name NAME]
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/convert.h"
#include "util/error.h"

namespace kexa::cli {

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: kexa convert SRC DST [--type f32|f16|bf16] [--tokenizer TOK.bin] [--name NAME]\n"
               "  SRC a Hugging Face folder (config.json + safetensors) -> DST a GGUF file\n"
               "      (llama.cpp architecture names exaone / exaone4; tokenizer included when present)\n"
               "  SRC a llama2.c checkpoint (e.g. stories260K.bin)      -> DST an exaone HF folder\n"
               "      (--tokenizer tok512.bin also writes tokenizer.json)\n"
               "  --type    output weight type (default: keep the source type; llama2.c is f32)\n");
}

}  // namespace

bool walk_args(int argc, char** argv, const char* cmd, void (*usage)(), size_t max_positional,
               const std::function<bool(const std::string& flag, const ArgValue& value)>& option,
               std::vector<std::string>& positional) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const ArgValue value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) fail(cmd, ": ", name, " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage();
      return false;
    } else if (!a.empty() && a[0] == '-') {
      if (!option(a, value)) {
        usage();
        fail(cmd, ": unknown option '", a, "'");
      }
    } else if (positional.size() < max_positional) {
      positional.push_back(a);
    } else {
      usage();
      fail(cmd, ": unexpected argument '", a, "'");
    }
  }
  return true;
}

int convert_main(int argc, char** argv) {
  ConvertOptions opt;
  std::vector<std::string> pos;
  const bool go = walk_args(argc, argv, "kexa convert", usage, 2, [&](const std::string& a, const ArgValue& value) {
    if (a == "--type" || a == "-t") {
      std::string t = value("--type");
      if (t == "f32" || t == "F32") {
        opt.out_type = DType::F32;
      } else if (t == "f16" || t == "F16") {
        opt.out_type = DType::F16;
      } else if (t == "bf16" || t == "BF16") {
        opt.out_type = DType::BF16;
      } else {
        fail("kexa convert: --type must be f32, f16 or bf16, got '", t, "'");
      }
    } else if (a == "--tokenizer") {
      opt.tokenizer = value("--tokenizer");
    } else if (a == "--name") {
      opt.name = value("--name");
    } else {
      return false;
    }
    return true;
  }, pos);
  if (!go) return 0;
  if (pos.size() < 2) {
    usage();
    return 2;
  }
  const std::string& src = pos[0];
  const std::string& dst = pos[1];
  struct stat st {};
  if (::stat(src.c_str(), &st) != 0) fail(src, ": ", std::strerror(errno));
  if (S_ISDIR(st.st_mode)) {
    if (!opt.tokenizer.empty()) fail("kexa convert: --tokenizer only applies to llama2.c checkpoints");
    convert_hf_to_gguf(src, dst, opt);
  } else {
    convert_llama2c_to_hf(src, dst, opt);
  }
  std::fprintf(stderr, "kexa convert: wrote %s\n", dst.c_str());
  return 0;
}

}  // namespace kexa::cli
