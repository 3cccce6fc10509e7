#!/usr/bin/env bash
# EXAONE 4.5 images against llama.cpp's multimodal library (libmtmd, projector exaone4_5) on a
# seeded tiny EXAONE 4.5 (make_tiny_exaone.py --exaone4_5-mtp: 64-layer exaone4 text tower, vision
# tower with grouped KV heads, window attention and full-attention blocks), as a Hugging Face
# folder and as the GGUF pair `kexa convert` writes (text GGUF + mmproj-<name>.gguf):
#   * preprocessing: resized size and image token count equal llama.cpp's for 13 sizes (tiny,
#     extreme aspect ratios, over max_pixels); for the test pictures (tests/data/images, decoded by
#     llama.cpp's stb_image and handed to kexa as raw RGB) the normalised pixels are bit-identical;
#   * image embeddings (the merger's rows): kexa within 1e-3 x max|value| of llama.cpp, HF folder
#     and GGUF pair identical, and kexa within 1e-5 of an independent float64 NumPy reading of the
#     tower (vision_reference.py);
#   * greedy generation, 64 ids with one and with two images: llama.cpp (vision_oracle over
#     libmtmd, on kexa's GGUF pair) = kexa HF folder (LocalGeneration) = kexa GGUF pair with the
#     mmproj found beside it (Scheduler) = with --mmproj given; the prompt's token count (image
#     tokens included) equals llama.cpp's positions;
#   * MTP with a picture: greedy ids identical with --mtp 0, 2 and 3 and equal to llama.cpp's, drafts
#     accepted (HF folder and GGUF pair);
#   * `kexa run --image` = `kexa serve` + the openai SDK (vision_server.mjs, whole and streamed),
#     whose usage.prompt_tokens counts the image tokens; the web UI (vision_browser.mjs, headless
#     Chromium) sends an attached picture and shows the reply.
# The oracle is a test-side program (vision_oracle.cpp) compiled here against llama.cpp's libmtmd
# (see below for which build). Under sanitizers the generation part runs kexa only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KEXA_BUILD:-build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
KEXA="$BUILD/kexa"
PROBE="$BUILD/kexa_vision_probe"
PY=/usr/bin/python3
SHARED="${KEXA_SHARED:-$ROOT/../shared}"
IMAGES="$ROOT/tests/data/images"

[[ -x "$KEXA" && -x "$PROBE" ]] || { echo "vision: $KEXA or $PROBE not built" >&2; exit 1; }
# The oracle: LLAMA_CPP_DIR when given (a llama.cpp tree built with `--target mtmd`), else libmtmd
# compiled from node-llama-cpp's bundled source against its prebuilt llama/ggml libraries
# (lib/build_mtmd.sh, kept between runs in a folder named after the bundle).
if [[ -n "${LLAMA_CPP_DIR:-}" ]]; then
  LL="$LLAMA_CPP_DIR"
else
  bundle="$ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  [[ -f "$bundle" ]] || { echo "FAIL vision: no $bundle (npm install)"; exit 1; }
  LL="${TMPDIR:-/tmp}/kexa-mtmd-$(stat -c %s-%Y "$bundle")"
  "$ROOT/tests/conformance/lib/build_mtmd.sh" "$LL" || { echo "FAIL vision: building llama.cpp's libmtmd failed"; exit 1; }
  export KEXA_GGML_BACKENDS="$LL/build/bin"
fi
if [[ ! -e "$LL/build/bin/libmtmd.so" || ! -e "$LL/tools/mtmd/mtmd.h" ]]; then
  echo "FAIL vision: llama.cpp's multimodal library is not built in $LL (cmake --build $LL/build --target mtmd)"
  exit 1
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kexa-vision.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"

failed=0
fail() { echo "FAIL $*"; failed=1; }

g++ -std=c++17 -O1 -o oracle "$ROOT/tests/conformance/vision_oracle.cpp" -I"$LL/include" -I"$LL/ggml/include" \
  -I"$LL/tools/mtmd" -L"$LL/build/bin" -lmtmd -lllama -lggml -lggml-base -Wl,-rpath,"$LL/build/bin"
