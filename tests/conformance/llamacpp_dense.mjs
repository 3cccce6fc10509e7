// llama.cpp (through node-llama-cpp) as the reference for dense EXAONE models.
//
//   node llamacpp_dense.mjs ref "ID ID ..." N MODEL.gguf:OUT_PREFIX [MODEL.gguf:OUT_PREFIX ...]
//       For each model (one process, so the library loads once): greedy-generates N tokens after
//       the prompt with llama.cpp (f32 KV cache, or f16 with KEXA_REF_KV=F16; flash attention
//       off, all CPUs) and writes
//       OUT_PREFIX.ids (generated ids, one line) and OUT_PREFIX.bin
//       (float32 LE logits [positions x vocab] of every evaluated position: the prompt, then each
//       generated token except the last, which is never evaluated).
//   node llamacpp_dense.mjs compare REF_PREFIX KEXA_IDS KEXA_LOGITS VOCAB LABEL [REL_TOL]
//       Checks kexa against the reference: identical generated ids, identical top-1 at every
//       position, max |dlogit| <= REL_TOL (default 1e-3) * max |logit|. Prints the smallest top-1/top-2 gap of the
//       reference next to any mismatch. Exit code 1 on failure.
import fs from "node:fs";
import os from "node:os";

import { readLogits } from "./lib/logits.mjs";

const [mode, ...args] = process.argv.slice(2);
const kvType = process.env.KEXA_REF_KV || "F32";
if (kvType !== "F32" && kvType !== "F16") throw new Error(`KEXA_REF_KV must be F32 or F16, got '${kvType}'`);

function parseIds(text) {
  return text.trim().split(/\s+/).filter((w) => w.length > 0).map((w) => {
    const v = Number(w);
    if (!Number.isInteger(v) || v < 0) throw new Error(`bad token id '${w}'`);
    return v;
  });
}

async function reference(llama, modelPath, prompt, n, outPrefix) {
  const threads = os.cpus().length;
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const contextSize = prompt.length + n + 8;
  const context = await model.createContext({
    contextSize,
    batchSize: contextSize,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
    experimentalKvCacheKeyType: kvType,
    experimentalKvCacheValueType: kvType,
    sequences: 1,
  });
  const seq = context.getSequence();
  const want = { generateNext: { token: true, logits: true, options: { temperature: 0 } } };
  const rows = [];
  const generated = [];
  let outs = await seq.controlledEvaluate(prompt.map((t) => [t, want]));
  for (const o of outs) rows.push(o.next.logits);
  let next = outs[outs.length - 1].next.token;
  for (let i = 0; i < n; i++) {
    generated.push(next);
    if (i === n - 1) break;
    outs = await seq.controlledEvaluate([[next, want]]);
    rows.push(outs[0].next.logits);
    next = outs[0].next.token;
  }
  // Logit maps are keyed by token id; the vocabulary size is the largest map.
  let nVocab = 0;
  for (const r of rows) nVocab = Math.max(nVocab, r.size);
  const buf = new Float32Array(rows.length * nVocab);
  rows.forEach((r, p) => {
    if (r.size !== nVocab) throw new Error(`position ${p}: ${r.size} logits, expected ${nVocab}`);
    for (const [tok, val] of r) buf[p * nVocab + tok] = val;
  });
  fs.writeFileSync(`${outPrefix}.bin`, Buffer.from(buf.buffer));
  fs.writeFileSync(`${outPrefix}.ids`, generated.join(" ") + "\n");
  console.log(`llama.cpp ${modelPath}: ${prompt.length} prompt + ${n} generated, vocab ${nVocab}, ${rows.length} logit rows, ${threads} threads, ${kvType} KV cache`);
  await context.dispose();
  await model.dispose();
}

function top2(row) {
  let a = -Infinity, ai = -1, b = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v > a) { b = a; a = v; ai = i; } else if (v > b) { b = v; }
  }
  return { arg: ai, gap: a - b };
}

