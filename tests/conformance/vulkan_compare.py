"""Compares a kexa run on the Vulkan backend with the same run on the CPU.

  ids   CPU.ids VK.ids CPU.bin VK.bin VOCAB LABEL REL
        identical greedy ids, and max |dlogit| <= REL x max |logit| over every dumped row.
  kl    F32.bin CPU.bin VK.bin VOCAB LABEL
        mean KL(F32 || quantized) of the Vulkan run within 5% (+1e-6) of the CPU run's: the
        quantized-file bound of llamacpp_quant.sh, with the CPU backend as the reference.
"""
import sys
import numpy as np


def rows(path, vocab):
    a = np.fromfile(path, dtype="<f4")
    assert a.size % vocab == 0, f"{path}: {a.size} floats is not a whole number of {vocab}-rows"
    return a.reshape(-1, vocab).astype(np.float64)


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def main():
    mode = sys.argv[1]
    if mode == "ids":
        cpu_ids, vk_ids, cpu_bin, vk_bin, vocab, label, rel = sys.argv[2:9]
        a = open(cpu_ids).read().split()
        b = open(vk_ids).read().split()
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            print(f"FAIL {label}: greedy ids differ at {first}: cpu {a[first:first + 4]} vulkan {b[first:first + 4]}")
            return 1
        x, y = rows(cpu_bin, int(vocab)), rows(vk_bin, int(vocab))
        if x.shape != y.shape:
            print(f"FAIL {label}: {x.shape[0]} CPU rows, {y.shape[0]} Vulkan rows")
            return 1
        d, peak = np.abs(x - y).max(), np.abs(x).max()
        ok = d <= float(rel) * peak
        print(f"{'ok' if ok else 'FAIL'} {label}: {len(a)} ids identical, max |dlogit| {d:.3g} "
              f"{'<=' if ok else '>'} {rel} x {peak:.3g}")
        return 0 if ok else 1
    if mode == "kl":
        f32_bin, cpu_bin, vk_bin, vocab, label = sys.argv[2:7]
        p = log_softmax(rows(f32_bin, int(vocab)))
        kls = []
        for q_path in (cpu_bin, vk_bin):
            q = log_softmax(rows(q_path, int(vocab)))
            kls.append(float((np.exp(p) * (p - q)).sum(axis=1).mean()))
        ok = kls[1] <= 1.05 * kls[0] + 1e-6
        print(f"{'ok' if ok else 'FAIL'} {label}: mean KL from F32 vulkan {kls[1]:.3g} vs cpu {kls[0]:.3g}")
        return 0 if ok else 1
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
