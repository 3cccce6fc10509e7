// `kexa convert` back ends: Hugging Face folder -> GGUF (llama.cpp's names and keys) and
// llama2.c checkpoint -> EXAONE 3.x Hugging Face folder.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "formats/tensor.h"

namespace kexa::cli {

struct ConvertOptions {
  std::optional<DType> out_type;  // F32/F16/BF16; empty keeps each tensor's source type
  std::string tokenizer;          // llama2.c tokenizer.bin (llama2.c sources only)
  std::string name;               // general.name; default: the source folder's name
};

// Writes `dst` (a .gguf file). Throws kexa::Error naming the file/tensor/key on any problem. An
// exaone4_5 folder gives two files, as llama.cpp's converter does: the text tower (architecture
// exaone4) at `dst` and the vision tower at mmproj_path_for(dst).
void convert_hf_to_gguf(const std::string& src_dir, const std::string& dst, const ConvertOptions& opt);
// "<folder of dst>/mmproj-<file name of dst>", the name kexa looks for beside a text GGUF.
std::string mmproj_path_for(const std::string& dst);

// Writes the folder `dst_dir` (created if missing): config.json, model.safetensors and, with a
// tokenizer, tokenizer.json + tokenizer_config.json + special_tokens_map.json.
void convert_llama2c_to_hf(const std::string& src, const std::string& dst_dir, const ConvertOptions& opt);

// The argument loop `kexa convert` and `kexa quantize` share. "-h" / "--help" prints usage and
// returns false (the command exits 0). A flag goes to `option(flag, value)`: value(name) takes the
// next argument (failing "<cmd>: <name> needs a value"); `option` returns false for a flag it does
// not know (usage, then "<cmd>: unknown option '<flag>'"). Other arguments fill `positional`, at most
// max_positional of them (usage, then "<cmd>: unexpected argument '<a>'").
using ArgValue = std::function<std::string(const char* name)>;
bool walk_args(int argc, char** argv, const char* cmd, void (*usage)(), size_t max_positional,
               const std::function<bool(const std::string& flag, const ArgValue& value)>& option,
               std::vector<std::string>& positional);

}  // namespace kexa::cli
