#!/usr/bin/python3
"""Reference chat-template renderer: Debian's python3-jinja2 configured exactly as Hugging Face
transformers configures it in apply_chat_template (utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[AssistantTracker, jinja2.ext.loopcontrols]), `tojson` replaced by json.dumps with
(ensure_ascii=False, indent=None, separators=None, sort_keys=False), globals raise_exception and
strftime_now, and render(messages=, tools=, documents=, add_generation_prompt=,
**special_tokens_map, **kwargs).

Usage: jinja_reference.py --batch REQUESTS.jsonl > RESULTS.jsonl
(GGUF files are not read here: the caller passes a GGUF's template as template_source.)
Each request line: {"model": PATH | "template_source": TEXT, "special_tokens": {...},
"messages": [...], "tools": [...]|null, "kwargs": {...}, "add_generation_prompt": bool,
"name": TEMPLATE_NAME}. Each result line: {"ok": true, "text": ...} | {"ok": false, "error": ...}.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    # transformers' {% generation %} block; with no tracking requested it renders its body.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


_cache = {}


def compile_template(source):
    if source not in _cache:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[AssistantTracker, loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        _cache[source] = env.from_string(source)
    return _cache[source]


SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
           "additional_special_tokens"]


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def load_model_folder(path):
    """Template sources and special_tokens_map as transformers' tokenizer loading yields them."""
    special = {}
    config = {}
    cfg_path = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
    maps = [config]
    stm = os.path.join(path, "special_tokens_map.json")
    if os.path.exists(stm):
        with open(stm, encoding="utf-8") as f:
            maps.append(json.load(f))
    for m in maps:
        for key in SPECIAL:
            if key not in m:
                continue
            v = m[key]
            if key == "additional_special_tokens":
                special[key] = [token_text(t) for t in v]
            elif v is None:
                special.pop(key, None)
            else:
                special[key] = token_text(v)
    special = {k: special[k] for k in SPECIAL if k in special and special[k]}
    templates = {}
    jinja_path = os.path.join(path, "chat_template.jinja")
    if os.path.exists(jinja_path):
        with open(jinja_path, encoding="utf-8", newline="") as f:
            templates["default"] = f.read()
    elif isinstance(config.get("chat_template"), str):
        templates["default"] = config["chat_template"]
    elif isinstance(config.get("chat_template"), list):
        for e in config["chat_template"]:
            templates[e["name"]] = e["template"]
    return templates, special


_models = {}


def render(req):
    if "template_source" in req:
        templates = {"default": req["template_source"]}
        special = {k: v for k, v in req.get("special_tokens", {}).items() if v}
    else:
        path = req["model"]
        if path not in _models:
            if os.path.isdir(path):
                _models[path] = load_model_folder(path)
            else:
                with open(path, encoding="utf-8", newline="") as f:
                    _models[path] = ({"default": f.read()}, {})
        templates, special = _models[path]
    tools = req.get("tools")
    name = req.get("name") or None
    if name is None:
        if len(templates) == 1:
            name = next(iter(templates))
        elif tools and "tool_use" in templates:
            name = "tool_use"
        else:
            name = "default"
    tpl = compile_template(templates[name])
    kwargs = {**special, **req.get("kwargs", {})}
    return tpl.render(messages=req["messages"], tools=tools, documents=None,
                      add_generation_prompt=req.get("add_generation_prompt", False), **kwargs)


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "--batch":
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.stdout
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            req = json.loads(line)
            try:
                res = {"ok": True, "text": render(req)}
            except Exception as e:  # the reference's error; kexa must fail too
                res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(res, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
