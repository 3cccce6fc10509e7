#!/usr/bin/env bash
# kexa serve end to end on loopback: the official openai SDK (also for the document store,
# grounded answers and SQL endpoints), the API key on every route, logit_bias and n > 1, pictures
# in chat messages (data: URLs, and fetched URLs on a second server with --image-fetch), a load test with disconnecting clients, text-to-SQL
# running beside streaming chats (all progress, each as alone), and the web UI in
# headless Chromium (Playwright). The model is a tiny random EXAONE 4.0
# with the real EXAONE 4.0 tokenizer and chat template; tool prompts are checked against Python
# Jinja2 (tests/jinja_reference.py).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/conformance/lib/tiny_model.sh
KEXA="$PWD/${KEXA_BUILD:-build}/kexa"
SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
work=$(mktemp -d)
server_pid=""
images_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$images_pid" ] && kill "$images_pid" 2>/dev/null
  wait 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT

model="$work/model"
make_tiny_model "$model" "$SHARED" || exit 1

# The reference rendering of the tools conversation the SDK test sends.
cat > "$work/req.jsonl" <<EOF
{"model": "$model", "messages": [{"role": "user", "content": "서울 날씨 어때?"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "날씨를 알려줍니다 (weather)", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}}], "kwargs": {}, "add_generation_prompt": true}
EOF
/usr/bin/python3 tests/jinja_reference.py --batch "$work/req.jsonl" > "$work/ref.jsonl" || exit 1
/usr/bin/python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).readline()); assert r['ok'], r; open(sys.argv[2],'w').write(r['text'])" \
  "$work/ref.jsonl" "$work/tools_prompt.txt" || exit 1

# Grounded answers and text-to-SQL: a document the SDK test uploads, a Spider database and the
# rows sqlite3 itself returns for a query (the reference for /v1/sql/query).
db="$SHARED/fixtures/spider-dev/database/singer/singer.sqlite"
cat > "$work/hangang.md" <<'EOF'
# The Han River

The Han River flows through Seoul, the capital of South Korea. Twenty-seven bridges cross the
Han River inside Seoul, and the riverside parks are popular with cyclists.

# 한강

한강은 서울을 가로질러 흐르는 강이다. 서울 안에서 스물일곱 개의 다리가 한강을 건넌다.
EOF
/usr/bin/python3 - "$db" "$work/sql_ref.json" <<'EOF' || exit 1
import json, sqlite3, sys
con = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
sql = "SELECT Name, Citizenship, Birth_Year, Net_Worth_Millions FROM singer ORDER BY Singer_ID"
cur = con.execute(sql)
json.dump({"sql": sql, "columns": [d[0] for d in cur.description], "rows": [list(r) for r in cur.fetchall()]},
          open(sys.argv[2], "w"))
EOF

# The address a server started in the background (log, pid) prints, once it has printed it and
# /health answers or the server is gone.
listening() {
  local url=""
  for _ in $(seq 300); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$1" | head -1)
    [ -n "$url" ] && curl -sf "$url/health" >/dev/null && break
    kill -0 "$2" 2>/dev/null || break
    sleep 0.2
  done
  echo "$url"
}

"$KEXA" serve -m "$model" --port 0 --api-key test-key --metrics-key test-metrics-key --parallel 8 --ctx 1024 --queue 128 \
  --threads 2 --rag-store "$work/docs.kexa" --max-document 65536 --sql-db "sqlite:$db" 2>"$work/server.log" &
server_pid=$!
base=$(listening "$work/server.log" "$server_pid")
[ -n "$base" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }

# A second server that fetches image URLs (loopback opened for the test's picture server).
"$KEXA" serve -m "$model" --port 0 --api-key test-key --parallel 1 --ctx 512 --threads 1 --image-fetch \
  --web-allow 127.0.0.1 --max-images 2 --max-image-bytes 100000 --image-fetch-timeout-ms 1500 2>"$work/images.log" &
images_pid=$!
images_base=$(listening "$work/images.log" "$images_pid")
[ -n "$images_base" ] || { echo "image server did not start"; cat "$work/images.log"; exit 1; }

rc=0
echo "pictures in chat messages"
node tests/conformance/server_images.mjs "$base" test-key "$images_base" || rc=1
kill "$images_pid"; wait "$images_pid" 2>/dev/null; images_pid=""
echo "openai SDK"
node tests/conformance/server_openai.mjs "$base" test-key "$work/tools_prompt.txt" "$work" || rc=1
echo "access control, logit_bias, n"
node tests/conformance/server_contract.mjs "$base" test-key test-metrics-key || rc=1
echo "load"
node tests/conformance/server_load.mjs "$base" test-key test-metrics-key || rc=1
echo "text-to-SQL beside streaming chats"
node tests/conformance/server_sql_concurrent.mjs "$base" test-key || rc=1
if [ -x /usr/bin/chromium ]; then
  echo "browser"
  shots="${KEXA_TEST_OUTPUT:-$PWD/${KEXA_BUILD:-build}/test-output}"
  mkdir -p "$shots"
  node tests/conformance/server_browser.mjs "$base" test-key "$shots/web-ui.png" "$work/sql_ref.json" || rc=1
else
  echo "browser: /usr/bin/chromium missing (scripts/setup installs it)"; rc=1
fi
kill "$server_pid"
wait "$server_pid"
status=$?
# SIGTERM ends the server cleanly (exit 0), which under ASan also means no leak report.
[ $status -eq 0 ] || { echo "server exited with $status"; tail -20 "$work/server.log"; rc=1; }
exit $rc
