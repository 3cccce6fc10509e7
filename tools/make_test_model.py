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

# K-EXAONE (exaone_moe) presets: explicit head_dim (q width nH*hd != hidden), leading dense
# layers, routed experts with nonzero e_score_correction_bias (std `bias_std`, large enough that
# the bias changes which experts are chosen), shared experts, LLLG sliding layers with NoPE globals.
MOE_PRESETS = {
    "exaone-moe-tiny": dict(
        model_type="exaone_moe", vocab=512, hidden=64, layers=6, heads=4, kv_heads=2, head_dim=32,
        ffn=128, experts=16, top_k=4, expert_ffn=32, shared=1, dense_layers=1, window=8,
        pattern="LLLG", theta=1000000.0, tied=False, scaling=2.5, bias_std=0.3, n_group=1,
        topk_group=1, mtp=0),
    # Widths that are multiples of 256 so the K-quants (Q4_K, Q6_K) apply to every matrix. Two
    # layers and wide-spread biases keep routing margins above quantization noise, so kexa and
    # llama.cpp rarely pick different experts on near-ties (a flip moves logits by ~10).
    # Peaked logits (for the greedy-token check of the Q8_0 / Q4_K_M conformance): with a plain
    # random lm_head the top-1/top-2 gap of 512 random logits falls to ~1e-3 x max|logit| somewhere
    # in 88 positions, below the ~5e-3 x max|logit| that last-bit f32 summation-order differences
    # in Q8_0 activation rounding can move the logits, so greedy ids part by chance. Here
    # lm_head = head_scale x (N(0, 1) + head_peak x embed[x] in the row of f(x)), f a seeded random
    # permutation: the residual stream keeps a share of the current token's embedding, so token
    # f(x) leads by a clear margin (seed 7: min gap 0.14 x max|logit| over the 88 positions, against
    # 6e-4 with head_peak 0) while all 512 logits stay random functions of the whole network.
    # head_scale = 1/32 brings max|logit| to ~12 so the softmax is not one-hot (median top-1
    # probability ~0.94) and the KL check still measures something.
    "exaone-moe-quant": dict(
        model_type="exaone_moe", vocab=512, hidden=256, layers=2, heads=4, kv_heads=2, head_dim=128,
        ffn=256, experts=16, top_k=4, expert_ffn=256, shared=1, dense_layers=1, window=8,
        pattern="LLLG", theta=1000000.0, tied=False, scaling=2.5, bias_std=1.0, n_group=1,
        topk_group=1, mtp=0, head_peak=2.0, head_scale=1.0 / 32),
}
MOE_SHAPES = {
    # K-EXAONE-236B-A23B widths with 4 layers + 1 MTP layer (written as a Q4_K GGUF: --gguf-q4k).
    "k-exaone-4l": dict(
        model_type="exaone_moe", vocab=153600, hidden=6144, layers=4, heads=64, kv_heads=8,
        head_dim=128, ffn=18432, experts=128, top_k=8, expert_ffn=2048, shared=1, dense_layers=1,
        window=128, pattern="LLLG", theta=1000000.0, tied=False, scaling=2.5, bias_std=0.3,
        n_group=1, topk_group=1, mtp=1, max_pos=262144),
}
PRESETS.update(MOE_PRESETS)
SHAPES.update(MOE_SHAPES)

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