"$PY" "$ROOT/tests/conformance/make_tiny_exaone.py" --exaone4_5-mtp "$SHARED/fixtures" . >/dev/null
HF=tiny-exaone4_5
"$KEXA" convert "$HF" tiny.gguf 2>convert.log || { cat convert.log; exit 1; }
[[ -f mmproj-tiny.gguf ]] || { fail "kexa convert wrote no mmproj-tiny.gguf"; cat convert.log; exit 1; }

# --- preprocessing sizes
SIZES="1x1 5x3 28x28 27x29 64x48 300x90 2000x20 20x2000 1000x1000 4000x3000 513x257 56x1000 223x224"
./oracle sizes tiny.gguf mmproj-tiny.gguf $SIZES >sizes.llama 2>oracle.log || { cat oracle.log; exit 1; }
"$PROBE" sizes "$HF" $SIZES >sizes.hf
"$PROBE" sizes tiny.gguf $SIZES >sizes.gguf
if cmp -s sizes.llama sizes.hf && cmp -s sizes.llama sizes.gguf; then
  echo "ok preprocessing: $(wc -l <sizes.llama) sizes, resized size and token count equal llama.cpp's"
else
  fail "preprocessing sizes differ (size, llama.cpp | kexa HF | kexa GGUF)"; paste sizes.llama sizes.hf sizes.gguf
fi

# --- pixels and embeddings per test picture
declare -A IMAGE_TOKENS
for n in small-64x48 landscape-200x120 wide-330x60 tall-90x250; do
  png="$IMAGES/$n.png"
  read -r tokens w h < <(./oracle embed tiny.gguf mmproj-tiny.gguf "$png" "o-$n" 2>>oracle.log) || { cat oracle.log; exit 1; }
  "$PROBE" preprocess "$HF" "o-$n.rgb" "k-$n.pre" >/dev/null
  cmp -s "o-$n.pre" "k-$n.pre" || fail "$n: normalised pixels differ from llama.cpp's"
  "$PROBE" embed "$HF" "o-$n.rgb" "k-$n.emb" >/dev/null
  "$PROBE" embed tiny.gguf "o-$n.rgb" "g-$n.emb" >/dev/null
  cmp -s "k-$n.emb" "g-$n.emb" || fail "$n: embeddings of the HF folder and the GGUF pair differ"
  vs_llama=$("$PY" - "o-$n.emb" "k-$n.emb" <<'EOF'
import sys
import numpy as np
a, b = (np.fromfile(f, np.float32) for f in sys.argv[1:3])
print(f"{np.abs(a - b).max() / np.abs(a).max():.3g}" if a.size == b.size else f"size {b.size} != {a.size}")
EOF
)
  vs_ref=$("$PY" "$ROOT/tests/conformance/vision_reference.py" "$HF" "o-$n.pre" "$w" "$h" "k-$n.emb")
  awk -v x="$vs_llama" 'BEGIN { exit !(x + 0 == x && x <= 1e-3) }' || fail "$n: embeddings differ from llama.cpp's by $vs_llama of max"
  awk -v x="$vs_ref" 'BEGIN { exit !(x + 0 == x && x <= 1e-5) }' || fail "$n: embeddings differ from the float64 reference by $vs_ref of max"
  IMAGE_TOKENS[$n]=$tokens
  echo "ok $n: ${w}x${h}, $tokens image tokens, pixels identical, embeddings vs llama.cpp $vs_llama, vs float64 reference $vs_ref, HF = GGUF"
done

