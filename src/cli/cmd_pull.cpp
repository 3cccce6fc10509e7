#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "hub/hub.h"
#include "util/error.h"

namespace kexa::cli {

int pull_main(int argc, char** argv) {
  CLI::App app{"Download a model from the Hugging Face Hub into the shared Hugging Face cache.\n"
               "NAME is ORG/REPO (safetensors: config, tokenizer and weights) or ORG/REPO:QUANT\n"
               "(the GGUF of that quantization, all parts of a split GGUF). Prints the local path."};
  app.name("kexa pull");
  std::string name;
  hub::Options opt = hub::options_from_env();
  std::string token, endpoint;
  app.add_option("name", name, "ORG/REPO[:QUANT]")->required();
  app.add_option("--revision", opt.revision, "branch, tag or commit (default main)")->type_name("REV");
  app.add_option("--include", opt.include, "also fetch files matching this glob (repeatable)")->type_name("GLOB");
  app.add_option("--token", token, "access token for gated or private repos (default $HF_TOKEN)")->type_name("TOKEN");
  app.add_option("--endpoint", endpoint, "hub URL or mirror (default $HF_ENDPOINT or huggingface.co)")
      ->type_name("URL");
  app.add_option("--parallel", opt.parallel, "concurrent downloads")->check(CLI::Range(1, 32));
  app.add_flag("--offline", opt.offline, "use only the cache (as HF_HUB_OFFLINE=1)");
  app.add_flag("!--no-progress", opt.progress, "no progress bar");
  if (std::optional<int> rc = parse_args(app, argc, argv)) return *rc;
  if (!token.empty()) opt.token = token;
  if (!endpoint.empty()) {
    opt.endpoint = endpoint;
    while (!opt.endpoint.empty() && opt.endpoint.back() == '/') opt.endpoint.pop_back();
  }
  std::optional<hub::ModelRef> ref = hub::parse_model_ref(name);
  if (!ref) fail("'", name, "' is not a model name of the form ORG/REPO or ORG/REPO:QUANT");
  // A file-size limit must surface as a write error (EFBIG), not kill the process mid-file.
  std::signal(SIGXFSZ, SIG_IGN);
  std::printf("%s\n", hub::pull(*ref, opt).c_str());
  return 0;
}

}  // namespace kexa::cli
