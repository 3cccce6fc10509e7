#!/usr/bin/env bash
# Chat templates rendered by `kexa template` must be byte-identical to Python Jinja2 configured as
# transformers configures it (tests/jinja_reference.py). Details in chat_templates.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/conformance/chat_templates.py
