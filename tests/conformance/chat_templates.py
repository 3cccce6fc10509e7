#!/usr/bin/python3
"""Chat-template conformance: `kexa template --batch` against tests/jinja_reference.py (Python
Jinja2 configured as transformers configures it), byte for byte.

Families:
  1. The EXAONE 4.0 chat_template.jinja and the EXAONE 3.5 template (tokenizer_config.json), over
     generated conversations (system or not, multi-turn, tools with nested/Korean arguments, one and
     several tool results, reasoning_content, </think> in content, enable_thinking / skip_think
     true/false/absent, add_generation_prompt true/false, content as a list of parts, bad roles).
  2. The same templates embedded in GGUF files (tokenizer.chat_template, written here with a
     minimal independent GGUF writer) and read back by kexa (the reference gets the source).
     The GGUF fixtures in ../shared/fixtures/llamacpp-vocab-gguf carry no chat template; if one
     ever does, it is rendered too.
  3. The small feature templates in tests/templates/*.jinja over a fixed set of contexts.
Errors must agree too: when Python fails, kexa must fail for the same reason (same_error), and
vice versa. Every family has a minimum number of byte-identical renders.
"""
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("KEXA_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
BUILD = os.environ.get("KEXA_BUILD", "build")
KEXA = os.path.join(ROOT, BUILD, "kexa") if not os.path.isabs(BUILD) else os.path.join(BUILD, "kexa")
FIX = os.path.join(SHARED, "fixtures")
E4 = os.path.join(FIX, "exaone4-tokenizer")
E35 = os.path.join(FIX, "exaone35-tokenizer")

rng = random.Random(20260401)

WORDS = ["hello", "안녕하세요", "날씨", "weather", "Seoul", "서울", "the", "quick", "brown", "fox", "数字", "🙂",
         "tab\there", "quote\"s", "back\\slash", "line\nbreak", "  spaced  ", "it's", "</tool>", "{json}", "[|user|]"]


def text(n=None):
    n = n or rng.randint(1, 6)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def arguments():
    choice = rng.randint(0, 4)
    if choice == 0:
        return {"city": rng.choice(["서울", "Busan", "東京"]), "unit": rng.choice(["celsius", "fahrenheit"])}
    if choice == 1:
        return {"query": text(), "filters": {"lang": "ko", "tags": ["뉴스", "tech", 3, 2.5, True, None],
                                             "range": {"from": 1, "to": 1e21, "neg": -0.000012}}}
    if choice == 2:
        return {}
    if choice == 3:
        return json.dumps({"raw": "string arguments", "n": 1}, ensure_ascii=False)  # already a string
    return {"nested": [{"a": [1, [2, [3]]]}, {"b": {"c": "깊은 값"}}], "empty": [], "obj": {}}


def tool_call(i):
    name = rng.choice(["get_weather", "search_web", "calc", "번역"])
    style = rng.randint(0, 2)
    if style == 0:
        return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments()}}
    if style == 1:
        return {"name": name, "arguments": arguments()}
    return {"function": {"name": name, "parameters": arguments()}}


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "현재 날씨를 가져옵니다",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "description": "도시 이름"},
                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                                          "required": ["city"]}}},
    {"type": "function", "function": {"name": "search_web", "description": "Search the web",
                                      "parameters": {"type": "object", "properties": {
                                          "query": {"type": "string"},
                                          "filters": {"type": "object", "properties": {
                                              "lang": {"type": "string"}, "max": {"type": "integer", "default": 10},
                                              "score": {"type": "number", "minimum": 0.5}}}}}}},
]


def assistant_message(simple=False):
    kind = rng.choice([0, 1, 2, 3, 6]) if simple else rng.randint(0, 6)
    m = {"role": "assistant"}
    if kind == 0:
        m["content"] = text()
    elif kind == 1:
        m["content"] = "<think>\n" + text() + "\n</think>\n\n" + text()
    elif kind == 2:
        m["content"] = text() + "</think>" + text() + "</think>  " + text() + "  "
    elif kind == 3:
        m["content"] = text()
        m["reasoning_content"] = text()
    elif kind == 4:
        m["content"] = rng.choice(["", None])
        m["tool_calls"] = [tool_call(i) for i in range(rng.randint(1, 3))]
    elif kind == 5:
        m["content"] = text()
        m["tool_calls"] = [tool_call(i) for i in range(rng.randint(1, 2))]
        if rng.random() < 0.5:
            m["reasoning_content"] = text()
    else:
        m["content"] = "<think>" + text() + "</think>" + text()
    return m