def moe_config(spec, dtype):
    L, pat = spec["layers"], spec["pattern"]
    sliding = [pat[i % len(pat)] == "L" for i in range(L)]
    return {
        "architectures": ["ExaoneMoeForCausalLM"], "model_type": "exaone_moe",
        "vocab_size": spec["vocab"], "hidden_size": spec["hidden"], "num_hidden_layers": L,
        "num_attention_heads": spec["heads"], "num_key_value_heads": spec["kv_heads"],
        "head_dim": spec["head_dim"], "intermediate_size": spec["ffn"],
        "moe_intermediate_size": spec["expert_ffn"], "num_experts": spec["experts"],
        "num_experts_per_tok": spec["top_k"], "num_shared_experts": spec["shared"],
        "first_k_dense_replace": spec["dense_layers"],
        "mlp_layer_types": ["dense" if i < spec["dense_layers"] else "sparse" for i in range(L)],
        "n_group": spec["n_group"], "topk_group": spec["topk_group"], "norm_topk_prob": True,
        "routed_scaling_factor": spec["scaling"], "scoring_func": "sigmoid", "topk_method": "noaux_tc",
        "sliding_window": spec["window"], "sliding_window_pattern": pat,
        "layer_types": ["sliding_attention" if s else "full_attention" for s in sliding],
        "sliding_windows": [spec["window"] if s else 0 for s in sliding],
        "rope_theta": spec["theta"], "rope_scaling": None,
        "max_position_embeddings": spec.get("max_pos", 4096), "rms_norm_eps": 1e-5,
        "hidden_act": "silu", "tie_word_embeddings": spec["tied"], "bos_token_id": 1,
        "eos_token_id": 2, "pad_token_id": 0, "num_nextn_predict_layers": spec["mtp"],
        "torch_dtype": "bfloat16" if dtype == "bf16" else "float32",
    }


def moe_tensor_plan(spec, fused=False):
    """exaone_moe tensors; `fused` writes transformers-5 experts.gate_up_proj / experts.down_proj."""
    H, nH, nKV, hd, I, V, L = (spec["hidden"], spec["heads"], spec["kv_heads"], spec["head_dim"],
                               spec["ffn"], spec["vocab"], spec["layers"])
    E, Ie, Is = spec["experts"], spec["expert_ffn"], spec["expert_ffn"] * spec["shared"]
    plan = [("model.embed_tokens.weight", (V, H), "embed")]

    def block(p, dense):
        out = [
            (p + "input_layernorm.weight", (H,), "norm"),
            (p + "self_attn.q_proj.weight", (nH * hd, H), "lin"),
            (p + "self_attn.k_proj.weight", (nKV * hd, H), "lin"),
            (p + "self_attn.v_proj.weight", (nKV * hd, H), "lin"),
            (p + "self_attn.o_proj.weight", (H, nH * hd), "lin"),
            (p + "self_attn.q_norm.weight", (hd,), "norm"),
            (p + "self_attn.k_norm.weight", (hd,), "norm"),
            (p + "post_attention_layernorm.weight", (H,), "norm"),
        ]
        if dense:
            return out + [(p + "mlp.gate_proj.weight", (I, H), "lin"),
                          (p + "mlp.up_proj.weight", (I, H), "lin"),
                          (p + "mlp.down_proj.weight", (H, I), "lin")]
        out += [(p + "mlp.gate.weight", (E, H), "lin"),
                (p + "mlp.e_score_correction_bias", (E,), "bias")]
        if fused:
            out += [(p + "mlp.experts.gate_up_proj", (E, 2 * Ie, H), "lin"),
                    (p + "mlp.experts.down_proj", (E, H, Ie), "lin")]
        else:
            for e in range(E):
                q = f"{p}mlp.experts.{e}."
                out += [(q + "gate_proj.weight", (Ie, H), "lin"), (q + "up_proj.weight", (Ie, H), "lin"),
                        (q + "down_proj.weight", (H, Ie), "lin")]
        if spec["shared"] > 0:
            out += [(p + "mlp.shared_experts.gate_proj.weight", (Is, H), "lin"),
                    (p + "mlp.shared_experts.up_proj.weight", (Is, H), "lin"),
                    (p + "mlp.shared_experts.down_proj.weight", (H, Is), "lin")]
        return out

    for i in range(L):
        plan += block(f"model.layers.{i}.", i < spec["dense_layers"])
    plan.append(("model.norm.weight", (H,), "norm"))
    if not spec["tied"]:
        plan.append(("lm_head.weight", (V, H), "head"))
    if spec["mtp"] > 0:
        plan += [("mtp.fc.weight", (H, 2 * H), "lin"),
                 ("mtp.pre_fc_norm_embedding.weight", (H,), "norm"),
                 ("mtp.pre_fc_norm_hidden.weight", (H,), "norm"),
                 ("mtp.norm.weight", (H,), "norm")]
        for k in range(spec["mtp"]):
            plan += block(f"mtp.layers.{k}.", True)
    return plan


def make_config(spec, dtype):
    if spec["model_type"] == "exaone_moe":
        return moe_config(spec, dtype)
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


