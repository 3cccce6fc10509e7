// llama.cpp (node-llama-cpp's prebuilt CPU library) loads the GGUF that `kexa convert` made from
// stories260K (llama2.c -> exaone HF folder -> GGUF) and decodes greedily from BOS. This checks
// kexa's conversion (names, metadata, Q/K RoPE permutation, tokenizer) independently of kexa's
// own forward pass.
//
// usage: node llamacpp_stories.mjs MODEL.gguf TOKENIZER.json TOK512.bin EXPECTED.txt STEPS
// Prints a line per check; exits 1 when one fails.
import fs from 'node:fs';
import os from 'node:os';
import { getLlama } from 'node-llama-cpp';
import tokenizers from 'tokenizers';
const { Tokenizer } = tokenizers;

const [ggufPath, tokenizerJson, tok512, expectedPath, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg || 256);
const expected = fs.readFileSync(expectedPath);
let failures = 0;
const check = (name, ok, detail = '') => {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name}${ok || !detail ? '' : `\n       ${detail}`}`);
  if (!ok) failures++;
};

// llama2.c's decode() + safe_printf() over tok512.bin: the reference for what its `run` prints.
function llama2cDecode(ids) {
  const data = fs.readFileSync(tok512);
  const vocab = [];
  for (let off = 4; off < data.length;) {
    const n = data.readInt32LE(off + 4);
    off += 8;
    vocab.push(data.subarray(off, off + n));
    off += n;
  }
  const parts = [];
  let prev = 1;
  for (const t of ids) {
    let piece = vocab[t];
    if (prev === 1 && piece[0] === 0x20) piece = piece.subarray(1);
    const s = piece.toString('latin1');
    if (/^<0x[0-9A-Fa-f]{2}>$/.test(s)) piece = Buffer.from([parseInt(s.slice(3, 5), 16)]);
    if (piece.length === 1 && !((piece[0] >= 0x20 && piece[0] < 0x7f) || ' \t\n\v\f\r'.includes(String.fromCharCode(piece[0])))) {
      piece = Buffer.alloc(0);
    }
    parts.push(piece);
    prev = t;
  }
  return Buffer.concat([...parts, Buffer.from('\n')]);
}

const firstDiff = (a, b) => {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
};

const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
let model;
try {
  model = await llama.loadModel({ modelPath: ggufPath });
} catch (e) {
  check('llama.cpp loads the kexa GGUF', false, String(e));
  process.exit(1);
}
check('llama.cpp loads the kexa GGUF', true);
check('vocabulary size 512', model.tokens.bos === 1 && model.tokens.eos === 2,
  `bos ${model.tokens.bos} eos ${model.tokens.eos}`);

const context = await model.createContext({
  contextSize: 512,
  batchSize: 512,
  threads: os.cpus().length,
  flashAttention: false,
  experimentalKvCacheKeyType: 'F32',
  experimentalKvCacheValueType: 'F32',
});
const seq = context.getSequence();
// llama2.c's `run`: the BOS position is step 1 and each step prints the token it sampled, so
// `steps` tokens are generated; a sampled BOS ends the story (and prints nothing).
const all = [];
for await (const tok of seq.evaluate([1], { temperature: 0 })) {
  all.push(tok);
  if (all.length >= steps) break;
}
let ids = all;
const bosAt = all.indexOf(1);
if (bosAt >= 0) ids = all.slice(0, bosAt);
console.log(`  llama.cpp generated ${all.length} ids, ${ids.length} before the first BOS`);

const ref = llama2cDecode(ids);
const d1 = firstDiff(ref, expected);
check('llama.cpp greedy ids, decoded by llama2.c\'s rule = expected_greedy_output.txt', d1 < 0,
  `first difference at byte ${d1}: got ${JSON.stringify(ref.subarray(Math.max(0, d1 - 20), d1 + 20).toString())}`);

// The converted tokenizer.json, decoded by Hugging Face tokenizers (what kexa's decoder must match).
const hf = Tokenizer.fromString(fs.readFileSync(tokenizerJson, 'utf8'));
const hfText = Buffer.from((await hf.decode(ids, true)) + '\n');
const d2 = firstDiff(hfText, expected);
check('HF tokenizers decode of the converted tokenizer.json = expected text', d2 < 0,
  `first difference at byte ${d2}: got ${JSON.stringify(hfText.subarray(Math.max(0, d2 - 20), d2 + 20).toString())}`);

// llama.cpp's own detokenizer over the GGUF vocabulary (token types, byte tokens, '▁').
const lcText = Buffer.from(model.detokenize(ids) + '\n');
const d3 = firstDiff(lcText, expected);
check('llama.cpp detokenize of the GGUF vocabulary = expected text', d3 < 0,
  `first difference at byte ${d3}: got ${JSON.stringify(lcText.subarray(Math.max(0, d3 - 20), d3 + 20).toString())}`);

// The converted tokenizer re-encodes the text to the same ids (HF and llama.cpp agree).
const text = expected.toString('utf8').replace(/\n$/, '');
const hfIds = (await hf.encode(text)).getIds();
const lcIds = model.tokenize(text);
check('HF and llama.cpp encode the expected text to the same ids', JSON.stringify(hfIds.slice(1)) === JSON.stringify(lcIds),
  `HF ${hfIds.length - 1} ids, llama.cpp ${lcIds.length}`);

await context.dispose();
await model.dispose();
await llama.dispose();
process.exit(failures ? 1 : 0);
