#!/usr/bin/env bash
# The oracle library of vision.sh: llama.cpp's multimodal library (libmtmd, the code behind
# llama-mtmd-cli) compiled from the source node-llama-cpp bundles
# (node_modules/node-llama-cpp/llama/gitRelease.bundle) and linked against the llama and ggml
# libraries node-llama-cpp ships prebuilt from that same source. Only mtmd's own files compile
# (about a minute on 2 cores), not all of llama.cpp, which keeps it inside CI's time. Nothing of
# llama.cpp enters the repository: the clone and the build live in DIR.
#
#   tests/conformance/lib/build_mtmd.sh DIR
# Leaves a llama.cpp-shaped folder: DIR/include, DIR/ggml/include, DIR/tools/mtmd (headers) and
# DIR/build/bin (libmtmd.so, libllama.so, libggml.so, libggml-base.so and the CPU backends the
# prebuilt libggml loads at run time: pass DIR/build/bin to ggml_backend_load_all_from_path).
# A DIR that already holds libmtmd.so is kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
dir="${1:?usage: build_mtmd.sh DIR}"
[[ -e "$dir/build/bin/libmtmd.so" ]] && exit 0
bundle="$root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
prebuilt="$root/node_modules/@node-llama-cpp/linux-$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')/bins/linux-$(uname -m | sed 's/x86_64/x64/;s/aarch64/arm64/')"
[[ -f "$bundle" ]] || { echo "build_mtmd: no llama.cpp source bundle at $bundle (npm install)" >&2; exit 1; }
[[ -d "$prebuilt" ]] || { echo "build_mtmd: no prebuilt llama.cpp libraries at $prebuilt (npm install)" >&2; exit 1; }
llama_lib=$(cd "$prebuilt" && ls libllama.v*.so 2>/dev/null | head -1)
ggml_lib=$(cd "$prebuilt" && ls libggml.v*.so 2>/dev/null | head -1)
[[ -n "$llama_lib" && -n "$ggml_lib" && -f "$prebuilt/libggml-base.so" ]] ||
  { echo "build_mtmd: $prebuilt lacks libllama / libggml / libggml-base" >&2; exit 1; }

rm -rf "$dir"
git -c advice.detachedHead=false clone --quiet "$bundle" "$dir"
bin="$dir/build/bin" obj="$dir/build/obj"
mkdir -p "$bin" "$obj"
for f in "$prebuilt"/*.so; do ln -s "$f" "$bin/"; done
ln -s "$prebuilt/$llama_lib" "$bin/libllama.so"
ln -s "$prebuilt/$ggml_lib" "$bin/libggml.so"

# The library's sources as its own CMakeLists lists them, plus the hash helpers it links.
mtmd="$dir/tools/mtmd"
sources=$(sed -n '/add_library(mtmd/,/^ *)/p' "$mtmd/CMakeLists.txt" | grep -oE '[A-Za-z0-9_./-]+\.cpp' | sed "s|^|$mtmd/|")
[[ -n "$sources" ]] || { echo "build_mtmd: no sources found in $mtmd/CMakeLists.txt" >&2; exit 1; }
flags=(-std=c++17 -O1 -fPIC -w -DLLAMA_SHARED -DLLAMA_BUILD -I"$dir/include" -I"$dir/ggml/include"
       -I"$mtmd" -I"$dir/vendor")
export obj
export flags_str="${flags[*]}"
printf '%s\n' $sources "$dir/vendor/hash/hash.cpp" |
  xargs -P "$(nproc)" -I{} bash -c 'g++ $flags_str -c "$1" -o "$obj/$(echo "$1" | md5sum | cut -c1-12).o"' _ {}
# As llama.cpp's vendor/hash/CMakeLists.txt: sha1.c compiles as C++, the other two as C.
g++ -x c++ -O1 -fPIC -w -I"$dir/vendor" -I"$dir/vendor/hash" -c "$dir/vendor/hash/sha1/sha1.c" -o "$obj/sha1.o"
for c in xxhash/xxhash.c sha256/sha256.c; do
  gcc -O1 -fPIC -w -I"$dir/vendor" -I"$dir/vendor/hash" -c "$dir/vendor/hash/$c" -o "$obj/$(basename "$c").o"
done
g++ -shared -o "$bin/libmtmd.so" "$obj"/*.o -L"$bin" -lllama -lggml -lggml-base -Wl,-rpath,"$bin" -lpthread