def tensor_plan(spec, fused=False):
    """(name, shape, kind) in file order; kind picks the initialisation."""
    if spec["model_type"] == "exaone_moe":
        return moe_tensor_plan(spec, fused)
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


def write_safetensors(path, plan, dtype, rng, bias_std=0.3, head_peak=0.0, head_scale=1.0):
    """head_peak > 0 (presets with `head_peak`): lm_head = head_scale x (N(0, 1) + head_peak x
    embed[x] in the row of f(x)), f a seeded random permutation of the vocabulary (see
    MOE_PRESETS). The embedding is kept in memory for that, so use it only on small models."""
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
    embed = None
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for name, shape, kind in plan:
            if head_peak > 0 and kind == "head":
                if embed is None:
                    sys.exit("head_peak needs an untied model (embed_tokens before lm_head)")
                head = rng.standard_normal(shape, dtype=np.float32)
                perm = rng.permutation(shape[0])
                head[perm] += np.float32(head_peak) * embed
                head *= np.float32(head_scale)
                f.write(to_bf16_bits(head).tobytes() if dtype == "bf16"
                        else np.ascontiguousarray(head, dtype="<f4").tobytes())
                continue
            rows = shape[0]
            cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            fan_in = shape[-1]
            # Generate in slabs of rows so the 1.2B shape never holds a whole matrix in memory.
            step = max(1, (1 << 22) // max(cols, 1))
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                sub = (r1 - r0,) + tuple(shape[1:])
                if kind == "norm":
                    x = 1.0 + 0.1 * rng.standard_normal(sub, dtype=np.float32)
                elif kind == "bias":  # e_score_correction_bias: changes which experts win
                    x = np.float32(bias_std) * rng.standard_normal(sub, dtype=np.float32)
                elif kind == "embed":
                    x = rng.standard_normal(sub, dtype=np.float32)
                    if head_peak > 0:
                        embed = x if embed is None else np.concatenate([embed, x])
                elif kind == "head":
                    x = rng.standard_normal(sub, dtype=np.float32)
                else:  # linear layer: std 1/sqrt(fan_in) keeps activations O(1)
                    x = rng.standard_normal(sub, dtype=np.float32) / np.float32(np.sqrt(fan_in))
                if dtype == "bf16":
                    f.write(to_bf16_bits(x).tobytes())
                else:
                    f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())


