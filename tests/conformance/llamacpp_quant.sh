#!/usr/bin/env bash
# Quantized inference against llama.cpp (npm node-llama-cpp) on a tiny random EXAONE 4.0 model
# whose widths are multiples of 256 (so the K-quants apply) and whose logits are peaked.
#
# Models: Q8_0 and Q4_K_M files written by llama.cpp's llama-quantize (tests/data/quant/tiny-*.gguf,
# made once from this script's seeded F32 model, see tests/data/quant/README.md) and the same
# recipes written by `kexa quantize` from the F32 GGUF, plus its BF16 (every width a whole number of
# 16 x 32 tiles, so on AMX CPUs prefill runs on the tile kernel). On each, kexa and llama.cpp must give the
# same 64 greedy tokens with max |dlogit| <= 1e-2 x max |logit|, and kexa's mean KL divergence from
# its own F32 output over 512 teacher-forced positions must be within 5% of llama.cpp's.
# Everything runs on the default CPU path and again with KEXA_ISA=avx2 (the AVX2+FMA kernels, forced on an AVX-512 machine).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${KEXA_BUILD:-build}
KEXA="$ROOT/$BUILD/kexa"
MJS="$ROOT/tests/conformance/llamacpp_quant.mjs"
DATA="$ROOT/tests/data/quant"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$ROOT"

source tests/conformance/lib/quant_model.sh
make_quant_model "$T/hf" "$T/f32.gguf" "$T/seq512.txt"
VOCAB=512
PROMPT="1 300 17 42 99 250 7 480"
fail=0

for ty in Q8_0 Q4_K_M BF16; do
  "$KEXA" quantize "$T/f32.gguf" "$T/kexa-$ty.gguf" --type "$ty" 2>"$T/quantize.log" ||
    { cat "$T/quantize.log"; exit 1; }
done

# llama.cpp references (independent of the kexa CPU path).
node "$MJS" score "$T/f32.gguf" "$T/seq512.txt" "$T/llama-f32.bin"
declare -A MODEL=(
  [llama-quantize-Q8_0]="$DATA/tiny-Q8_0.gguf" [llama-quantize-Q4_K_M]="$DATA/tiny-Q4_K_M.gguf"
  [kexa-quantize-Q8_0]="$T/kexa-Q8_0.gguf" [kexa-quantize-Q4_K_M]="$T/kexa-Q4_K_M.gguf"
  [kexa-quantize-BF16]="$T/kexa-BF16.gguf")
for name in "${!MODEL[@]}"; do
  node "$MJS" ref "${MODEL[$name]}" "$PROMPT" 64 "$T/ref-$name"
  node "$MJS" score "${MODEL[$name]}" "$T/seq512.txt" "$T/llama-$name.bin"
done

paths=("")
# The AVX2 rerun doubles the kexa time; the sanitizer build checks the default path only.
if grep -q avx2 /proc/cpuinfo && [ "${KEXA_SANITIZED:-0}" != 1 ]; then paths+=(avx2); fi
for cpu in "${paths[@]}"; do
  label=${cpu:-default}
  echo "kexa CPU path: $label"
  KEXA_ISA=$cpu "$KEXA" run -m "$T/f32.gguf" --tokens "$(cat "$T/seq512.txt")" -n 1 \
    --dump-logits "$T/kexa-f32.bin" >/dev/null 2>&1
  for name in $(printf '%s\n' "${!MODEL[@]}" | sort); do
    KEXA_ISA=$cpu "$KEXA" run -m "${MODEL[$name]}" --tokens "$PROMPT" -n 64 --ignore-eos --print-ids \
      --dump-logits "$T/kexa-$name.bin" >"$T/kexa-$name.ids" 2>"$T/run.log" || { cat "$T/run.log"; fail=1; continue; }
    node "$MJS" compare "$T/ref-$name" "$T/kexa-$name.ids" "$T/kexa-$name.bin" $VOCAB "$name [$label]" || fail=1
    KEXA_ISA=$cpu "$KEXA" run -m "${MODEL[$name]}" --tokens "$(cat "$T/seq512.txt")" -n 1 \
      --dump-logits "$T/kexa-kl-$name.bin" >/dev/null 2>"$T/run.log" || { cat "$T/run.log"; fail=1; continue; }
    node "$MJS" kl "$T/llama-f32.bin" "$T/llama-$name.bin" "$T/kexa-f32.bin" "$T/kexa-kl-$name.bin" \
      $VOCAB "$name [$label]" || fail=1
  done
done

if [ $fail -ne 0 ]; then
  echo "llamacpp_quant: FAILED"
  exit 1
fi
echo "llamacpp_quant: all checks passed"
