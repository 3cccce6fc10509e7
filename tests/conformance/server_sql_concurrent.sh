#!/usr/bin/env bash
# kexa serve runs text-to-SQL as ordinary scheduler jobs: one /v1/sql/query and three streaming
# chats sent at once all progress together, and each gives what it gives alone (greedy). Model:
# the tiny random EXAONE 4.0 with the real tokenizer (as server.sh); database: Spider's singer.
set -uo pipefail
cd "$(dirname "$0")/../.."
KEXA="$PWD/${KEXA_BUILD:-build}/kexa"
SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

model="$work/model"
/usr/bin/python3 tools/make_test_model.py --shape exaone4-tiny-real-vocab --seed 5 --out "$model" \
  --tokenizer-from "$SHARED/fixtures/exaone4-tokenizer" >/dev/null || exit 1
db="$SHARED/fixtures/spider-dev/database/singer/singer.sqlite"

"$KEXA" serve -m "$model" --port 0 --parallel 4 --ctx 1024 --threads 2 --sql-db "sqlite:$db" 2>"$work/server.log" &
server_pid=$!
base=""
for _ in $(seq 300); do
  base=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/server.log" | head -1)
  [ -n "$base" ] && curl -sf "$base/health" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
[ -n "$base" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }

rc=0
node tests/conformance/server_sql_concurrent.mjs "$base" || rc=1
kill "$server_pid"
wait "$server_pid" || { echo "server exited with $?"; tail -20 "$work/server.log"; rc=1; }
server_pid=""
exit $rc
