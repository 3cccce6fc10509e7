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

# --chunk-chars: smaller chunks, none above 1.5x the target, spans still the file's bytes.
"$kexa" rag ingest -q --chunk-chars 200 --store "$tmp/c200.db" "$tmp/small" >/dev/null
$py - "$tmp/c200.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("select d.path, c.begin, c.end, c.text from chunk c join doc d on d.id = c.doc where c.unit = 'byte'").fetchall()
assert len(rows) > 150, len(rows)
assert max(len(t) for *_, t in rows) <= 300, max(len(t) for *_, t in rows)
for p, b, e, t in rows:
    assert open(p, "rb").read()[b:e].decode("utf-8") == t, (p, b, e)
print(f"rag --chunk-chars 200: {len(rows)} chunks, longest {max(len(t) for *_, t in rows)} characters")
PY

# Deletion of a folder.
"$kexa" rag delete --store "$store" "$tmp/small/notes" | grep -q "removed 1 documents"
"$kexa" rag stats --store "$store" | grep -q "documents 60,"
if "$kexa" rag search --store "$store" "x" --k1 -1 >/dev/null 2>&1; then echo "bad --k1 accepted"; exit 1; fi
if "$kexa" rag search --store "$tmp/none.db" "x" >/dev/null 2>"$tmp/err"; then echo "missing store accepted"; exit 1; fi
grep -q "does not exist" "$tmp/err"

# Mixed formats: HTML (checked against Python's html.parser), PDF (written here by a tiny PDF
# generator; spans index the text Poppler extracts per page), CSV and JSON records.
mix="$tmp/mix"; mkdir -p "$mix"
$py - "$mix" <<'PY'
import json, sys
d = sys.argv[1]
open(f"{d}/page.html", "w", encoding="utf-8").write(
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ignored title</title><style>.x{color:red}</style>"
    "<script>var leaked = 'scriptword';</script></head><body><h1>한강의 다리</h1><p>한강에는 서른 개가 넘는\n  다리가 있다. "
    "<b>반포대교</b>에는 달빛무지개분수가 있다.</p><h2>History</h2><p>The first bridge, Hangang Railway Bridge, opened in 1900.</p>"
    "<ul><li>Mapo</li><li>Wonhyo</li></ul></body></html>")
