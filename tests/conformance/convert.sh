#!/usr/bin/env bash
# `kexa convert` checked by llama.cpp (node-llama-cpp), independently of kexa's forward pass:
#  1. stories260K (llama2.c) -> exaone HF folder -> GGUF; llama.cpp loads it and its greedy
#     generation from BOS reproduces expected_greedy_output.txt (validates names, metadata, the
#     Q/K rotate-half permutation and the converted tokenizer, decoded by llama.cpp and by HF
#     tokenizers).
#  2. tiny random exaone (llama3 rope), exaone4 (64 layers, LLLG window, llama3 rope) and
#     exaone_moe (dense + MoE layers, MTP block) HF folders with the real EXAONE tokenizer files ->
#     GGUF; llama.cpp loads them and decodes, metadata / shapes / rope_freqs.weight equal values
#     computed independently in make_tiny_exaone.py, and text round-trips through the tokenizer.
# usage: tests/conformance/convert.sh [OUT_DIR]   (OUT_DIR keeps the converted files; default temp)
set -euo pipefail
cd "$(dirname "$0")/../.."
KEXA="${KEXA_BUILD:-build}/kexa"
SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
FIX="$SHARED/fixtures"
PY=/usr/bin/python3
[ -x "$KEXA" ] || { echo "convert: $KEXA not built"; exit 1; }

if [ $# -ge 1 ]; then
  out="$1"; mkdir -p "$out"
else
  out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
fi
fails=0

# --- 1. stories260K -------------------------------------------------------------------------------
"$KEXA" convert "$FIX/tinystories-260k/stories260K.bin" "$out/stories-hf" \
  --tokenizer "$FIX/tinystories-260k/tok512.bin" >"$out/convert1.log" 2>&1 ||
  { cat "$out/convert1.log"; echo "convert: llama2.c -> HF failed"; exit 1; }
"$KEXA" convert "$out/stories-hf" "$out/stories.gguf" >"$out/convert2.log" 2>&1 ||
  { cat "$out/convert2.log"; echo "convert: HF -> GGUF failed"; exit 1; }
echo "stories260K -> $out/stories-hf -> $out/stories.gguf"
node tests/conformance/llamacpp_stories.mjs "$out/stories.gguf" "$out/stories-hf/tokenizer.json" \
  "$FIX/tinystories-260k/tok512.bin" "$FIX/tinystories-260k/expected_greedy_output.txt" 256 ||
  fails=$((fails + 1))

# --- 2. tiny exaone / exaone4 with real tokenizers -----------------------------------------------
$PY tests/conformance/make_tiny_exaone.py "$FIX" "$out" >"$out/make_tiny.log" 2>&1 ||
  { cat "$out/make_tiny.log"; echo "convert: could not build the tiny HF folders"; exit 1; }
for m in exaone exaone4 exaone4_mtp exaone_moe; do
  "$KEXA" convert "$out/tiny-$m" "$out/tiny-$m.gguf" >"$out/convert-$m.log" 2>&1 ||
    { cat "$out/convert-$m.log"; echo "  FAIL kexa convert tiny-$m"; fails=$((fails + 1)); continue; }
  node tests/conformance/llamacpp_tiny.mjs "$out/tiny-$m.gguf" "$out/tiny-$m/expected.json" ||
    fails=$((fails + 1))
done

# --- 3. bad input: named errors, non-zero exit ----------------------------------------------------
expect_error() {  # expect_error NAME TEXT SRC DST
  local log="$out/bad.log"
  if "$KEXA" convert "$3" "$4" >"$log" 2>&1; then
    echo "  FAIL $1: kexa convert succeeded"; fails=$((fails + 1))
  elif ! grep -qF -- "$2" "$log"; then
    echo "  FAIL $1: error lacks '$2':"; cat "$log"; fails=$((fails + 1))
  else
    echo "  ok   $1: $(tail -1 "$log")"
  fi
}
bad="$out/bad"; rm -rf "$bad"; mkdir -p "$bad"
cp -r "$out/tiny-exaone" "$bad/arch"
$PY -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["model_type"]="llama"; json.dump(c,open(p,"w"))' "$bad/arch/config.json"
expect_error "unknown architecture" 'unknown model_type "llama"' "$bad/arch" "$bad/x.gguf"
cp -r "$out/tiny-exaone" "$bad/layers"
$PY -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["num_layers"]=3; json.dump(c,open(p,"w"))' "$bad/layers/config.json"
expect_error "missing tensor" "missing tensor 'transformer.h.2.ln_1.weight'" "$bad/layers" "$bad/x.gguf"
cp -r "$out/tiny-exaone" "$bad/shape"
$PY -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["intermediate_size"]=48; json.dump(c,open(p,"w"))' "$bad/shape/config.json"
expect_error "shape against config" "tensor 'transformer.h.0.mlp.c_fc_0.weight' has shape [64, 32], config.json implies [48, 32]" "$bad/shape" "$bad/x.gguf"
cp -r "$out/tiny-exaone" "$bad/trunc"
truncate -s -100 "$bad/trunc/model.safetensors"
expect_error "truncated safetensors" "lie outside the data section" "$bad/trunc" "$bad/x.gguf"
head -c 100 "$FIX/tinystories-260k/stories260K.bin" >"$bad/short.bin"
expect_error "truncated llama2.c checkpoint" "has 100 bytes but the header" "$bad/short.bin" "$bad/short-hf"
[ ! -e "$bad/x.gguf" ] || { echo "  FAIL a failed conversion left $bad/x.gguf behind"; fails=$((fails + 1)); }

if [ "$fails" -ne 0 ]; then echo "convert: $fails suite(s) failed"; exit 1; fi
echo "convert: all checks passed"
