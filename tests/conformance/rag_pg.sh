#!/usr/bin/env bash
# kexa rag on PostgreSQL (the scale-out backend), against a real server started here: the same
# documents give the same search results (paths, spans, BM25 scores) as the SQLite store;
# incremental re-ingest and deletion; crash safety (SIGKILL mid-ingest leaves a store that answers,
# a re-run completes without duplicates).
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${KEXA_BUILD:-build}"
kexa="$PWD/$build/kexa"
shared="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
py=/usr/bin/python3
source tests/conformance/lib/pg_server.sh
tmp="$(mktemp -d)"
trap 'pg_stop; rm -rf "$tmp"' EXIT
# A server that cannot start is a failure, as in sql_postgres.sh: scripts/setup installs it.
if ! pg_start; then echo "rag_pg: FAIL: PostgreSQL server did not start (scripts/setup installs the Debian package 'postgresql')" >&2; exit 1; fi
trap 'pg_stop; rm -rf "$tmp"' EXIT
n_big=200
[[ "${KEXA_SANITIZED:-0}" == 1 ]] && n_big=120

$py - "$shared/fixtures/korquad-v1-dev/KorQuAD_v1.0_dev.json" "$shared/fixtures/squad-v2-dev-subset/squad-v2.0-dev-first5articles.json" "$tmp" "$n_big" <<'PY'
import json, os, sys
ko, en, tmp, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
qs = []
os.makedirs(f"{tmp}/docs", exist_ok=True); os.makedirs(f"{tmp}/big", exist_ok=True)
i = 0
for src, count in ((ko, 40), (en, 20)):
    k = 0
    for art in json.load(open(src, encoding="utf-8"))["data"]:
        for p in art["paragraphs"]:
            if k >= count: break
            open(f"{tmp}/docs/p{i:05d}.txt", "w", encoding="utf-8").write(p["context"])
            qs += [qa["question"] for qa in p["qas"][:2]]
            i += 1; k += 1
j = 0
for art in json.load(open(ko, encoding="utf-8"))["data"]:
    for p in art["paragraphs"]:
        if j < n:
            open(f"{tmp}/big/p{j:05d}.txt", "w", encoding="utf-8").write(p["context"]); j += 1
open(f"{tmp}/docs/notes.md", "w", encoding="utf-8").write("# 설치\n\n빌드는 cmake로 한다.\n\n# Usage\n\nRun the search.\n")
open(f"{tmp}/docs/t.csv", "w", encoding="utf-8").write("name,city\nKim,Seoul\nLee,Busan\n")
open(f"{tmp}/questions.txt", "w", encoding="utf-8").write("".join(q.replace("\n", " ") + "\n" for q in qs) + "Busan\n빌드\n")
PY

# The store unit tests (tests/unit/rag_test.cpp, Backends/RagStore.*) on this server: the same
# tests the SQLite backend passes, each on a fresh database.
if [[ -x "$build/kexa_apps_tests" ]]; then
  KEXA_TEST_PG_HOST="$PG_DIR" "$build/kexa_apps_tests" --gtest_filter='Backends/RagStore.*/postgres' >"$tmp/gtest.log" 2>&1 \
    || { cat "$tmp/gtest.log"; echo "rag_pg: store unit tests failed on PostgreSQL"; exit 1; }
  grep -q "PASSED.* 4 tests" "$tmp/gtest.log" || { cat "$tmp/gtest.log"; echo "rag_pg: store unit tests did not all run"; exit 1; }
  echo "rag_pg: store unit tests pass on PostgreSQL ($(grep -c '^\[       OK' "$tmp/gtest.log") tests)"
else
  echo "rag_pg: no $build/kexa_apps_tests (build it first)"; exit 1
fi

