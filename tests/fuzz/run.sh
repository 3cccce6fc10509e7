#!/usr/bin/env bash
# Bounded fuzzing of the libFuzzer targets of a KEXA_FUZZ build (.ci/run builds them in build-fuzz).
#   tests/fuzz/run.sh [TARGET...]     default: every tests/fuzz/fuzz_*.cpp, each of which must be built
# KEXA_FUZZ_BUILD: the build folder (default build-fuzz); KEXA_FUZZ_SECONDS: time per target (default 30);
# KEXA_FUZZ_JOBS: targets fuzzed at once (default 1; a libFuzzer process uses one core, so CI runs
# one per core and each target still gets its full time on a core of its own).
# A target that finds anything (ASan report, UBSan report -- the fuzz build has
# -fno-sanitize-recover=undefined --, crash, timeout, out-of-memory) or is missing fails the run; the
# fuzzer's report is printed and its reproducer kept as BUILD/NAME-crash-* (or -timeout-, -oom-).
set -uo pipefail
cd "$(dirname "$0")/../.."
build="${KEXA_FUZZ_BUILD:-build-fuzz}"
seconds="${KEXA_FUZZ_SECONDS:-30}"
jobs="${KEXA_FUZZ_JOBS:-1}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: KEXA_FUZZ_JOBS must be a positive integer, got '$jobs'"; exit 1; }
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets"; exit 1; }

fuzz_one() {  # NAME: fuzzes one target and prints its summary; fails when the target is missing or found something
  local name=$1 bin="$build/$1" rc
  if [ ! -x "$bin" ]; then
    echo "--- $name: FAILED ($bin not built)"; return 1
  fi
  local corpus="tests/fuzz/corpus/${name#fuzz_}"
  mkdir -p "$build/corpus-$name"
  local log="$build/$name.log"
  echo "--- $name ($seconds s)"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/$name-" \
    "$build/corpus-$name" $( [ -d "$corpus" ] && echo "$corpus" ) >"$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    # The report is in the last lines: sanitizer summary, libFuzzer's reason, the artifact written.
    tail -40 "$log"
    echo "--- $name: FAILED (exit $rc; full log $log)"; return 1
  fi
  tail -2 "$log"
}

# Each target's summary goes to its own file and is printed in target order once it is done.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pids=(); rcs=()
for idx in "${!targets[@]}"; do
  # All targets run for the same time, so waiting for the oldest running one keeps $jobs busy.
  if [ "$idx" -ge "$jobs" ]; then wait "${pids[$((idx - jobs))]}"; rcs[$((idx - jobs))]=$?; fi
  fuzz_one "${targets[$idx]}" >"$out/$idx" 2>&1 &
  pids+=($!)
done
failed=()
for idx in "${!targets[@]}"; do
  if [ -z "${rcs[$idx]:-}" ]; then wait "${pids[$idx]}"; rcs[$idx]=$?; fi
  cat "$out/$idx"
  [ "${rcs[$idx]}" -eq 0 ] || failed+=("${targets[$idx]}")
done
echo "fuzz: ${#targets[@]} targets, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
