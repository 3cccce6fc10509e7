// PLACEHOLDER: replaced by the owner of `kexa quantize`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int quantize_main(int, char**) {
  std::fprintf(stderr, "kexa quantize: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
