#!/usr/bin/env bash
# Dense EXAONE models vs llama.cpp (node-llama-cpp): for each preset, a seeded random-weight HF
# folder (tools/make_test_model.py) is converted to GGUF by `kexa convert`, evaluated by llama.cpp,
# and by kexa on the HF folder and on the GGUF. Requires identical 64 greedy tokens, identical top-1
# at every position and max |dlogit| <= 1e-3 x max |logit| (f32 weights, f32 KV cache). Then the
# GGUFs with f16 KV caches on both sides (kexa --cache-type f16): the same ids and top-1, and
# max |dlogit| <= 2e-3 x max |logit| (llama.cpp also rounds the queries and the attention weights
# to f16 in its f16 path, kexa keeps them f32: 0.2-1.4e-3 measured).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KEXA_BUILD:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
KEXA="$BUILD/kexa"
PY=/usr/bin/python3
PRESETS=(exaone-gqa exaone-llama3-tied exaone4-swa exaone4-global)
N=64
# 24 prompt tokens + 64 generated = 88 positions (> 80, and 11x the exaone4-swa window of 8).
PROMPT="1 5 17 99 300 41 7 260 261 262 300 301 302 44 45 46 47 48 49 50 400 401 402 403"
VOCAB=512

if [[ ! -x "$KEXA" ]]; then
  echo "llamacpp_dense: $KEXA not built" >&2
  exit 1
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kexa-llamacpp-dense.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

cd "$ROOT"
jobs=()
seed=1
for p in "${PRESETS[@]}"; do
  "$PY" tools/make_test_model.py --preset "$p" --seed "$seed" --out "$TMP/$p" >/dev/null
  "$KEXA" convert "$TMP/$p" "$TMP/$p.gguf" >/dev/null 2>"$TMP/$p.convert.log" || {
    echo "FAIL $p: kexa convert failed:"; cat "$TMP/$p.convert.log"; exit 1; }
  jobs+=("$TMP/$p.gguf:$TMP/$p.ref")
  seed=$((seed + 1))
done

node tests/conformance/llamacpp_dense.mjs ref "$PROMPT" "$N" "${jobs[@]}" >"$TMP/ref.log" 2>&1 || {
  echo "FAIL llama.cpp reference run:"; cat "$TMP/ref.log"; exit 1; }

failed=0
for p in "${PRESETS[@]}"; do
  for src in hf gguf; do
    model="$TMP/$p"
    chunk=512
    # The GGUF run prefills in chunks of 7 so chunked prefill (and, for exaone4-swa, the sliding
    # ring of W-1+chunk slots wrapping mid-chunk) is checked against llama.cpp too.
    [[ "$src" == gguf ]] && { model="$TMP/$p.gguf"; chunk=7; }
    if ! "$KEXA" run -m "$model" --tokens "$PROMPT" -n "$N" --chunk "$chunk" --ignore-eos --print-ids \
        --dump-logits "$TMP/$p.$src.bin" >"$TMP/$p.$src.ids" 2>"$TMP/$p.$src.log"; then
      echo "FAIL $p/$src: kexa run failed:"; cat "$TMP/$p.$src.log"
      failed=1
      continue
    fi
    node tests/conformance/llamacpp_dense.mjs compare "$TMP/$p.ref" "$TMP/$p.$src.ids" "$TMP/$p.$src.bin" \
      "$VOCAB" "$p/$src (chunk $chunk)" || failed=1
  done
done

jobs16=()
for p in "${PRESETS[@]}"; do jobs16+=("$TMP/$p.gguf:$TMP/$p.ref16"); done
KEXA_REF_KV=F16 node tests/conformance/llamacpp_dense.mjs ref "$PROMPT" "$N" "${jobs16[@]}" >"$TMP/ref16.log" 2>&1 || {
  echo "FAIL llama.cpp reference run (f16 KV cache):"; cat "$TMP/ref16.log"; exit 1; }
for p in "${PRESETS[@]}"; do
  if ! "$KEXA" run -m "$TMP/$p.gguf" --tokens "$PROMPT" -n "$N" --chunk 7 --cache-type f16 --ignore-eos --print-ids \
      --dump-logits "$TMP/$p.f16.bin" >"$TMP/$p.f16.ids" 2>"$TMP/$p.f16.log"; then
    echo "FAIL $p/f16: kexa run failed:"; cat "$TMP/$p.f16.log"
    failed=1
    continue
  fi
  node tests/conformance/llamacpp_dense.mjs compare "$TMP/$p.ref16" "$TMP/$p.f16.ids" "$TMP/$p.f16.bin" \
    "$VOCAB" "$p/gguf f16 KV cache (chunk 7)" 2e-3 || failed=1
done

if [[ $failed -ne 0 ]]; then
  echo "llamacpp_dense: FAILED"
  exit 1
fi
echo "llamacpp_dense: ${#PRESETS[@]} presets x {HF, GGUF, GGUF with f16 KV cache} match llama.cpp"
