#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#if !KEXA_ENGINE_ONLY
#include "hub/hub.h"
#endif
#include "util/error.h"

namespace {

struct Command {
  const char* name;
  int (*main)(int, char**);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"run", kexa::cli::run_main, "generate text or ids from a prompt"},
#if !KEXA_ENGINE_ONLY
    {"serve", kexa::cli::serve_main, "OpenAI-compatible HTTP server with a web chat UI"},
#endif
    {"chat", kexa::cli::chat_main, "interactive chat with the model's own template"},
    {"template", kexa::cli::template_main, "render a chat template for a conversation"},
    {"tokenize", kexa::cli::tokenize_main, "encode text to token ids"},
    {"convert", kexa::cli::convert_main, "convert a checkpoint (HF folder, llama2.c) to GGUF or HF"},
    {"quantize", kexa::cli::quantize_main, "write a quantized GGUF"},
    {"tokenizer", kexa::cli::tokenizer_main, "train a BPE/SuperBPE tokenizer, or measure one"},
    {"bench", kexa::cli::bench_main, "measure prefill and decode speed"},
#if !KEXA_ENGINE_ONLY  // the engine-only build (cmake -DKEXA_APPS=OFF) has no application library
    {"pull", kexa::cli::pull_main, "download a model from the Hugging Face Hub into its cache"},
    {"rag", kexa::cli::rag_main, "document store: ingest and search (retrieval for grounded answers)"},
    {"sql", kexa::cli::sql_main, "run SQL safely against a database; schema linking"},
    {"web", kexa::cli::web_main, "web search, and answers from fetched pages with sources"},
#endif
};

// Every command accepts a Hub model name wherever it takes a model path: -m/--model values, and
// the source argument of convert and quantize. Names are resolved here, once, to cache paths.
void resolve_model_arguments(std::string_view command, std::vector<std::string>& args) {
#if KEXA_ENGINE_ONLY
  // Without the hub, model arguments are paths.
  (void)command;
  (void)args;
#else
  bool source_is_positional = command == "convert" || command == "quantize";
  bool source_seen = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "-m" || a == "--model") && i + 1 < args.size()) {
      args[i + 1] = kexa::hub::resolve_model_path(args[i + 1]);
      ++i;
    } else if (a.rfind("--model=", 0) == 0) {
      args[i] = "--model=" + kexa::hub::resolve_model_path(a.substr(8));
    } else if (source_is_positional && !source_seen && !a.empty() && a[0] != '-' &&
               (i == 1 || args[i - 1][0] != '-')) {
      args[i] = kexa::hub::resolve_model_path(a);
      source_seen = true;
    }
  }
#endif
}

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
        std::vector<std::string> args(argv + 1, argv + argc);
        if (name != "pull") resolve_model_arguments(name, args);
        std::vector<char*> arg_pointers;
        for (std::string& a : args) arg_pointers.push_back(a.data());
        arg_pointers.push_back(nullptr);
        return c.main(static_cast<int>(args.size()), arg_pointers.data());
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
