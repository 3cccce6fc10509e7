#!/usr/bin/python3
"""Retrieval quality of `kexa rag search` vs SQLite FTS5 BM25 (unicode61) over the same chunks.

usage: rag_retrieval.py KEXA_BINARY SHARED_DIR WORK_DIR [--k1 X --b Y]
Every paragraph becomes one .txt document; a question's gold document is its own paragraph.
Both systems rank chunks; the ranking is reduced to distinct documents (best chunk wins) and
recall@1/5/20 counts questions whose gold paragraph is among the first 1/5/20 documents.
"""
import json, os, re, sqlite3, subprocess, sys, time

def load(kind, shared):
    if kind == "korquad":
        data = json.load(open(f"{shared}/fixtures/korquad-v1-dev/KorQuAD_v1.0_dev.json", encoding="utf-8"))["data"]
    else:
        data = json.load(open(f"{shared}/fixtures/squad-v2-dev-subset/squad-v2.0-dev-first5articles.json", encoding="utf-8"))["data"]
    paras, qs = [], []
    for art in data:
        for p in art["paragraphs"]:
            pid = len(paras)
            paras.append(p["context"])
            for qa in p["qas"]:
                if qa.get("is_impossible"):
                    continue
                qs.append((" ".join(qa["question"].split()), pid))
    return paras, qs

def recall(rankings, qs):
    r = {1: 0, 5: 0, 20: 0}
    for docs, (_, gold) in zip(rankings, qs):
        for k in r:
            if gold in docs[:k]:
                r[k] += 1
    return {k: 100.0 * v / len(qs) for k, v in r.items()}

def dedupe(paths):
    out = []
    for p in paths:
        d = int(os.path.basename(p)[1:6])
        if d not in out:
            out.append(d)
    return out

def fts5_rankings(store, qs, depth):
    src = sqlite3.connect(store)
    rows = src.execute("SELECT c.id, d.path, c.text FROM chunk c JOIN doc d ON d.id = c.doc").fetchall()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE fts USING fts5(text, tokenize='unicode61')")
    db.executemany("INSERT INTO fts(rowid, text) VALUES(?, ?)", [(r[0], r[2]) for r in rows])
    path_of = {r[0]: r[1] for r in rows}
    out = []
    for q, _ in qs:
        toks = re.findall(r"\w+", q)
        if not toks:
            out.append([]); continue
        expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in toks)
        ids = [r[0] for r in db.execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?", (expr, depth))]
        out.append(dedupe([path_of[i] for i in ids]))
    return out, len(rows)

def main():
    kexa, shared, work = sys.argv[1:4]
    extra = sys.argv[4:]
    depth = 100  # chunks asked for before reducing to documents
    print("| corpus | documents | chunks | questions | system | R@1 | R@5 | R@20 | search s |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for kind in ("korquad", "squad"):
        paras, qs = load(kind, shared)
        docs = f"{work}/{kind}"
        os.makedirs(docs, exist_ok=True)
        for i, p in enumerate(paras):
            with open(f"{docs}/p{i:05d}.txt", "w", encoding="utf-8") as f:
                f.write(p)
        store = f"{work}/{kind}.kexa-rag"
        t0 = time.time()
        subprocess.run([kexa, "rag", "ingest", "-q", "--store", store, docs], check=True, stdout=subprocess.DEVNULL)
        ingest_s = time.time() - t0
        qfile = f"{work}/{kind}.questions"
        with open(qfile, "w", encoding="utf-8") as f:
            f.write("".join(q + "\n" for q, _ in qs))
        t0 = time.time()
        res = subprocess.run([kexa, "rag", "search", "--store", store, "--queries", qfile, "-k", str(depth)] + extra,
                             check=True, capture_output=True, text=True).stdout.splitlines()
        kexa_s = time.time() - t0
        kexa_rank = [dedupe([h["path"] for h in json.loads(l)]) for l in res]
        assert len(kexa_rank) == len(qs), (len(kexa_rank), len(qs))
        t0 = time.time()
        fts_rank, nchunks = fts5_rankings(store, qs, depth)
        fts_s = time.time() - t0
        got = {}
        for name, rk, s in (("FTS5 bm25 (unicode61)", fts_rank, fts_s), ("kexa rag", kexa_rank, kexa_s)):
            r = got[name] = recall(rk, qs)
            print(f"| {kind} | {len(paras)} | {nchunks} | {len(qs)} | {name} | {r[1]:.2f} | {r[5]:.2f} | {r[20]:.2f} | {s:.1f} |")
        d = {k: got["kexa rag"][k] - got["FTS5 bm25 (unicode61)"][k] for k in (1, 5, 20)}
        print(f"| {kind} | | | | kexa - FTS5 (points) | {d[1]:+.2f} | {d[5]:+.2f} | {d[20]:+.2f} | |")
        print(f"<!-- {kind}: kexa ingest {ingest_s:.1f} s -->")

main()
