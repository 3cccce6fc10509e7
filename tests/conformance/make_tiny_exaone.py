#!/usr/bin/python3
"""Builds two tiny random-weight Hugging Face folders with the real EXAONE tokenizer files, for
tests/conformance/convert.sh, plus expected.json: the GGUF metadata llama.cpp's converter would
write, computed here independently (rope_freqs with numpy float32, like its torch code).

usage: make_tiny_exaone.py FIXTURES_DIR OUT_DIR   -> OUT_DIR/tiny-exaone, OUT_DIR/tiny-exaone4
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

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


def copy_tokenizer(src, dst, files):
    for f in files:
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


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
    p = f"model.layers.{l}."
    t[p + "self_attn.q_proj.weight"] = w(nH * hd, H)
    t[p + "self_attn.k_proj.weight"] = w(nKV * hd, H)
    t[p + "self_attn.v_proj.weight"] = w(nKV * hd, H)
    t[p + "self_attn.o_proj.weight"] = w(H, nH * hd)
    t[p + "self_attn.q_norm.weight"] = 1 + w(hd, std=0.1)
    t[p + "self_attn.k_norm.weight"] = 1 + w(hd, std=0.1)
    t[p + "post_attention_layernorm.weight"] = 1 + w(H, std=0.1)
    t[p + "mlp.gate_proj.weight"] = w(I, H)
    t[p + "mlp.up_proj.weight"] = w(I, H)
    t[p + "mlp.down_proj.weight"] = w(H, I)
    t[p + "post_feedforward_layernorm.weight"] = 1 + w(H, std=0.1)
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


def post_norm_layer(p):
    t[p + "self_attn.q_proj.weight"] = w(nH * hd, H)
    t[p + "self_attn.k_proj.weight"] = w(nKV * hd, H)
    t[p + "self_attn.v_proj.weight"] = w(nKV * hd, H)
    t[p + "self_attn.o_proj.weight"] = w(H, nH * hd)
    t[p + "self_attn.q_norm.weight"] = 1 + w(hd, std=0.1)
    t[p + "self_attn.k_norm.weight"] = 1 + w(hd, std=0.1)
    t[p + "post_attention_layernorm.weight"] = 1 + w(H, std=0.1)
    t[p + "mlp.gate_proj.weight"] = w(I, H)
    t[p + "mlp.up_proj.weight"] = w(I, H)
    t[p + "mlp.down_proj.weight"] = w(H, I)
    t[p + "post_feedforward_layernorm.weight"] = 1 + w(H, std=0.1)


for l in range(L):
    post_norm_layer(f"model.layers.{l}.")
t["model.norm.weight"] = 1 + w(H, std=0.1)
t["lm_head.weight"] = w(V, H, std=1.0)
post_norm_layer("mtp.layers.0.")
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
    t[p + "self_attn.q_proj.weight"] = w(nH * hd, H)
    t[p + "self_attn.k_proj.weight"] = w(nKV * hd, H)
    t[p + "self_attn.v_proj.weight"] = w(nKV * hd, H)
    t[p + "self_attn.o_proj.weight"] = w(H, nH * hd)
    t[p + "self_attn.q_norm.weight"] = 1 + w(hd, std=0.1)
    t[p + "self_attn.k_norm.weight"] = 1 + w(hd, std=0.1)
    t[p + "post_attention_layernorm.weight"] = 1 + w(H, std=0.1)


def dense(p):
    t[p + "mlp.gate_proj.weight"] = w(I, H)
    t[p + "mlp.up_proj.weight"] = w(I, H)
    t[p + "mlp.down_proj.weight"] = w(H, I)


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
