#!/usr/bin/python3
"""An independent float64 NumPy reading of EXAONE 4.5's vision tower (the HF layout: Qwen2-VL
style, grouped KV heads, window attention, 2x2 merger), for tests/conformance/vision.sh. It takes
the normalised planar image llama.cpp feeds its tower (vision_oracle's OUT.pre) and prints the
largest difference of the given embeddings from its own, relative to its max |value|.

usage: vision_reference.py HF_FOLDER IMAGE.pre WIDTH HEIGHT EMBEDDINGS.emb"""
import json
import struct
import sys

import numpy as np

folder, pre, W, H, emb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cfg = json.load(open(folder + "/config.json"))["vision_config"]
raw = open(folder + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
T = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
     .reshape(v["shape"]).astype(np.float64) for k, v in hdr.items() if k != "__metadata__" and v["dtype"] == "F32"}

p, C, nH = cfg["patch_size"], cfg["hidden_size"], cfg["num_heads"]
nKV, hd = cfg.get("num_key_value_heads", nH), cfg["hidden_size"] // cfg["num_heads"]
eps, period = cfg.get("rms_norm_eps", 1e-6), cfg["fullatt_block_indexes"][0] + 1
gw = cfg["window_size"] // p // 2
img = np.fromfile(pre, np.float32).reshape(3, H, W).astype(np.float64)

# Patches grouped 2x2 in raster order of the merged grid; the two temporal kernels see one image.
w = T["model.visual.patch_embed.proj.weight"].sum(2).reshape(C, -1)
rows, pos = [], []
for my in range(H // p // 2):
    for mx in range(W // p // 2):
        for dy in range(2):
            for dx in range(2):
                y, x = 2 * my + dy, 2 * mx + dx
                rows.append(img[:, y * p:(y + 1) * p, x * p:(x + 1) * p].reshape(-1))
                pos.append((y, x))
X, pos = np.array(rows) @ w.T, np.array(pos)
N = len(rows)
window = (pos[:, 0] // 2 // gw) * 100000 + pos[:, 1] // 2 // gw


def rms(x, g):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


inv = 1.0 / (10000.0 ** (np.arange(0, hd // 2, 2) / (hd // 2)))
ang = np.concatenate([pos[:, :1] * inv, pos[:, 1:] * inv], 1)
cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]


def rope(v):
    a, b = v[..., :hd // 2], v[..., hd // 2:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)


for layer in range(cfg["depth"]):
    def g(k):
        return T[f"model.visual.blocks.{layer}.{k}"]
    h = rms(X, g("norm1.weight"))
    qkv = h @ g("attn.qkv.weight").T + g("attn.qkv.bias")
    Q = rope(qkv[:, :nH * hd].reshape(N, nH, hd))
    K = rope(qkv[:, nH * hd:(nH + nKV) * hd].reshape(N, nKV, hd))
    V = qkv[:, (nH + nKV) * hd:].reshape(N, nKV, hd)
    O = np.zeros((N, nH, hd))
    for head in range(nH):
        kv = head // (nH // nKV)
        s = Q[:, head] @ K[:, kv].T / np.sqrt(hd)
        if (layer + 1) % period != 0:
            s = np.where(window[:, None] == window[None, :], s, -np.inf)
        s = np.exp(s - s.max(1, keepdims=True))
        O[:, head] = (s / s.sum(1, keepdims=True)) @ V[:, kv]
    X = X + O.reshape(N, -1) @ g("attn.proj.weight").T + g("attn.proj.bias")
    h = rms(X, g("norm2.weight"))
    gate = h @ g("mlp.gate_proj.weight").T + g("mlp.gate_proj.bias")
    up = h @ g("mlp.up_proj.weight").T + g("mlp.up_proj.bias")
    X = X + (gate / (1 + np.exp(-gate)) * up) @ g("mlp.down_proj.weight").T + g("mlp.down_proj.bias")

m = "model.visual.merger."
h = rms(X, T[m + "ln_q.weight"]).reshape(N // 4, 4 * C) @ T[m + "mlp.0.weight"].T + T[m + "mlp.0.bias"]
h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
ref = h @ T[m + "mlp.2.weight"].T + T[m + "mlp.2.bias"]
got = np.fromfile(emb, np.float32)
if got.size != ref.size:
    print(f"size {got.size} != {ref.size}")
    sys.exit(1)
print(f"{np.abs(got.reshape(ref.shape) - ref).max() / np.abs(ref).max():.3g}")