# --- greedy generation with one and two images
gen() {  # label, images...
  local label="$1"; shift
  local rgbs=() pngs=()
  for n in "$@"; do rgbs+=("o-$n.rgb"); pngs+=("$IMAGES/$n.png"); done
  "$PROBE" generate "$HF" 64 "prompt-$label.txt" "${rgbs[@]}" >"hf-$label.ids" 2>"hf-$label.err" || { cat "hf-$label.err"; return 1; }
  "$PROBE" generate tiny.gguf 64 "prompt-g-$label.txt" --scheduler "${rgbs[@]}" >"gguf-$label.ids" 2>"gguf-$label.err"
  "$PROBE" generate tiny.gguf 64 /dev/null --mmproj mmproj-tiny.gguf "${rgbs[@]}" >"gguf-m-$label.ids" 2>/dev/null
  cmp -s "hf-$label.ids" "gguf-$label.ids" || fail "$label: GGUF pair (scheduler) differs from the HF folder"
  cmp -s "hf-$label.ids" "gguf-m-$label.ids" || fail "$label: GGUF pair with --mmproj differs from the HF folder"
  cmp -s "prompt-$label.txt" "prompt-g-$label.txt" || fail "$label: prompts of the HF folder and the GGUF differ"
  [[ $(wc -w <"hf-$label.ids") -eq 64 ]] || fail "$label: expected 64 ids"
  local kexa_n; kexa_n=$(sed -n 's/.*prompt tokens \([0-9]*\).*/\1/p' "hf-$label.err")
  if [[ -n "${KEXA_SANITIZED:-}" ]]; then
    echo "ok $label: 64 ids, HF = GGUF pair ($kexa_n prompt tokens; llama.cpp not run under sanitizers)"
    return 0
  fi
  ./oracle generate tiny.gguf mmproj-tiny.gguf "prompt-$label.txt" 64 "${pngs[@]}" >"llama-$label.ids" 2>"llama-$label.err" ||
    { cat "llama-$label.err"; return 1; }
  local llama_n; llama_n=$(sed -n 's/.*prompt positions \([0-9]*\).*/\1/p' "llama-$label.err")
  [[ "$kexa_n" == "$llama_n" ]] || fail "$label: kexa's prompt has $kexa_n tokens, llama.cpp's $llama_n positions"
  if cmp -s "hf-$label.ids" "llama-$label.ids"; then
    echo "ok $label: 64 greedy ids identical to llama.cpp (HF, GGUF pair found beside, --mmproj; $kexa_n prompt tokens)"
  else
    fail "$label: ids differ from llama.cpp"; head -c 300 "hf-$label.ids"; echo; head -c 300 "llama-$label.ids"; echo
  fi
}
gen one-image landscape-200x120 || fail "one image: generation failed"
gen two-images wide-330x60 tall-90x250 || fail "two images: generation failed"

# --- MTP with a picture: the text tower's MTP layer drafts over the prompt's image rows too (its row
# before each image position takes that position's image row); drafts are accepted (the tiny
# model's MTP layer is built so), and greedy output does not change: 256 ids identical with --mtp 0,
# 2 and 3 (HF folder and GGUF pair; 64 under sanitizers), their first 64 equal to llama.cpp's
PNG="$IMAGES/landscape-200x120.png"
MTP_N=256; [[ -n "${KEXA_SANITIZED:-}" ]] && MTP_N=64
ref=llama-one-image.ids; [[ -f $ref ]] || ref=hf-one-image.ids  # llama.cpp's (not run under sanitizers)
for m in "$HF" tiny.gguf; do
  for d in 0 2 3; do
    "$KEXA" run -m "$m" --image "$PNG" -p "Describe the picture." -n "$MTP_N" --ignore-eos --print-ids --mtp "$d" \
      >mtp$d.ids 2>mtp.err || { cat mtp.err; fail "$m: --image --mtp $d failed"; continue; }
    [[ $d -eq 0 ]] && continue
    read -r accepted drafted < <(sed -n 's/.*acceptance [0-9.]*% (\([0-9]*\) of \([0-9]*\) drafts).*/\1 \2/p' mtp.err) || true
    [[ ${drafted:-0} -gt 0 && ${accepted:-0} -gt 0 ]] ||
      fail "$m: --image --mtp $d: ${accepted:-no} of ${drafted:-no} drafts accepted (expected both > 0)"
    cmp -s mtp0.ids mtp$d.ids || fail "$m: --image: greedy ids differ between --mtp 0 and --mtp $d"
    echo "  $m --image --mtp $d: $accepted of $drafted drafts accepted"
  done
  [[ $(wc -w <mtp0.ids) -eq $MTP_N ]] || fail "$m: --image: expected $MTP_N ids"
  [[ "$(cut -d' ' -f1-64 mtp2.ids)" == "$(cat $ref)" ]] || fail "$m: --image --mtp 2: the first 64 ids differ from $ref"
