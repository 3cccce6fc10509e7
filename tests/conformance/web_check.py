#!/usr/bin/env python3
"""Checks of `kexa web` against the mock web of web_mock.py (loopback only). Called by web.sh:
web_check.py KEXA WORKDIR [MODEL]. Prints one ok/FAIL line per check; exit status = failures."""
import json, os, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import web_mock as mock

KEXA, WORK = sys.argv[1], sys.argv[2]
MODEL = sys.argv[3] if len(sys.argv) > 3 else ""
P = mock.start()
S, A, B, F = P["search"], P["a"], P["b"], P["f"]
SEARX = f"searxng:http://127.0.0.1:{S}"
ALLOW = ["--web-allow", f"127.0.0.1:{A}", "--web-allow", f"127.0.0.1:{B}"]
fails = 0

def check(name, fn):
    global fails
    try:
        detail = fn()
        print(f"  ok   {name}" + (f"  ({detail})" if detail else ""))
    except Exception as e:  # noqa: BLE001 - any failure of a check is reported as such
        fails += 1
        print(f"  FAIL {name}: {type(e).__name__}: {str(e)[:600]}")

def kexa(*args, timeout=60):
    t = time.monotonic()
    r = subprocess.run([KEXA, *args], capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t

def counts():
    return mock.COUNTS.copy()

def a_url(path, port=None):
    return f"http://127.0.0.1:{port or A}{path}"

def fetch_json(*args):
    r, dt = kexa("web", "fetch", "--json", *args)
    return json.loads(r.stdout), r, dt

print("search")
def search_ok():
    r, _ = kexa("web", "search", "--web-search", SEARX, "--json", "When was the lighthouse of Velmora built?")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res and res[0]["url"].endswith("/en/village0.html") and res[0]["title"] == "Velmora village guide", res[:2]
    return f"{len(res)} results"
check("searxng JSON results, best first", search_ok)

def dedupe():
    r, _ = kexa("web", "search", "--web-search", f"json:http://127.0.0.1:{S}/dupes?q={{q}}", "--json", "x")
    assert r.returncode == 0, r.stderr
    urls = [x["url"] for x in json.loads(r.stdout)]
    assert len(urls) == 2 and urls[0].endswith("/inject.html") and urls[1].endswith("/bad-utf8.html"), urls
check("generic json: endpoint; duplicate URLs (fragment, scheme case) dropped", dedupe)

def search_fails(spec, expect, max_s):
    def fn():
        r, dt = kexa("web", "search", "--web-search", spec, "--search-timeout-ms", "1000", "query")
        assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)
        assert expect in r.stderr, r.stderr
        assert dt < max_s, dt
        return r.stderr.strip()[:110] + f"; {dt:.1f} s"
    return fn
check("service down: explicit error after retries", search_fails(f"searxng:http://127.0.0.1:{P['dead']}", "unavailable after 3 attempts", 5))
check("service answers garbage: explicit error", search_fails(f"json:http://127.0.0.1:{S}/garbage", "not JSON", 3))
check("service answers HTTP 502: retried, then explicit error", search_fails(f"json:http://127.0.0.1:{S}/error", "HTTP 502", 5))

print("address policy on loopback (no --web-allow)")
def first_hop_refused():
    before = counts()
    forms = ["127.0.0.1", "localhost", "localhost.", "2130706433", "0x7f.1", "0x7f000001", "017700000001", "127.1",
             "0177.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::1]", "0.0.0.0", "evil.example@127.0.0.1",
             "127.0.0.1."]
    urls = [f"http://{h}:{A}/inject.html" for h in forms]
    pages, r, _ = fetch_json(*urls)
    assert r.returncode == 1
    bad = [p for p in pages if p["ok"] or "refused" not in p["error"]]
    assert not bad, bad
    after = counts()
    assert after[str(A)] == before[str(A)], (before, after)
    return f"{len(forms)} forms refused, 0 connections"
check("every numeric/name form of loopback refused before connecting", first_hop_refused)

def allowed_exact():
    pages, r, _ = fetch_json("--web-allow", f"127.0.0.1:{A}", f"http://2130706433:{A}/inject.html",
                             f"http://127.0.0.1:{B}/en/village0.html")
    assert pages[0]["ok"] and pages[0]["final_url"] == a_url("/inject.html"), pages[0]
    assert not pages[1]["ok"] and "refused" in pages[1]["error"], pages[1]
check("allow-list host:port opens that port only (numeric form canonicalised)", allowed_exact)

def redirects():
    before = counts()
    pages, r, _ = fetch_json(*ALLOW, a_url("/redirect.html"), a_url("/hop.html"))
    assert not pages[0]["ok"] and f"refused http://127.0.0.1:{F}/secret" in pages[0]["error"], pages[0]
    assert pages[1]["ok"] and pages[1]["final_url"] == a_url("/inject.html"), pages[1]
    assert counts()[str(F)] == 0 == before[str(F)], counts()
    return pages[0]["error"][:80]