# Same data, both backends, same results.
"$kexa" rag ingest -q --store "$tmp/s.db" "$tmp/docs" >/dev/null
"$kexa" rag ingest -q --store "$PG_URI" "$tmp/docs" | tee "$tmp/out1"
grep -q "added 62," "$tmp/out1"
"$kexa" rag search --store "$tmp/s.db" --queries "$tmp/questions.txt" -k 10 >"$tmp/sqlite.jsonl"
"$kexa" rag search --store "$PG_URI" --queries "$tmp/questions.txt" -k 10 >"$tmp/pg.jsonl"
$py - "$tmp/sqlite.jsonl" "$tmp/pg.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and len(a) > 100, (len(a), len(b))
assert sum(len(x) for x in a) > 500
for i, (x, y) in enumerate(zip(a, b)):
    assert x == y, (i, x[:2], y[:2])
print(f"rag_pg: {len(a)} queries, identical rankings, spans and scores on SQLite and PostgreSQL")
PY
"$kexa" rag search --store "$PG_URI" --json -k 1 "빌드는 무엇으로 하나" | $py -c '
import json, sys; r = json.load(sys.stdin); assert r[0]["path"].endswith("notes.md") and r[0]["heading"] == "설치", r'

# Incremental: one changed file, one deleted folder member.
"$kexa" rag ingest -q --store "$PG_URI" "$tmp/docs" | grep -q "added 0, updated 0, unchanged 62"
printf "# 설치\n\n빌드는 make로 한다.\n" >"$tmp/docs/notes.md"
rm "$tmp/docs/p00001.txt"
"$kexa" rag ingest -q --prune --store "$PG_URI" "$tmp/docs" | grep -q "added 0, updated 1, unchanged 60, removed 1,"
"$kexa" rag delete --store "$PG_URI" "$tmp/docs/t.csv" | grep -q "removed 1 documents"
"$kexa" rag stats --store "$PG_URI" | grep -q "^documents 60,"
if "$kexa" rag stats --store "postgresql://postgres@/no_such_db?host=$PG_DIR" >/dev/null 2>"$tmp/err"; then echo "missing database accepted"; exit 1; fi
grep -q "no_such_db" "$tmp/err"

# Crash safety: SIGKILL during an ingest into a second database.
pg_psql -c "CREATE DATABASE crash"
crash_uri="postgresql://postgres@/crash?host=$PG_DIR"
"$kexa" rag ingest -q --store "$crash_uri" "$tmp/big" >/dev/null &
pid=$!
for _ in $(seq 1 400); do
  n=$(psql -X -At "$crash_uri" -c "select count(*) from kexa_rag_doc" 2>/dev/null || echo 0)
  [[ "$n" -ge 20 ]] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || { echo "ingest finished before it could be killed"; exit 1; }
wait "$pid" 2>/dev/null || true
"$kexa" rag stats --store "$crash_uri" | tee "$tmp/stats"
partial=$(sed -E 's/documents ([0-9]+),.*/\1/' "$tmp/stats")
[[ "$partial" -ge 20 && "$partial" -lt "$n_big" ]] || { echo "unexpected partial count $partial"; exit 1; }
"$kexa" rag search --store "$crash_uri" -k 1 "$(head -1 "$tmp/questions.txt")" | grep -q "1\. "
"$kexa" rag ingest -q --store "$crash_uri" "$tmp/big" | grep -q "unchanged $partial,"
psql -X -At "$crash_uri" -c "select count(*), count(distinct path) from kexa_rag_doc" | grep -qx "$n_big|$n_big"
psql -X -At "$crash_uri" -c "select count(*) from (select doc, \"begin\", \"end\" from kexa_rag_chunk group by 1, 2, 3 having count(*) > 1) d" | grep -qx 0
psql -X -At "$crash_uri" -c "select count(*) from kexa_rag_posting where chunk not in (select id from kexa_rag_chunk)" | grep -qx 0
echo "rag_pg: crash safety: $partial of $n_big documents after SIGKILL, re-run completed without duplicates"
echo "rag_pg: OK"
