// PLACEHOLDER: replaced by the owner of `kexa tokenizer`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int tokenizer_main(int, char**) {
  std::fprintf(stderr, "kexa tokenizer: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
