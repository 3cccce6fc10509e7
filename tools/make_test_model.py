#!/usr/bin/python3
"""Writes a seeded random-weight EXAONE checkpoint as a Hugging Face folder.

config.json + model.safetensors (written by hand, no torch) + a small byte-level BPE tokenizer
(tokenizer.json, tokenizer_config.json) so converters and llama.cpp can load the result.

Presets are tiny models for conformance tests against llama.cpp; weights are scaled so the
logits are peaked (an untied output matrix with std ~1, or an embedding with std ~1 when tied),
otherwise greedy decoding flips on near-ties between implementations.

  /usr/bin/python3 tools/make_test_model.py --preset exaone4-swa --seed 1 --out /tmp/m
  /usr/bin/python3 tools/make_test_model.py --shape exaone4-1.2b --seed 1 --out /tmp/big

--shape exaone4-1.2b writes the real EXAONE-4.0-1.2B dimensions (BF16 unless --dtype says
otherwise) with random weights, streaming tensor by tensor so memory stays small.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

PRESETS = {
    # EXAONE 3.x, grouped-query attention (4 query heads share 2 KV heads), untied output.
    "exaone-gqa": dict(
        model_type="exaone", vocab=512, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128,
        theta=10000.0, llama3=None, tied=False, window=None, pattern=None),
    # EXAONE 3.x with llama3 rope scaling (small original context so all three bands occur
    # within head_dim 16), tied embeddings, 4:1 GQA.
    "exaone-llama3-tied": dict(
        model_type="exaone", vocab=512, hidden=64, layers=3, heads=4, kv_heads=1, ffn=96,
        theta=10000.0, llama3=dict(factor=8.0, low=1.0, high=4.0, orig=256), tied=True,
        window=None, pattern=None),
    # EXAONE 4.0 hybrid: LLLG, window 8 (much shorter than the 80+ token sequences), NoPE global
    # layers. llama.cpp 3.22.1 (node-llama-cpp) only enables SWA for 64-layer exaone4 models and
    # assumes heads * head_dim == hidden, hence 64 narrow layers.
    "exaone4-swa": dict(
        model_type="exaone4", vocab=512, hidden=32, layers=64, heads=4, kv_heads=2, ffn=64,
        theta=10000.0, llama3=None, tied=False, window=8, pattern="LLLG"),
    # EXAONE 4.0 1.2B style: sliding_window null, RoPE on every layer, tied, llama3 scaling.
    "exaone4-global": dict(
        model_type="exaone4", vocab=512, hidden=64, layers=4, heads=4, kv_heads=2, ffn=128,
        theta=1000000.0, llama3=dict(factor=16.0, low=1.0, high=4.0, orig=8192), tied=True,
        window=None, pattern=None),
}

SHAPES = {
    # Tiny widths with the real 102,400-token EXAONE vocabulary: pair with --tokenizer-from the
    # real tokenizer files for tests that need EXAONE's chat template and special tokens (server).
    "exaone4-tiny-real-vocab": dict(
        model_type="exaone4", vocab=102400, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128,
        theta=1000000.0, llama3=dict(factor=16.0, low=1.0, high=4.0, orig=8192), tied=True,
        window=None, pattern=None, max_pos=65536),
    "exaone4-1.2b": dict(
        model_type="exaone4", vocab=102400, hidden=2048, layers=30, heads=32, kv_heads=8, ffn=4096,
        theta=1000000.0, llama3=dict(factor=16.0, low=1.0, high=4.0, orig=8192), tied=True,
        window=None, pattern=None, max_pos=65536),
}

SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def make_tokenizer(vocab_size):
    """Specials, the 256 byte symbols, then merges of frequent-looking pairs up to vocab_size."""
    byte_chars = bytes_to_unicode()
    vocab = {}
    for i, s in enumerate(SPECIALS):
        vocab[s] = i
    for b in range(256):
        vocab[byte_chars[b]] = len(vocab)
    merges = []
    firsts = "Ġetaoinshrdlucmfwypvbgk"
    seconds = "etaoinshrdlucmfwypvbgk"
    for a in firsts:
        for b in seconds:
            if len(vocab) >= vocab_size:
                break
            tok = a + b
            if tok in vocab:
                continue
            vocab[tok] = len(vocab)
            merges.append(f"{a} {b}")
    if len(vocab) < vocab_size:
        sys.exit(f"vocab {vocab_size} too large for the generated merge list")
    return vocab, merges


def write_tokenizer(out, spec):
    vocab, merges = make_tokenizer(spec["vocab"])
    added = [dict(id=i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False,
                  special=True) for i, s in enumerate(SPECIALS)]
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    tc = {
        "add_bos_token": False, "add_eos_token": False, "bos_token": "[BOS]", "eos_token": "[EOS]",
        "pad_token": "[PAD]", "unk_token": "[UNK]", "model_max_length": 4096,
        "tokenizer_class": "GPT2Tokenizer",
        "added_tokens_decoder": {str(i): {k: v for k, v in a.items() if k != "id"} for i, a in enumerate(added)},
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tc, f, ensure_ascii=False, indent=2)


def make_config(spec, dtype):
    H, nH = spec["hidden"], spec["heads"]
    hd = H // nH
    rope_scaling = None
    if spec["llama3"] is not None:
        l3 = spec["llama3"]
        rope_scaling = {"rope_type": "llama3", "factor": l3["factor"], "low_freq_factor": l3["low"],
                        "high_freq_factor": l3["high"], "original_max_position_embeddings": l3["orig"]}
    torch_dtype = "bfloat16" if dtype == "bf16" else "float32"
    common = {
        "vocab_size": spec["vocab"], "hidden_size": H, "num_attention_heads": nH,
        "num_key_value_heads": spec["kv_heads"], "intermediate_size": spec["ffn"],
        "rope_theta": spec["theta"], "rope_scaling": rope_scaling,
        "max_position_embeddings": spec.get("max_pos", 4096),
        "tie_word_embeddings": spec["tied"], "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "torch_dtype": torch_dtype,
    }
    if spec["model_type"] == "exaone":
        cfg = {"architectures": ["ExaoneForCausalLM"], "model_type": "exaone",
               "num_layers": spec["layers"], "head_dim": hd, "activation_function": "silu",
               "layer_norm_epsilon": 1e-5}
    else:
        cfg = {"architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4",
               "num_hidden_layers": spec["layers"], "head_dim": hd, "hidden_act": "silu",
               "rms_norm_eps": 1e-5, "sliding_window": spec["window"],
               "sliding_window_pattern": spec["pattern"]}
        if spec["window"] is None:
            cfg["layer_types"] = ["full_attention"] * spec["layers"]
        else:
            pat = spec["pattern"]
            cfg["layer_types"] = ["sliding_attention" if pat[i % len(pat)] == "L" else "full_attention"
                                  for i in range(spec["layers"])]
    cfg.update(common)
    return cfg


def tensor_plan(spec):
    """(name, shape, kind) in file order; kind picks the initialisation."""
    H, nH, nKV, I, V, L = (spec["hidden"], spec["heads"], spec["kv_heads"], spec["ffn"], spec["vocab"],
                           spec["layers"])
    hd = H // nH
    plan = []
    if spec["model_type"] == "exaone":
        plan.append(("transformer.wte.weight", (V, H), "embed"))
        for i in range(L):
            p = f"transformer.h.{i}."
            plan += [
                (p + "ln_1.weight", (H,), "norm"),
                (p + "attn.attention.q_proj.weight", (nH * hd, H), "lin"),
                (p + "attn.attention.k_proj.weight", (nKV * hd, H), "lin"),
                (p + "attn.attention.v_proj.weight", (nKV * hd, H), "lin"),
                (p + "attn.attention.out_proj.weight", (H, nH * hd), "lin"),
                (p + "ln_2.weight", (H,), "norm"),
                (p + "mlp.c_fc_0.weight", (I, H), "lin"),
                (p + "mlp.c_fc_1.weight", (I, H), "lin"),
                (p + "mlp.c_proj.weight", (H, I), "lin"),
            ]
        plan.append(("transformer.ln_f.weight", (H,), "norm"))
    else:
        plan.append(("model.embed_tokens.weight", (V, H), "embed"))
        for i in range(L):
            p = f"model.layers.{i}."
            plan += [
                (p + "self_attn.q_proj.weight", (nH * hd, H), "lin"),
                (p + "self_attn.k_proj.weight", (nKV * hd, H), "lin"),
                (p + "self_attn.v_proj.weight", (nKV * hd, H), "lin"),
                (p + "self_attn.o_proj.weight", (H, nH * hd), "lin"),
                (p + "self_attn.q_norm.weight", (hd,), "norm"),
                (p + "self_attn.k_norm.weight", (hd,), "norm"),
                (p + "post_attention_layernorm.weight", (H,), "norm"),
                (p + "mlp.gate_proj.weight", (I, H), "lin"),
                (p + "mlp.up_proj.weight", (I, H), "lin"),
                (p + "mlp.down_proj.weight", (H, I), "lin"),
                (p + "post_feedforward_layernorm.weight", (H,), "norm"),
            ]
        plan.append(("model.norm.weight", (H,), "norm"))
    if not spec["tied"]:
        plan.append(("lm_head.weight", (V, H), "head"))
    return plan


def to_bf16_bits(x):
    """float32 -> bf16 bit patterns, round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def write_safetensors(path, plan, dtype, rng):
    st_dtype = "BF16" if dtype == "bf16" else "F32"
    itemsize = 2 if dtype == "bf16" else 4
    header = {}
    offset = 0
    for name, shape, _ in plan:
        n = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for name, shape, kind in plan:
            rows = shape[0]
            cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            # Generate in slabs of rows so the 1.2B shape never holds a whole matrix in memory.
            step = max(1, (1 << 22) // max(cols, 1))
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                sub = (r1 - r0,) + tuple(shape[1:])
                if kind == "norm":
                    x = 1.0 + 0.1 * rng.standard_normal(sub, dtype=np.float32)
                elif kind == "embed":
                    x = rng.standard_normal(sub, dtype=np.float32)
                elif kind == "head":
                    x = rng.standard_normal(sub, dtype=np.float32)
                else:  # linear layer: std 1/sqrt(fan_in) keeps activations O(1)
                    x = rng.standard_normal(sub, dtype=np.float32) / np.float32(np.sqrt(shape[1]))
                if dtype == "bf16":
                    f.write(to_bf16_bits(x).tobytes())
                else:
                    f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=sorted(PRESETS))
    which.add_argument("--shape", choices=sorted(SHAPES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default=None)
    ap.add_argument("--no-tokenizer", action="store_true", help="write only config.json and weights")
    ap.add_argument("--tokenizer-from", metavar="DIR",
                    help="copy vocab.json/merges.txt/tokenizer_config.json/special_tokens_map.json from DIR "
                         "instead of generating a tokenizer (e.g. the real EXAONE 4.0 files for --shape)")
    args = ap.parse_args()

    spec = PRESETS[args.preset] if args.preset else SHAPES[args.shape]
    dtype = args.dtype or ("bf16" if args.shape else "f32")
    if spec["hidden"] % spec["heads"] != 0:
        sys.exit("hidden must be a multiple of heads")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(make_config(spec, dtype), f, indent=2)
    if args.tokenizer_from:
        import shutil
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                     "tokenizer.json", "chat_template.jinja", "generation_config.json"):
            src = os.path.join(args.tokenizer_from, name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(args.out, name))
    elif not args.no_tokenizer and args.preset:
        write_tokenizer(args.out, spec)
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensor_plan(spec), dtype, rng)
    print(f"wrote {args.out} ({args.preset or args.shape}, {dtype}, seed {args.seed})")


if __name__ == "__main__":
    main()
