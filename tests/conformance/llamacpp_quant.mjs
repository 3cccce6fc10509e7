// llama.cpp (through node-llama-cpp) as the reference for quantized GGUF models.
//
//   node llamacpp_quant.mjs ref MODEL.gguf "ID ..." N OUT_PREFIX
//       Greedy-generates N tokens (f32 KV cache, flash attention off, threads = CPUs) and writes
//       OUT_PREFIX.ids and OUT_PREFIX.bin (float32 logits [positions x vocab] of every evaluated
//       position: the prompt, then each generated token except the last).
//   node llamacpp_quant.mjs score MODEL.gguf IDS_FILE OUT.bin
//       Teacher-forced logits of every position of the ids in IDS_FILE.
//   node llamacpp_quant.mjs compare REF_PREFIX KEXA_IDS KEXA_LOGITS VOCAB LABEL
//       Same generated ids and max |dlogit| <= 1e-2 * max |logit|; exit 1 otherwise.
//   node llamacpp_quant.mjs kl LLAMA_F32 LLAMA_Q KEXA_F32 KEXA_Q VOCAB LABEL
//       Mean KL(f32 || quantized) per position for each engine against its own f32 output;
//       fails when kexa's exceeds llama.cpp's by more than 5%.
import fs from "node:fs";
import os from "node:os";

import { readLogits } from "./lib/logits.mjs";

const [mode, ...args] = process.argv.slice(2);

function parseIds(text) {
  return text.trim().split(/\s+/).filter((w) => w.length > 0).map((w) => {
    const v = Number(w);
    if (!Number.isInteger(v) || v < 0) throw new Error(`bad token id '${w}'`);
    return v;
  });
}

async function open(modelPath, nCtx) {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const threads = os.cpus().length;
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: nCtx, batchSize: nCtx, threads: { ideal: threads, min: threads },
    flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    sequences: 1,
  });
  return { llama, model, context, seq: context.getSequence(), threads };
}

async function close(h) {
  await h.context.dispose();
  await h.model.dispose();
  await h.llama.dispose();
}

function writeRows(path, rows) {
  let nVocab = 0;
  for (const r of rows) nVocab = Math.max(nVocab, r.size);
  const buf = new Float32Array(rows.length * nVocab);
  rows.forEach((r, p) => {
    if (r.size !== nVocab) throw new Error(`position ${p}: ${r.size} logits, expected ${nVocab}`);
    for (const [tok, val] of r) buf[p * nVocab + tok] = val;
  });
  fs.writeFileSync(path, Buffer.from(buf.buffer));
  return nVocab;
}

const want = { generateNext: { token: true, logits: true, options: { temperature: 0 } } };

async function reference(modelPath, promptText, nText, outPrefix) {
  const prompt = parseIds(promptText);
  const n = Number(nText);
  const h = await open(modelPath, prompt.length + n + 8);
  const rows = [], generated = [];
  let outs = await h.seq.controlledEvaluate(prompt.map((t) => [t, want]));
  for (const o of outs) rows.push(o.next.logits);
  let next = outs[outs.length - 1].next.token;
  for (let i = 0; i < n; i++) {
    generated.push(next);
    if (i === n - 1) break;
    outs = await h.seq.controlledEvaluate([[next, want]]);
    rows.push(outs[0].next.logits);
    next = outs[0].next.token;
  }
  writeRows(`${outPrefix}.bin`, rows);
  fs.writeFileSync(`${outPrefix}.ids`, generated.join(" ") + "\n");
  await close(h);
}

async function score(modelPath, idsPath, outPath) {
  const ids = parseIds(fs.readFileSync(idsPath, "utf8"));
  const h = await open(modelPath, ids.length + 8);
  const outs = await h.seq.controlledEvaluate(ids.map((t) => [t, want]));
  writeRows(outPath, outs.map((o) => o.next.logits));
  await close(h);
}

function top2(row) {
  let a = -Infinity, ai = -1, b = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v > a) { b = a; a = v; ai = i; } else if (v > b) b = v;
  }
  return { arg: ai, gap: a - b };
}

