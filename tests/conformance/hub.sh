#!/usr/bin/env bash
# kexa pull and -m ORG/REPO against a local Hugging Face Hub stand-in (tests/hub_server.py) on
# loopback: cache layout, :QUANT and split GGUF selection, resume after a dropped connection,
# hash mismatch, concurrent pulls, offline mode, a cache written by another tool, and the named
# errors (404, gated, invalid quant, disk full).
set -uo pipefail
cd "$(dirname "$0")/../.."
KEXA="$PWD/${KEXA_BUILD:-build}/kexa"
SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
work=$(mktemp -d)
server_pid=""
mounted=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

passed=0; failed=0
ok() { passed=$((passed + 1)); echo "  ok   $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL $1"; }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

# --- repositories served by the stand-in -------------------------------------------------------
repos="$work/repos"
mkdir -p "$repos/test/tiny" "$repos/test/tiny-GGUF" "$repos/test/gated" "$repos/other/prewarmed"
"$KEXA" convert "$SHARED/fixtures/tinystories-260k/stories260K.bin" "$repos/test/tiny" \
  --tokenizer "$SHARED/fixtures/tinystories-260k/tok512.bin" >/dev/null 2>"$work/convert.log" \
  || { cat "$work/convert.log"; echo "hub: cannot build the test model"; exit 1; }
"$KEXA" convert "$repos/test/tiny" "$work/tiny.gguf" >/dev/null 2>>"$work/convert.log" \
  || { cat "$work/convert.log"; echo "hub: cannot build the test GGUF"; exit 1; }
cp "$work/tiny.gguf" "$repos/test/tiny-GGUF/tiny-Q8_0.gguf"
head -c 300000 /dev/urandom > "$repos/test/tiny-GGUF/tiny-Q4_K_M.gguf"
head -c 200000 /dev/urandom > "$repos/test/tiny-GGUF/tiny-F16-00001-of-00002.gguf"
head -c 100000 /dev/urandom > "$repos/test/tiny-GGUF/tiny-F16-00002-of-00002.gguf"
echo "# tiny" > "$repos/test/tiny-GGUF/README.md"
cp "$repos/test/tiny/config.json" "$repos/test/gated/"
cp "$repos/test/tiny/model.safetensors" "$repos/test/gated/"

