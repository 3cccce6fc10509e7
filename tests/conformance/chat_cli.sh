#!/usr/bin/env bash
# `kexa chat` driven through piped stdin on the stories260K model (converted by `kexa convert`,
# whose HF folder carries a simple chat template): one streamed reply per input line, commands
# (/reset, /think) do not produce replies, and the process exits 0 at end of input. The first
# reply must equal `kexa run` on the same rendered prompt (greedy), so the chat loop adds nothing.
# Pictures (`kexa run --image`, chat's /image) on this text model: a named error and exit 1 from
# run, a refused turn in chat that leaves the conversation usable.
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

# Pictures: tests/data/images (made by make_images.cpp).
IMG=tests/data/images
for case in "blocks.png|this model does not read images (1 given)" "bomb.png|bomb.png: PNG: 100000 x 100000 pixels" \
            "make_images.cpp|not an image in a supported format"; do
  file=${case%%|*} want=${case#*|}
  if "$KEXA" run -m "$tmp/model" --image "$IMG/$file" -p "hi" -n 4 -t 1 > /dev/null 2> "$tmp/img_err.txt"; then
    echo "kexa run --image $file: exit 0, expected an error"; exit 1
  fi
  grep -qF "kexa run: error: " "$tmp/img_err.txt" && grep -qF "$want" "$tmp/img_err.txt" ||
    { echo "kexa run --image $file: expected '$want'"; cat "$tmp/img_err.txt"; exit 1; }
done
printf '/image %s\n/image %s\nWhat is this?\nOnce upon a time\n' "$IMG/blocks.jpg" "$IMG/nothing.png" |
  timeout 120 "$KEXA" chat -m "$tmp/model" -n 24 -t 1 > "$tmp/img_out.txt" 2> "$tmp/img_chat_err.txt"
for want in "[image 24x16 attached to the next message]" "nothing.png: No such file" \
            "kexa chat: this model does not read images (1 given)"; do
  grep -qF "$want" "$tmp/img_chat_err.txt" || { echo "chat /image: expected '$want'"; cat "$tmp/img_chat_err.txt"; exit 1; }
done
# The refused message (and its picture) left the conversation: the next reply is the first one.
[ "$(grep -c . "$tmp/img_out.txt")" -eq 1 ] && [ "$(head -n 1 "$tmp/img_out.txt")" = "$first" ] ||
  { echo "chat after a refused picture: expected one reply equal to '$first'"; cat "$tmp/img_out.txt"; exit 1; }
echo "chat_cli: ok"
