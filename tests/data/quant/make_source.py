#!/usr/bin/python3
"""Writes source_f32.gguf: seeded random F32 weights shaped like a 1-layer `llama` model (the
smallest architecture llama-quantize accepts), used to make the per-type quantized test files.
Rows mix ordinary Gaussian weights with edge cases of the block quantizers: all-zero blocks,
constant blocks, one-sided blocks, tiny and large magnitudes, and single outliers."""
import struct
import sys

import numpy as np

ALIGN = 32


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv_u32(key, v):
    return gguf_string(key) + struct.pack("<II", 4, v)


def kv_f32(key, v):
    return gguf_string(key) + struct.pack("<If", 6, v)


def kv_str(key, v):
    return gguf_string(key) + struct.pack("<I", 8) + gguf_string(v)


def edge_rows(rng, cols):
    rows = []
    r = rng.normal(0, 0.02, cols); r[: cols // 2] = 0; rows.append(r)        # zero blocks
    rows.append(np.full(cols, 0.37))                                           # constant
    rows.append(np.abs(rng.normal(0, 1.0, cols)))                              # positive only
    rows.append(-np.abs(rng.normal(0, 1.0, cols)))                             # negative only
    rows.append(rng.normal(0, 1e-7, cols))                                     # tiny
    rows.append(rng.normal(0, 300.0, cols))                                    # large
    r = rng.normal(0, 0.01, cols); r[::97] = 2.5; rows.append(r)              # outliers
    r = rng.normal(0, 1.0, cols) * np.repeat(np.exp(rng.uniform(-6, 2, cols // 16)), 16)
    rows.append(r)                                                             # scale varies per 16
    r = rng.standard_t(3, cols) * 0.05; rows.append(r)                         # heavy tails
    r = np.round(rng.normal(0, 4, cols)) / 8; rows.append(r)                   # exact grid values
    return rows


def main(path):
    rng = np.random.default_rng(20261123)
    tensors = []
    gate = np.stack(edge_rows(rng, 512) + [rng.normal(0, 0.5, 512) for _ in range(6)])
    tensors.append(("blk.0.ffn_gate.weight", gate))
    down = np.stack(edge_rows(rng, 256) + [rng.normal(0, 0.1, 256) for _ in range(6)])
    tensors.append(("blk.0.ffn_down.weight", down))
    tensors.append(("blk.0.ffn_norm.weight", np.ones(256)))

    kvs = [
        kv_str("general.architecture", "llama"),
        kv_str("general.name", "kexa quant test source"),
        kv_u32("llama.context_length", 64),
        kv_u32("llama.embedding_length", 256),
        kv_u32("llama.block_count", 1),
        kv_u32("llama.feed_forward_length", 512),
        kv_u32("llama.attention.head_count", 4),
        kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
        kv_u32("general.file_type", 0),
    ]
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    data = b""
    infos = b""
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        while len(data) % ALIGN:
            data += b"\0"
        ne = list(reversed(arr.shape))
        infos += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(
            struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", 0, len(data))
        data += arr.tobytes()
    out = header + infos
    while len(out) % ALIGN:
        out += b"\0"
    with open(path, "wb") as f:
        f.write(out + data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "source_f32.gguf")
