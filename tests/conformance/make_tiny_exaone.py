#!/usr/bin/python3
"""Builds two tiny random-weight Hugging Face folders with the real EXAONE tokenizer files, for
tests/conformance/convert.sh, plus expected.json: the GGUF metadata llama.cpp's converter would
write, computed here independently (rope_freqs with numpy float32, like its torch code).

usage: make_tiny_exaone.py FIXTURES_DIR OUT_DIR   -> OUT_DIR/tiny-exaone, OUT_DIR/tiny-exaone4
       make_tiny_exaone.py --exaone4_5 FIXTURES_DIR OUT_DIR   -> OUT_DIR/tiny-exaone4_5 only
       make_tiny_exaone.py --exaone4_5-mtp FIXTURES_DIR OUT_DIR   -> the same with an MTP layer (mtp.*)
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

EXAONE4_5 = len(sys.argv) > 1 and sys.argv[1] in ("--exaone4_5", "--exaone4_5-mtp")
WITH_MTP = EXAONE4_5 and sys.argv[1] == "--exaone4_5-mtp"
if EXAONE4_5:
    del sys.argv[1]
fixtures, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(1234)


def bf16_bytes(a):
    """float32 -> bfloat16 bytes, round to nearest even (as torch)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = a.astype(np.float32).tobytes() if dtype == "F32" else bf16_bytes(a)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rope_freqs(theta, dim, factor, low, high, old):
    # llama.cpp convert_hf_to_gguf.py (Exaone*Model.generate_extra_tensors), float32 like torch.
    freqs = (np.float32(1.0) / np.power(np.float32(theta), np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))).astype(np.float32)
    lo_wl, hi_wl = old / low, old / high
    out = []
    for f in freqs:
        wl = np.float32(2 * math.pi) / f
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            s = (np.float32(old) / wl - np.float32(low)) / np.float32(high - low)
            out.append(float(np.float32(1) / ((np.float32(1) - s) / np.float32(factor) + s)))
    return [float(np.float32(x)) for x in out]


def w(*shape, std=0.5):
    return (rng.standard_normal(shape) * std).astype(np.float32)


# Layer parts under the name prefix p, drawn by draw(*shape, std=...) in the order written: the
# generated files depend on it.
def qk_norm_attention(t, p, draw, H, nH, nKV, hd):
    """Q/K/V/O projections with per-head RMSNorm of q and k (exaone4, exaone_moe)."""
    t[p + "self_attn.q_proj.weight"] = draw(nH * hd, H)
    t[p + "self_attn.k_proj.weight"] = draw(nKV * hd, H)
    t[p + "self_attn.v_proj.weight"] = draw(nKV * hd, H)
    t[p + "self_attn.o_proj.weight"] = draw(H, nH * hd)
    t[p + "self_attn.q_norm.weight"] = 1 + draw(hd, std=0.1)
    t[p + "self_attn.k_norm.weight"] = 1 + draw(hd, std=0.1)


def swiglu_mlp(t, p, draw, H, I):
    t[p + "mlp.gate_proj.weight"] = draw(I, H)
    t[p + "mlp.up_proj.weight"] = draw(I, H)
    t[p + "mlp.down_proj.weight"] = draw(H, I)


def post_norm_layer(t, p, draw, H, nH, nKV, hd, I):
    """An exaone4 decoder layer: RMSNorm after the attention and after the MLP."""
    qk_norm_attention(t, p, draw, H, nH, nKV, hd)
    t[p + "post_attention_layernorm.weight"] = 1 + draw(H, std=0.1)
    swiglu_mlp(t, p, draw, H, I)
    t[p + "post_feedforward_layernorm.weight"] = 1 + draw(H, std=0.1)


