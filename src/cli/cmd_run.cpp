// PLACEHOLDER: replaced by the owner of `kexa run`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int run_main(int, char**) {
  std::fprintf(stderr, "kexa run: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
