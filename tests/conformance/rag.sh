#!/usr/bin/env bash
# kexa rag: ingest a folder of KorQuAD paragraphs and Markdown, search (gold = the question's own
# paragraph, spans checked against the file bytes by Python), deletion, and crash safety: SIGKILL
# during an ingest must leave a store that opens and answers, and a re-run must finish without
# duplicate documents or chunks.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${KEXA_BUILD:-build}"
kexa="$PWD/$build/kexa"
shared="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
py=/usr/bin/python3
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
n_big=964
[[ "${KEXA_SANITIZED:-0}" == 1 ]] && n_big=400

# Paragraph files + one question per paragraph (first question) for the search check.
$py - "$shared/fixtures/korquad-v1-dev/KorQuAD_v1.0_dev.json" "$tmp" "$n_big" <<'PY'
import json, os, sys
src, tmp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
paras, qs = [], []
for art in json.load(open(src, encoding="utf-8"))["data"]:
    for p in art["paragraphs"]:
        paras.append(p["context"]); qs.append(p["qas"][0]["question"] if p["qas"] else None)
for d, count in (("small", 60), ("big", n)):
    os.makedirs(f"{tmp}/{d}", exist_ok=True)
    for i in range(count):
        open(f"{tmp}/{d}/p{i:05d}.txt", "w", encoding="utf-8").write(paras[i])
with open(f"{tmp}/questions.jsonl", "w", encoding="utf-8") as f:
    for i in range(60):
        if qs[i] is None: continue
        f.write(json.dumps({"q": qs[i], "gold": f"p{i:05d}.txt"}, ensure_ascii=False) + "\n")
os.makedirs(f"{tmp}/small/notes", exist_ok=True)
open(f"{tmp}/small/notes/guide.md", "w", encoding="utf-8").write(
    "# 설치\n\nkexa는 C++20으로 작성되었다. 빌드는 cmake로 한다.\n\n# Usage\n\nRun `kexa rag search` to find passages.\n")
PY

store="$tmp/s.db"
"$kexa" rag ingest -q --store "$store" "$tmp/small" | tee "$tmp/out1"
grep -q "added 61," "$tmp/out1"
"$kexa" rag ingest -q --store "$store" "$tmp/small" | grep -q "added 0, updated 0, unchanged 61"

# Search: the gold paragraph must be in the top 5 for at least 55 of 60 questions; spans must be
# the file's exact bytes.
$py - "$kexa" "$store" "$tmp/questions.jsonl" <<'PY'
import json, os, subprocess, sys
kexa, store, qfile = sys.argv[1:4]
hit5 = 0; n = 0
for line in open(qfile, encoding="utf-8"):
    q = json.loads(line); n += 1
    res = json.loads(subprocess.run([kexa, "rag", "search", "--store", store, "-k", "5", "--json", q["q"]],
                                    check=True, capture_output=True, text=True).stdout)
    if any(os.path.basename(h["path"]) == q["gold"] for h in res): hit5 += 1
    for h in res:
        data = open(h["path"], "rb").read()
        assert data[h["begin"]:h["end"]].decode("utf-8") == h["text"], (h["path"], h["begin"], h["end"])
print(f"rag search: gold paragraph in top 5 for {hit5}/{n} questions")
assert n >= 50 and hit5 >= n - 5, (hit5, n)
res = json.loads(subprocess.run([kexa, "rag", "search", "--store", store, "--json", "-k", "1", "빌드는 무엇으로 하나"],
                                check=True, capture_output=True, text=True).stdout)
assert res and res[0]["path"].endswith("guide.md") and res[0]["heading"] == "설치", res
PY

# Deletion of a folder.
"$kexa" rag delete --store "$store" "$tmp/small/notes" | grep -q "removed 1 documents"
"$kexa" rag stats --store "$store" | grep -q "documents 60,"
if "$kexa" rag search --store "$store" "x" --k1 -1 >/dev/null 2>&1; then echo "bad --k1 accepted"; exit 1; fi
if "$kexa" rag search --store "$tmp/none.db" "x" >/dev/null 2>"$tmp/err"; then echo "missing store accepted"; exit 1; fi
grep -q "does not exist" "$tmp/err"

# Crash safety: SIGKILL mid-ingest, then the store must open and answer, and a re-run completes.
big="$tmp/big.db"
"$kexa" rag ingest -q --store "$big" "$tmp/big" >/dev/null &
pid=$!
# Wait until some documents are committed, then kill.
for _ in $(seq 1 200); do
  if [[ -f "$big" ]] && $py -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); sys.exit(0 if c.execute('select count(*) from doc').fetchone()[0] >= 20 else 1)" "$big" 2>/dev/null; then break; fi
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || { echo "ingest finished before it could be killed"; exit 1; }
wait "$pid" 2>/dev/null || true
"$kexa" rag stats --store "$big" | tee "$tmp/stats"
partial=$(sed -E 's/documents ([0-9]+),.*/\1/' "$tmp/stats")
[[ "$partial" -ge 20 && "$partial" -lt "$n_big" ]] || { echo "unexpected partial count $partial"; exit 1; }
"$kexa" rag search --store "$big" -k 1 "$(head -1 "$tmp/questions.jsonl" | $py -c 'import json,sys; print(json.loads(sys.stdin.read())["q"])')" | grep -q "1\. "
"$kexa" rag ingest -q --store "$big" "$tmp/big" | tee "$tmp/out2"
grep -q "unchanged $partial," "$tmp/out2"
$py - "$big" "$n_big" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
assert c.execute("pragma integrity_check").fetchone()[0] == "ok"
docs = c.execute("select count(*), count(distinct path) from doc").fetchone()
assert docs == (n, n), docs
dup = c.execute("select count(*) from (select doc, begin, end from chunk group by doc, begin, end having count(*) > 1)").fetchone()[0]
assert dup == 0, dup
orphan = c.execute("select count(*) from posting where chunk not in (select id from chunk)").fetchone()[0]
assert orphan == 0, orphan
print(f"crash safety: {n} documents after kill + re-run, no duplicate chunks, no orphan postings")
PY
echo "rag: OK"
