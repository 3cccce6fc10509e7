#!/usr/bin/env bash
# `kexa chat` driven through piped stdin on the stories260K model (converted by `kexa convert`,
# whose HF folder carries a simple chat template): one streamed reply per input line, commands
# (/reset, /think) do not produce replies, and the process exits 0 at end of input. The first
# reply must equal `kexa run` on the same rendered prompt (greedy), so the chat loop adds nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEXA="${KEXA_BUILD:-build}/kexa"
FIX="${KEXA_SHARED:-../shared}/fixtures/tinystories-260k"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$KEXA" convert "$FIX/stories260K.bin" "$tmp/model" --tokenizer "$FIX/tok512.bin" > "$tmp/convert.log" 2>&1 ||
  { cat "$tmp/convert.log"; exit 1; }
printf 'Once upon a time\n/think on\nThe dog ran\n/reset\n\nLily was happy\n' |
  timeout 120 "$KEXA" chat -m "$tmp/model" -n 24 -t 1 > "$tmp/out.txt" 2> "$tmp/err.txt"
lines=$(wc -l < "$tmp/out.txt")
nonempty=$(grep -c . "$tmp/out.txt" || true)
expected=$("$KEXA" run -m "$tmp/model" -p $'Once upon a time\n' --no-bos -n 24 -t 1 2> /dev/null | sed 's/[[:space:]]*$//')
first=$(head -n 1 "$tmp/out.txt")
echo "chat_cli: $lines reply lines ($nonempty non-empty) for 3 messages; first reply: $first"
[ "$lines" -eq 3 ] || { echo "expected 3 replies"; cat "$tmp/err.txt"; exit 1; }
[ "$nonempty" -eq 3 ] || { echo "expected 3 non-empty replies"; exit 1; }
[ "$first" = "$expected" ] || { echo "first reply differs from kexa run: '$expected'"; exit 1; }
grep -q "conversation reset" "$tmp/err.txt" || { echo "/reset not acknowledged"; exit 1; }
echo "chat_cli: ok"
