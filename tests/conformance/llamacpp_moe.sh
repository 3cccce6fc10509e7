#!/usr/bin/env bash
# K-EXAONE (exaone_moe) vs llama.cpp (node-llama-cpp) on seeded random K-EXAONE-shaped models from
# tools/make_test_model.py:
#   exaone-moe-tiny: 6 layers (dense first), 16 experts top-4 with nonzero correction biases,
#     1 shared expert, W=8 LLLG with NoPE globals, q width 128 != hidden 64, untied.
#   exaone-moe-quant: widths of 256 so Q4_K / Q6_K apply; quantized by `kexa quantize`. Its
#     lm_head is built so the logits are peaked (head_peak / head_scale in make_test_model.py):
#     the smallest top-1/top-2 gap is ~0.14 x max|logit|, far above the ~5e-3 x max|logit| by
#     which last-bit f32 summation-order differences in Q8_0 activation rounding move the logits.
# Checks: F32 (HF folder per-expert, HF folder with transformers-5 fused experts, GGUF with
# chunked prefill): 64 greedy ids identical, top-1 identical everywhere, max |dlogit| <= 1e-3 x
# max |logit| over 88 positions. Q8_0 and Q4_K_M: identical greedy ids, max |dlogit| <= 1e-2 x
# max |logit|, and kexa's mean KL from its F32 output within 5% of llama.cpp's (256 positions).
# Zeroing the correction biases must change the output (so the biases do change the selection).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KEXA_BUILD:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
KEXA="$BUILD/kexa"
PY=/usr/bin/python3
DENSE="$ROOT/tests/conformance/llamacpp_dense.mjs"
QUANT="$ROOT/tests/conformance/llamacpp_quant.mjs"
N=64
VOCAB=512
# 24 prompt tokens + 64 generated = 88 positions (11x the window of 8).
PROMPT="1 5 17 99 300 41 7 260 261 262 300 301 302 44 45 46 47 48 49 50 400 401 402 403"

if [[ ! -x "$KEXA" ]]; then
  echo "llamacpp_moe: $KEXA not built" >&2
  exit 1
fi
T="$(mktemp -d "${TMPDIR:-/tmp}/kexa-llamacpp-moe.XXXXXX")"
trap 'rm -rf "$T"' EXIT
cd "$ROOT"

"$PY" tools/make_test_model.py --preset exaone-moe-tiny --seed 3 --out "$T/tiny" >/dev/null
"$PY" tools/make_test_model.py --preset exaone-moe-quant --seed 7 --out "$T/q" >/dev/null
# Variants of the tiny model with the same weights: transformers-5 fused experts (and the bias
# under mlp.gate.), and all correction biases zero.
"$PY" - "$T" <<'PYEOF'
import json, os, shutil, struct, sys
import numpy as np
t = sys.argv[1]
def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        base = 8 + n
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"])
    return out
def write(path, tensors):
    header, off = {}, 0
    for k, v in tensors.items():
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
        off += v.nbytes
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for v in tensors.values():
            f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
src = read(os.path.join(t, "tiny", "model.safetensors"))
cfg = json.load(open(os.path.join(t, "tiny", "config.json")))
E = cfg["num_experts"]
def variant(name, tensors):
    d = os.path.join(t, name)
    shutil.copytree(os.path.join(t, "tiny"), d)
    write(os.path.join(d, "model.safetensors"), tensors)
fused, nobias = {}, {}
for k, v in src.items():
    nobias[k] = np.zeros_like(v) if k.endswith("e_score_correction_bias") else v
    if ".mlp.experts." in k:
        continue
    fused[k.replace("mlp.e_score_correction_bias", "mlp.gate.e_score_correction_bias")] = v
for l in range(cfg["num_hidden_layers"]):
    p = f"model.layers.{l}.mlp."
    if p + "experts.0.gate_proj.weight" not in src:
        continue
    g = [src[f"{p}experts.{e}.gate_proj.weight"] for e in range(E)]
    u = [src[f"{p}experts.{e}.up_proj.weight"] for e in range(E)]
    d = [src[f"{p}experts.{e}.down_proj.weight"] for e in range(E)]
    fused[p + "experts.gate_up_proj"] = np.stack([np.concatenate([g[e], u[e]], 0) for e in range(E)])
    fused[p + "experts.down_proj"] = np.stack(d)
