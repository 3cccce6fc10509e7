// PLACEHOLDER: replaced by the owner of `kexa chat`.
#include <cstdio>
#include "cli/commands.h"
namespace kexa::cli {
int chat_main(int, char**) {
  std::fprintf(stderr, "kexa chat: not built yet\n");
  return 2;
}
}  // namespace kexa::cli
