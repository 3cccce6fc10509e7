#!/usr/bin/env bash
# kexa sql's safe executor against copies of two Spider databases: every hostile statement in
# sql_hostile.txt (writes, DDL, ATTACH, PRAGMA, extensions, stacked statements, runaway queries)
# must be refused with a named reason and leave the files byte-identical (sha256); the gold SQL
# of every Spider dev question on flight_2 and singer must return the same rows as Python's
# sqlite3 module run directly on the same file (multisets, or sequences when ORDER BY).
set -euo pipefail
cd "$(dirname "$0")/../.."
KEXA="${KEXA_BUILD:-build}/kexa"
SPIDER="${KEXA_SHARED:-../shared}/fixtures/spider-dev"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$SPIDER/database/flight_2/flight_2.sqlite" "$SPIDER/database/singer/singer.sqlite" "$tmp/"
chmod u+w "$tmp"/*.sqlite
/usr/bin/python3 - "$KEXA" "$tmp" "$SPIDER" "tests/conformance/sql_hostile.txt" <<'PY'
import collections, hashlib, json, os, sqlite3, subprocess, sys
kexa, tmp, spider, hostile_file = sys.argv[1:5]

def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()

def kexa_sql(db, stmt, *extra):
    return subprocess.run([kexa, "sql", "--db", "sqlite:" + db, "--execute", stmt, "--json", *extra],
                          capture_output=True, text=True, timeout=60)

stmts = [l.rstrip("\n").replace("\\n", "\n") for l in open(hostile_file, encoding="utf-8")
         if l.strip() and not l.startswith("#")]
rename = [("Singer_ID", "uid"), ("singer", "airlines"), ("Name", "Airline"), ("song", "flights")]
failures = []
refused = 0
for name in ("singer", "flight_2"):
    db = os.path.join(tmp, name + ".sqlite")
    before = sha(db)
    for s in stmts:
        if name == "flight_2":
            for a, b in rename:
                s = s.replace(a, b)
        r = kexa_sql(db, s, "--timeout-ms", "300")
        reason = None
        try:
            reason = json.loads(r.stdout)["error"]["reason"]
        except Exception:
            pass
        # writefile() does not exist in the library kexa links, so "no such function" is its refusal.
        if r.returncode == 0 or not reason or (reason == "invalid_sql" and "writefile" not in s):
            failures.append(f"{name}: not refused by a safety rule: {s!r} -> rc={r.returncode} {r.stdout[:120]!r} {r.stderr[:160]!r}")
        else:
            refused += 1
    after = sha(db)
    if after != before:
        failures.append(f"{name}: database file changed (sha256 {before} -> {after})")
    for junk in ("/tmp/kexa-sql-evil.db", "/tmp/kexa-sql-vacuum-copy.db", "/tmp/kexa-sql-evil.txt"):
        if os.path.exists(junk):
            failures.append(f"{junk} was created")
print(f"sql: {refused}/{2 * len(stmts)} hostile statements refused ({len(stmts)} per database)")

questions = [q for q in json.load(open(os.path.join(spider, "dev.json"))) if q["db_id"] in ("flight_2", "singer")]
same = 0
for q in questions:
    db = os.path.join(tmp, q["db_id"] + ".sqlite")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.text_factory = lambda b: b.decode("utf-8", "replace")
    want = [list(r) for r in con.execute(q["query"]).fetchall()]
    con.close()
    r = kexa_sql(db, q["query"], "--max-rows", "100000")
    if r.returncode != 0:
        failures.append(f"gold SQL refused: {q['query']!r}: {r.stderr.strip()[:200]}")
        continue
    got = json.loads(r.stdout)["rows"]
    ordered = "order by" in q["query"].lower()
    norm = lambda rows: [tuple(x) for x in rows]
    ok = norm(got) == norm(want) if ordered else collections.Counter(norm(got)) == collections.Counter(norm(want))
    if ok:
        same += 1
    else:
        failures.append(f"rows differ for {q['query']!r}: kexa {got[:3]} vs sqlite3 {want[:3]}")
print(f"sql: {same}/{len(questions)} Spider dev gold queries on flight_2 and singer match sqlite3")
if sha(os.path.join(tmp, "singer.sqlite")) != sha(os.path.join(spider, "database/singer/singer.sqlite")):
    failures.append("singer copy changed during gold queries")
for f in failures[:30]:
    print("FAIL", f)
sys.exit(1 if failures else 0)
PY
# --schema --question prints the linker's selection (what a prompt that must be cut keeps), --all
# every table most relevant first; a Korean question reaches the English tables.
ko="'United Airlines' 항공사의 항공편은 몇 편인가요?"
linked=$("$KEXA" sql --db "sqlite:$tmp/flight_2.sqlite" --schema --question "$ko" | sed -n 's/^TABLE //p' | tr '\n' ' ')
ranked=$("$KEXA" sql --db "sqlite:$tmp/flight_2.sqlite" --schema --all --question "$ko" | sed -n 's/^TABLE //p' | tr '\n' ' ')
[ "$linked" = "airlines flights " ] || { echo "FAIL --schema --question (Korean) printed: $linked"; exit 1; }
[ "$ranked" = "airlines flights airports " ] || { echo "FAIL --schema --all --question printed: $ranked"; exit 1; }
echo "sql: --schema --question / --all print the linked / ranked tables"
echo "sql: ok"
