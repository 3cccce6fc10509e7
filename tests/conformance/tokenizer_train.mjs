// Encodes every line of a text file with Hugging Face tokenizers (npm `tokenizers`, the Rust
// library) loading a tokenizer.json, and prints the ids of each line space-separated, one line per
// input line. Usage: node tokenizer_train.mjs TOKENIZER_JSON TEXT_FILE
import { readFileSync } from 'node:fs';
import tokenizers from 'tokenizers';

const [jsonPath, textPath] = process.argv.slice(2);
const tok = tokenizers.Tokenizer.fromFile(jsonPath);
let lines = readFileSync(textPath, 'utf8').split('\n');
if (lines.length && lines[lines.length - 1] === '') lines.pop();
const out = [];
const batch = 512;
for (let i = 0; i < lines.length; i += batch) {
  const encs = await tok.encodeBatch(lines.slice(i, i + batch), { addSpecialTokens: false });
  for (const e of encs) out.push(e.getIds().join(' '));
}
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