# ---- K-EXAONE (exaone_moe) models with an MTP block whose drafts agree with the main model -------
#
# Speculative decoding needs a draft that is often right. Random weights give a draft that is
# right about 1/vocab of the time, so these weights are constructed instead:
#   * lm_head row f(x) = alpha * embed[x] / |embed[x]| for a fixed random permutation f, so a
#     residual stream dominated by embed[x] predicts f(x) ("the next token is a function of the
#     current one");
#   * every layer (attention, dense MLP, experts) writes into the residual stream through
#     output projections scaled by `mix`, so the context perturbs that map; larger `mix`, more
#     disagreement;
#   * the MTP block's fc passes its embedding half (enorm(embed[x_{t+1}])) straight through and
#     its own layer is random like the others, so it predicts f(x_{t+1}), which the main model
#     also predicts for position t+2 unless the context moved it.
# Shapes follow K-EXAONE: q width nH*hd != hidden, QK-norm, LLLG sliding layers with NoPE global
# layers, leading dense layer(s), sigmoid-routed experts with correction biases and a shared
# expert, one global NoPE MTP layer with a dense MLP.
MTP_MODELS = {
    # Identity tests (--mtp 0 vs --mtp 2): tiny, dense layers only (no MoE code involved).
    "exaone-moe-mtp-dense": dict(
        vocab=512, hidden=64, layers=4, heads=4, kv_heads=2, head_dim=32, ffn=128, dense_layers=4,
        experts=8, top_k=2, moe_ffn=32, shared=1, window=8, pattern="LLLG", mix=1.0, alpha=1.0,
        bias_scale=0.0, dtype="f32"),
    # Same with MoE layers after one dense layer (needs the MoE forward pass).
    "exaone-moe-mtp-tiny": dict(
        vocab=512, hidden=64, layers=4, heads=4, kv_heads=2, head_dim=32, ffn=128, dense_layers=1,
        experts=16, top_k=4, moe_ffn=32, shared=1, window=8, pattern="LLLG", mix=1.0, alpha=1.0,
        bias_scale=0.05, dtype="f32"),
    # Benchmark (bench/mtp_speedup.sh): decode is weight-bandwidth bound (about 0.8 GB of F32
    # weights read per token), and, as in K-EXAONE (48 layers + 1 MTP layer), the main model is
    # many times the MTP block (24 layers against one; a draft step reads the MTP layer, its fc
    # and the 8192-row lm_head), so a draft costs a fraction of a main step. The routed experts
    # are a small share (18%) of the bytes a token reads: verifying 3 tokens reads the union of
    # their experts (about 2.3x one token's), which the rest of the weights must dwarf for the
    # verify step to cost about one decode step.
    "exaone-moe-mtp-bench": dict(
        vocab=8192, hidden=1024, layers=24, heads=16, kv_heads=4, head_dim=128, ffn=3072, dense_layers=1,
        experts=16, top_k=4, moe_ffn=128, shared=1, window=128, pattern="LLLG", mix=1.0, alpha=1.0,
        bias_scale=0.05, dtype="f32"),
    # Dense EXAONE 4.5 text towers (exaone4, post-norm, one post-norm MTP layer attending as layer 0,
    # i.e. sliding with RoPE under LLLG; pattern None: no sliding layers, RoPE everywhere). Post-norm
    # layers add RMSNorm(out) * norm weight to the residual stream whatever the projections' scale,
    # so `mix` scales their output-norm weights instead.
    "exaone4-mtp-tiny": dict(
        arch="exaone4", vocab=512, hidden=64, layers=4, heads=4, kv_heads=2, head_dim=16, ffn=128,
        window=8, pattern="LLLG", mix=0.7, alpha=1.0, dtype="f32"),
    "exaone4-mtp-global": dict(
        arch="exaone4", vocab=512, hidden=64, layers=4, heads=4, kv_heads=2, head_dim=16, ffn=128,
        window=None, pattern=None, mix=0.7, alpha=1.0, dtype="f32"),
    # Benchmark: 16 layers, F32 about 0.8 GB read per decoded token; a draft (one layer, fc and the
    # 8192-row lm_head) about 1/9 of a main step.
    "exaone4-mtp-bench": dict(
        arch="exaone4", vocab=8192, hidden=1024, layers=16, heads=16, kv_heads=4, head_dim=64, ffn=3072,
        window=128, pattern="LLLG", mix=1.0, alpha=1.0, dtype="f32"),
}


def exaone4_mtp_config(spec):
    L, pat = spec["layers"], spec["pattern"]
    cfg = {
        "architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4",
        "vocab_size": spec["vocab"], "hidden_size": spec["hidden"], "num_hidden_layers": L,
        "num_attention_heads": spec["heads"], "num_key_value_heads": spec["kv_heads"],
        "head_dim": spec["head_dim"], "intermediate_size": spec["ffn"],
        "sliding_window": spec["window"], "sliding_window_pattern": pat,
        "rope_theta": 1000000.0, "rope_scaling": None, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "num_nextn_predict_layers": 1, "mtp_share_layers": True,
        "torch_dtype": "bfloat16" if spec["dtype"] == "bf16" else "float32",
    }
    if pat is not None:
        cfg["layer_types"] = ["sliding_attention" if pat[i % len(pat)] == "L" else "full_attention" for i in range(L)]
    return cfg