def copy_tokenizer(src, dst, files):
    for f in files:
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def make_exaone4_5(fixtures, out, with_mtp):
    """EXAONE 4.5 style vision-language folder (tests/conformance/vision.sh): an exaone4 text tower
    under model.language_model.* (64 layers LLLG, window 16, GQA, rope_parameters) and a Qwen2-VL style
    vision tower under model.visual.* with grouped KV heads (4 query / 2 KV), window attention
    (window 112 px = 4x4 merged patches, the value llama.cpp assumes) on blocks 0 and 2, full attention on 1 and 3, 2x2
    merger into the text width; all F32. The EXAONE 4.0 tokenizer with its [unused*] tokens
    renamed to the 4.5 role / vision tokens at 4.5's ids (image 67, video 68, <vision> 73)."""
    g = np.random.default_rng(45)

    def r(*shape, std=0.5):
        return (g.standard_normal(shape) * std).astype(np.float32)

    d = os.path.join(out, "tiny-exaone4_5")
    os.makedirs(d, exist_ok=True)
    # 64 text layers: llama.cpp's exaone4 runs sliding-window layers only for 64-layer models (the
    # 32B / 33B shape); at any other depth it makes every layer global with RoPE.
    V, H, L, nH, nKV, hd, I = 102400, 32, 64, 4, 2, 8, 64
    C, vI, depth, vH, vKV, p = 32, 48, 4, 4, 2, 14
    renamed = {62: "<|system|>", 63: "<|user|>", 64: "<|assistant|>", 65: "<|tool|>", 66: "<|tool_declare|>",
               67: "<|image_pad|>", 68: "<|video_pad|>", 69: "<|endofturn|>", 73: "<vision>", 74: "</vision>"}
    text = {
        "model_type": "exaone4_5_text", "vocab_size": V, "hidden_size": H, "num_hidden_layers": L,
        "num_attention_heads": nH, "num_key_value_heads": nKV, "head_dim": hd, "intermediate_size": I,
        "hidden_act": "silu", "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        "max_position_embeddings": 8192, "sliding_window": 16,
        "layer_types": ["full_attention" if l % 4 == 3 else "sliding_attention" for l in range(L)],
        "bos_token_id": 1, "eos_token_id": 69, "pad_token_id": 0, "tie_word_embeddings": False,
    }
    vision = {
        "depth": depth, "hidden_size": C, "intermediate_size": vI, "num_heads": vH, "num_key_value_heads": vKV,
        "patch_size": p, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [1, 3], "out_hidden_size": H, "in_chans": 3, "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
    }
    cfg = {
        "architectures": ["Exaone4_5_ForConditionalGeneration"], "model_type": "exaone4_5",
        "text_config": text, "vision_config": vision, "image_token_id": 67, "video_token_id": 68,
        "vision_start_token_id": 73, "vision_end_token_id": 74, "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    json.dump({"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 4 * 28 * 28,
               "max_pixels": 64 * 28 * 28, "patch_size": p, "merge_size": 2, "temporal_patch_size": 2,
               "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]},
              open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
    t = {"model.language_model.embed_tokens.weight": r(V, H)}
    for l in range(L):
        post_norm_layer(t, f"model.language_model.layers.{l}.", r, H, nH, nKV, hd, I)
    t["model.language_model.norm.weight"] = 1 + r(H, std=0.1)
    t["lm_head.weight"] = r(V, H, std=1.0)
    v = "model.visual."
    t[v + "patch_embed.proj.weight"] = r(C, 3, 2, p, p, std=0.05)
    for b in range(depth):
        q = f"{v}blocks.{b}."
        t[q + "norm1.weight"] = 1 + r(C, std=0.1)
        t[q + "attn.qkv.weight"] = r((vH + 2 * vKV) * (C // vH), C, std=0.2)
        t[q + "attn.qkv.bias"] = r((vH + 2 * vKV) * (C // vH), std=0.1)
        t[q + "attn.proj.weight"] = r(C, C, std=0.2)
        t[q + "attn.proj.bias"] = r(C, std=0.1)
        t[q + "norm2.weight"] = 1 + r(C, std=0.1)
        t[q + "mlp.gate_proj.weight"] = r(vI, C, std=0.2)
        t[q + "mlp.gate_proj.bias"] = r(vI, std=0.1)
        t[q + "mlp.up_proj.weight"] = r(vI, C, std=0.2)
        t[q + "mlp.up_proj.bias"] = r(vI, std=0.1)
        t[q + "mlp.down_proj.weight"] = r(C, vI, std=0.2)
        t[q + "mlp.down_proj.bias"] = r(C, std=0.1)
    t[v + "merger.ln_q.weight"] = 1 + r(C, std=0.1)
    t[v + "merger.mlp.0.weight"] = r(4 * C, 4 * C, std=0.1)
    t[v + "merger.mlp.0.bias"] = r(4 * C, std=0.1)
    t[v + "merger.mlp.2.weight"] = r(H, 4 * C, std=0.1)
    t[v + "merger.mlp.2.bias"] = r(H, std=0.1)
    if with_mtp:
        # MTP (drawn last, so the towers above keep their weights): one post-norm layer shared by
        # the draft steps, named as spec 4b has them. Built so that drafts are accepted often
        # enough to count: fc passes the hidden half (the main model's final state at t) through,
        # plus a little of the embedding half (the token or image row at t + 1), and the layer's
        # post-norms are small, so a draft is mostly the main model's own last prediction again,
        # which this random tower often repeats.
        text["num_nextn_predict_layers"], text["mtp_share_layers"] = 1, True
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
        q = "mtp.layers.0."
        qk_norm_attention(t, q, r, H, nH, nKV, hd)
        t[q + "post_attention_layernorm.weight"] = r(H, std=0.05)
        swiglu_mlp(t, q, r, H, I)
        t[q + "post_feedforward_layernorm.weight"] = r(H, std=0.05)
        t["mtp.fc.weight"] = np.concatenate([r(H, H, std=0.02), np.eye(H, dtype=np.float32)], axis=1)
        t["mtp.pre_fc_norm_embedding.weight"] = 1 + r(H, std=0.1)
        t["mtp.pre_fc_norm_hidden.weight"] = np.ones(H, dtype=np.float32)
        t["mtp.norm.weight"] = np.ones(H, dtype=np.float32)
    write_safetensors(os.path.join(d, "model.safetensors"), t, "F32")

    tok = os.path.join(fixtures, "exaone4-tokenizer")
    copy_tokenizer(tok, d, ["merges.txt"])
    vocab = json.load(open(os.path.join(tok, "vocab.json")))
    by_id = {i: k for k, i in vocab.items()}
    old = {i: by_id[i] for i in renamed}
    for i, name in renamed.items():
        del vocab[old[i]]
        vocab[name] = i
    json.dump(vocab, open(os.path.join(d, "vocab.json"), "w"), ensure_ascii=False)
    tc = json.load(open(os.path.join(tok, "tokenizer_config.json")))
    for i, name in renamed.items():
        tc["added_tokens_decoder"][str(i)]["content"] = name
        tc["added_tokens_decoder"][str(i)]["special"] = True
    was = {o: i for i, o in old.items()}
    tc["additional_special_tokens"] = [renamed[was[x]] if x in was else x for x in tc["additional_special_tokens"]]
    tc["eos_token"] = "<|endofturn|>"
    stm = json.load(open(os.path.join(tok, "special_tokens_map.json")))
    stm["additional_special_tokens"] = tc["additional_special_tokens"]
    stm["eos_token"] = "<|endofturn|>"
    json.dump(stm, open(os.path.join(d, "special_tokens_map.json"), "w"), ensure_ascii=False, indent=1)
    template = open(os.path.join(fixtures, "exaone45-template", "chat_template.jinja")).read()
    tc["chat_template"] = template
    json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), ensure_ascii=False, indent=1)
    open(os.path.join(d, "chat_template.jinja"), "w").write(template)
    json.dump({"bos_token_id": 1, "eos_token_id": 69, "pad_token_id": 0},
              open(os.path.join(d, "generation_config.json"), "w"))
    print("ok")


if EXAONE4_5:
    make_exaone4_5(fixtures, out, WITH_MTP)
    sys.exit(0)

# ---- exaone (3.5 style: llama3 rope x8, tied embeddings, F32) ----
d = os.path.join(out, "tiny-exaone")
os.makedirs(d, exist_ok=True)
V, H, L, nH, nKV, hd, I = 102400, 32, 2, 4, 2, 8, 64
cfg = {
    "architectures": ["ExaoneForCausalLM"], "model_type": "exaone", "vocab_size": V, "hidden_size": H,
    "num_layers": L, "num_attention_heads": nH, "num_key_value_heads": nKV, "head_dim": hd,
    "intermediate_size": I, "activation_function": "silu", "layer_norm_epsilon": 1e-5,
    "rope_theta": 1000000.0,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "max_position_embeddings": 32768, "tie_word_embeddings": True, "bos_token_id": 1,
    "eos_token_id": 361, "pad_token_id": 0, "torch_dtype": "float32",
}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
t = {"transformer.wte.weight": w(V, H)}
for l in range(L):
    p = f"transformer.h.{l}."
    t[p + "ln_1.weight"] = 1 + w(H, std=0.1)
    t[p + "attn.attention.q_proj.weight"] = w(nH * hd, H)
    t[p + "attn.attention.k_proj.weight"] = w(nKV * hd, H)
    t[p + "attn.attention.v_proj.weight"] = w(nKV * hd, H)
    t[p + "attn.attention.out_proj.weight"] = w(H, nH * hd)
    t[p + "ln_2.weight"] = 1 + w(H, std=0.1)
    t[p + "mlp.c_fc_0.weight"] = w(I, H)
    t[p + "mlp.c_fc_1.weight"] = w(I, H)
    t[p + "mlp.c_proj.weight"] = w(H, I)
t["transformer.ln_f.weight"] = 1 + w(H, std=0.1)
write_safetensors(os.path.join(d, "model.safetensors"), t, "F32")
tok = os.path.join(fixtures, "exaone35-tokenizer")
copy_tokenizer(tok, d, ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"])
tc = json.load(open(os.path.join(tok, "tokenizer_config.json")))
A = "exaone"
expected = {
    "arch": A, "n_tensors": 1 + 9 * L + 1 + 1,
    "metadata": {
        "general.architecture": A, f"{A}.block_count": L, f"{A}.context_length": 32768,
        f"{A}.embedding_length": H, f"{A}.feed_forward_length": I, f"{A}.attention.head_count": nH,
        f"{A}.attention.head_count_kv": nKV, f"{A}.rope.freq_base": 1e6,
        f"{A}.attention.layer_norm_rms_epsilon": 1e-5, f"{A}.rope.dimension_count": hd,
        "general.file_type": 0, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "exaone",
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 361,
        "tokenizer.ggml.padding_token_id": 0,
    },
    "chat_template": tc["chat_template"],
    "rope_freqs": rope_freqs(1e6, hd, 8.0, 1.0, 4.0, 8192),
    "absent_tensors": ["output.weight"],
    "special_tokens": {"[|endofturn|]": 361, "[BOS]": 1},
}
json.dump(expected, open(os.path.join(d, "expected.json"), "w"), indent=1)

# ---- exaone4 (32B style: 64 layers, LLLG window 8, llama3 rope x16, untied, BF16) ----
d = os.path.join(out, "tiny-exaone4")
os.makedirs(d, exist_ok=True)
V, H, L, nH, nKV, hd, I = 102400, 32, 64, 4, 2, 8, 32
cfg = {
    "architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4", "vocab_size": V,
    "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": nH, "num_key_value_heads": nKV,
    "head_dim": hd, "intermediate_size": I, "hidden_act": "silu", "rms_norm_eps": 1e-5,
    "rope_theta": 1000000.0,
    "rope_scaling": {"factor": 16.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "max_position_embeddings": 131072, "sliding_window": 8, "sliding_window_pattern": "LLLG",
    "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 361, "pad_token_id": 0,
    "torch_dtype": "bfloat16",
}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
t = {"model.embed_tokens.weight": w(V, H)}
for l in range(L):
    post_norm_layer(t, f"model.layers.{l}.", w, H, nH, nKV, hd, I)
t["model.norm.weight"] = 1 + w(H, std=0.1)
t["lm_head.weight"] = w(V, H, std=1.0)
write_safetensors(os.path.join(d, "model.safetensors"), t, "BF16")
tok = os.path.join(fixtures, "exaone4-tokenizer")
copy_tokenizer(tok, d, ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                        "chat_template.jinja", "generation_config.json"])
A = "exaone4"
expected = {
    "arch": A, "n_tensors": 1 + 11 * L + 1 + 1 + 1,
    "metadata": {
        "general.architecture": A, f"{A}.block_count": L, f"{A}.context_length": 131072,
        f"{A}.embedding_length": H, f"{A}.feed_forward_length": I, f"{A}.attention.head_count": nH,
        f"{A}.attention.head_count_kv": nKV, f"{A}.rope.freq_base": 1e6,
        f"{A}.attention.layer_norm_rms_epsilon": 1e-5, f"{A}.attention.key_length": hd,
        f"{A}.attention.value_length": hd, f"{A}.vocab_size": V, f"{A}.attention.sliding_window": 8,
        f"{A}.attention.sliding_window_pattern": ["LLLG"[i % 4] == "L" for i in range(L)],
        "general.file_type": 32, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "exaone4",
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 361,
        "tokenizer.ggml.padding_token_id": 0, "tokenizer.ggml.add_bos_token": False,
    },
    "chat_template": open(os.path.join(tok, "chat_template.jinja")).read(),
    "rope_freqs": rope_freqs(1e6, hd, 16.0, 1.0, 4.0, 8192),
    "absent_tensors": [],
    "special_tokens": {"[|user|]": 360, "[|endofturn|]": 361, "[|assistant|]": 359},
}
json.dump(expected, open(os.path.join(d, "expected.json"), "w"), indent=1)
# ---- exaone4 with an MTP block (EXAONE 4.5 text tower style: LLLG window 8 on 4 layers, one
# post-norm MTP layer shared by the draft steps, default rope, untied, BF16); GGUF as llama.cpp's
# Exaone4_5_TextModel writes it: the block appended as blk.L with nextn.* tensors ----
d = os.path.join(out, "tiny-exaone4_mtp")
os.makedirs(d, exist_ok=True)
rng_main, rng = rng, np.random.default_rng(4545)  # its own stream: the other models stay as they were
V, H, L, nH, nKV, hd, I = 102400, 32, 4, 4, 2, 8, 32
cfg = {
    "architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4", "vocab_size": V,
    "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": nH, "num_key_value_heads": nKV,
    "head_dim": hd, "intermediate_size": I, "hidden_act": "silu", "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "max_position_embeddings": 262144, "sliding_window": 8, "sliding_window_pattern": "LLLG",
    "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
    "num_nextn_predict_layers": 1, "mtp_share_layers": True, "tie_word_embeddings": False,
    "bos_token_id": 1, "eos_token_id": 361, "pad_token_id": 0, "torch_dtype": "bfloat16",
}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
t = {"model.embed_tokens.weight": w(V, H)}
for l in range(L):
    post_norm_layer(t, f"model.layers.{l}.", w, H, nH, nKV, hd, I)
t["model.norm.weight"] = 1 + w(H, std=0.1)
t["lm_head.weight"] = w(V, H, std=1.0)
post_norm_layer(t, "mtp.layers.0.", w, H, nH, nKV, hd, I)
t["mtp.fc.weight"] = w(H, 2 * H)
t["mtp.pre_fc_norm_embedding.weight"] = 1 + w(H, std=0.1)
t["mtp.pre_fc_norm_hidden.weight"] = 1 + w(H, std=0.1)
t["mtp.norm.weight"] = 1 + w(H, std=0.1)
write_safetensors(os.path.join(d, "model.safetensors"), t, "BF16")
copy_tokenizer(tok, d, ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                        "chat_template.jinja", "generation_config.json"])
A = "exaone4"
expected = {
    "arch": A, "n_tensors": 1 + 11 * L + 1 + 1 + 11 + 4,
    "metadata": {
        "general.architecture": A, f"{A}.block_count": L + 1, f"{A}.context_length": 262144,
        f"{A}.embedding_length": H, f"{A}.feed_forward_length": I, f"{A}.attention.head_count": nH,
        f"{A}.attention.head_count_kv": nKV, f"{A}.rope.freq_base": 1e6,
        f"{A}.attention.layer_norm_rms_epsilon": 1e-5, f"{A}.attention.key_length": hd,
        f"{A}.attention.value_length": hd, f"{A}.vocab_size": V, f"{A}.attention.sliding_window": 8,
        f"{A}.attention.sliding_window_pattern": [True, True, True, False],
        f"{A}.nextn_predict_layers": 1, "general.file_type": 32,
    },
    "chat_template": open(os.path.join(tok, "chat_template.jinja")).read(),
    "rope_freqs": None,
    "absent_tensors": ["rope_freqs.weight", "blk.5.attn_q.weight"],
    "tensor_shapes": {"blk.4.nextn.eh_proj.weight": [2 * H, H], "blk.4.post_ffw_norm.weight": [H],
                      "blk.4.nextn.shared_head_norm.weight": [H]},
    "u16_at": {"blk.4.nextn.eh_proj.weight": [0, list(np.frombuffer(bf16_bytes(t["mtp.fc.weight"].ravel()[0:4]), dtype=np.uint16).tolist())]},
    "special_tokens": {"[|user|]": 360, "[|endofturn|]": 361},
}
json.dump(expected, open(os.path.join(d, "expected.json"), "w"), indent=1)
rng = rng_main
# ---- exaone_moe (K-EXAONE style: dense layer 0 then MoE, sigmoid router with bias, 1 shared
# expert, LLLG window, nH*hd != H, one MTP block, untied, BF16; the EXAONE 4.0 tokenizer files) ----
d = os.path.join(out, "tiny-exaone_moe")
os.makedirs(d, exist_ok=True)
V, H, L, nH, nKV, hd, I, E, Im = 102400, 32, 4, 8, 2, 8, 64, 4, 16
cfg = {
    "architectures": ["ExaoneMoeForCausalLM"], "model_type": "exaone_moe", "vocab_size": V,
    "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": nH, "num_key_value_heads": nKV,
    "head_dim": hd, "intermediate_size": I, "moe_intermediate_size": Im, "num_experts": E,
    "num_experts_per_tok": 2, "num_shared_experts": 1, "first_k_dense_replace": 1,
    "mlp_layer_types": ["dense"] + ["sparse"] * (L - 1), "n_group": 1, "topk_group": 1,
    "norm_topk_prob": True, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "hidden_act": "silu", "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "max_position_embeddings": 262144, "sliding_window": 8, "sliding_window_pattern": "LLLG",
    "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
    "num_nextn_predict_layers": 1, "tie_word_embeddings": False, "bos_token_id": 1,
    "eos_token_id": 361, "pad_token_id": 0, "torch_dtype": "bfloat16",
}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
t = {"model.embed_tokens.weight": w(V, H)}


def attn(p):
    t[p + "input_layernorm.weight"] = 1 + w(H, std=0.1)
    qk_norm_attention(t, p, w, H, nH, nKV, hd)
    t[p + "post_attention_layernorm.weight"] = 1 + w(H, std=0.1)


def dense(p):
    swiglu_mlp(t, p, w, H, I)


for l in range(L):
    p = f"model.layers.{l}."
    attn(p)
    if l == 0:
        dense(p)
        continue
    t[p + "mlp.gate.weight"] = w(E, H)
    t[p + "mlp.e_score_correction_bias"] = w(E, std=0.01)
    for e in range(E):
        t[p + f"mlp.experts.{e}.gate_proj.weight"] = w(Im, H)
        t[p + f"mlp.experts.{e}.up_proj.weight"] = w(Im, H)
        t[p + f"mlp.experts.{e}.down_proj.weight"] = w(H, Im)
    t[p + "mlp.shared_experts.gate_proj.weight"] = w(Im, H)
    t[p + "mlp.shared_experts.up_proj.weight"] = w(Im, H)
    t[p + "mlp.shared_experts.down_proj.weight"] = w(H, Im)
t["model.norm.weight"] = 1 + w(H, std=0.1)
t["lm_head.weight"] = w(V, H, std=1.0)
attn("mtp.layers.0.")
dense("mtp.layers.0.")
t["mtp.fc.weight"] = w(H, 2 * H)
t["mtp.pre_fc_norm_embedding.weight"] = 1 + w(H, std=0.1)
t["mtp.pre_fc_norm_hidden.weight"] = 1 + w(H, std=0.1)
t["mtp.norm.weight"] = 1 + w(H, std=0.1)
write_safetensors(os.path.join(d, "model.safetensors"), t, "BF16")
copy_tokenizer(tok, d, ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                        "chat_template.jinja"])
A = "exaone-moe"
expected = {
    "arch": A, "n_tensors": 1 + 11 + 16 * (L - 1) + 2 + 15,
    "metadata": {
        "general.architecture": A, f"{A}.block_count": L + 1, f"{A}.context_length": 262144,
        f"{A}.embedding_length": H, f"{A}.feed_forward_length": I, f"{A}.attention.head_count": nH,
        f"{A}.attention.head_count_kv": nKV, f"{A}.rope.freq_base": 1e6,
        f"{A}.attention.layer_norm_rms_epsilon": 1e-5, f"{A}.attention.key_length": hd,
        f"{A}.attention.value_length": hd, f"{A}.vocab_size": V, f"{A}.attention.sliding_window": 8,
        f"{A}.attention.sliding_window_pattern": [True, True, True, False],
        f"{A}.expert_count": E, f"{A}.expert_used_count": 2, f"{A}.expert_gating_func": 2,
        f"{A}.expert_feed_forward_length": Im, f"{A}.expert_shared_count": 1,
        f"{A}.expert_shared_feed_forward_length": Im, f"{A}.expert_weights_scale": 2.5,
        f"{A}.expert_weights_norm": True, f"{A}.leading_dense_block_count": 1,
        f"{A}.nextn_predict_layers": 1, f"{A}.rope.scaling.type": "none",
        "general.file_type": 32, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "exaone-moe",
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 361,
    },
    "chat_template": open(os.path.join(tok, "chat_template.jinja")).read(),
    "rope_freqs": None,
    "absent_tensors": ["rope_freqs.weight"],
    "tensor_shapes": {"blk.1.ffn_gate_exps.weight": [H, Im, E], "blk.1.ffn_down_exps.weight": [Im, H, E],
                      "blk.1.ffn_gate_inp.weight": [H, E], "blk.4.nextn.eh_proj.weight": [2 * H, H],
                      "blk.0.attn_q.weight": [H, nH * hd]},
    "tensor_types": {"blk.1.ffn_gate_inp.weight": 0, "blk.1.exp_probs_b.bias": 0, "blk.1.ffn_up_exps.weight": 30},
    "special_tokens": {"[|user|]": 360, "[|endofturn|]": 361},
    # Raw BF16 words at element offsets: expert 2 of layer 1 must sit at 2 * Im * H in the stack.
    "u16_at": {
        "blk.1.ffn_gate_exps.weight": [2 * Im * H + 5, list(np.frombuffer(bf16_bytes(t["model.layers.1.mlp.experts.2.gate_proj.weight"].ravel()[5:9]), dtype=np.uint16).tolist())],
        "blk.3.ffn_down_exps.weight": [3 * H * Im, list(np.frombuffer(bf16_bytes(t["model.layers.3.mlp.experts.3.down_proj.weight"].ravel()[0:4]), dtype=np.uint16).tolist())],
    },
}
json.dump(expected, open(os.path.join(d, "expected.json"), "w"), indent=1)
print("ok")
