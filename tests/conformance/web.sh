#!/usr/bin/env bash
# Answers from the web, on loopback only: web_mock.py serves a SearXNG-shaped search service and
# mock sites (Korean and English pages, EUC-KR, an injection page, a slow, a 50 MB, a redirecting,
# a PDF, a robots-disallowed page, robots.txt files that redirect) on 127.0.0.1 and counts
# connections per port;
# web_check.py drives `kexa web search/fetch/ask` against it: the address policy on the first hop
# and after a redirect, explicit bounded failures, the page cache, retrieval of a 42-question QA
# set without a model (>= 95% answer page among the sources) and, with a tiny random EXAONE 4.0
# (real tokenizer and template, tools/make_test_model.py), citations that are spans of fetched
# pages and a prompt the injection page cannot change; then kexa serve with the same model:
# POST /v1/web/query, /metrics, and web_clients.mjs (the openai npm SDK's tool-calling chat with
# kexa_web_search, the UI's Web mode in Playwright).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/conformance/lib/tiny_model.sh
KEXA="$PWD/${KEXA_BUILD:-build}/kexa"
SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model="$work/model"
make_tiny_model "$model" "$SHARED" || { echo "  FAIL test model"; exit 1; }
# Proxies in the environment must not matter: kexa connects directly to the checked address.
http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 $PY tests/conformance/web_check.py "$KEXA" "$work" "$model"
fails=$?
echo "web: $fails failed"
[ "$fails" -eq 0 ]