def mtp_model_config(spec):
    if spec.get("arch") == "exaone4":
        return exaone4_mtp_config(spec)
    L, pat = spec["layers"], spec["pattern"]
    layer_types = ["sliding_attention" if pat[i % len(pat)] == "L" else "full_attention" for i in range(L)]
    return {
        "architectures": ["ExaoneMoEForCausalLM"], "model_type": "exaone_moe",
        "vocab_size": spec["vocab"], "hidden_size": spec["hidden"], "num_hidden_layers": L,
        "num_attention_heads": spec["heads"], "num_key_value_heads": spec["kv_heads"],
        "head_dim": spec["head_dim"], "intermediate_size": spec["ffn"],
        "moe_intermediate_size": spec["moe_ffn"], "num_experts": spec["experts"],
        "num_experts_per_tok": spec["top_k"], "num_shared_experts": spec["shared"],
        "first_k_dense_replace": spec["dense_layers"],
        "mlp_layer_types": ["dense" if i < spec["dense_layers"] else "sparse" for i in range(L)],
        "n_group": 1, "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid", "topk_method": "noaux_tc",
        "sliding_window": spec["window"], "sliding_window_pattern": pat, "layer_types": layer_types,
        "rope_theta": 1000000.0, "rope_scaling": None, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "num_nextn_predict_layers": 1, "mtp_layer_types": ["full_attention"],
        "torch_dtype": "bfloat16" if spec["dtype"] == "bf16" else "float32",
    }


def mtp_tensors(spec, rng):
    """Yields (name, array) in file order; arrays are generated one at a time."""
    H, V, L = spec["hidden"], spec["vocab"], spec["layers"]
    nH, nKV, hd, I = spec["heads"], spec["kv_heads"], spec["head_dim"], spec["ffn"]
    E, Im, Is = spec.get("experts", 0), spec.get("moe_ffn", 0), spec.get("moe_ffn", 0) * spec.get("shared", 0)
    mix = np.float32(spec["mix"])

    def lin(rows, cols, scale=1.0):
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(scale / np.sqrt(cols))

    def norm(n):
        return 1.0 + 0.05 * rng.standard_normal((n,), dtype=np.float32)

    post = spec.get("arch") == "exaone4"

    def attention(p):
        if post:
            yield from attention_post_norm(p)
            return
        yield p + "input_layernorm.weight", norm(H)
        yield p + "self_attn.q_proj.weight", lin(nH * hd, H)
        yield p + "self_attn.k_proj.weight", lin(nKV * hd, H)
        yield p + "self_attn.v_proj.weight", lin(nKV * hd, H)
        yield p + "self_attn.o_proj.weight", lin(H, nH * hd, mix)
        yield p + "self_attn.q_norm.weight", norm(hd)
        yield p + "self_attn.k_norm.weight", norm(hd)
        yield p + "post_attention_layernorm.weight", norm(H)

    def attention_post_norm(p):
        yield p + "self_attn.q_proj.weight", lin(nH * hd, H)
        yield p + "self_attn.k_proj.weight", lin(nKV * hd, H)
        yield p + "self_attn.v_proj.weight", lin(nKV * hd, H)
        yield p + "self_attn.o_proj.weight", lin(H, nH * hd)
        yield p + "self_attn.q_norm.weight", norm(hd)
        yield p + "self_attn.k_norm.weight", norm(hd)
        yield p + "post_attention_layernorm.weight", mix * norm(H)

    def dense(p):
        yield p + "mlp.gate_proj.weight", lin(I, H)
        yield p + "mlp.up_proj.weight", lin(I, H)
        yield p + "mlp.down_proj.weight", lin(H, I, 1.0 if post else mix)
        if post:
            yield p + "post_feedforward_layernorm.weight", mix * norm(H)

    embed = rng.standard_normal((V, H), dtype=np.float32)
    yield "model.embed_tokens.weight", embed
    for i in range(L):
        p = f"model.layers.{i}."
        yield from attention(p)
        if post or i < spec["dense_layers"]:
            yield from dense(p)
            continue
        yield p + "mlp.gate.weight", lin(E, H, 4.0)
        yield p + "mlp.e_score_correction_bias", np.float32(spec["bias_scale"]) * rng.standard_normal((E,), dtype=np.float32)
        for e in range(E):
            q = f"{p}mlp.experts.{e}."
            yield q + "gate_proj.weight", lin(Im, H)
            yield q + "up_proj.weight", lin(Im, H)
            yield q + "down_proj.weight", lin(H, Im, mix)
        yield p + "mlp.shared_experts.gate_proj.weight", lin(Is, H)
        yield p + "mlp.shared_experts.up_proj.weight", lin(Is, H)
        yield p + "mlp.shared_experts.down_proj.weight", lin(H, Is, mix)
    yield "model.norm.weight", np.ones((H,), dtype=np.float32)
    perm = rng.permutation(V)
    unit = embed / np.linalg.norm(embed, axis=1, keepdims=True)
    head = 0.05 * rng.standard_normal((V, H), dtype=np.float32) / np.float32(np.sqrt(H))
    head[perm] += np.float32(spec["alpha"]) * unit
    yield "lm_head.weight", head
    del embed, unit, head
    yield from attention("mtp.layers.0.")
    yield from dense("mtp.layers.0.")
    fc = np.zeros((H, 2 * H), dtype=np.float32)
    fc[:, :H] = np.eye(H, dtype=np.float32)
    fc[:, H:] = lin(H, H, 0.1)
    yield "mtp.fc.weight", fc
    yield "mtp.pre_fc_norm_embedding.weight", np.ones((H,), dtype=np.float32)
    yield "mtp.pre_fc_norm_hidden.weight", np.ones((H,), dtype=np.float32)
    yield "mtp.norm.weight", np.ones((H,), dtype=np.float32)