def pdf(pages, out):
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        pid = len(objs) + 1
        st = "BT /F1 12 Tf 72 720 Td 14 TL\n" + "".join("(%s) Tj T*\n" % l for l in lines) + "ET"
        objs.append("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (pid + 1))
        objs.append("<< /Length %d >>\nstream\n%s\nendstream" % (len(st), st))
        kids.append("%d 0 R" % pid)
    objs[1] = "<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(kids), len(kids))
    data, offs = b"%PDF-1.4\n", []
    for i, o in enumerate(objs):
        offs.append(len(data)); data += ("%d 0 obj\n%s\nendobj\n" % (i + 1, o)).encode("latin-1")
    x = len(data)
    data += ("xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)).encode() + b"".join(b"%010d 00000 n \n" % o for o in offs)
    data += ("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, x)).encode()
    open(out, "wb").write(data)
pdf([["Quarterly report.", "Revenue grew in the north region."], ["Page two covers the Zugspitze expedition.", "Weather was cold."]],
    f"{d}/report.pdf")
open(f"{d}/people.csv", "w", encoding="utf-8").write("name,hometown\n\"Park, Jisoo\",Daegu\nChoi,Gwangju\n")
json.dump([{"title": "Jeju", "body": "volcanic island"}, {"title": "Ulleungdo", "body": "squid harbour"}],
          open(f"{d}/places.json", "w", encoding="utf-8"))
PY
mstore="$tmp/mix.db"
"$kexa" rag ingest -q --store "$mstore" "$mix" | grep -q "added 4,"
$py - "$kexa" "$mstore" "$mix" <<'PY'
import json, re, subprocess, sys
from html.parser import HTMLParser
kexa, store, mix = sys.argv[1:4]
def search(q, k=3):
    return json.loads(subprocess.run([kexa, "rag", "search", "--store", store, "--json", "-k", str(k), q],
                                     check=True, capture_output=True, text=True).stdout)
# HTML: the words kexa indexed are exactly the visible words Python's parser sees.
# Inline elements (<b>) do not split words; block elements do.
BLOCK = ("p", "h1", "h2", "h3", "ul", "ol", "li", "div", "br", "body", "html")
class Visible(HTMLParser):
    def __init__(self):
        super().__init__(); self.skip = 0; self.buf = ""
    def handle_starttag(self, tag, a):
        if tag in ("script", "style", "title", "head"): self.skip += 1
        if tag in BLOCK: self.buf += " "
    def handle_endtag(self, tag):
        if tag in ("script", "style", "title", "head"): self.skip -= 1
        if tag in BLOCK: self.buf += " "
    def handle_data(self, d):
        if not self.skip: self.buf += d
v = Visible(); v.feed(open(f"{mix}/page.html", encoding="utf-8").read()); v.words = v.buf.split()
chunks = json.loads(subprocess.run([kexa, "rag", "search", "--store", store, "--json", "-k", "50", "한강 bridge Mapo 다리 History"],
                                   check=True, capture_output=True, text=True).stdout)
html = [c for c in chunks if c["path"].endswith("page.html")]
assert all(c["unit"] == "text" for c in html), html
got = " ".join(re.sub(r"^#+ ", "", c["text"], flags=re.M) for c in sorted(html, key=lambda c: c["begin"])).split()
assert got == v.words, (got, v.words)
assert [c["heading"] for c in sorted(html, key=lambda c: c["begin"])] == ["한강의 다리", "History"], html
# PDF: page numbers and per-page spans.
r = search("Zugspitze expedition", 1)[0]
assert r["path"].endswith("report.pdf") and r["page"] == 2 and r["unit"] == "page", r
assert r["text"] == "Page two covers the Zugspitze expedition.\nWeather was cold." and r["begin"] == 0 and r["end"] == len(r["text"].encode()), r
assert search("north region revenue", 1)[0]["page"] == 1
# CSV / JSON records carry their field names.
r = search("Daegu", 1)[0]
assert r["text"] == "name: Park, Jisoo\nhometown: Daegu\n" and open(r["path"], "rb").read()[r["begin"]:r["end"]] == b'"Park, Jisoo",Daegu', r
r = search("squid harbour", 1)[0]
assert r["unit"] == "record" and r["begin"] == 1 and "title: Ulleungdo" in r["text"], r
print("rag formats: HTML words match Python's html.parser, PDF pages/spans, CSV and JSON records OK")
PY

# A damaged file in a folder: named on stderr, exit 1, the other files still ingested.
mkdir -p "$tmp/bad"
printf 'Sejong created Hangul in 1443.\n' >"$tmp/bad/good.txt"
printf '%%PDF-1.4\ngarbage' >"$tmp/bad/broken.pdf"
if "$kexa" rag ingest -q --store "$tmp/bad.db" "$tmp/bad" >"$tmp/out" 2>"$tmp/err"; then echo "damaged PDF not reported"; exit 1; fi
grep -q "added 1,.*failed 1;" "$tmp/out" && grep -q "broken.pdf.*not a readable PDF" "$tmp/err"
"$kexa" rag search --store "$tmp/bad.db" --json -k 1 "Hangul" | grep -q "good.txt"

# Dense vectors with a tiny test model: stored per chunk, an exact-text query finds its own chunk
# first by cosine, re-ingest keeps vectors in step, another model's vectors are refused.
if [[ "${KEXA_SANITIZED:-0}" != 1 ]]; then
  $py tools/make_test_model.py --preset exaone4-global --seed 1 --out "$tmp/emb1" >/dev/null
  $py tools/make_test_model.py --preset exaone4-global --seed 2 --out "$tmp/emb2" >/dev/null
  dense="$tmp/dense"; mkdir -p "$dense"
  for i in 0 1 2 3 4 5; do cp "$tmp/small/p0000$i.txt" "$dense/"; done
  cp "$mix/people.csv" "$dense/"
  vstore="$tmp/v.db"
  "$kexa" rag ingest -q --store "$vstore" --embed-model "$tmp/emb1" -t 2 "$dense" >/dev/null
  "$kexa" rag stats --store "$vstore" | grep -Eq "chunks ([0-9]+), terms [0-9]+, vectors \1$"
  $py - "$kexa" "$vstore" "$dense" "$tmp/emb1" <<'PY'
import json, os, subprocess, sys
kexa, store, dense, model = sys.argv[1:5]
def s(q, mode, k=3):
    return json.loads(subprocess.run([kexa, "rag", "search", "--store", store, "--json", "-k", str(k), "--mode", mode,
                                      "--embed-model", model, "-t", "2", q], check=True, capture_output=True, text=True).stdout)
import sqlite3
rows = sqlite3.connect(store).execute("select id, heading, text from chunk where heading = '' order by id").fetchall()
assert len(rows) >= 8, len(rows)
for cid, _, text in rows:
    r = s(text, "dense")
    assert r[0]["chunk"] == cid and abs(r[0]["score"] - 1) < 1e-4, (cid, r[0]["chunk"], r[0]["score"])
h = s(open(f"{dense}/p00002.txt", encoding="utf-8").read()[:200], "hybrid", 5)
assert h[0]["path"].endswith("p00002.txt") and 0 < h[0]["score"] <= 2 / 61 + 1e-12, h[0]
print(f"rag dense: each of {len(rows)} chunks is its own nearest neighbour; hybrid (RRF) ranks it first")
PY
  echo "새로운 내용: 제주도의 감귤 농사에 관한 문단이다." >"$dense/p00003.txt"
  "$kexa" rag ingest -q --store "$vstore" --embed-model "$tmp/emb1" -t 2 "$dense" | grep -q "updated 1, unchanged 6"
  "$kexa" rag stats --store "$vstore" | grep -Eq "chunks ([0-9]+), terms [0-9]+, vectors \1$"
  "$kexa" rag search --store "$vstore" --json -k 1 --mode dense --embed-model "$tmp/emb1" -t 2 \
    "새로운 내용: 제주도의 감귤 농사에 관한 문단이다." | grep -q "p00003.txt"
  if "$kexa" rag search --store "$vstore" --embed-model "$tmp/emb2" -t 2 "감귤" >/dev/null 2>"$tmp/err"; then
    echo "vectors of another model accepted"; exit 1
  fi
  grep -q "emb1" "$tmp/err"
  echo "rag dense: incremental update and model mismatch OK"
fi

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
