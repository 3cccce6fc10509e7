#!/usr/bin/env bash
# MTP speculative decoding: on tiny models with an MTP block (tools/make_test_model.py --mtp-model):
# K-EXAONE-shaped (pre-norm; one all-dense, one with MoE layers) and dense EXAONE 4.5 text towers
# (exaone4, post-norm; LLLG sliding layers with a sliding RoPE MTP layer, and all-global), as a
# Hugging Face folder and as the GGUF `kexa convert` writes (MTP block as blk.<L>.nextn.*):
#   * `kexa run --mtp 0` and `--mtp N` (N = 1, 2, 3 and the default 2; GGUF: 2, 3) give identical
#     greedy output over 256 tokens, and the MTP drafts are accepted often (the models are built so);
#   * llama.cpp (node-llama-cpp) loads the GGUF with its MTP block and generates the same 64
#     greedy tokens (it ignores the block; skipped under sanitizers to stay fast; not on the
#     4-layer LLLG exaone4 model, whose sliding layers llama.cpp only honours with 64 layers);
#   * sampling with MTP is reproducible for a seed; --mtp on a model without an MTP block is a
#     named error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KEXA_BUILD:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
KEXA="$BUILD/kexa"
PY=/usr/bin/python3
N=256
PROMPT="1 5 9 13 200 201 7 300"

