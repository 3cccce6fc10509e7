#!/usr/bin/env bash
# kexa tokenizer train vs Hugging Face tokenizers: trains small plain-BPE and SuperBPE vocabularies
# on a slice of the Korean and English fixtures, loads kexa's tokenizer.json into npm `tokenizers`
# (HF's Rust library) and checks that it encodes held-out text (plus an edge-case file) to exactly
# the ids kexa's encoders produce. Also checks byte-identical output across thread counts.
# KEXA_SANITIZED=1 uses a smaller slice.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEXA="${KEXA_BUILD:-build}/kexa"
FIX="${KEXA_SHARED:-$(cd .. && pwd)/shared}/fixtures"
MJS=tests/conformance/tokenizer_train.mjs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

slice=300000; vocab=3000
if [ "${KEXA_SANITIZED:-0}" = 1 ]; then slice=100000; vocab=1500; fi
sources=("$FIX/korean-chatbot-data/ChatbotData.csv" "$FIX/debian-faq-ko-en/debian-faq.ko.txt"
         "$FIX/wikitext-2-raw-test/wiki.test.raw" "$FIX/tinyshakespeare/input.txt"
         "$FIX/debian-faq-ko-en/debian-faq.en.txt")
mkdir -p "$tmp/corpus"
: > "$tmp/heldout.txt"
i=0
for f in "${sources[@]}"; do
  [ -r "$f" ] || { echo "missing fixture $f"; exit 1; }
  # Training: the head of each file; held out: its last 300 lines (disjoint for these sizes).
  head -c "$slice" "$f" | head -n -1 > "$tmp/corpus/$i.txt"
  tail -n 300 "$f" >> "$tmp/heldout.txt"
  i=$((i + 1))
done
# Edge cases: decomposed Hangul (NFC must compose it), Unicode spaces Oniguruma's \s knows,
# contractions in both cases, digits, marks, emoji, CRLF, tabs, runs of spaces, the special token.
printf '%s\n' \
  $'\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165 \u1112\u1161\u11ab\u1100\u116e\u11a8 caf\u0065\u0301' \
  $'a\u3000b\u00a0c\u0085d\u2028e  f\tg' \
  "I'LL don't WE'RE it's 'S" \
  '2024년 11월 23일 3.14159 x86_64 /usr/lib/ a/b' \
  $'\U0001F600\U0001F44D\U0001F3FD 한국어😀 e\u0301\u0301' \
  $'line with CR\r' \
  '   leading spaces and trailing   ' \
  'chat<|endofturn|>next <|endofturn|> end' \
  '' \
  $'\u0301 lone mark; ..., !!! ??? -- \u00bfqu\u00e9?' > "$tmp/edge.txt"
cat "$tmp/edge.txt" >> "$tmp/heldout.txt"

fail=0
check() {  # name dir
  local name="$1" dir="$2"
  node "$MJS" "$dir/tokenizer.json" "$tmp/heldout.txt" > "$tmp/$name.hf"
  "$KEXA" tokenizer encode -m "$dir" --file "$tmp/heldout.txt" --lines > "$tmp/$name.kexa"
  local lines; lines=$(wc -l < "$tmp/$name.hf")
  if cmp -s "$tmp/$name.hf" "$tmp/$name.kexa"; then
    echo "  $name: kexa tokenizer encode == HF tokenizers on $lines held-out lines"
  else
    echo "  $name: MISMATCH between HF tokenizers and kexa tokenizer encode:"
    diff "$tmp/$name.hf" "$tmp/$name.kexa" | head -5
    fail=1
  fi
  # The engine's own tokenizer (kexa tokenize) must agree too.
  if "$KEXA" tokenize -m "$dir/tokenizer.json" --file "$tmp/heldout.txt" --lines \
       > "$tmp/$name.tok" 2> "$tmp/$name.tok.err"; then
    if cmp -s "$tmp/$name.hf" "$tmp/$name.tok"; then
      echo "  $name: kexa tokenize == HF tokenizers"
    else
      echo "  $name: MISMATCH between HF tokenizers and kexa tokenize:"
      diff "$tmp/$name.hf" "$tmp/$name.tok" | head -5
      fail=1
    fi
  else
    echo "  $name: kexa tokenize failed: $(head -c 300 "$tmp/$name.tok.err")"
    fail=1
  fi
}

"$KEXA" tokenizer train --corpus "$tmp/corpus" --vocab-size "$vocab" --special '<|endofturn|>' \
  --threads 2 --quiet --out "$tmp/bpe" 2> "$tmp/bpe.log" || { cat "$tmp/bpe.log"; exit 1; }
check bpe "$tmp/bpe"

"$KEXA" tokenizer train --corpus "$tmp/corpus" --vocab-size "$vocab" --special '<|endofturn|>' \
  --superword --transition-at 80% --threads 2 --quiet --out "$tmp/super" 2> "$tmp/super.log" \
  || { cat "$tmp/super.log"; exit 1; }
check superbpe "$tmp/super"

# Determinism across thread counts, byte for byte.
"$KEXA" tokenizer train --corpus "$tmp/corpus" --vocab-size "$vocab" --special '<|endofturn|>' \
  --superword --transition-at 80% --threads 1 --quiet --out "$tmp/super1" 2> /dev/null
if cmp -s "$tmp/super/tokenizer.json" "$tmp/super1/tokenizer.json" &&
   cmp -s "$tmp/super/merges.txt" "$tmp/super1/merges.txt"; then
  echo "  determinism: --threads 1 and 2 give byte-identical files"
else
  echo "  determinism: tokenizer.json differs between --threads 1 and 2"; fail=1
fi

# SuperBPE must actually produce multi-word tokens; plain BPE must not.
share() { "$KEXA" tokenizer stats -m "$1" --file "$tmp/heldout.txt" --json |
          sed -n 's/.*"multiword_share":\([0-9.]*\).*/\1/p'; }
s_super=$(share "$tmp/super"); s_bpe=$(share "$tmp/bpe")
echo "  multi-word token share on held-out text: SuperBPE $s_super, BPE $s_bpe"
awk -v s="$s_super" -v b="$s_bpe" 'BEGIN { exit !(s > 0.01 && b == 0) }' ||
  { echo "  unexpected multi-word shares"; fail=1; }

# Bad input is a named error, not a crash.
: > "$tmp/empty.txt"
if "$KEXA" tokenizer train --corpus "$tmp/empty.txt" --vocab-size 1000 --out "$tmp/x" 2> "$tmp/err"; then
  echo "  empty corpus was accepted"; fail=1
elif ! grep -q 'empty corpus' "$tmp/err"; then echo "  empty corpus: $(cat "$tmp/err")"; fail=1; fi
if "$KEXA" tokenizer train --corpus "$tmp/corpus" --vocab-size 100 --out "$tmp/x" 2> "$tmp/err"; then
  echo "  vocab size 100 was accepted"; fail=1
elif ! grep -q 'vocab size 100' "$tmp/err"; then echo "  small vocab: $(cat "$tmp/err")"; fail=1; fi

[ "$fail" = 0 ] && echo "tokenizer_train: ok" || echo "tokenizer_train: FAILED"
exit "$fail"
