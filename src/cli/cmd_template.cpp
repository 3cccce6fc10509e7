// PLACEHOLDER: replaced by the owner of `kexa template`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int template_main(int, char**) {
  std::fprintf(stderr, "kexa template: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
