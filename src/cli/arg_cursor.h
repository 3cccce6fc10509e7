// The hand-written option loops of `kexa template` and `kexa tokenizer` (their messages predate
// CLI11 and scripts match them): a cursor over argv[1..argc), one argument at a time.
#pragma once

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.h"

namespace kexa::cli {

class ArgCursor {
 public:
  // A flag whose value is missing fails with "<missing_prefix>FLAG needs a value<missing_suffix>".
  ArgCursor(int argc, char** argv, std::string missing_prefix = "", std::string missing_suffix = "")
      : argc_(argc), argv_(argv), prefix_(std::move(missing_prefix)), suffix_(std::move(missing_suffix)) {}

  // Moves to the next argument; false past the last one.
  bool next() {
    if (++i_ >= argc_) return false;
    arg_ = argv_[i_];
    return true;
  }
  const std::string& arg() const { return arg_; }
  bool is(std::initializer_list<std::string_view> names) const {
    for (std::string_view n : names) {
      if (arg_ == n) return true;
    }
    return false;
  }
  bool has_value() const { return i_ + 1 < argc_; }

  // The argument after the current one, which it consumes.
  std::string value() {
    if (!has_value()) missing(arg_);
    return argv_[++i_];
  }
  // The arguments after the current one up to the next --option (at least one), consumed.
  std::vector<std::string> values() {
    std::vector<std::string> out;
    while (i_ + 1 < argc_ && std::strncmp(argv_[i_ + 1], "--", 2) != 0) out.push_back(argv_[++i_]);
    if (out.empty()) missing(argv_[i_]);
    return out;
  }

  // The last branch of a loop: the current argument is unknown; fails with
  // "<prefix>ARG'\n<usage>".
  [[noreturn]] void unknown(std::string_view prefix, const char* usage) const { fail(prefix, arg_, "'\n", usage); }
  // The last branch of a loop of a command with its own help: -h/--help prints `usage` on stdout
  // and gives the exit code 0; anything else is unknown (see unknown()).
  int help_or_unknown(std::string_view prefix, const char* usage) const {
    if (!is({"-h", "--help"})) unknown(prefix, usage);
    std::fputs(usage, stdout);
    return 0;
  }

 private:
  [[noreturn]] void missing(const std::string& flag) const { fail(prefix_, flag, " needs a value", suffix_); }

  int argc_;
  char** argv_;
  int i_ = 0;
  std::string arg_;
  std::string prefix_, suffix_;
};

}  // namespace kexa::cli
