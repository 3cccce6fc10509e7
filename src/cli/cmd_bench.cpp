// PLACEHOLDER: replaced by the owner of `kexa bench`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int bench_main(int, char**) {
  std::fprintf(stderr, "kexa bench: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