/usr/bin/python3 tests/hub_server.py "$repos" > "$work/port" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(head -1 "$work/port")
[ -n "$port" ] || { echo "hub: stand-in server did not start"; cat "$work/server.log"; exit 1; }
export HF_ENDPOINT="http://127.0.0.1:$port"
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_CACHE HF_HUB_OFFLINE
control() { curl -s -X POST -H 'Content-Type: application/json' -d "$1" "$HF_ENDPOINT/_control" >/dev/null; }
stat_of() { curl -s "$HF_ENDPOINT/_stats" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
reset_stats() { curl -s -X POST "$HF_ENDPOINT/_reset_stats" >/dev/null; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }
st_sha=$(sha256 "$repos/test/tiny/model.safetensors")

echo "pull of a safetensors repository"
export HF_HOME="$work/home1"
path=$("$KEXA" pull test/tiny --no-progress 2>"$work/err") || cat "$work/err"
cache="$HF_HOME/hub/models--test--tiny"
commit=$(cat "$cache/refs/main" 2>/dev/null)
check "returns the snapshot folder" [ "$path" = "$cache/snapshots/$commit" ]
check "weights are a link into blobs/ named by sha256" [ "$(readlink "$path/model.safetensors")" = "../../blobs/$st_sha" ]
check "blob content matches" [ "$(sha256 "$cache/blobs/$st_sha")" = "$st_sha" ]
check "config and tokenizer fetched" [ -f "$path/config.json" -a -f "$path/tokenizer.json" ]

echo "kexa run -m ORG/REPO equals the local folder"
local_ids=$("$KEXA" run -m "$repos/test/tiny" --tokens "1" -n 24 --print-ids 2>/dev/null)
hub_ids=$("$KEXA" run -m test/tiny --tokens "1" -n 24 --print-ids 2>/dev/null)
check "same ids ($local_ids)" [ -n "$local_ids" -a "$local_ids" = "$hub_ids" ]

echo "GGUF repository with :QUANT"
path=$("$KEXA" pull test/tiny-GGUF:Q8_0 --no-progress 2>"$work/err") || cat "$work/err"
check "picks the Q8_0 file" [ "$(basename "$path")" = "tiny-Q8_0.gguf" -a -f "$path" ]
check "does not fetch other quants" [ ! -e "$(dirname "$path")/tiny-Q4_K_M.gguf" ]
path=$("$KEXA" pull test/tiny-GGUF:F16 --no-progress 2>"$work/err") || cat "$work/err"
check "split GGUF: entry is part 1" [ "$(basename "$path")" = "tiny-F16-00001-of-00002.gguf" ]
check "split GGUF: every part fetched" [ -f "$(dirname "$path")/tiny-F16-00002-of-00002.gguf" ]
gguf_ids=$("$KEXA" run -m test/tiny-GGUF:Q8_0 --tokens "1" -n 24 --print-ids 2>/dev/null)
check "run -m ORG/REPO:QUANT works ($gguf_ids)" [ "$gguf_ids" = "$local_ids" ]
"$KEXA" pull test/tiny-GGUF:Q3_K_S --no-progress >/dev/null 2>"$work/err"; rc=$?
check "invalid :QUANT is a named error listing the choices" \
  bash -c "[ $rc -ne 0 ] && grep -q 'no GGUF file for' '$work/err' && grep -q 'tiny-Q4_K_M.gguf' '$work/err'"

echo "resume after the server drops the connection mid-file"
export HF_HOME="$work/home2"
control "{\"drop_after\": {\"$st_sha\": 400000}}"
reset_stats
path=$("$KEXA" pull test/tiny --no-progress 2>"$work/err") || cat "$work/err"
check "pull completes" [ -f "$path/model.safetensors" ]
check "blob intact after resume" [ "$(sha256 "$path/model.safetensors")" = "$st_sha" ]
check "a Range request continued the file" [ "$(stat_of cdn_range)" -ge 1 ]
check "no .incomplete left" [ -z "$(find "$HF_HOME" -name '*.incomplete')" ]

echo "content that does not match its hash is rejected and fetched again"
export HF_HOME="$work/home3"
control "{\"corrupt_once\": [\"$st_sha\"]}"
path=$("$KEXA" pull test/tiny --no-progress 2>"$work/err")
check "mismatch reported" grep -q "does not match" "$work/err"
check "final blob intact" [ "$(sha256 "$path/model.safetensors")" = "$st_sha" ]
echo "corrupted cached blob detected by kexa pull"
blob="$HF_HOME/hub/models--test--tiny/blobs/$st_sha"
printf 'XXXX' | dd of="$blob" bs=1 seek=1000 conv=notrunc 2>/dev/null
"$KEXA" pull test/tiny --no-progress >/dev/null 2>"$work/err"
check "re-fetched" bash -c "grep -q corrupted '$work/err' && [ \"\$(sha256sum '$blob' | cut -d' ' -f1)\" = '$st_sha' ]"

echo "two concurrent pulls of the same repository"
export HF_HOME="$work/home4"
"$KEXA" pull test/tiny --no-progress >"$work/p1" 2>&1 &
p1=$!
"$KEXA" pull test/tiny --no-progress >"$work/p2" 2>&1 &
p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
check "both succeed" [ $r1 -eq 0 -a $r2 -eq 0 ]
check "one intact blob" [ "$(ls "$HF_HOME/hub/models--test--tiny/blobs" | grep -c "$st_sha")" = 1 -a \
  "$(sha256 "$HF_HOME/hub/models--test--tiny/blobs/$st_sha")" = "$st_sha" ]

echo "offline mode"
reset_stats
path=$(HF_HUB_OFFLINE=1 "$KEXA" pull test/tiny --no-progress 2>"$work/err")
check "warm cache works offline" [ -f "$path/model.safetensors" ]
check "no request was made" [ "$(stat_of api)" = 0 -a "$(stat_of head)" = 0 ]
HF_HOME="$work/cold" HF_HUB_OFFLINE=1 "$KEXA" pull test/tiny --no-progress >/dev/null 2>"$work/err"; rc=$?
check "cold cache fails with a clear message" \
  bash -c "[ $rc -ne 0 ] && grep -q 'not in the cache' '$work/err' && grep -q 'kexa pull test/tiny' '$work/err'"
HF_HOME="$work/cold" HF_ENDPOINT="http://127.0.0.1:9" "$KEXA" pull test/tiny --no-progress >/dev/null 2>"$work/err"; rc=$?
check "unreachable hub + cold cache fails clearly" bash -c "[ $rc -ne 0 ] && grep -q 'cannot be reached' '$work/err'"

echo "a cache written in Hugging Face's layout by another tool is used without downloading"
export HF_HOME="$work/home5"
pre="$HF_HOME/hub/models--other--prewarmed"
fake_commit=0123456789abcdef0123456789abcdef01234567
mkdir -p "$pre/blobs" "$pre/snapshots/$fake_commit" "$pre/refs"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
  [ -f "$repos/test/tiny/$f" ] || continue
  h=$(sha256 "$repos/test/tiny/$f"); cp "$repos/test/tiny/$f" "$pre/blobs/$h"
  ln -s "../../blobs/$h" "$pre/snapshots/$fake_commit/$f"
done
printf '%s' "$fake_commit" > "$pre/refs/main"
reset_stats
pre_ids=$(HF_HUB_OFFLINE=1 "$KEXA" run -m other/prewarmed --tokens "1" -n 24 --print-ids 2>"$work/err")
check "found in the cache ($pre_ids)" [ "$pre_ids" = "$local_ids" ]
check "nothing downloaded" [ "$(stat_of cdn)" = 0 ]

echo "named errors"
export HF_HOME="$work/home6"
"$KEXA" pull test/does-not-exist --no-progress >/dev/null 2>"$work/err"; rc=$?
check "unknown repo: 404" bash -c "[ $rc -ne 0 ] && grep -q 'not found' '$work/err' && grep -q 404 '$work/err'"
control '{"gated": ["test/gated"], "token": "s3cret"}'
"$KEXA" pull test/gated --no-progress >/dev/null 2>"$work/err"; rc=$?
check "gated without token: 401 naming HF_TOKEN" bash -c "[ $rc -ne 0 ] && grep -q 401 '$work/err' && grep -q HF_TOKEN '$work/err'"
path=$(HF_TOKEN=s3cret "$KEXA" pull test/gated --no-progress 2>"$work/err")
check "gated with token" [ -f "$path/model.safetensors" ]

echo "disk full"
full="$work/full"; mkdir -p "$full"
if mount -t tmpfs -o size=512k tmpfs "$full" 2>/dev/null; then
  mounted="$full"
  HF_HOME="$full" "$KEXA" pull test/tiny --no-progress >/dev/null 2>"$work/err"; rc=$?
else
  # No mount permission: a file-size limit gives the same write failure.
  (ulimit -f 512; HF_HOME="$full" "$KEXA" pull test/tiny --no-progress >/dev/null 2>"$work/err"); rc=$?
fi
check "write failure is a named error" bash -c "[ $rc -ne 0 ] && grep -q 'write failed' '$work/err'"
check "nothing half-written looks complete" \
  bash -c "[ ! -e '$full/hub/models--test--tiny/blobs/$st_sha' ] && [ ! -e '$full/hub/models--test--tiny/snapshots' -o -z \"\$(find '$full/hub/models--test--tiny/snapshots' -name model.safetensors)\" ]"

echo "hub: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