def tool_results():
    out = []
    for _ in range(rng.randint(1, 3)):
        c = rng.choice([text(), {"temp": 21.5, "desc": "맑음", "list": [1, 2]}, [1, "two", None], 42, ""])
        out.append({"role": "tool", "content": c, "tool_call_id": "call_0"})
    return out


def conversation(allow_list_content=True, simple=False):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": rng.choice(["You are EXAONE model from LG AI Research, a helpful assistant.", text()])})
    turns = rng.randint(1, 4)
    for t in range(turns):
        if allow_list_content and rng.random() < 0.1:
            msgs.append({"role": "user", "content": [{"type": "text", "text": text()}]})
        else:
            msgs.append({"role": "user", "content": text()})
        if t == turns - 1 and rng.random() < 0.4:
            break
        a = assistant_message(simple)
        msgs.append(a)
        if a.get("tool_calls"):
            msgs.extend(tool_results())
            if rng.random() < 0.7:
                msgs.append(assistant_message())
    return msgs


def kwargs():
    kw = {}
    r = rng.randint(0, 2)
    if r == 0:
        kw["enable_thinking"] = True
    elif r == 1:
        kw["enable_thinking"] = False
    r = rng.randint(0, 2)
    if r == 0:
        kw["skip_think"] = True
    elif r == 1:
        kw["skip_think"] = False
    return kw


def exaone_requests(model, n, simple=False):
    """simple: plain-text turns only (the EXAONE 3.5 template concatenates content as a string)."""
    reqs = []
    for i in range(n):
        msgs = conversation(not simple, simple)
        tools = TOOLS if rng.random() < 0.4 else rng.choice([None, []])
        req = {"messages": msgs, "tools": tools, "kwargs": kwargs(), "add_generation_prompt": rng.random() < 0.5}
        if i % 40 == 7:
            req["messages"] = msgs + [{"role": "narrator", "content": "bad role"}]
        reqs.append(req)
    # Fixed cases the acceptance names explicitly.
    base = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]
    fixed = [
        {"messages": base, "tools": None, "kwargs": {}, "add_generation_prompt": True},
        {"messages": base, "tools": None, "kwargs": {"enable_thinking": True}, "add_generation_prompt": True},
        {"messages": base, "tools": None, "kwargs": {"enable_thinking": False}, "add_generation_prompt": True},
        {"messages": base, "tools": TOOLS, "kwargs": {}, "add_generation_prompt": False},
        {"messages": [{"role": "user", "content": "q"}], "tools": TOOLS, "kwargs": {}, "add_generation_prompt": True},
        {"messages": base + [{"role": "assistant", "content": "a", "reasoning_content": "r"}],
         "tools": None, "kwargs": {"skip_think": False}, "add_generation_prompt": False},
        {"messages": base + [{"role": "assistant", "content": "<think>\nr\n</think>\n\na"}],
         "tools": None, "kwargs": {"skip_think": False}, "add_generation_prompt": False},
        {"messages": base + [{"role": "assistant", "content": None, "tool_calls": [tool_call(0), tool_call(1)]},
                             {"role": "tool", "content": "r1"}, {"role": "tool", "content": {"k": "값"}}],
         "tools": TOOLS, "kwargs": {}, "add_generation_prompt": True},
    ]
    for r in reqs + fixed:
        r["model"] = model
    return reqs + fixed


# ---- minimal GGUF v3 writer (metadata only), independent of kexa ----

def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, meta):
    body = b""
    for key, (typ, val) in meta.items():
        body += gguf_string(key) + struct.pack("<I", typ)
        if typ == 8:
            body += gguf_string(val)
        elif typ == 4:
            body += struct.pack("<I", val)
        elif typ == 9:
            body += struct.pack("<IQ", 8, len(val)) + b"".join(gguf_string(v) for v in val)
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta)) + body
    data += b"\0" * ((32 - len(data) % 32) % 32)
    with open(path, "wb") as f:
        f.write(data)


