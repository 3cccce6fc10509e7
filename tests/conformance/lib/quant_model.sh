# Sourced by the suites that compare quantized inference (llamacpp_quant, vulkan). Not a suite
# itself (scripts/test does not scan lib/).
#
#   source tests/conformance/lib/quant_model.sh
#   make_quant_model HF GGUF SEQ   # run from the repository root with $KEXA set
#
# Writes the tiny random EXAONE 4.0 (seed 5) whose widths are multiples of 256 (so the K-quants
# apply) and whose logits are peaked: the F32 Hugging Face folder HF, its conversion to GGUF (the
# source of tests/data/quant/tiny-*.gguf, see tests/data/quant/README.md), and SEQ, 512 token ids
# (seed 6) for teacher-forced scoring.

make_quant_model() {
  /usr/bin/python3 - "$1" "$3" <<'PYEOF'
import json, os, sys
import numpy as np
sys.path.insert(0, "tools")
import make_test_model as m
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
spec = dict(model_type="exaone4", vocab=512, hidden=256, layers=1, heads=4, kv_heads=2, ffn=256,
            theta=10000.0, llama3=None, tied=False, window=None, pattern=None)
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(m.make_config(spec, "f32"), f, indent=2)
m.write_tokenizer(out, spec)
m.write_safetensors(os.path.join(out, "model.safetensors"), m.tensor_plan(spec), "f32",
                    np.random.default_rng(5))
rng = np.random.default_rng(6)
with open(sys.argv[2], "w") as f:
    f.write(" ".join(str(int(v)) for v in rng.integers(4, 512, 512)) + "\n")
PYEOF
  "$KEXA" convert "$1" "$2" --name kexa-quant-conformance >/dev/null 2>&1
}
