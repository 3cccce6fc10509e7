// Encodes a JSONL file of texts with npm `tokenizers` (HF) and prints MB/s.
// usage: RAYON_NUM_THREADS=N node tokenizer_hf.mjs TOKENIZER_JSON ITEMS_JSONL
import fs from 'node:fs';
import tokenizers from 'tokenizers';
const { Tokenizer } = tokenizers;
const [jsonPath, itemsPath] = process.argv.slice(2);
const t = Tokenizer.fromString(fs.readFileSync(jsonPath, 'utf8'));
const items = fs.readFileSync(itemsPath, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
const bytes = items.reduce((a, s) => a + Buffer.byteLength(s), 0);
await t.encodeBatch(items.slice(0, 50), { addSpecialTokens: false });  // warm up
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
const encs = await t.encodeBatch(items, { addSpecialTokens: false });
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const c1 = process.cpuUsage(c0);
const cpuSecs = (c1.user + c1.system) / 1e6;
let tokens = 0;
for (const e of encs) tokens += e.getLength();
console.log(JSON.stringify({ bytes, tokens, secs, mbps: bytes / 1e6 / secs, cpu_mbps: bytes / 1e6 / cpuSecs }));