def gguf_chat_template(path):
    """Reads tokenizer.chat_template from a GGUF if present (for the shared fixtures)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        return None
    _, _, nkv = struct.unpack_from("<IQQ", data, 4)
    off = 24

    def rd_str(o):
        (n,) = struct.unpack_from("<Q", data, o)
        return data[o + 8:o + 8 + n].decode("utf-8", "replace"), o + 8 + n

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, o):
        if t == 8:
            return rd_str(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, o)
            o += 12
            for _ in range(n):
                o = skip(et, o)
            return o
        return o + sizes[t]

    for _ in range(nkv):
        key, off = rd_str(off)
        (t,) = struct.unpack_from("<I", data, off)
        off += 4
        if key == "tokenizer.chat_template" and t == 8:
            return rd_str(off)[0]
        off = skip(t, off)
    return None


def template_source_of_folder(path):
    p = os.path.join(path, "chat_template.jinja")
    if os.path.exists(p):
        with open(p, encoding="utf-8", newline="") as f:
            return f.read()
    with open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def gguf_requests(tmp):
    kexa_reqs, ref_reqs = [], []
    tokens = ["[PAD]", "[BOS]", "[|endofturn|]", "[UNK]"]
    for label, folder in [("exaone4", E4), ("exaone35", E35)]:
        src = template_source_of_folder(folder)
        path = os.path.join(tmp, f"{label}-template.gguf")
        write_gguf(path, {"general.architecture": (8, label), "tokenizer.ggml.tokens": (9, tokens),
                          "tokenizer.ggml.bos_token_id": (4, 1), "tokenizer.ggml.eos_token_id": (4, 2),
                          "tokenizer.chat_template": (8, src)})
        for _ in range(30):
            req = {"messages": conversation(label == "exaone4", label == "exaone35"), "tools": TOOLS if rng.random() < 0.4 else None, "kwargs": kwargs(),
                   "add_generation_prompt": rng.random() < 0.5}
            kexa_reqs.append(dict(req, model=path))
            ref_reqs.append(dict(req, template_source=src, special_tokens={"bos_token": "[BOS]", "eos_token": "[|endofturn|]"}))
    fixtures = sorted(f for f in os.listdir(os.path.join(FIX, "llamacpp-vocab-gguf")) if f.endswith(".gguf"))
    found = 0
    for f in fixtures:
        path = os.path.join(FIX, "llamacpp-vocab-gguf", f)
        src = gguf_chat_template(path)
        if src is None:
            continue
        found += 1
        for _ in range(20):
            req = {"messages": conversation(False), "tools": None, "kwargs": kwargs(), "add_generation_prompt": True}
            kexa_reqs.append(dict(req, model=path))
            ref_reqs.append(dict(req, template_source=src))
    return kexa_reqs, ref_reqs, len(fixtures), found


CONTEXTS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, World"},
                  {"role": "assistant", "content": "  Hi!  "}, {"role": "user", "content": "한국어 질문"}],
     "tools": None, "kwargs": {"n": 3, "items": [3, 1, 2, 1], "names": ["b", "A", "c", "a"], "flag": True,
                                "d": {"b": 1, "a": 2, "C": 3}, "f": 2.5, "s": "  The quick-brown fox (jumps) [over]  ",
                                "people": [{"name": "kim", "age": 31, "team": {"id": 2}}, {"name": "lee", "age": 25},
                                           {"name": "park", "age": 40, "team": {"id": 1}}]},
     "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "only user"}], "tools": TOOLS,
     "kwargs": {"n": 0, "items": [], "names": [], "flag": False, "d": {}, "f": -0.5, "s": "",
                "people": []}, "add_generation_prompt": False},
    {"messages": [], "tools": [], "kwargs": {"n": -7, "items": [1.5, 2, True], "names": ["x"], "d": {"k": None},
                                             "f": 1e16, "s": "line1\nline2\r\n\nline4", "people": [{"name": "x"}]},
     "add_generation_prompt": True},
]


def feature_requests():
    tdir = os.path.join(ROOT, "tests", "templates")
    reqs = []
    names = sorted(f for f in os.listdir(tdir) if f.endswith(".jinja"))
    for f in names:
        for ctx in CONTEXTS:
            reqs.append(dict(ctx, model=os.path.join(tdir, f)))
    return reqs, len(names)


def coverage(reqs):
    """Counts of the conversation features the acceptance lists, so a generator change that stops
    covering one shows up (and fails)."""
    c = {"system": 0, "no_system": 0, "multi_turn": 0, "tools": 0, "tool_calls": 0, "korean_args": 0,
         "1_tool_result": 0, "2+_tool_results": 0, "reasoning_content": 0, "</think>_in_content": 0,
         "enable_thinking=true": 0, "enable_thinking=false": 0, "enable_thinking_absent": 0,
         "skip_think=true": 0, "skip_think=false": 0, "skip_think_absent": 0, "add_generation_prompt": 0,
         "no_generation_prompt": 0}
    for r in reqs:
        m = r["messages"]
        c["system" if m and m[0]["role"] == "system" else "no_system"] += 1
        c["multi_turn"] += sum(1 for x in m if x["role"] == "user") > 1
        c["tools"] += bool(r.get("tools"))
        calls = [x for x in m if x.get("tool_calls")]
        c["tool_calls"] += bool(calls)
        c["korean_args"] += any(any("\uac00" <= ch <= "\ud7a3" for ch in json.dumps(x["tool_calls"], ensure_ascii=False)) for x in calls)
        runs, cur = [], 0
        for x in m + [{"role": "end"}]:
            if x["role"] == "tool":
                cur += 1
            elif cur:
                runs.append(cur)
                cur = 0
        c["1_tool_result"] += 1 in runs
        c["2+_tool_results"] += any(n >= 2 for n in runs)
        c["reasoning_content"] += any("reasoning_content" in x for x in m)
        c["</think>_in_content"] += any(isinstance(x.get("content"), str) and "</think>" in x["content"] for x in m)
        kw = r.get("kwargs", {})
        c["enable_thinking=" + str(kw["enable_thinking"]).lower() if "enable_thinking" in kw else "enable_thinking_absent"] += 1
        c["skip_think=" + str(kw["skip_think"]).lower() if "skip_think" in kw else "skip_think_absent"] += 1
        c["add_generation_prompt" if r.get("add_generation_prompt") else "no_generation_prompt"] += 1
    return c


def run_batch(cmd, reqs, tmp, label):
    path = os.path.join(tmp, f"{label}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in reqs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    out = subprocess.run(cmd + [path], capture_output=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr.decode("utf-8", "replace"))
        raise SystemExit(f"{label}: {' '.join(cmd)} exited with {out.returncode}")
    lines = [l for l in out.stdout.decode("utf-8").split("\n") if l]  # not splitlines(): U+2028 is data
    if len(lines) != len(reqs):
        raise SystemExit(f"{label}: expected {len(reqs)} results, got {len(lines)}")
    return [json.loads(l) for l in lines]


UNKNOWN_NAME = ("No filter named", "No test named")


def ref_error(text):
    """(kind, message) of a reference error, "Class: message" (jinja_reference.py). raise_exception
    raises TemplateError; an unknown filter or test is TemplateAssertionError when Jinja2 sees it
    at compile time and TemplateRuntimeError in a branch it compiles lazily: one kind here."""
    cls, _, msg = text.partition(": ")
    if cls in ("TemplateAssertionError", "TemplateRuntimeError") and msg.startswith(UNKNOWN_NAME):
        cls = "unknown filter or test"
    return cls, msg


def kexa_error(text):
    """(kind, message) of a `kexa template` error: "[ORIGIN: ]template [syntax ]error at line L,
    column C: [CONTEXT: ...]MESSAGE", where the CONTEXT frames name the operator, filter or
    attribute being evaluated ("filter 'selectattr': ") and MESSAGE is "raise_exception: TEXT" for
    the template's own raise_exception, "Class: message" with Python's exception class, or
    "No filter/test named ..."."""
    m = re.search(r"template (syntax )?error at line \d+, column \d+: (.*)\Z", text, re.S)
    if not m:
        return "not a template error", text
    msg = m.group(2)
    if m.group(1):
        return "TemplateSyntaxError", msg
    r = re.search(r"(?:\A|: )raise_exception: (.*)\Z", msg, re.S)
    if r:
        return "TemplateError", r.group(1)
    u = re.search(r"(?:\A|: )(No (?:filter|test) named .*)\Z", msg, re.S)
    if u:
        return "unknown filter or test", u.group(1)
    c = re.search(r"(?:\A|: )([A-Za-z]+(?:Error|Exception)): (.*)\Z", msg, re.S)
    return (c.group(1), c.group(2)) if c else ("unclassified", msg)


def same_error(ref_text, kexa_text):
    """Both sides failed for the same reason: the same exception class (kind), and for the
    template's own raise_exception exactly the same message. Other messages may be worded
    differently (for int + str kexa says Python's str + int message, "can only concatenate str
    (not "int") to str"), but must name the same things: every name the reference quotes ('team',
    'int', 'unknown_filter') appears in kexa's, or, when it quotes none, the messages are equal but
    for quote marks ("list object has no element 0" / "'list object' has no element 0")."""
    rk, rm = ref_error(ref_text)
    kk, km = kexa_error(kexa_text)
    if rk != kk:
        return False
    if rk == "TemplateError":
        return rm == km
    names = [a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", rm)]
    if names:
        return all(n in km for n in names)
    unquote = lambda m: " ".join(m.replace("'", "").replace('"', "").split())
    return unquote(rm) == unquote(km)


def compare(name, kexa_reqs, ref_reqs, tmp, min_same):
    """Fails on any difference: a render that differs, one side failing alone, or both failing
    for different reasons (same_error); and when fewer than min_same renders are identical."""
    ref = run_batch(["/usr/bin/python3", os.path.join(ROOT, "tests", "jinja_reference.py"), "--batch"], ref_reqs, tmp, name + "-ref")
    got = run_batch([KEXA, "template", "--batch"], kexa_reqs, tmp, name + "-kexa")
    same = errors_same = 0
    failures = []
    for i, (r, g) in enumerate(zip(ref, got)):
        if r["ok"] and g["ok"] and r["text"] == g["text"]:
            same += 1
        elif not r["ok"] and not g["ok"] and same_error(r["error"], g["error"]):
            errors_same += 1
        else:
            failures.append((i, r, g))
    ok_renders = sum(1 for r in ref if r["ok"])
    print(f"{name}: {len(ref)} cases, {same} byte-identical renders, {errors_same} same errors on both sides "
          f"({ok_renders} reference renders succeeded), {len(failures)} mismatches")
    for i, r, g in failures[:5]:
        print(f"  case {i}: model={kexa_reqs[i].get('model')}")
        print(f"    reference: {json.dumps(r, ensure_ascii=False)[:1500]}")
        print(f"    kexa:      {json.dumps(g, ensure_ascii=False)[:1500]}")
    n = len(failures)
    if same < min_same:
        print(f"  expected >= {min_same} byte-identical renders, got {same}")
        n += 1
    return n


def main():
    if not os.path.exists(KEXA):
        print(f"chat_templates: {KEXA} missing")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        total_fail = 0
        e4 = exaone_requests(E4, 150)
        cov = coverage(e4)
        print("EXAONE 4.0 conversation coverage: " + ", ".join(f"{k} {v}" for k, v in cov.items()))
        missing = [k for k, v in cov.items() if v < 3]
        if missing:
            print(f"coverage too thin for: {missing}")
            total_fail += 1
        # Minimums of identical renders, well under what each batch gives (4.0: 154 of 158 render,
        # 3.5: 107 of 108, GGUF: 60 of 60, feature templates: 66 of 72), so a generator or fixture
        # change that turns the cases into errors cannot pass on the errors alone.
        total_fail += compare("EXAONE 4.0 chat_template.jinja", e4, e4, tmp, 120)
        e35 = exaone_requests(E35, 100, simple=True)
        total_fail += compare("EXAONE 3.5 tokenizer_config.json", e35, e35, tmp, 80)
        kreq, rreq, nfix, found = gguf_requests(tmp)
        print(f"GGUF fixtures: {nfix} files, {found} with tokenizer.chat_template")
        total_fail += compare("GGUF tokenizer.chat_template", kreq, rreq, tmp, 50 + 15 * found)
        freq, ntemplates = feature_requests()
        total_fail += compare(f"feature templates ({ntemplates} files x {len(CONTEXTS)} contexts)", freq, freq, tmp, 60)
        if ntemplates < 20:
            print(f"expected >= 20 feature templates, found {ntemplates}")
            total_fail += 1
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