check("redirect to a non-allowed port refused at the hop (0 connections on it); allowed redirect followed", redirects)

def robots_redirect():
    pages, r, _ = fetch_json(*ALLOW, f"http://127.0.0.1:{B}/b-private/page.html", f"http://127.0.0.1:{B}/en/village0.html")
    denied, ok = pages
    assert not denied["ok"] and f"robots.txt of http://127.0.0.1:{B} disallows /b-private/page.html" in denied["error"], denied
    assert ok["ok"], ok
    return denied["error"][:80]
check("robots.txt redirected (to an allowed address) is followed and honoured", robots_redirect)

def robots_redirect_refused():
    before = counts()
    pages, r, _ = fetch_json("--web-allow", f"127.0.0.1:{S}", f"http://127.0.0.1:{S}/garbage")
    assert pages[0]["ok"] and "Too many requests" in pages[0]["text"], pages[0]
    assert counts()[str(F)] == before[str(F)] == 0, counts()
check("robots.txt redirected to a refused address: not followed (0 connections), no rules", robots_redirect_refused)

print("fetching")
def pages_read():
    pages, r, _ = fetch_json(*ALLOW, a_url("/ko/village0.html"), a_url("/ko/village4.html"), a_url("/ko/village2.html"),
                             a_url("/en/village3.pdf"), f"http://127.0.0.1:{B}/en/village0.html")
    assert r.returncode == 0, r.stderr
    k0, k4, k2, pdf, en = pages
    assert k0["charset"] == "EUC-KR" and "하늘마루 마을의 등대는 1873년에 세워졌다." in k0["text"], k0
    assert k4["charset"] == "EUC-KR" and "달무리 마을의 특산물은 한라봉청이다." in k4["text"], k4
    assert k2["charset"] == "UTF-8" and "누리내 마을의 인구는 745명이다." in k2["text"], k2
    assert pdf["content_type"] == "application/pdf" and "The main crop of Brisca is lavender." in pdf["text"], pdf
    assert "Copyright" not in en["text"] and "News" not in en["text"] and "Velmora has 412 residents." in en["text"], en
    assert en["title"] == "Velmora village guide"
    return "EUC-KR (meta and header), UTF-8, PDF; nav/footer dropped"
check("HTML in EUC-KR/UTF-8 and PDF read as UTF-8 main content", pages_read)

def failures_bounded():
    pages, r, dt = fetch_json(*ALLOW, "--page-timeout-ms", "1500", "--deadline-ms", "4000",
                              *[a_url(p) for p in ["/slow.html", "/huge.html", "/private/secret.html", "/bad-utf8.html"]])
    slow, huge, robots, bad = pages
    assert "timed out after 1500 ms" in slow["error"], slow
    assert "larger than 5242880 bytes" in huge["error"], huge
    assert "robots.txt" in robots["error"] and "disallows /private/secret.html" in robots["error"], robots
    assert "not valid UTF-8" in bad["error"], bad
    assert dt < 3.5, dt
    return f"{dt:.1f} s"
check("slow, 50 MB, robots-disallowed and non-UTF-8 pages fail explicitly within the caps", failures_bounded)

def deadline():
    pages, r, dt = fetch_json(*ALLOW, "--page-timeout-ms", "20000", "--deadline-ms", "1200", a_url("/slow.html"))
    assert "deadline of 1200 ms reached" in pages[0]["error"], pages[0]
    assert dt < 2.5, dt
    return f"{dt:.1f} s"
check("overall deadline ends a slow fetch", deadline)

def cache():
    db = os.path.join(WORK, "cache.sqlite")
    p1, r1, _ = fetch_json(*ALLOW, "--web-cache", db, a_url("/ko/village6.html"))
    before = counts()[str(A)]
    p2, r2, _ = fetch_json(*ALLOW, "--web-cache", db, a_url("/ko/village6.html"))
    assert p1[0]["ok"] and not p1[0]["cached"] and p2[0]["cached"] and p2[0]["text"] == p1[0]["text"], (p1, p2)
    assert counts()[str(A)] == before
    p3, _, _ = fetch_json(*ALLOW, "--web-cache", db, "--web-cache-ttl", "0", a_url("/ko/village6.html"))
    time.sleep(1.1)
    p3, _, _ = fetch_json(*ALLOW, "--web-cache", db, "--web-cache-ttl", "0", a_url("/ko/village6.html"))
    assert not p3[0]["cached"], p3
check("SQLite page cache: a fresh page is not refetched; TTL expiry refetches", cache)