function compare(refPrefix, kexaIdsPath, kexaLogitsPath, vocabText, label) {
  const V = Number(vocabText);
  const refIds = parseIds(fs.readFileSync(`${refPrefix}.ids`, "utf8"));
  const kIds = parseIds(fs.readFileSync(kexaIdsPath, "utf8"));
  const ref = readLogits(`${refPrefix}.bin`, V), got = readLogits(kexaLogitsPath, V);
  let ok = true;
  const P = ref.length / V;
  let maxAbs = 0, maxDiff = 0, minGap = Infinity;
  if (got.length !== ref.length) {
    console.log(`  FAIL ${label}: kexa ${got.length / V} logit rows, llama.cpp ${P}`);
    ok = false;
  } else {
    for (let p = 0; p < P; p++) {
      const r = ref.subarray(p * V, (p + 1) * V), g = got.subarray(p * V, (p + 1) * V);
      minGap = Math.min(minGap, top2(r).gap);
      for (let i = 0; i < V; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(r[i]));
        maxDiff = Math.max(maxDiff, Math.abs(r[i] - g[i]));
      }
    }
  }
  const sameIds = refIds.length === kIds.length && refIds.every((t, i) => t === kIds[i]);
  if (!sameIds) {
    const at = refIds.findIndex((t, i) => t !== kIds[i]);
    console.log(`  FAIL ${label}: generated ids differ at ${at} (llama.cpp ${refIds[at]}, kexa ${kIds[at]}); ` +
      `smallest llama.cpp top-1/top-2 gap ${minGap.toFixed(4)}`);
    ok = false;
  }
  const rel = maxAbs > 0 ? maxDiff / maxAbs : 0;
  if (rel > 1e-2) {
    console.log(`  FAIL ${label}: max |dlogit| ${maxDiff.toExponential(3)} = ${rel.toExponential(3)} x max |logit| > 1e-2`);
    ok = false;
  }
  console.log(`  ${ok ? "ok  " : "FAIL"} ${label}: ${kIds.length} greedy ids ${sameIds ? "identical" : "differ"}, ` +
    `max |dlogit| / max |logit| = ${rel.toExponential(2)} over ${P} positions (min top-2 gap ${minGap.toFixed(3)})`);
  return ok;
}

function meanKL(f32Path, qPath, V) {
  const a = readLogits(f32Path, V), b = readLogits(qPath, V);
  if (a.length !== b.length) throw new Error(`${f32Path} and ${qPath} differ in positions`);
  const P = a.length / V;
  let total = 0;
  const lse = (row) => {
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    return m + Math.log(s);
  };
  for (let p = 0; p < P; p++) {
    const x = a.subarray(p * V, (p + 1) * V), y = b.subarray(p * V, (p + 1) * V);
    const lx = lse(x), ly = lse(y);
    let kl = 0;
    for (let i = 0; i < V; i++) {
      const lpx = x[i] - lx;
      kl += Math.exp(lpx) * (lpx - (y[i] - ly));
    }
    total += kl;
  }
  return { kl: total / P, positions: P };
}

function klCheck(lf, lq, kf, kq, vocabText, label) {
  const V = Number(vocabText);
  const l = meanKL(lf, lq, V), k = meanKL(kf, kq, V);
  const ok = k.positions === l.positions && k.kl <= 1.05 * l.kl;
  console.log(`  ${ok ? "ok  " : "FAIL"} ${label}: KL(f32 || quantized) over ${k.positions} positions: ` +
    `kexa ${k.kl.toExponential(3)}, llama.cpp ${l.kl.toExponential(3)} (ratio ${(k.kl / l.kl).toFixed(3)}, limit 1.05)`);
  return ok;
}

let ok = true;
if (mode === "ref") await reference(...args);
else if (mode === "score") await score(...args);
else if (mode === "compare") ok = compare(...args);
else if (mode === "kl") ok = klCheck(...args);
else throw new Error(`unknown mode '${mode}'`);
process.exit(ok ? 0 : 1);