function compare(refPrefix, kexaIdsPath, kexaLogitsPath, vocabText, label, relTolText = "1e-3") {
  const relTol = Number(relTolText);
  const V = Number(vocabText);
  const refIds = parseIds(fs.readFileSync(`${refPrefix}.ids`, "utf8"));
  const kIds = parseIds(fs.readFileSync(kexaIdsPath, "utf8"));
  const ref = readLogits(`${refPrefix}.bin`, V);
  const got = readLogits(kexaLogitsPath, V);
  const nRef = ref.length / V, nGot = got.length / V;
  const problems = [];
  if (nGot < nRef) problems.push(`kexa dumped ${nGot} logit rows, llama.cpp evaluated ${nRef}`);
  const n = Math.min(nRef, nGot);
  let maxAbs = 0, maxDiff = 0, maxAt = -1, minGap = Infinity, top1Mismatch = [];
  for (let p = 0; p < n; p++) {
    const r = ref.subarray(p * V, (p + 1) * V), g = got.subarray(p * V, (p + 1) * V);
    for (let i = 0; i < V; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(r[i]));
      const d = Math.abs(r[i] - g[i]);
      if (!(d <= maxDiff)) { maxDiff = d; maxAt = p; }
    }
    const tr = top2(r), tg = top2(g);
    minGap = Math.min(minGap, tr.gap);
    if (tr.arg !== tg.arg) top1Mismatch.push(`pos ${p}: llama.cpp ${tr.arg} (gap ${tr.gap.toExponential(2)}) kexa ${tg.arg}`);
  }
  const tol = relTol * maxAbs;
  if (!(maxDiff <= tol)) problems.push(`max |dlogit| ${maxDiff.toExponential(3)} at position ${maxAt} > ${relTol} x max|logit| = ${tol.toExponential(3)}`);
  if (top1Mismatch.length > 0) problems.push(`top-1 differs at ${top1Mismatch.length} positions: ${top1Mismatch.slice(0, 5).join("; ")}`);
  let same = 0;
  while (same < refIds.length && same < kIds.length && refIds[same] === kIds[same]) same++;
  if (same !== refIds.length || kIds.length !== refIds.length) {
    problems.push(`generated ids differ from index ${same} (llama.cpp ${refIds.length} ids, kexa ${kIds.length}): ` +
      `llama.cpp ${refIds.slice(same, same + 5).join(" ")} vs kexa ${kIds.slice(same, same + 5).join(" ")}`);
  }
  const summary = `${label}: ${n} positions, ${refIds.length} greedy ids, max|logit| ${maxAbs.toFixed(3)}, ` +
    `max|dlogit| ${maxDiff.toExponential(2)} (${(maxDiff / maxAbs).toExponential(2)} rel), min top1-top2 gap ${minGap.toExponential(2)}`;
  if (problems.length > 0) {
    console.log(`FAIL ${summary}`);
    for (const p of problems) console.log(`  ${p}`);
    process.exit(1);
  }
  console.log(`ok   ${summary}`);
}

if (mode === "ref" && args.length >= 3) {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const threads = os.cpus().length;
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const prompt = parseIds(args[0]);
  const n = Number(args[1]);
  for (const job of args.slice(2)) {
    const cut = job.lastIndexOf(":");
    if (cut <= 0) throw new Error(`expected MODEL.gguf:OUT_PREFIX, got '${job}'`);
    await reference(llama, job.slice(0, cut), prompt, n, job.slice(cut + 1));
  }
  await llama.dispose();
} else if (mode === "compare" && (args.length === 5 || args.length === 6)) {
  compare(...args);
} else {
  console.error("usage: llamacpp_dense.mjs ref \"IDS\" N MODEL.gguf:OUT_PREFIX... | compare REF_PREFIX KEXA_IDS KEXA_LOGITS VOCAB LABEL [REL_TOL]");
  process.exit(2);
}
