#!/usr/bin/python3
"""Writes the small test pictures of tests/conformance/vision.sh (8-bit RGB PNGs, made here, no
downloads): gradients, a disc and stripes, so that resizing and the tower see structure.

usage: make_images.py OUT_DIR"""
import os
import struct
import sys
import zlib


def png(path, w, h, pixel):
    rows = []
    for y in range(h):  # filter 1 (Sub): each byte minus the one a pixel to the left
        row = bytes(c for x in range(w) for c in pixel(x, y))
        rows.append(b"\1" + bytes((row[i] - (row[i - 3] if i >= 3 else 0)) & 255 for i in range(len(row))))
    raw = b"".join(rows)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def scene(w, h, seed):
    cx, cy, r = w * (0.3 + 0.1 * seed), h * 0.55, min(w, h) * 0.3
    def pixel(x, y):
        if (x - cx) ** 2 + (y - cy) ** 2 < r * r:
            return (230, 40 + 30 * seed, 60)
        if (x // 7 + y // 5 + seed) % 9 == 0:
            return (20, 20, 20)
        return (int(255 * x / max(1, w - 1)), int(255 * y / max(1, h - 1)), (x + y) // 3 % 256)
    return pixel


out = sys.argv[1]
for name, w, h, seed in [("small-64x48", 64, 48, 0), ("landscape-200x120", 200, 120, 1),
                         ("wide-330x60", 330, 60, 2), ("tall-90x250", 90, 250, 3)]:
    png(os.path.join(out, name + ".png"), w, h, scene(w, h, seed))
