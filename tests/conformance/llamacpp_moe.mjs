// llama.cpp (through node-llama-cpp) reference runs for K-EXAONE (exaone-moe) models, all in one
// process so the library loads once.
//
//   node llamacpp_moe.mjs JOBS_FILE
//       Each line of JOBS_FILE is one of
//         ref MODEL.gguf PROMPT_IDS_FILE N OUT_PREFIX
//             greedy-generates N tokens after the prompt; writes OUT_PREFIX.ids (generated ids)
//             and OUT_PREFIX.bin (float32 logits [positions x vocab] of every evaluated position:
//             the prompt, then each generated token except the last)
//         score MODEL.gguf IDS_FILE OUT.bin
//             teacher-forced logits of every position of the ids
//       f32 KV cache, flash attention off, threads = CPUs. The comparisons themselves are done by
//       llamacpp_dense.mjs compare (F32) and llamacpp_quant.mjs compare / kl (quantized).
import fs from "node:fs";
import os from "node:os";

function parseIds(text) {
  return text.trim().split(/\s+/).filter((w) => w.length > 0).map((w) => {
    const v = Number(w);
    if (!Number.isInteger(v) || v < 0) throw new Error(`bad token id '${w}'`);
    return v;
  });
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
}

const want = { generateNext: { token: true, logits: true, options: { temperature: 0 } } };

async function withContext(llama, modelPath, nCtx, fn) {
  const threads = os.cpus().length;
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: nCtx, batchSize: nCtx, threads: { ideal: threads, min: threads },
    flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    sequences: 1,
  });
  try {
    await fn(context.getSequence());
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

async function reference(llama, modelPath, promptPath, nText, outPrefix) {
  const prompt = parseIds(fs.readFileSync(promptPath, "utf8"));
  const n = Number(nText);
  await withContext(llama, modelPath, prompt.length + n + 8, async (seq) => {
    const rows = [], generated = [];
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
    writeRows(`${outPrefix}.bin`, rows);
    fs.writeFileSync(`${outPrefix}.ids`, generated.join(" ") + "\n");
  });
}

async function score(llama, modelPath, idsPath, outPath) {
  const ids = parseIds(fs.readFileSync(idsPath, "utf8"));
  await withContext(llama, modelPath, ids.length + 8, async (seq) => {
    const outs = await seq.controlledEvaluate(ids.map((t) => [t, want]));
    writeRows(outPath, outs.map((o) => o.next.logits));
  });
}

const [jobsPath] = process.argv.slice(2);
if (!jobsPath) {
  console.error("usage: llamacpp_moe.mjs JOBS_FILE");
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
const threads = os.cpus().length;
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
for (const line of fs.readFileSync(jobsPath, "utf8").split("\n")) {
  const [mode, ...a] = line.trim().split(/\s+/);
  if (!mode) continue;
  if (mode === "ref") await reference(llama, ...a);
  else if (mode === "score") await score(llama, ...a);
  else throw new Error(`unknown job '${line}'`);
}
await llama.dispose();
