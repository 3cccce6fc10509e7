#!/usr/bin/env bash
# Bounded fuzzing of the libFuzzer targets of a KEXA_FUZZ build (.ci/run builds them in build-fuzz).
#   tests/fuzz/run.sh [TARGET...]     default: every tests/fuzz/fuzz_*.cpp, each of which must be built
# KEXA_FUZZ_BUILD: the build folder (default build-fuzz); KEXA_FUZZ_SECONDS: time per target (default 30).
# A target that finds anything (ASan report, UBSan report -- the fuzz build has
# -fno-sanitize-recover=undefined --, crash, timeout, out-of-memory) or is missing fails the run; the
# fuzzer's report is printed and its reproducer kept as BUILD/NAME-crash-* (or -timeout-, -oom-).
set -uo pipefail
cd "$(dirname "$0")/../.."
build="${KEXA_FUZZ_BUILD:-build-fuzz}"
seconds="${KEXA_FUZZ_SECONDS:-30}"
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets"; exit 1; }

failed=()
for name in "${targets[@]}"; do
  bin="$build/$name"
  if [ ! -x "$bin" ]; then
    echo "--- $name: FAILED ($bin not built)"; failed+=("$name"); continue
  fi
  corpus="tests/fuzz/corpus/${name#fuzz_}"
  mkdir -p "$build/corpus-$name"
  log="$build/$name.log"
  echo "--- $name ($seconds s)"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/$name-" \
    "$build/corpus-$name" $( [ -d "$corpus" ] && echo "$corpus" ) >"$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    # The report is in the last lines: sanitizer summary, libFuzzer's reason, the artifact written.
    tail -40 "$log"
    echo "--- $name: FAILED (exit $rc; full log $log)"; failed+=("$name")
  else
    tail -2 "$log"
  fi
done
echo "fuzz: ${#targets[@]} targets, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