done
echo "ok mtp: $MTP_N greedy ids with a picture identical with --mtp 0, 2 and 3, drafts accepted, first 64 = $ref (HF folder and GGUF pair)"

# --- the command line and the server: `kexa run --image` (MTP on by default) and `kexa serve` with
# the openai SDK
"$KEXA" run -m "$HF" --image "$PNG" -p "Describe the picture." -n 24 >run.txt 2>run.err || { cat run.err; fail "kexa run --image failed"; }
"$KEXA" serve -m "$HF" --port 0 --parallel 2 --ctx 512 --threads 2 >serve.log 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; rm -rf "$TMP"' EXIT
base=""
for _ in $(seq 600); do
  base=$(grep -o 'http://127.0.0.1:[0-9]*' serve.log | head -1 || true)
  [[ -n "$base" ]] && curl -sf "$base/health" >/dev/null && break
  kill -0 $serve_pid 2>/dev/null || break
  sleep 0.2
done
if [[ -n "$base" ]]; then
  node "$ROOT/tests/conformance/vision_server.mjs" "$base" "$PNG" run.txt "${IMAGE_TOKENS[landscape-200x120]}" ||
    fail "the server's reply to a picture differs from kexa run --image (or its usage is wrong)"
  node "$ROOT/tests/conformance/vision_browser.mjs" "$base" "$PNG" || fail "the web UI did not show a reply to a picture"
else
  cat serve.log; fail "kexa serve did not start"
fi
kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null || true

# --- named errors
"$PY" - mmproj-tiny.gguf other.gguf <<'EOF'
import sys
b = open(sys.argv[1], "rb").read()
v = b"\x09" + b"\0" * 7 + b"exaone4_5"  # the projector type's GGUF string (length, bytes)
assert b.count(v) == 1
open(sys.argv[2], "wb").write(b.replace(v, v[:8] + b"qwen2vl_x"))
EOF
if "$PROBE" sizes tiny.gguf --mmproj other.gguf 1x1 >/dev/null 2>err.txt; then fail "an mmproj of another projector type loaded"
else grep -q 'projector type is "qwen2vl_x"' err.txt || { fail "wrong error for another projector type:"; cat err.txt; }; fi
if "$PROBE" sizes "$HF" --mmproj mmproj-tiny.gguf 1x1 >/dev/null 2>err.txt; then fail "--mmproj with an HF folder was accepted"
else grep -q 'carries its own vision tower' err.txt || { fail "wrong error for --mmproj with an HF folder:"; cat err.txt; }; fi

# A folder whose config disagrees with its vision tensors, and one without a vision_config.
variant() {  # name, python expression editing the config dict c
  mkdir "$1"
  for f in "$HF"/*; do [[ "$(basename "$f")" == config.json ]] || ln -s "$PWD/$f" "$1/"; done
  "$PY" -c "import json, sys; c = json.load(open('$HF/config.json')); $2; json.dump(c, open('$1/config.json', 'w'))"
}
variant misshapen "c['vision_config']['intermediate_size'] = 40"
if "$PROBE" sizes misshapen 1x1 >/dev/null 2>err.txt; then fail "a misshapen vision tower loaded"
else grep -q 'mlp.gate_proj.weight has shape \[48, 32\], expected \[40, 32\]' err.txt || { fail "wrong error for a misshapen tower:"; cat err.txt; }; fi
variant towerless "del c['vision_config']"
if "$PROBE" sizes towerless 1x1 >/dev/null 2>err.txt; then fail "an exaone4_5 folder without vision_config loaded"
else grep -q 'lacks "vision_config"' err.txt || { fail "wrong error for a missing tower:"; cat err.txt; }; fi
echo "ok named errors: mmproj of another projector type, --mmproj with an HF folder, misshapen tower, missing tower"

[[ $failed -eq 0 ]] || exit 1
echo "vision: preprocessing, embeddings and greedy generation with images match llama.cpp"