variant("tiny-fused", fused)
variant("tiny-nobias", nobias)
# Bad inputs: a missing expert tensor, a correction bias of the wrong length, top-k > experts.
variant("bad-missing", {k: v for k, v in src.items() if k != "model.layers.2.mlp.experts.5.up_proj.weight"})
variant("bad-bias", {k: (np.zeros(E + 1, dtype=np.float32) if k == "model.layers.1.mlp.e_score_correction_bias" else v)
                     for k, v in src.items()})
variant("bad-topk", src)
cfg_bad = dict(cfg, num_experts_per_tok=E + 1)
json.dump(cfg_bad, open(os.path.join(t, "bad-topk", "config.json"), "w"))
rng = np.random.default_rng(6)
with open(os.path.join(t, "seq256.txt"), "w") as f:
    f.write(" ".join(str(int(v)) for v in rng.integers(4, 512, 256)) + "\n")
PYEOF
echo "$PROMPT" >"$T/prompt.txt"

"$KEXA" convert "$T/tiny" "$T/tiny.gguf" --name tiny >/dev/null 2>"$T/convert.log" || { cat "$T/convert.log"; exit 1; }
"$KEXA" convert "$T/tiny-fused" "$T/tiny-fused.gguf" --name tiny >/dev/null 2>"$T/convert.log" || { cat "$T/convert.log"; exit 1; }
"$KEXA" convert "$T/q" "$T/q-f32.gguf" --name kexa-moe-quant >/dev/null 2>"$T/convert.log" || { cat "$T/convert.log"; exit 1; }
for ty in Q8_0 Q4_K_M; do
  "$KEXA" quantize "$T/q-f32.gguf" "$T/q-$ty.gguf" --type "$ty" 2>"$T/quantize.log" || { cat "$T/quantize.log"; exit 1; }
done

failed=0
# Inconsistent MoE checkpoints: a named error (the offending tensor / key) and exit status 1.
for v in "bad-missing:model.layers.2.mlp.experts.5.up_proj.weight" "bad-bias:model.layers.1.mlp.e_score_correction_bias" \
         "bad-topk:num_experts_per_tok (17)"; do
  IFS=: read -r m needle <<<"$v"
  set +e
  "$KEXA" run -m "$T/$m" --tokens "1 2 3" -n 1 >/dev/null 2>"$T/bad.log"
  rc=$?
  set -e
  if [[ $rc -eq 1 ]] && grep -qF "$needle" "$T/bad.log"; then
    echo "  ok   $m: exit 1, $(head -c 160 "$T/bad.log" | tr '\n' ' ')"
  else
    echo "  FAIL $m: exit $rc, expected 1 and '$needle' in: $(cat "$T/bad.log")"; failed=1
  fi
done
# The converter must write the same GGUF tensors from both expert layouts.
if ! cmp -s "$T/tiny.gguf" "$T/tiny-fused.gguf"; then
  echo "FAIL kexa convert: fused-expert checkpoint gives a different GGUF than per-expert tensors"
  failed=1
fi

{
  echo "ref $T/tiny.gguf $T/prompt.txt $N $T/ref-tiny"
  echo "ref $T/q-f32.gguf $T/prompt.txt $N $T/ref-q-f32"
  for ty in Q8_0 Q4_K_M; do
    echo "ref $T/q-$ty.gguf $T/prompt.txt $N $T/ref-q-$ty"
    echo "score $T/q-$ty.gguf $T/seq256.txt $T/llama-kl-$ty.bin"
  done
  echo "score $T/q-f32.gguf $T/seq256.txt $T/llama-kl-f32.bin"
} >"$T/jobs.txt"
node tests/conformance/llamacpp_moe.mjs "$T/jobs.txt" >"$T/ref.log" 2>&1 || {
  echo "FAIL llama.cpp reference run:"; cat "$T/ref.log"; exit 1; }

