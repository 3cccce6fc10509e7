// Small whole-file readers for the JSON / text files that sit beside model weights
// (config.json, tokenizer.json, merges.txt, chat_template.jinja).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kexa {

// True when `path` names a regular file (not a folder, not missing).
bool regular_file_exists(const std::string& path);
// The file's bytes; throws kexa::Error "<path>: cannot open" when it cannot be read.
std::string read_text_file(const std::string& path);
// The parsed file; throws kexa::Error "<path>: cannot open" or "<path>: bad JSON: ...".
nlohmann::json read_json_file(const std::string& path);

}  // namespace kexa
