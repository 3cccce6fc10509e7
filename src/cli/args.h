// Command-line parsing shared by the subcommands (CLI11).
#pragma once

#include <functional>
#include <optional>

#include <CLI/CLI.hpp>

namespace kexa::cli {

// Parses a subcommand's arguments. Returns the exit code when the command ends here: 0 after
// --help, 2 for a usage error (CLI11 has printed it). `validate` runs after parsing for checks
// across options and may throw CLI::ParseError (e.g. CLI::ValidationError).
inline std::optional<int> parse_args(CLI::App& app, int argc, char** argv, const std::function<void()>& validate = {}) {
  try {
    app.parse(argc, argv);
    if (validate) validate();
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace kexa::cli