run() {  # run LABEL MODEL CHUNK OUT_PREFIX
  if ! "$KEXA" run -m "$2" --tokens "$PROMPT" -n "$N" --chunk "$3" --ignore-eos --print-ids \
      --dump-logits "$4.bin" >"$4.ids" 2>"$4.log"; then
    echo "FAIL $1: kexa run failed:"; cat "$4.log"; failed=1; return 1
  fi
}
# F32: HF per-expert (one chunk), HF fused, GGUF (chunks of 7, the ring wraps mid-chunk).
for v in "tiny:512:hf" "tiny-fused:512:hf-fused" "tiny.gguf:7:gguf" ; do
  IFS=: read -r m chunk label <<<"$v"
  run "exaone-moe-tiny/$label" "$T/$m" "$chunk" "$T/k-$label" &&
    node "$DENSE" compare "$T/ref-tiny" "$T/k-$label.ids" "$T/k-$label.bin" $VOCAB "exaone-moe-tiny/$label (chunk $chunk)" || failed=1
done
run "exaone-moe-quant/f32" "$T/q-f32.gguf" 512 "$T/k-q-f32" &&
  node "$DENSE" compare "$T/ref-q-f32" "$T/k-q-f32.ids" "$T/k-q-f32.bin" $VOCAB "exaone-moe-quant/f32 gguf" || failed=1

# The biases are used only to choose experts, so a different output proves they change the choice.
run "exaone-moe-tiny/nobias" "$T/tiny-nobias" 512 "$T/k-nobias" || true
"$PY" - "$T/k-hf.bin" "$T/k-nobias.bin" <<'PYEOF' || failed=1
import sys
import numpy as np
a = np.fromfile(sys.argv[1], dtype="<f4"); b = np.fromfile(sys.argv[2], dtype="<f4")
rel = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
ok = a.shape == b.shape and rel > 1e-2
print(f"  {'ok  ' if ok else 'FAIL'} zero correction biases change the logits by {rel:.3g} x max|logit| (must be > 1e-2)")
sys.exit(0 if ok else 1)
PYEOF

"$KEXA" run -m "$T/q-f32.gguf" --tokens "$(cat "$T/seq256.txt")" -n 1 --dump-logits "$T/kexa-kl-f32.bin" >/dev/null 2>&1
# kexa's Q8_0 arithmetic is llama.cpp's (activations in 8-bit blocks of 32 with an fp16 scale), but
# f32 summation order differs, so an activation can round to the other 8-bit step at isolated
# positions (a float64 re-computation of the Q8_0 arithmetic agrees with kexa to ~1e-5); one such
# flip moves the logits by ~5e-3 x max|logit|. The peaked lm_head of exaone-moe-quant keeps every
# greedy margin far above that (with a plain random lm_head the ids parted at token 27).
for ty in Q4_K_M Q8_0; do
  run "exaone-moe-quant/$ty" "$T/q-$ty.gguf" 512 "$T/k-q-$ty" &&
    node "$QUANT" compare "$T/ref-q-$ty" "$T/k-q-$ty.ids" "$T/k-q-$ty.bin" $VOCAB "exaone-moe-quant/$ty" || failed=1
  "$KEXA" run -m "$T/q-$ty.gguf" --tokens "$(cat "$T/seq256.txt")" -n 1 --dump-logits "$T/kexa-kl-$ty.bin" \
    >/dev/null 2>"$T/kl.log" || { cat "$T/kl.log"; failed=1; continue; }
  node "$QUANT" kl "$T/llama-kl-f32.bin" "$T/llama-kl-$ty.bin" "$T/kexa-kl-f32.bin" "$T/kexa-kl-$ty.bin" \
    $VOCAB "exaone-moe-quant/$ty" || failed=1
done

if [[ $failed -ne 0 ]]; then
  echo "llamacpp_moe: FAILED"
  exit 1
fi
echo "llamacpp_moe: exaone-moe F32 (HF, fused HF, GGUF), Q8_0 and Q4_K_M match llama.cpp"
