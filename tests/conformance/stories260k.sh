#!/usr/bin/env bash
# Golden end-to-end test on a real trained model: Karpathy's stories260K (llama2.c format) is
# converted by `kexa convert` to an `exaone` Hugging Face folder and from there to a GGUF; greedy
# generation from BOS must reproduce expected_greedy_output.txt (made by llama2.c `run -t 0.0`,
# 256 steps; see the fixture's PROVENANCE.md) byte for byte from both.
#
# llama2.c's loop, reproduced here: the BOS position counts as the first of the 256 steps and every
# step prints the token it sampled, so 256 tokens are generated; generation ends early when the
# model samples BOS (id 1, llama2.c's story delimiter), which prints nothing; a final "\n" follows.
# The ids are also decoded by an independent llama2.c-style decoder over tok512.bin (below), which
# tells a model error (wrong ids) from a tokenizer/convert error (right ids, wrong text).
set -euo pipefail
cd "$(dirname "$0")/../.."
KEXA="${KEXA_BUILD:-build}/kexa"
SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
FIX="$SHARED/fixtures/tinystories-260k"
PY=/usr/bin/python3
STEPS=256

[ -x "$KEXA" ] || { echo "stories260k: $KEXA not built"; exit 1; }
[ -f "$FIX/stories260K.bin" ] || { echo "stories260k: fixture missing: $FIX"; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
check() {  # check NAME COMMAND...
  if "${@:2}"; then echo "  ok   $1"; else echo "  FAIL $1"; fails=$((fails + 1)); fi
}

"$KEXA" convert "$FIX/stories260K.bin" "$tmp/hf" --tokenizer "$FIX/tok512.bin" >"$tmp/convert1.log" 2>&1 ||
  { cat "$tmp/convert1.log"; echo "stories260k: kexa convert llama2.c -> HF failed"; exit 1; }
"$KEXA" convert "$tmp/hf" "$tmp/model.gguf" >"$tmp/convert2.log" 2>&1 ||
  { cat "$tmp/convert2.log"; echo "stories260k: kexa convert HF -> GGUF failed"; exit 1; }

# Independent decoder: llama2.c's decode() + safe_printf() over tok512.bin.
cat >"$tmp/decode.py" <<'EOF'
import struct, sys
tok_path, ids = sys.argv[1], [int(x) for x in sys.argv[2].split()]
data = open(tok_path, "rb").read()
off, vocab = 4, []
while off < len(data):
    _score, n = struct.unpack_from("<fi", data, off); off += 8
    vocab.append(data[off:off + n]); off += n
out, prev = bytearray(), 1
for t in ids:
    piece = vocab[t]
    if prev == 1 and piece.startswith(b" "):
        piece = piece[1:]
    if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
        piece = bytes([int(piece[3:5], 16)])
    # C isprint/isspace in the "C" locale: a lone byte outside them prints nothing.
    if len(piece) == 1 and not (0x20 <= piece[0] < 0x7F or piece[0] in b" \t\n\v\f\r"):
        piece = b""
    out += piece
    prev = t
sys.stdout.buffer.write(bytes(out) + b"\n")
EOF

for src in hf gguf; do
  m="$tmp/hf"; [ "$src" = gguf ] && m="$tmp/model.gguf"
  "$KEXA" run -m "$m" --tokens 1 -n "$STEPS" --print-ids --ignore-eos --threads 2 \
    >"$tmp/ids_all.$src" 2>"$tmp/run.$src.log" || { cat "$tmp/run.$src.log"; exit 1; }
  # Cut where llama2.c stops: at the first sampled BOS.
  read -r -a all <"$tmp/ids_all.$src"
  n=${#all[@]}
  for i in "${!all[@]}"; do [ "${all[$i]}" = 1 ] && { n=$i; break; }; done
  echo "${all[*]:0:$n}" >"$tmp/ids.$src"
  echo "  $src: ${#all[@]} ids generated, llama2.c would print $n"
  check "$src: $STEPS greedy steps produce $STEPS ids" [ "${#all[@]}" -eq "$STEPS" ]
  $PY "$tmp/decode.py" "$FIX/tok512.bin" "$(cat "$tmp/ids.$src")" >"$tmp/ref_decoded.$src"
  check "$src: ids decoded by llama2.c's rule = expected text (model check)" \
    cmp -s "$tmp/ref_decoded.$src" "$FIX/expected_greedy_output.txt"
  # The same run as text through kexa's tokenizer (converted from tok512.bin).
  "$KEXA" run -m "$m" --tokens 1 -n "$n" --ignore-eos --threads 2 \
    >"$tmp/text.$src" 2>"$tmp/run_text.$src.log" || { cat "$tmp/run_text.$src.log"; exit 1; }
  check "$src: kexa run text = expected_greedy_output.txt (end-to-end)" \
    cmp -s "$tmp/text.$src" "$FIX/expected_greedy_output.txt"
  if ! cmp -s "$tmp/text.$src" "$FIX/expected_greedy_output.txt"; then
    diff <(fold -w 80 "$FIX/expected_greedy_output.txt") <(fold -w 80 "$tmp/text.$src") | head -20 || true
  fi
done
check "HF and GGUF generate the same ids" cmp -s "$tmp/ids_all.hf" "$tmp/ids_all.gguf"

# F32 everywhere: the two loaders must feed the same numbers to the same forward pass.
"$KEXA" run -m "$tmp/hf" --tokens 1 -n 32 --threads 2 --ignore-eos --print-ids \
  --dump-logits "$tmp/logits.hf" >/dev/null 2>&1
"$KEXA" run -m "$tmp/model.gguf" --tokens 1 -n 32 --threads 2 --ignore-eos --print-ids \
  --dump-logits "$tmp/logits.gguf" >/dev/null 2>&1
check "--dump-logits writes 32 rows x 512 floats" [ "$(stat -c %s "$tmp/logits.hf")" -eq $((32 * 512 * 4)) ]
check "HF and GGUF logits are identical" cmp -s "$tmp/logits.hf" "$tmp/logits.gguf"

# Seeded sampling through the CLI: same seed, same text; another seed, another text.
sample() { "$KEXA" run -m "$tmp/hf" --tokens 1 -n 60 --threads 2 --temp 0.9 --top-p 0.95 --seed "$1" 2>/dev/null; }
sample 11 >"$tmp/s11a"; sample 11 >"$tmp/s11b"; sample 12 >"$tmp/s12"
check "same --seed gives the same sampled text" cmp -s "$tmp/s11a" "$tmp/s11b"
check "another --seed gives another sampled text" bash -c "! cmp -s '$tmp/s11a' '$tmp/s12'"
check "bad arguments exit 2" bash -c "'$KEXA' run -m '$tmp/hf' --tokens 1 --top-p 2 >/dev/null 2>&1; [ \$? -eq 2 ]"

if [ "$fails" -ne 0 ]; then echo "stories260k: $fails check(s) failed"; exit 1; fi
echo "stories260k: all checks passed"
