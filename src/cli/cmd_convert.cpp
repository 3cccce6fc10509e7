// PLACEHOLDER: replaced by the owner of `kexa convert`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int convert_main(int, char**) {
  std::fprintf(stderr, "kexa convert: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
