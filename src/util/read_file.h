// Whole-file reads for the command-line tools.
#pragma once

#include <string>

namespace kexa {

// The file's bytes. Throws kexa::Error "cannot read PATH: REASON" (or "read error in PATH").
std::string read_file(const std::string& path);

}  // namespace kexa