[[ -x "$KEXA" ]] || { echo "mtp: $KEXA not built" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kexa-mtp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"

failed=0
declare -A stats2
fail() { echo "FAIL $*"; failed=1; }

# model name, minimum acceptance (%) with --mtp 2, compare with llama.cpp (1/0)
MODELS=("exaone-moe-mtp-dense 70 1" "exaone-moe-mtp-tiny 50 1" "exaone4-mtp-tiny 50 0" "exaone4-mtp-global 50 1")
for entry in "${MODELS[@]}"; do
  read -r name min_acc llama <<<"$entry"
  "$PY" tools/make_test_model.py --mtp-model "$name" --seed 3 --out "$TMP/$name" >/dev/null
  "$KEXA" convert "$TMP/$name" "$TMP/$name.gguf" >/dev/null 2>"$TMP/$name.convert.log" || {
    fail "$name: kexa convert failed:"; cat "$TMP/$name.convert.log"; continue; }
  for src in "$TMP/$name" "$TMP/$name.gguf"; do
    label="$name$([[ "$src" == *.gguf ]] && echo " (gguf)" || echo " (hf)")"
    "$KEXA" run -m "$src" --tokens "$PROMPT" -n "$N" --ignore-eos --print-ids -t 2 --mtp 0 \
      >"$TMP/plain.ids" 2>"$TMP/plain.err" || { fail "$label --mtp 0:"; cat "$TMP/plain.err"; continue; }
    drafts=(1 2 3 default); [[ "$src" == *.gguf ]] && drafts=(2 3)
    for d in "${drafts[@]}"; do
      opt=(--mtp "$d"); [[ "$d" == default ]] && opt=()
      "$KEXA" run -m "$src" --tokens "$PROMPT" -n "$N" --ignore-eos --print-ids -t 2 "${opt[@]}" \
        >"$TMP/spec.ids" 2>"$TMP/spec.err" || { fail "$label --mtp $d:"; cat "$TMP/spec.err"; continue; }
      if ! cmp -s "$TMP/plain.ids" "$TMP/spec.ids"; then
        fail "$label: --mtp $d output differs from --mtp 0"
        head -c 300 "$TMP/plain.ids"; echo; head -c 300 "$TMP/spec.ids"; echo
        continue
      fi
      [[ $(wc -w <"$TMP/spec.ids") -eq $N ]] || fail "$label --mtp $d: expected $N tokens"
      stats=$(grep -o 'mtp [0-9]* drafts/step | acceptance [0-9.]*%' "$TMP/spec.err" || true)
      [[ -n "$stats" ]] || { fail "$label --mtp $d: no MTP statistics on stderr"; cat "$TMP/spec.err"; continue; }
      acc=$(sed 's/.*acceptance \([0-9.]*\)%.*/\1/' <<<"$stats")
      if [[ "$d" == 2 || "$d" == default ]]; then
        awk -v a="$acc" -v m="$min_acc" 'BEGIN { exit !(a >= m) }' || fail "$label --mtp $d: acceptance $acc% < $min_acc%"
      fi
      echo "ok $label --mtp $d: $N tokens identical to --mtp 0, $stats"
      if [[ "$d" == 2 ]]; then stats2["$src"]="$stats"; fi
    done
  done
  if [[ "${stats2["$TMP/$name"]:-}" != "${stats2["$TMP/$name.gguf"]:-x}" ]]; then
    fail "$name: --mtp 2 statistics differ between HF (${stats2["$TMP/$name"]:-}) and GGUF (${stats2["$TMP/$name.gguf"]:-})"
  fi
  # --mtp-compare decodes again without MTP in the same process and checks the greedy tokens.
  if "$KEXA" run -m "$TMP/$name" --tokens "$PROMPT" -n 64 --ignore-eos --print-ids -t 2 --mtp 2 --mtp-compare \
      >/dev/null 2>"$TMP/cmp.err" && grep -q "mtp speed-up [0-9.]*x over plain decoding.*greedy outputs identical" "$TMP/cmp.err"; then
    echo "ok $name: $(grep -o 'mtp speed-up.*' "$TMP/cmp.err")"
  else
    fail "$name: --mtp-compare:"; cat "$TMP/cmp.err"
  fi
  # Sampling: same seed, same output; output differs from greedy (so sampling really happened).
  for run in 1 2; do
    "$KEXA" run -m "$TMP/$name" --tokens "$PROMPT" -n 64 --ignore-eos --print-ids -t 2 --mtp 2 \
      --temp 0.9 --top-k 40 --seed 11 >"$TMP/sample$run.ids" 2>"$TMP/sample.err" || { fail "$name sampling:"; cat "$TMP/sample.err"; }
  done
  cmp -s "$TMP/sample1.ids" "$TMP/sample2.ids" || fail "$name: sampling with --mtp 2 is not reproducible for a seed"
  echo "ok $name: sampling with --mtp 2 reproducible for a seed"
  # A seeded sampled run accepts or rejects each draft by its probability under the MTP block, so
  # it tells MTP blocks apart where greedy acceptance does not: the GGUF's block (its layer's window
  # and RoPE included) gives the HF folder's tokens; the folder with its MTP layer's attention
  # flipped (sliding <-> global, where the model has a window) gives others.
  sample() { "$KEXA" run -m "$1" --tokens "$PROMPT" -n 64 --ignore-eos --print-ids -t 2 --mtp 2 --temp 0.9 --top-k 40 --seed 11 2>"$TMP/sample.err"; }
  sample "$TMP/$name.gguf" >"$TMP/sample_gguf.ids" || { fail "$name gguf sampling:"; cat "$TMP/sample.err"; }
  cmp -s "$TMP/sample1.ids" "$TMP/sample_gguf.ids" || fail "$name: sampling with --mtp 2 differs between HF and GGUF"
  mkdir -p "$TMP/$name-flip"
  ln -sf "$TMP/$name/model.safetensors" "$TMP/$name-flip/model.safetensors"
  if "$PY" - "$TMP/$name/config.json" "$TMP/$name-flip/config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
lt = c.get("layer_types")
cur = c.get("mtp_layer_types") or (lt[:1] if lt else None)
if cur is None or c.get("sliding_window") is None:
    sys.exit(3)
c["mtp_layer_types"] = ["full_attention" if cur[0] == "sliding_attention" else "sliding_attention"]
json.dump(c, open(sys.argv[2], "w"))
PYEOF
  then
    sample "$TMP/$name-flip" >"$TMP/sample_flip.ids" || { fail "$name flipped sampling:"; cat "$TMP/sample.err"; }
    cmp -s "$TMP/sample1.ids" "$TMP/sample_flip.ids" && fail "$name: flipping the MTP layer's attention did not change the sampled tokens"
    echo "ok $name: seeded sampling with --mtp 2 equal from HF and GGUF, different with the MTP layer's attention flipped"
  else
    echo "ok $name: seeded sampling with --mtp 2 equal from HF and GGUF (no window to flip)"
  fi

  if [[ "${KEXA_SANITIZED:-0}" != 1 && $llama == 1 ]]; then
    node tests/conformance/llamacpp_dense.mjs ref "$PROMPT" 64 "$TMP/$name.gguf:$TMP/$name.ref" >"$TMP/ref.log" 2>&1 || {
      fail "$name: llama.cpp did not load or run the GGUF with its MTP block:"; cat "$TMP/ref.log"; continue; }
    "$KEXA" run -m "$TMP/$name.gguf" --tokens "$PROMPT" -n 64 --ignore-eos --print-ids -t 2 --mtp 2 >"$TMP/k64.ids" 2>/dev/null
    if [[ "$(tr -s ' \n' ' ' <"$TMP/$name.ref.ids" | sed 's/ *$//')" == "$(tr -s ' \n' ' ' <"$TMP/k64.ids" | sed 's/ *$//')" ]]; then
      echo "ok $name: llama.cpp loads the GGUF (MTP block ignored) and its 64 greedy tokens equal kexa --mtp 2"
    else
      fail "$name: llama.cpp and kexa --mtp 2 differ"; cat "$TMP/$name.ref.ids"; echo; cat "$TMP/k64.ids"
    fi
  fi
done

# A model without an MTP block: --mtp N is a named error, the default runs without MTP.
"$PY" tools/make_test_model.py --preset exaone4-global --seed 1 --out "$TMP/nomtp" >/dev/null
if "$KEXA" run -m "$TMP/nomtp" --tokens "$PROMPT" -n 4 --print-ids --mtp 2 >/dev/null 2>"$TMP/err"; then
  fail "--mtp 2 on a model without an MTP block succeeded"
elif ! grep -q "has no MTP block" "$TMP/err"; then
  fail "--mtp 2 without an MTP block: unexpected message:"; cat "$TMP/err"
else
  echo "ok --mtp 2 without an MTP block: $(grep -o 'has no MTP block.*' "$TMP/err")"
fi
"$KEXA" run -m "$TMP/nomtp" --tokens "$PROMPT" -n 4 --print-ids >/dev/null 2>"$TMP/err" || fail "default run of a model without MTP failed"
grep -q "drafts/step" "$TMP/err" && fail "a model without MTP reported MTP statistics"

if [[ $failed -ne 0 ]]; then
  echo "mtp: FAILED"
  exit 1
fi
echo "mtp: all checks passed"
