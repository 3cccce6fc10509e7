// PLACEHOLDER: replaced by the owner of `kexa tokenize`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int tokenize_main(int, char**) {
  std::fprintf(stderr, "kexa tokenize: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