def write_mtp_model(name, out, seed, no_tokenizer, dtype=None):
    spec = dict(MTP_MODELS[name], dtype=dtype or MTP_MODELS[name]["dtype"])
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(mtp_model_config(spec), f, indent=2)
    # The generated BPE tokenizer only reaches a few hundred tokens; larger vocabularies go without
    # (kexa run --tokens works without a tokenizer).
    if not no_tokenizer and spec["vocab"] <= 512:
        write_tokenizer(out, spec)
    bf16 = spec["dtype"] == "bf16"
    # Two passes over the same seeded stream: shapes for the header, then the data.
    header, offset = {}, 0
    for tname, arr in mtp_tensors(spec, np.random.default_rng(seed)):
        # The router correction bias stays fp32 as in the real checkpoint.
        dt, size = ("F32", 4) if (not bf16 or tname.endswith("e_score_correction_bias")) else ("BF16", 2)
        n = int(arr.size) * size
        header[tname] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for tname, arr in mtp_tensors(spec, rng):
            if header[tname]["dtype"] == "BF16":
                f.write(to_bf16_bits(arr).tobytes())
            else:
                f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    print(f"wrote {out} ({name}, {spec['dtype']}, seed {seed})")


# ---- direct Q4_K GGUF for the real-width K-EXAONE shape ------------------------------------------

GGUF_U32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 6, 7, 8, 9
GGML_F32, GGML_Q4_K = 0, 12


def gguf_kv(key, vtype, value):
    out = struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", vtype)
    if vtype == GGUF_U32:
        return out + struct.pack("<I", value)
    if vtype == GGUF_F32:
        return out + struct.pack("<f", value)
    if vtype == GGUF_BOOL:
        return out + struct.pack("<B", 1 if value else 0)
    if vtype == GGUF_STRING:
        return out + struct.pack("<Q", len(value)) + value.encode()
    elem, items = value  # arrays of bools only
    return out + struct.pack("<IQ", elem, len(items)) + bytes(1 if v else 0 for v in items)


