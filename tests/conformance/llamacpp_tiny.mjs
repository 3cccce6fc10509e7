// Checks a GGUF written by `kexa convert` from a tiny random EXAONE HF folder against llama.cpp:
// node-llama-cpp's own GGUF parser reads the metadata (compared with expected.json, computed
// independently by make_tiny_exaone.py), rope_freqs.weight is read at the offset llama.cpp's parser
// reports, then llama.cpp loads the model, decodes a few tokens and round-trips text through the
// converted tokenizer.
// usage: node llamacpp_tiny.mjs MODEL.gguf EXPECTED.json
import fs from 'node:fs';
import os from 'node:os';
import { getLlama, readGgufFileInfo } from 'node-llama-cpp';

const [ggufPath, expectedPath] = process.argv.slice(2);
const exp = JSON.parse(fs.readFileSync(expectedPath, 'utf8'));
let failures = 0;
const check = (name, ok, detail = '') => {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} [${exp.arch}] ${name}${ok || !detail ? '' : `\n       ${detail}`}`);
  if (!ok) failures++;
};

const info = await readGgufFileInfo(ggufPath, { readTensorInfo: true });
const lookup = (key) => key.split('.').reduce((o, k) => (o == null ? undefined : o[k]), info.metadata);
const same = (got, want) => {
  if (Array.isArray(want)) return Array.isArray(got) && got.length === want.length && want.every((w, i) => same(got[i], w));
  if (typeof want === 'number') {
    const g = Number(got);
    return Number.isInteger(want) ? g === want : Math.abs(g - want) <= 1e-6 * Math.abs(want);
  }
  return got === want;
};
const mismatched = [];
for (const [key, want] of Object.entries(exp.metadata)) {
  // node-llama-cpp nests `exaone4.attention.sliding_window` as metadata.exaone4.attention.sliding_window.
  const got = lookup(key);
  if (!same(got, want)) mismatched.push(`${key}: got ${JSON.stringify(got)?.slice(0, 80)}, want ${JSON.stringify(want).slice(0, 80)}`);
}
check(`${Object.keys(exp.metadata).length} metadata keys as llama.cpp's converter writes them`, mismatched.length === 0,
  mismatched.join('\n       '));
check('chat template', lookup('tokenizer.chat_template') === exp.chat_template);
const tensors = info.fullTensorInfo ?? info.tensorInfo;
check(`${exp.n_tensors} tensors`, tensors.length === exp.n_tensors, `got ${tensors.length}`);
for (const name of exp.absent_tensors) check(`no ${name}`, !tensors.some((t) => t.name === name));
const rf = tensors.find((t) => t.name === 'rope_freqs.weight');
if (exp.rope_freqs === null) {
  // No llama3 scaling: no rope_freqs tensor (listed in absent_tensors).
} else if (!rf) {
  check('rope_freqs.weight present', false);
} else {
  const buf = fs.readFileSync(ggufPath);
  const off = Number(rf.fileOffset);
  const vals = Array.from({ length: exp.rope_freqs.length }, (_, i) => buf.readFloatLE(off + 4 * i));
  check('rope_freqs.weight = llama3 divisors computed by numpy',
    rf.dimensions.length === 1 && Number(rf.dimensions[0]) === exp.rope_freqs.length &&
    vals.every((v, i) => Math.abs(v - exp.rope_freqs[i]) <= 1e-6 * exp.rope_freqs[i]),
    `got ${vals.map((v) => v.toFixed(6)).join(' ')}; want ${exp.rope_freqs.map((v) => v.toFixed(6)).join(' ')}`);
}
// ggml shapes (innermost first) and types of selected tensors, as llama.cpp's parser reports them.
for (const [name, dims] of Object.entries(exp.tensor_shapes ?? {})) {
  const t = tensors.find((x) => x.name === name);
  const got = t ? t.dimensions.map(Number) : null;
  check(`${name} ne = [${dims}]`, JSON.stringify(got) === JSON.stringify(dims), `got ${JSON.stringify(got)}`);
}
for (const [name, type] of Object.entries(exp.tensor_types ?? {})) {
  const t = tensors.find((x) => x.name === name);
  check(`${name} ggml type ${type}`, t && Number(t.ggmlType) === type, `got ${t && t.ggmlType}`);
}

for (const [name, [at, words]] of Object.entries(exp.u16_at ?? {})) {
  const t = tensors.find((x) => x.name === name);
  const buf = fs.readFileSync(ggufPath);
  const got = t ? words.map((_, i) => buf.readUInt16LE(Number(t.fileOffset) + 2 * (at + i))) : null;
  check(`${name} data at element ${at}`, JSON.stringify(got) === JSON.stringify(words), `got ${JSON.stringify(got)}, want ${JSON.stringify(words)}`);
}

const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
let model;
try {
  model = await llama.loadModel({ modelPath: ggufPath });
} catch (e) {
  check('llama.cpp loads the kexa GGUF', false, String(e));
  process.exit(1);
}
check('llama.cpp loads the kexa GGUF', true);
const context = await model.createContext({
  contextSize: 128, threads: os.cpus().length, flashAttention: false,
  experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
});
const seq = context.getSequence();
const ids = [];
for await (const tok of seq.evaluate([1, 1000, 2000, 3000], { temperature: 0 })) {
  ids.push(tok);
  if (ids.length >= 8) break;
}
check('llama.cpp decodes 8 tokens', ids.length === 8 && ids.every((t) => t >= 0 && t < 102400), ids.join(' '));

for (const [text, id] of Object.entries(exp.special_tokens)) {
  const t = model.tokenize(text, true);
  check(`special token ${text} -> ${id}`, t.length === 1 && t[0] === id, `got ${t.join(' ')}`);
}
for (const text of ['Hello world! 12345', ' 안녕하세요, EXAONE입니다.\n\tcode: x = f(y)  ', 'LG AI Research 엑사원 🤖']) {
  const t = model.tokenize(text);
  const back = model.detokenize(t);
  check(`tokenize/detokenize round trip ${JSON.stringify(text).slice(0, 30)}`, back === text, JSON.stringify(back));
}
await context.dispose();
await model.dispose();
await llama.dispose();
process.exit(failures ? 1 : 0);
