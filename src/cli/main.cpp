#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include "cli/commands.h"
#include "util/error.h"

namespace {

struct Command {
  const char* name;
  int (*main)(int, char**);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"run", kexa::cli::run_main, "generate text or ids from a prompt"},
    {"chat", kexa::cli::chat_main, "interactive chat with the model's own template"},
    {"template", kexa::cli::template_main, "render a chat template for a conversation"},
    {"tokenize", kexa::cli::tokenize_main, "encode text to token ids"},
    {"convert", kexa::cli::convert_main, "convert a checkpoint (HF folder, llama2.c) to GGUF or HF"},
    {"quantize", kexa::cli::quantize_main, "write a quantized GGUF"},
    {"tokenizer", kexa::cli::tokenizer_main, "train a BPE/SuperBPE tokenizer, or measure one"},
    {"bench", kexa::cli::bench_main, "measure prefill and decode speed"},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: kexa COMMAND [options]   (kexa COMMAND --help for details)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (name == c.name) {
      try {
        return c.main(argc - 1, argv + 1);
      } catch (const kexa::Error& e) {
        std::fprintf(stderr, "kexa %s: error: %s\n", c.name, e.what());
        return 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "kexa %s: internal error: %s\n", c.name, e.what());
        return 3;
      }
    }
  }
  std::fprintf(stderr, "kexa: unknown command '%s'\n", argv[1]);
  print_usage(stderr);
  return 2;
}
