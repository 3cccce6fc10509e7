#!/usr/bin/env bash
# K-EXAONE at real widths (issue 6, "Scale"): hidden 6144, 64/8 heads of 128, 128 experts of 2048
# (top-8) + a shared expert of 2048, dense layer 0 of 18432, vocab 153,600, LLLG window 128, with 4
# layers + the MTP layer, Q4_K (random seeded blocks: tools/make_test_model.py --shape k-exaone-4l
# --gguf-q4k, ~10 GB, written once to ${KEXA_BENCH_DIR:-/tmp/kexa-moe-scale}, outside the repo).
# Runs `kexa run --stats --mtp 0` RUNS times and prints prefill / decode tok/s, RSS and the expert
# bytes read per decoded token against all expert bytes; medians at the end. The file stays
# memory-mapped (experts are never copied), so RSS only holds the pages actually touched.
#
#   bench/moe_scale.sh [--runs 3] [--prompt-len 16] [--n 32] [--threads 2]
#
# KEXA selects the binary (default build/kexa).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEXA="${KEXA:-$ROOT/build/kexa}"
DIR="${KEXA_BENCH_DIR:-/tmp/kexa-moe-scale}"
RUNS=3 PLEN=16 N=32 THREADS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --prompt-len) PLEN="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIR"
MODEL="$DIR/k-exaone-4l-q4k.gguf"
if [[ ! -s "$MODEL" ]]; then
  /usr/bin/python3 "$ROOT/tools/make_test_model.py" --shape k-exaone-4l --seed 1 --gguf-q4k "$MODEL.tmp"
  mv "$MODEL.tmp" "$MODEL"
fi
echo "model: $MODEL ($(stat -c %s "$MODEL") bytes)"

PROMPT="$(/usr/bin/python3 -c "import random; r = random.Random(11); print(' '.join(str(r.randrange(4, 153600)) for _ in range($PLEN)))")"
pp=() tg=() rss=() peak=()
for i in $(seq 1 "$RUNS"); do
  log="$DIR/run-$i.log"
  "$KEXA" run -m "$MODEL" --tokens "$PROMPT" -n "$N" --ignore-eos --print-ids --mtp 0 --threads "$THREADS" --stats \
    >/dev/null 2>"$log"
  grep '^kexa run:' "$log"
  pp+=("$(sed -n 's/.*prompt [0-9]* tok (\([0-9.]*\) tok\/s).*/\1/p' "$log")")
  tg+=("$(sed -n 's/.*generated [0-9]* tok (\([0-9.]*\) tok\/s).*/\1/p' "$log")")
  rss+=("$(sed -n 's/.*| RSS \([0-9.]*\) MiB (peak \([0-9.]*\) MiB).*/\1/p' "$log")")
  peak+=("$(sed -n 's/.*| RSS \([0-9.]*\) MiB (peak \([0-9.]*\) MiB).*/\2/p' "$log")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "medians over $RUNS runs (prompt $PLEN, generate $N, $THREADS threads): prefill $(median "${pp[@]}") tok/s," \
  "decode $(median "${tg[@]}") tok/s, RSS $(median "${rss[@]}") MiB (peak $(median "${peak[@]}") MiB)"