print("web ask (no model): retrieval of the QA set")
def ask(q, *extra, model=False):
    args = ["web", "ask", "--web-search", SEARX, *ALLOW, "--json", *extra, q]
    if model: args[2:2] = ["-m", MODEL, "--ctx", "4096", "-t", "2", "--max-tokens", "40", "--queries", "1"]
    r, dt = kexa(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), dt

def qa_recall():
    hit, misses, ko = 0, [], 0
    t = time.monotonic()
    for item in mock.QA:
        port = A if item["site"] == "a" else B
        want = f"http://127.0.0.1:{port}{item['path']}"
        j, _ = ask(item["q"])
        urls = [s["url"] for s in j["sources"]]
        if want in urls: hit += 1
        else: misses.append((item["q"], urls[:3]))
        ko += any("\uac00" <= c <= "\ud7a3" for c in item["q"])
    n = len(mock.QA)
    assert n >= 40 and ko * 2 >= n, (n, ko)
    assert hit >= 0.95 * n, (hit, n, misses[:5])
    return f"answer page among the sources for {hit}/{n} = {100 * hit / n:.1f}% ({ko} Korean), {time.monotonic() - t:.1f} s"
check("answer page among the sources given to the model >= 95%", qa_recall)

def ask_all_fail():
    r, dt = kexa("web", "ask", "--web-search", f"json:http://127.0.0.1:{S}/fixed/failures?q={{q}}", *ALLOW,
                 "--page-timeout-ms", "1500", "--deadline-ms", "3000", "--json", "anything")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["abstained"] and "every page failed" in j["failure"] and j["answer"].startswith("I cannot answer that from the web"), j
    errs = " ".join(p.get("error", "") for p in j["pages"])
    for frag in ["timed out", "larger than", "refused", "robots.txt", "not valid UTF-8"]:
        assert frag in errs, (frag, errs)
    assert dt < 4.5, dt
    return f"{dt:.1f} s: {j['answer'][:90]}"
check("every page failing: fixed abstention saying what failed, within the deadline", ask_all_fail)

def ask_search_down():
    r, dt = kexa("web", "ask", "--web-search", f"searxng:http://127.0.0.1:{P['dead']}", "--search-retries", "1", "q")
    assert r.returncode != 0 and "web search failed" in r.stderr and "unavailable" in r.stderr, r.stderr
check("search service down: web ask fails saying so", ask_search_down)

def ask_irrelevant():
    j, _ = ask("What is the boiling point of liquid nitrogen on Mars?")
    assert j["abstained"] and j["answer"].startswith("I cannot answer that from the web"), j
check("nothing relevant fetched: fixed abstention", ask_irrelevant)

if MODEL:
    def dense_fusion():
        # The tiny model's random embeddings only reorder: fusion keeps the chunks BM25 found (same
        # count, their BM25 scores) and every source is a fetched page.
        q = mock.QA[0]["q"]
        plain, _ = ask(q)
        fused, _ = ask(q, "--embed-model", MODEL, "-t", "2")
        assert len(fused["sources"]) == len(plain["sources"]) > 0, (plain["sources"], fused["sources"])
        fetched = {p["final_url"] or p["url"] for p in fused["pages"] if p["ok"]}
        for s in fused["sources"]:
            assert s["score"] > 0 and s["url"] in fetched, s
        return f"{len(fused['sources'])} sources, first {fused['sources'][0]['url']}"
    check("web ask --embed-model: dense similarity fused with BM25 (sources from fetched pages)", dense_fusion)

if MODEL:
    print("web ask with the tiny model")
    def cited(q):
        def fn():
            j, dt = ask(q, "--require-citation", model=True)
            assert j["citations"], j  # under --require-citation the answer must cite
            assert not j["abstained"] and j["stop_reason"] in ("eos", "max_tokens"), j
            pages = {p["final_url"]: p for p in j["pages"] if p["ok"]}
            assert j["sources"], j
            for s in j["sources"] + j["citations"]:
                p = pages[s["url"]]  # a page that was fetched and read
                text = p["text"].encode()
                assert text[s["begin"]:s["end"]].decode() == s["text"], s
                assert s["title"] == p["title"]
            for c in j["citations"]:
                assert j["sources"][c["number"] - 1]["url"] == c["url"]
            assert len(j["queries"]) >= 1 and j["queries"][0] == q
            return f"{len(j['sources'])} sources, {len(j['citations'])} citations, {dt:.1f} s"
        return fn
    check("English: every source and citation is a span of a fetched page", cited("When was the lighthouse of Kestrin built?"))
    check("Korean: every source and citation is a span of a fetched page", cited("별가람 마을의 특산물은 무엇인가요?"))

    def injection():
        prompts = []
        for q in ["When did the Zanthor observatory open?", "When was the lighthouse of Velmora built?"]:
            path = os.path.join(WORK, f"prompt{len(prompts)}.txt")
            j, _ = ask(q, "--dump-prompt", path, "--no-rewrite", model=True)
            prompts.append((j, open(path, encoding="utf-8").read()))
        (j, p), (_, clean) = prompts
        assert any(s["url"].endswith("/inject.html") for s in j["sources"]), j["sources"]
        sys_turn = p[:p.index("[|endofturn|]")]
        assert sys_turn == clean[:clean.index("[|endofturn|]")], "system turn changed"
        assert p.count("[|system|]") == 1 and p.count("[|endofturn|]") == 2 and p.count("[|user|]") == 1, p
        user = p[p.index("[|user|]"):]
        i = user.index("IGNORE ALL PREVIOUS INSTRUCTIONS")
        assert user.rfind("<source id=", 0, i) >= 0 and user.index("</source>", i) < user.index("Question:")
        assert user.count("</source>") == user.count("<source id=")
        assert user.rstrip().endswith(clean[clean.rindex("Answer the question"):].rstrip()[:60]) or \
            "Answer the question using only the sources above" in user
    check("injection paragraph stays quoted in the user turn; system turn identical to a clean question's", injection)

