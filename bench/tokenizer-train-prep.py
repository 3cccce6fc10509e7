#!/usr/bin/python3
"""Builds the tokenizer-training corpora from ../shared/fixtures: a training split and a held-out
split (every 10th unit) per source. Units: KorQuAD contexts (deduplicated), chatbot rows, and
lines of the plain-text files. Usage: tokenizer-train-prep.py FIXTURES OUT_DIR"""
import csv, json, os, sys

fixtures, out = sys.argv[1], sys.argv[2]
os.makedirs(f"{out}/train", exist_ok=True)
os.makedirs(f"{out}/heldout", exist_ok=True)


def lines_of(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def korquad():
    data = json.load(open(f"{fixtures}/korquad-v1-dev/KorQuAD_v1.0_dev.json", encoding="utf-8"))
    seen, units = set(), []
    for art in data["data"]:
        for p in art["paragraphs"]:
            c = p["context"].strip()
            if c not in seen:
                seen.add(c)
                units.append(c)
    return units


def chatbot():
    with open(f"{fixtures}/korean-chatbot-data/ChatbotData.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return [f"{r[0]}\n{r[1]}" for r in rows]


sources = {
    "ko": {
        "korquad": korquad(),
        "chatbot": chatbot(),
        "debian-faq-ko": lines_of(f"{fixtures}/debian-faq-ko-en/debian-faq.ko.txt"),
    },
    "en": {
        "wikitext": lines_of(f"{fixtures}/wikitext-2-raw-test/wiki.test.raw"),
        "shakespeare": lines_of(f"{fixtures}/tinyshakespeare/input.txt"),
        "debian-faq-en": lines_of(f"{fixtures}/debian-faq-ko-en/debian-faq.en.txt"),
    },
}
for lang, srcs in sources.items():
    held = []
    for name, units in srcs.items():
        train = [u for i, u in enumerate(units) if i % 10 != 9]
        held += [u for i, u in enumerate(units) if i % 10 == 9]
        with open(f"{out}/train/{lang}-{name}.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(train) + "\n")
    with open(f"{out}/heldout/{lang}.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(held) + "\n")
