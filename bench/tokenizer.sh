#!/usr/bin/env bash
# Tokenizer throughput: kexa vs npm `tokenizers` (HF) on Korean and English corpora, 1 thread and
# all threads, same vocabulary (EXAONE 4.0), same texts, same run. Not a test: timings are noisy
# on a shared machine, so each cell is the median of RUNS runs (default 3).
# usage: bench/tokenizer.sh [KEXA_BUILD]   -> prints a markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-${KEXA_BUILD:-build}}"
shared="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
runs="${RUNS:-3}"
fx="$shared/fixtures"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
ncpu="$(nproc)"

# Equivalent tokenizer.json for HF, built from the slow files (as the conformance test does).
node --input-type=module - "$fx" "$tmp" <<'JS'
import fs from 'node:fs';
const [fx, tmp] = process.argv.slice(2);
const dir = `${fx}/exaone4-tokenizer`;
const vocab = JSON.parse(fs.readFileSync(`${dir}/vocab.json`, 'utf8'));
const merges = fs.readFileSync(`${dir}/merges.txt`, 'utf8').split('\n').filter((l, i) => l && !(i === 0 && l.startsWith('#version')));
const tc = JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, 'utf8'));
const added = Object.entries(tc.added_tokens_decoder).map(([id, t]) => ({ id: Number(id), ...t }));
const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
fs.writeFileSync(`${tmp}/tokenizer.json`, JSON.stringify({ version: '1.0', added_tokens: added, normalizer: null, pre_tokenizer: bl,
  post_processor: null, decoder: bl, model: { type: 'BPE', vocab, merges, byte_fallback: false, fuse_unk: false, ignore_merges: false } }));
const kq = JSON.parse(fs.readFileSync(`${fx}/korquad-v1-dev/KorQuAD_v1.0_dev.json`, 'utf8'));
const ko = [];
for (const d of kq.data) for (const p of d.paragraphs) ko.push(p.context);
for (const l of fs.readFileSync(`${fx}/debian-faq-ko-en/debian-faq.ko.txt`, 'utf8').split('\n')) ko.push(l);
const en = fs.readFileSync(`${fx}/wikitext-2-raw-test/wiki.test.raw`, 'utf8').split('\n')
  .concat(fs.readFileSync(`${fx}/debian-faq-ko-en/debian-faq.en.txt`, 'utf8').split('\n'));
const w = (name, a) => fs.writeFileSync(`${tmp}/${name}.jsonl`, a.filter((s) => s.length).map((s) => JSON.stringify(s)).join('\n') + '\n');
w('korean', ko); w('english', en);
JS

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Each run prints "wall_MBps cpu_MBps"; medians are taken per column.
kexa_runs() {  # corpus threads
  for _ in $(seq "$runs"); do
    "$build/kexa" tokenize -m "$fx/exaone4-tokenizer" --file "$tmp/$1.jsonl" --jsonl --count --threads "$2" --time 2>&1 >/dev/null |
      sed -n 's/.*: \([0-9.]*\) MB\/s.*(\([0-9.]*\) MB per CPU-second).*/\1 \2/p'
  done
}
hf_runs() {
  for _ in $(seq "$runs"); do
    RAYON_NUM_THREADS="$2" TOKENIZERS_PARALLELISM=true node bench/tokenizer_hf.mjs "$tmp/tokenizer.json" "$tmp/$1.jsonl" |
      sed -n 's/.*"mbps":\([0-9.]*\),"cpu_mbps":\([0-9.]*\).*/\1 \2/p'
  done
}
echo "| corpus | MB | threads | kexa MB/s | HF tokenizers MB/s | kexa / HF | kexa MB/CPU-s | HF MB/CPU-s | kexa / HF (CPU) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for corpus in korean english; do
  mb=$(node -e "const fs=require('fs');let b=0;for(const l of fs.readFileSync('$tmp/$corpus.jsonl','utf8').split('\n'))if(l)b+=Buffer.byteLength(JSON.parse(l));console.log((b/1e6).toFixed(2))")
  for th in 1 "$ncpu"; do
    kr=$(kexa_runs "$corpus" "$th"); hr=$(hf_runs "$corpus" "$th")
    k=$(echo "$kr" | cut -d' ' -f1 | median); kc=$(echo "$kr" | cut -d' ' -f2 | median)
    h=$(echo "$hr" | cut -d' ' -f1 | median); hc=$(echo "$hr" | cut -d' ' -f2 | median)
    printf '| %s | %s | %s | %.2f | %.2f | %.1fx | %.2f | %.2f | %.1fx |\n' "$corpus" "$mb" "$th" "$k" "$h" \
      "$(echo "$k / $h" | bc -l)" "$kc" "$hc" "$(echo "$kc / $hc" | bc -l)"
  done
done
