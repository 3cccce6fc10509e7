// Helpers for bench/tokenizer-train, all through npm `tokenizers` (Hugging Face's Rust library):
//   exaone4 DIR OUT_JSON         tokenizer.json for EXAONE 4.0 from vocab.json + merges.txt +
//                                tokenizer_config.json (GPT-2 byte-level regex, no normalizer)
//   count TOKENIZER_JSON FILE... {"FILE": {"bytes": B, "tokens": T}} encoding line by line
//   hftrain OUT_JSON FILE...     HF's BpeTrainer as the Node binding exposes it (its defaults:
//                                vocab 30000, min frequency 0) on a byte-level GPT-2 setup;
//                                prints {"seconds", "cpu", "vocab"}
import { readFileSync, writeFileSync } from 'node:fs';
import tokenizers from 'tokenizers';

const { Tokenizer } = tokenizers;
const [cmd, ...args] = process.argv.slice(2);

function skeleton(vocab, merges, added) {
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
             vocab, merges },
  };
}

if (cmd === 'exaone4') {
  const [dir, out] = args;
  const vocab = JSON.parse(readFileSync(`${dir}/vocab.json`, 'utf8'));
  const merges = readFileSync(`${dir}/merges.txt`, 'utf8').split('\n')
    .filter((l) => l && !l.startsWith('#version'));
  const cfg = JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8'));
  const added = Object.entries(cfg.added_tokens_decoder || {}).map(([id, t]) => ({
    id: Number(id), content: t.content, single_word: !!t.single_word, lstrip: !!t.lstrip,
    rstrip: !!t.rstrip, normalized: !!t.normalized, special: !!t.special }));
  writeFileSync(out, JSON.stringify(skeleton(vocab, merges, added)));
} else if (cmd === 'count') {
  const [json, ...files] = args;
  const tok = Tokenizer.fromFile(json);
  const result = {};
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const lines = text.split('\n');
    let tokens = 0;
    for (let i = 0; i < lines.length; i += 512) {
      // Each line keeps its newline so the byte and token counts cover the whole file.
      const batch = lines.slice(i, i + 512).map((l, j) => (i + j < lines.length - 1 ? l + '\n' : l))
        .filter((l) => l.length);
      const encs = await tok.encodeBatch(batch, { addSpecialTokens: false });
      for (const e of encs) tokens += e.getIds().length;
    }
    result[f] = { bytes: Buffer.byteLength(text, 'utf8'), tokens };
  }
  console.log(JSON.stringify(result));
} else if (cmd === 'hftrain') {
  const [out, ...files] = args;
  const tok = Tokenizer.fromString(JSON.stringify(skeleton({}, [], [])));
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  tok.train(files);
  const c = process.cpuUsage(c0);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  tok.save(out);
  console.log(JSON.stringify({ seconds, cpu: (c.user + c.system) / 1e6, vocab: tok.getVocabSize() }));
} else {
  console.error('usage: tokenizer-train.mjs exaone4|count|hftrain ...');
  process.exit(2);
}
