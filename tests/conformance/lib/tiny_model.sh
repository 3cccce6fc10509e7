# Sourced by the suites that run kexa end to end on a model (rag_answer, server, web). Not a suite
# itself (scripts/test does not scan lib/).
#
#   source tests/conformance/lib/tiny_model.sh
#   make_tiny_model DIR SHARED   # writes the model into DIR; fails (status 1) when it cannot
#
# The model is a tiny random EXAONE 4.0 (tools/make_test_model.py, seed 5) with the real EXAONE 4.0
# tokenizer and chat template from SHARED/fixtures/exaone4-tokenizer. A random model writes nonsense
# prose, so what the suites check with it is form and grounding, never content.

make_tiny_model() {
  /usr/bin/python3 tools/make_test_model.py --shape exaone4-tiny-real-vocab --seed 5 --out "$1" \
    --tokenizer-from "$2/fixtures/exaone4-tokenizer" >/dev/null
}