if MODEL:
    print("server: POST /v1/web/query, /metrics, chat tool kexa_web_search (openai SDK), the UI's Web mode (Playwright)")
    import re, urllib.request, urllib.error
    srv = subprocess.Popen([KEXA, "serve", "-m", MODEL, "--port", "0", "--ctx", "4096", "--threads", "2", "--parallel", "2",
                            "--web-search", f"json:http://127.0.0.1:{S}/fixed/villages?q={{q}}", *ALLOW],
                           stderr=subprocess.PIPE, text=True)
    base = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        line = srv.stderr.readline()
        m = re.search(r"listening on (http://[0-9.:]+)", line)
        if m: base = m.group(1); break
        if not line and srv.poll() is not None: break
    threading_ok = base is not None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # web.sh sets a dead http_proxy
    def post(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with opener.open(req, timeout=120) as r: return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"HTTP {e.code}: {e.read()[:400]!r}")
    def server_query():
        assert threading_ok, "server did not start"
        j = post("/v1/web/query", {"question": "When was the lighthouse of Kestrin built?", "max_tokens": 16, "queries": 0, "pages": 12,
                                   "require_citation": True})
        assert j["object"] == "web.answer" and not j["abstained"] and j["citations"], j
        assert any(s["url"].endswith("/en/village1.html") for s in j["sources"]), j["sources"]
        assert all("text" not in p for p in j["pages"])
        return f"{len(j['sources'])} sources, citation [{j['citations'][0]['number']}] {j['citations'][0]['url'][-20:]}"
    check("POST /v1/web/query answers with sources from the fetched pages", server_query)
    def clients():
        # The openai SDK's tool-calling chat (kexa_web_search) and the UI's Web mode (Playwright).
        assert threading_ok, "server did not start"
        mock_urls = [f"http://127.0.0.1:{port}{path}" for site, port in (("a", A), ("b", B)) for path in mock.SITES[site]]
        urls_file = os.path.join(WORK, "mock_urls.json")
        with open(urls_file, "w") as f: json.dump(mock_urls, f)
        shots = os.environ.get("KEXA_TEST_OUTPUT") or os.path.join(os.getcwd(), os.environ.get("KEXA_BUILD", "build"), "test-output")
        os.makedirs(shots, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
        r = subprocess.run(["node", "tests/conformance/web_clients.mjs", base, urls_file, os.path.join(shots, "web-ui-web-mode.png")],
                           capture_output=True, text=True, timeout=900, env=env)
        print(r.stdout, end="")
        assert r.returncode == 0, (r.stdout.splitlines() or [""])[-1] + r.stderr[-600:]
    check("openai SDK and the UI's Web mode (web_clients.mjs)", clients)
    def server_metrics():
        assert threading_ok, "server did not start"
        with opener.open(base + "/metrics", timeout=10) as r: text = r.read().decode()
        v = {k: float(x) for k, x in re.findall(r"^(kexa_web_[a-z_]+) ([0-9.e+]+)$", text, re.M)}
        assert v["kexa_web_searches_total"] >= 2 and v["kexa_web_fetches_total"] >= 2, v
        assert "kexa_web_refusals_total" in v and "kexa_web_cache_hits_total" in v, v
        return ", ".join(f"{k[9:]}={int(x)}" for k, x in v.items())
    check("/metrics counts web searches, fetches, refusals, cache hits", server_metrics)
    srv.terminate()
    try: srv.wait(10)
    except subprocess.TimeoutExpired: srv.kill()

print("counted connections:", json.dumps({k: mock.COUNTS[str(P[k])] for k in ["search", "a", "b", "f"]}))
def no_f():
    assert mock.COUNTS[str(F)] == 0, mock.COUNTS
check("no request ever reached the non-allowed port", no_f)
sys.exit(min(fails, 100))
