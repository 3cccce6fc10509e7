// Errors that name what went wrong: the file, the tensor or field, and what was expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace kexa {

// Every user-facing failure (bad file, bad config, bad request) is a kexa::Error; the CLI prints
// what() and exits non-zero, the server maps it to a 4xx. Programming errors stay asserts.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(concat(std::forward<Parts>(parts)...));
}

}  // namespace kexa