def q4k_random(rows, cols, rng):
    """Random Q4_K blocks (144 bytes per 256 weights) with scales giving weights of std ~1/sqrt(cols):
    random nibbles and 6-bit scales, d and dmin set so the weights are centred."""
    nb = rows * (cols // 256)
    blocks = np.frombuffer(rng.bytes(nb * 144), dtype=np.uint8).reshape(nb, 144).copy()
    d = np.float16(1.0 / (208.0 * np.sqrt(cols)))
    dmin = np.float16(float(d) * 7.5)
    blocks[:, 0:2] = np.frombuffer(d.tobytes(), dtype=np.uint8)
    blocks[:, 2:4] = np.frombuffer(dmin.tobytes(), dtype=np.uint8)
    return blocks.tobytes()


def moe_gguf_plan(spec):
    """(gguf name, outermost-first shape, kind) of an exaone-moe GGUF (MTP block(s) after the stack)."""
    H, nH, nKV, hd, I, V, L = (spec["hidden"], spec["heads"], spec["kv_heads"], spec["head_dim"],
                               spec["ffn"], spec["vocab"], spec["layers"])
    E, Ie, Is = spec["experts"], spec["expert_ffn"], spec["expert_ffn"] * spec["shared"]
    plan = [("token_embd.weight", (V, H), "q"), ("output_norm.weight", (H,), "norm"), ("output.weight", (V, H), "q")]
    for i in range(L + spec["mtp"]):
        b = f"blk.{i}."
        plan += [(b + "attn_norm.weight", (H,), "norm"), (b + "attn_q.weight", (nH * hd, H), "q"),
                 (b + "attn_k.weight", (nKV * hd, H), "q"), (b + "attn_v.weight", (nKV * hd, H), "q"),
                 (b + "attn_output.weight", (H, nH * hd), "q"), (b + "attn_q_norm.weight", (hd,), "norm"),
                 (b + "attn_k_norm.weight", (hd,), "norm"), (b + "ffn_norm.weight", (H,), "norm")]
        if i < spec["dense_layers"] or i >= L:
            plan += [(b + "ffn_gate.weight", (I, H), "q"), (b + "ffn_up.weight", (I, H), "q"),
                     (b + "ffn_down.weight", (H, I), "q")]
        else:
            plan += [(b + "ffn_gate_inp.weight", (E, H), "router"), (b + "exp_probs_b.bias", (E,), "bias"),
                     (b + "ffn_gate_exps.weight", (E, Ie, H), "q"), (b + "ffn_up_exps.weight", (E, Ie, H), "q"),
                     (b + "ffn_down_exps.weight", (E, H, Ie), "q"),
                     (b + "ffn_gate_shexp.weight", (Is, H), "q"), (b + "ffn_up_shexp.weight", (Is, H), "q"),
                     (b + "ffn_down_shexp.weight", (H, Is), "q")]
        if i >= L:
            plan += [(b + "nextn.eh_proj.weight", (H, 2 * H), "q"), (b + "nextn.enorm.weight", (H,), "norm"),
                     (b + "nextn.hnorm.weight", (H,), "norm"), (b + "nextn.shared_head_norm.weight", (H,), "norm")]
    return plan


def write_moe_gguf_q4k(spec, path, rng):
    """Writes the model straight to a Q4_K GGUF (norms, router and bias F32), streaming tensor by
    tensor: a BF16 checkpoint of the real-width shape would not fit next to its quantized copy."""
    L, a = spec["layers"], "exaone-moe"
    sliding = [spec["pattern"][i % len(spec["pattern"])] == "L" for i in range(L)]
    kv = [gguf_kv("general.architecture", GGUF_STRING, a), gguf_kv("general.name", GGUF_STRING, "k-exaone-shape"),
          gguf_kv("general.file_type", GGUF_U32, 15)]
    for k, t, v in [("block_count", GGUF_U32, L + spec["mtp"]), ("context_length", GGUF_U32, spec.get("max_pos", 4096)),
                    ("embedding_length", GGUF_U32, spec["hidden"]), ("feed_forward_length", GGUF_U32, spec["ffn"]),
                    ("attention.head_count", GGUF_U32, spec["heads"]),
                    ("attention.head_count_kv", GGUF_U32, spec["kv_heads"]),
                    ("rope.freq_base", GGUF_F32, spec["theta"]), ("attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
                    ("attention.key_length", GGUF_U32, spec["head_dim"]),
                    ("attention.value_length", GGUF_U32, spec["head_dim"]), ("vocab_size", GGUF_U32, spec["vocab"]),
                    ("attention.sliding_window", GGUF_U32, spec["window"]),
                    ("attention.sliding_window_pattern", GGUF_ARRAY, (GGUF_BOOL, sliding)),
                    ("expert_count", GGUF_U32, spec["experts"]), ("expert_used_count", GGUF_U32, spec["top_k"]),
                    ("expert_gating_func", GGUF_U32, 2), ("expert_feed_forward_length", GGUF_U32, spec["expert_ffn"]),
                    ("expert_shared_count", GGUF_U32, spec["shared"]),
                    ("expert_shared_feed_forward_length", GGUF_U32, spec["expert_ffn"] * spec["shared"]),
                    ("expert_weights_scale", GGUF_F32, spec["scaling"]), ("expert_weights_norm", GGUF_BOOL, True),
                    ("leading_dense_block_count", GGUF_U32, spec["dense_layers"]),
                    ("nextn_predict_layers", GGUF_U32, spec["mtp"])]:
        kv.append(gguf_kv(f"{a}.{k}", t, v))
    kv += [gguf_kv("tokenizer.ggml.bos_token_id", GGUF_U32, 1), gguf_kv("tokenizer.ggml.eos_token_id", GGUF_U32, 2)]
    plan = moe_gguf_plan(spec)
    infos, offset, sizes = [], 0, []
    for name, shape, kind in plan:
        n = int(np.prod(shape))
        ttype = GGML_Q4_K if kind == "q" else GGML_F32
        nbytes = n // 256 * 144 if ttype == GGML_Q4_K else 4 * n
        info = struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(shape))
        info += b"".join(struct.pack("<Q", d) for d in reversed(shape)) + struct.pack("<IQ", ttype, offset)
        infos.append(info)
        sizes.append(nbytes)
        offset += (nbytes + 31) // 32 * 32
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(plan), len(kv)))
        for x in kv + infos:
            f.write(x)
        f.write(b"\0" * ((32 - f.tell() % 32) % 32))
        for (name, shape, kind), nbytes in zip(plan, sizes):
            if kind == "q":
                rows, cols = int(np.prod(shape[:-1])), shape[-1]
                step = max(1, (1 << 24) // cols)
                for r0 in range(0, rows, step):
                    f.write(q4k_random(min(step, rows - r0), cols, rng))
            elif kind == "norm":
                f.write((1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype("<f4").tobytes())
            elif kind == "bias":
                f.write((spec.get("bias_std", 0.3) * rng.standard_normal(shape, dtype=np.float32)).astype("<f4").tobytes())
            else:  # router
                f.write((rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(shape[1]))).astype("<f4").tobytes())
            f.write(b"\0" * ((32 - nbytes % 32) % 32))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=sorted(PRESETS))
    which.add_argument("--shape", choices=sorted(SHAPES))
    which.add_argument("--mtp-model", choices=sorted(MTP_MODELS),
                       help="K-EXAONE-shaped model with an MTP block that often agrees with it")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default=None)
    ap.add_argument("--fused-experts", action="store_true",
                    help="exaone_moe: write experts as transformers-5 fused gate_up_proj/down_proj")
    ap.add_argument("--no-tokenizer", action="store_true", help="write only config.json and weights")
    ap.add_argument("--tokenizer-from", metavar="DIR",
                    help="copy vocab.json/merges.txt/tokenizer_config.json/special_tokens_map.json from DIR "
                         "instead of generating a tokenizer (e.g. the real EXAONE 4.0 files for --shape)")
    ap.add_argument("--gguf-q4k", metavar="FILE",
                    help="exaone_moe shapes: write FILE as a Q4_K GGUF directly (random Q4_K blocks) "
                         "instead of a Hugging Face folder (--out is then unused)")
    args = ap.parse_args()
    if args.gguf_q4k:
        spec = PRESETS[args.preset] if args.preset else SHAPES[args.shape]
        if spec["model_type"] != "exaone_moe":
            sys.exit("--gguf-q4k is for exaone_moe presets and shapes")
        write_moe_gguf_q4k(spec, args.gguf_q4k, np.random.default_rng(args.seed))
        print(f"wrote {args.gguf_q4k} ({args.preset or args.shape}, Q4_K, seed {args.seed})")
        return

    if args.mtp_model:
        write_mtp_model(args.mtp_model, args.out, args.seed, args.no_tokenizer, args.dtype)
        return
    if not args.out:
        sys.exit("--out is required")
    spec = PRESETS[args.preset] if args.preset else SHAPES[args.shape]
    dtype = args.dtype or ("bf16" if args.shape else "f32")
    if spec["model_type"] != "exaone_moe" and spec["hidden"] % spec["heads"] != 0:
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
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensor_plan(spec, args.fused_experts), dtype, rng,
                      spec.get("bias_std", 0.3), spec.get("head_peak", 0.0), spec.get("head_scale", 1.0))
    print(f"wrote {args.out} ({args.preset or args.shape}, {dtype}, seed {args.seed})")


if __name__ == "__main__":
    main()
