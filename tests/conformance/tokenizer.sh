#!/usr/bin/env bash
# Tokenizer conformance: kexa vs Hugging Face tokenizers (npm) on the corpora + adversarial set.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEXA_BUILD="${KEXA_BUILD:-build}"
KEXA_SHARED="${KEXA_SHARED:-$(cd .. && pwd)/shared}"
if [ -n "${KEXA_TOKENIZER_TMP:-}" ]; then  # keep the generated tokenizers for debugging
  tmp="$KEXA_TOKENIZER_TMP"; mkdir -p "$tmp"
else
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fi
node tests/conformance/tokenizer.mjs "$KEXA_BUILD/kexa" "$KEXA_SHARED" "$tmp"
