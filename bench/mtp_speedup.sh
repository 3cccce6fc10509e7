#!/usr/bin/env bash
# MTP speculative decoding speed-up (issue 6): decode tok/s of `kexa run --mtp 0` against
# `--mtp 2` on K-EXAONE-shaped F32 models (24 layers, 16 experts top-4 + a shared expert, LLLG
# sliding layers, one MTP layer) whose MTP block agrees with the main model often
# (tools/make_test_model.py --mtp-model exaone-moe-mtp-bench, seeded). Decode there reads
# about 0.9 GB of weights per token, so it is weight-bandwidth bound. `--models exaone4-mtp-bench`
# measures the dense EXAONE 4.5 text-tower shape instead (16 post-norm layers, hidden 1024, one
# post-norm sliding RoPE MTP layer; 0.8 GB of F32 weights per token). Runs alternate between the
# two modes so load from other processes hits both alike; every run checks that both modes give
# the same greedy tokens; prints every run and the medians.
#
#   bench/mtp_speedup.sh [--runs 5] [--n 64] [--threads 2] [--dtype f32|bf16] [--models "..."]
#
# KEXA selects the binary (default build/kexa). Models are written once to
# ${KEXA_BENCH_DIR:-/tmp/kexa-mtp-bench} (1.3 GB in F32, 0.65 GB in BF16).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEXA="${KEXA:-$ROOT/build/kexa}"
DIR="${KEXA_BENCH_DIR:-/tmp/kexa-mtp-bench}"
RUNS=5 N=64 THREADS=2 DTYPE=f32
MODELS="exaone-moe-mtp-bench"
PROMPTS=("1 5 9 13 200 201 7 300 1000 2000 3000 4000 5000 6000 7000 8000" "3 77 1234 999 1500 42 4242 800")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --dtype) DTYPE="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIR"
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for model in $MODELS; do
  mdir="$DIR/$model-$DTYPE"
  [[ -f "$mdir/model.safetensors" ]] ||
    /usr/bin/python3 "$ROOT/tools/make_test_model.py" --mtp-model "$model" --dtype "$DTYPE" --seed 1 --out "$mdir" >/dev/null
  plain=() spec=() acc=() tps=() ratio=()
  for ((r = 0; r < RUNS; ++r)); do
    prompt="${PROMPTS[$((r % ${#PROMPTS[@]}))]}"
    for mode in 0 2; do
      out=$("$KEXA" run -m "$mdir" --tokens "$prompt" -n "$N" --ignore-eos --print-ids -t "$THREADS" \
        --mtp "$mode" 2>&1 >"$DIR/ids.$mode")
      tg=$(grep -o 'generated [0-9]* tok ([0-9.]* tok/s)' <<<"$out" | sed 's/.*(\([0-9.]*\) tok\/s)/\1/')
      if [[ $mode == 0 ]]; then
        plain+=("$tg")
      else
        spec+=("$tg")
        acc+=("$(grep -o 'acceptance [0-9.]*%' <<<"$out" | grep -o '[0-9.]*')")
        tps+=("$(grep -o '[0-9.]* tokens/step' <<<"$out" | grep -o '^[0-9.]*')")
        cost=$(grep -o 'verify [0-9.]* ms/step, drafting [0-9.]* ms/step' <<<"$out")
      fi
    done
    ratio+=("$(awk -v a="${spec[-1]}" -v b="${plain[-1]}" 'BEGIN { printf "%.3f", a / b }')")
    cmp -s "$DIR/ids.0" "$DIR/ids.2" || { echo "$model run $r: --mtp 2 output differs from --mtp 0" >&2; exit 1; }
    echo "$model run $r: --mtp 0 ${plain[-1]} tok/s | --mtp 2 ${spec[-1]} tok/s (${ratio[-1]}x), acceptance ${acc[-1]}%, ${tps[-1]} tokens/step, $cost (plain: $(awk -v t="${plain[-1]}" 'BEGIN { printf "%.1f", 1000 / t }') ms/token)"
  done
  mp=$(printf '%s\n' "${plain[@]}" | median)
  ms=$(printf '%s\n' "${spec[@]}" | median)
  ma=$(printf '%s\n' "${acc[@]}" | median)
  mt=$(printf '%s\n' "${tps[@]}" | median)
  echo "$model ($DTYPE) median of $RUNS: --mtp 0 $mp tok/s | --mtp 2 $ms tok/s | speed-up $(awk -v a="$ms" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')x (median of the per-run ratios $(printf '%s\n' "${ratio[@]}" | median)x) | acceptance $ma% | $mt tokens/step"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
