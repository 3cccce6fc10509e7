// Compares `kexa tokenize` with Hugging Face tokenizers (npm `tokenizers`, the Rust library's
// Node binding) on every line of the project corpora plus a generated adversarial set.
// Both sides get equivalent tokenizers: HF a tokenizer.json built here from the slow files
// (vocab.json + merges.txt + tokenizer_config.json added tokens + the family's pre-tokenizer),
// kexa the slow folder itself and the same tokenizer.json.
// usage: node tokenizer.mjs KEXA_BINARY SHARED_DIR TMP_DIR   (env KEXA_SANITIZED=1: subset)
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import tokenizers from 'tokenizers';
const { Tokenizer } = tokenizers;

const [kexa, shared, tmp] = process.argv.slice(2);
const fixtures = path.join(shared, 'fixtures');
const sanitized = process.env.KEXA_SANITIZED === '1';
fs.mkdirSync(tmp, { recursive: true });

// ------------------------------------------------------------------ corpora
const readLines = (p) => fs.readFileSync(p, 'utf8').split('\n');
const corpora = [];
corpora.push(['wikitext-2-raw-test', readLines(path.join(fixtures, 'wikitext-2-raw-test/wiki.test.raw'))]);
corpora.push(['tinyshakespeare', readLines(path.join(fixtures, 'tinyshakespeare/input.txt'))]);
corpora.push(['debian-faq.en', readLines(path.join(fixtures, 'debian-faq-ko-en/debian-faq.en.txt'))]);
corpora.push(['debian-faq.ko', readLines(path.join(fixtures, 'debian-faq-ko-en/debian-faq.ko.txt'))]);
{
  const kq = JSON.parse(fs.readFileSync(path.join(fixtures, 'korquad-v1-dev/KorQuAD_v1.0_dev.json'), 'utf8'));
  const contexts = [], questions = [];
  for (const d of kq.data) for (const p of d.paragraphs) {
    contexts.push(p.context);
    for (const q of p.qas) questions.push(q.question);
  }
  corpora.push(['korquad-contexts', contexts]);
  corpora.push(['korquad-questions', questions]);
}
corpora.push(['korean-chatbot-data', readLines(path.join(fixtures, 'korean-chatbot-data/ChatbotData.csv'))]);
// Whole documents in 3000-character chunks, so newlines and CRLF are inside the texts.
{
  const docs = [];
  for (const f of ['debian-faq-ko-en/debian-faq.ko.txt', 'debian-faq-ko-en/debian-faq.en.txt', 'wikitext-2-raw-test/wiki.test.raw']) {
    const t = fs.readFileSync(path.join(fixtures, f), 'utf8');
    for (let i = 0; i < t.length && i < 300000; i += 3000) docs.push(t.slice(i, i + 3000));
  }
  docs.push(docs.slice(0, 20).join('').replace(/\n/g, '\r\n'));
  corpora.push(['documents', docs]);
}

// ------------------------------------------------------------------ adversarial set
function adversarial() {
  let seed = 0x6b657861;
  const rnd = () => { seed = (seed + 0x6D2B79F5) | 0; let t = seed; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const out = ['', ' ', '  ', '\t', '\n', '\r\n', '\r', 'a\r\nb', 'Hello\r\n\r\nWorld\r\n', 'x \n y \n\n z  \n',
    'Hello 世界 мир عالم 🌍 नमस्ते ไทย', '👨‍👩‍👧‍👦 family', '👍🏽 👋🏿 🧑🏻‍💻', '🇰🇷🇺🇸', 'e\u0301 cafe\u0301 a\u0301\u0302\u0303',
    ' \u0301x', '\u0301', 'x\u0301 y\u0301', '한국어 문장입니다'.normalize('NFD'), '한국어 문장입니다', '漢字かなカナ한글',
    'I\'m you\'re he\'ll they\'ve it\'s I\'d don\'t', 'I\'M YOU\'RE HE\'LL THEY\'VE IT\'S I\'D', '\'ſ \'S \'s\'t\'re', '\'\'\'x',
    '[|user|]hi[|assistant|]ok[|endofturn|]', '[|endofturn|]\n', '<think>x</think>', '[|user|', 'PI:EMAIL test PI:URL',
    '<|endofturn|><|user|> hello world <mask> x', 'hello world', 'say hello world!', 'ahello worldz',
    '!!!???...', 'foo.\nbar', 'foo.\r\nbar', 'a/b/c//d', '("hello")', '\'hello\'', '"quoted" (paren) [br] {c}',
    '3.14159', '1,000,000', '１２３４５', '٣٤٥', 'x²³ ½ Ⅻ', '\u00a0\u00a0x', '\u3000全角', 'a\u0085b', 'a\u2028b\u2029c',
    'tab\there', '\t\t\tindent', 'x\t \t y', 'ＡＢＣ ﬁ ﬂ', 'İstanbul', 'ß ẞ ǅ', 'Ω Ω K K'];
  for (let n = 1; n <= 40; ++n) out.push('7'.repeat(n), ' ' + '1234567890'.repeat(4).slice(0, n) + 'x', 'v' + '9'.repeat(n));
  for (let n = 1; n <= 40; ++n) out.push(' '.repeat(n) + 'x', 'x' + ' '.repeat(n), '\t'.repeat(n % 7) + ' '.repeat(n) + '\n' + 'y', ' '.repeat(n));
  const pool = [
    ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', ...'0123456789', ' ', ' ', ' ', ' ', '\t', '\n', '\r\n', '\r',
    ...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~', '한', '국', '어', '의', '는', '가', '다', '\u1100', '\u1161', '\u11a8',
    '\u0301', '\u0308', '\u0327', '世', '界', '漢', 'か', 'カ', 'ー', '😀', '👍', '\u{1F3FD}', '\u200d', '👩', '💻', '\uFE0F',
    'м', 'и', 'р', 'Ж', 'ع', 'ا', 'ل', 'न', 'म', '\u094D', '\u093E', 'ไ', 'ท', 'ย', '\u0E31', '\u00a0', '\u3000', '１', '٣', '½', '²',
    'é', 'ñ', 'ø', 'Æ', 'ſ', 'İ', '€', '£', '—', '…', '“', '”', '«', '»', '·', '\'s', '\'T', '\'ll', '[|user|]', '[|endofturn|]', '<|user|>', '<mask>', 'hello world'];
  for (let i = 0; i < 1500; ++i) {
    let s = '';
    const len = 1 + Math.floor(rnd() * 60);
    for (let k = 0; k < len; ++k) s += pick(pool);
    out.push(s);
  }
  return out;
}
corpora.push(['adversarial', adversarial()]);

let items = [];
const ranges = [];
for (const [name, lines] of corpora) {
  const chosen = sanitized ? lines.filter((_, i) => i % 15 === 0 || name === 'adversarial') : lines;
  ranges.push([name, items.length, items.length + chosen.length]);
  items = items.concat(chosen);
}
const itemsPath = path.join(tmp, 'items.jsonl');
fs.writeFileSync(itemsPath, items.map((s) => JSON.stringify(s)).join('\n') + '\n');
const totalBytes = items.reduce((a, s) => a + Buffer.byteLength(s), 0);

// ------------------------------------------------------------------ tokenizer.json builders
function slowToJson(dir, family) {
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8'));
  const merges = fs.readFileSync(path.join(dir, 'merges.txt'), 'utf8').split('\n')
    .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')));
  const tc = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  const added = Object.entries(tc.added_tokens_decoder || {}).map(([id, t]) => ({
    id: Number(id), content: t.content, single_word: !!t.single_word, lstrip: !!t.lstrip,
    rstrip: !!t.rstrip, normalized: !!t.normalized, special: !!t.special }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const pre = family === 'exaone'
    ? { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] }
    : byteLevel;
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: pre,
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

const SUPERBPE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

function trainingFile() {
  // Every UTF-8 lead and continuation byte appears, so the byte alphabet is complete.
  const cover = [];
  for (let b = 1; b < 0x80; ++b) if (b !== 10) cover.push(String.fromCodePoint(b));
  for (let cp = 0x80; cp < 0x800; cp += 0x40) for (let k = 0; k < 0x40; k += 1) cover.push(String.fromCodePoint(cp + k));
  for (let lead = 0; lead < 16; ++lead) cover.push(String.fromCodePoint(Math.max(0x800, lead << 12) + 0x100));
  for (const cp of [0x10000, 0x40000, 0x80000, 0xC0000, 0x100000]) cover.push(String.fromCodePoint(cp));
  const parts = [cover.join(' ')];
  const take = (p, n) => fs.readFileSync(path.join(fixtures, p), 'utf8').slice(0, n);
  parts.push(take('debian-faq-ko-en/debian-faq.ko.txt', 120000), take('debian-faq-ko-en/debian-faq.en.txt', 80000),
    take('wikitext-2-raw-test/wiki.test.raw', 80000), take('korean-chatbot-data/ChatbotData.csv', 60000), adversarial().join('\n'));
  const p = path.join(tmp, 'train.txt');
  fs.writeFileSync(p, parts.join('\n'));
  return p;
}

const trainedAdded = [
  { id: 0, content: '<|endofturn|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  { id: 1, content: '<|user|>', single_word: false, lstrip: false, rstrip: true, normalized: false, special: true },
  { id: 2, content: '<mask>', single_word: false, lstrip: true, rstrip: false, normalized: true, special: true },
  { id: 3, content: 'hello world', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
];

function trainSuperBpe(trainPath) {
  const spec = {
    version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: SUPERBPE }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: {}, merges: [] },
  };
  const t = Tokenizer.fromString(JSON.stringify(spec));
  t.train([trainPath]);
  const out = path.join(tmp, 'superbpe.json');
  t.save(out, false);
  // The trainer numbers its vocab from 0 and knows nothing of the added tokens: give them ids
  // after the vocab, as a released tokenizer.json would have them.
  const j = JSON.parse(fs.readFileSync(out, 'utf8'));
  const base = Math.max(...Object.values(j.model.vocab)) + 1;
  j.added_tokens = trainedAdded.map((a, k) => ({ ...a, id: base + k }));
  return j;
}

function trainSpmStyle(trainPath) {
  // SentencePiece-style BPE as HF converts Llama: Prepend+Replace normalizer, no pre-tokenizer,
  // byte fallback, Replace/ByteFallback/Fuse/Strip decoder, BOS by TemplateProcessing.
  const spec = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: { '<unk>': 0, '<s>': 1, '</s>': 2 }, merges: [] },
  };
  // Train on a slice only (no byte-level alphabet: unseen characters must take the byte fallback).
  const small = path.join(tmp, 'train-small.txt');
  fs.writeFileSync(small, fs.readFileSync(trainPath, 'utf8').slice(0, 150000));
  const t = Tokenizer.fromString(JSON.stringify(spec));
  t.train([small]);
  const out = path.join(tmp, 'spm-style.json');
  t.save(out, false);
  const j = JSON.parse(fs.readFileSync(out, 'utf8'));
  let next = Math.max(...Object.values(j.model.vocab)) + 1;
  j.added_tokens = j.added_tokens.map((a) => ({ ...a, id: next++ }));
  for (const a of j.added_tokens) j.model.vocab[a.content] = a.id;
  j.post_processor.special_tokens['<s>'].ids = [j.model.vocab['<s>']];
  for (let b = 0; b < 256; ++b) {
    const name = '<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>';
    if (!(name in j.model.vocab)) j.model.vocab[name] = next++;
  }
  return j;
}

// ------------------------------------------------------------------ run both sides
async function hfIds(json, addSpecial, list = items) {
  const t = Tokenizer.fromString(JSON.stringify(json));
  const out = [];
  const B = 2000;
  for (let i = 0; i < list.length; i += B) {
    const encs = await t.encodeBatch(list.slice(i, i + B), { addSpecialTokens: addSpecial });
    for (const e of encs) out.push(e.getIds());
  }
  return out;
}

const since = (t) => `${((Date.now() - t) / 1000).toFixed(1)} s`;
function kexaIds(model, file = itemsPath) {
  const r = spawnSync(kexa, ['tokenize', '-m', model, '--file', file, '--jsonl', '--check-roundtrip'],
    { maxBuffer: 1 << 30, encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 3) {
    console.error(`kexa failed (${r.status}) on ${model}:\n${r.stderr}`);
    return { ids: null, roundtrip: false };
  }
  const lines = r.stdout.split('\n');
  lines.pop();
  return { ids: lines.map((l) => (l.length ? l.split(' ').map(Number) : [])), roundtrip: r.status === 0, stderr: r.stderr };
}

let failures = 0, compared = 0, configurations = 0;
function compare(label, hf, kx) {
  configurations++;
  if (!kx.ids) { failures++; console.log(`${label}: kexa did not run`); return; }
  if (kx.ids.length !== items.length || hf.length !== items.length) {
    failures++;
    console.log(`${label}: ${items.length} texts, but kexa gave ${kx.ids.length} and HF ${hf.length} results`);
    return;
  }
  let mism = 0;
  const perCorpus = [];
  for (const [name, b, e] of ranges) {
    let m = 0;
    for (let i = b; i < e; ++i) {
      const a = hf[i], k = kx.ids[i] || [];
      if (a.length !== k.length || a.some((v, j) => v !== k[j])) {
        if (m < 2) console.log(`  MISMATCH ${label} ${name}#${i - b}: ${JSON.stringify(items[i]).slice(0, 200)}\n    hf:   ${a.slice(0, 40).join(' ')}\n    kexa: ${k.slice(0, 40).join(' ')}`);
        m++;
      }
    }
    mism += m;
    perCorpus.push(`${name} ${e - b}${m ? ` (${m} bad)` : ''}`);
  }
  compared += items.length;
  if (!kx.roundtrip) { failures++; console.log(`  ROUNDTRIP FAILED ${label}: ${kx.stderr.trim()}`); }
  if (mism) failures++;
  console.log(`${label}: ${items.length} texts compared, ${mism} mismatches; decode(encode(x))==x: ${kx.roundtrip ? 'all' : 'NO'}`);
  if (mism) console.log('  ' + perCorpus.join(', '));
}

// Two vocabularies x (slow files, tokenizer.json), the trained SuperBPE and SentencePiece-style ones.
const ALL_CONFIGURATIONS = 6;
// The corpora and the adversarial set give 71510 texts (6485 in the sanitized subset: every 15th line).
const MIN_TEXTS = 70000, MIN_TEXTS_SANITIZED = 6000;
const t0 = Date.now();
const only = process.env.KEXA_TOKENIZER_ONLY || '';  // debugging: run one configuration
const want = (name) => !only || name.includes(only);
console.log(`tokenizer conformance: ${items.length} texts, ${(totalBytes / 1e6).toFixed(2)} MB${sanitized ? ' (sanitized subset)' : ''}`);
for (const [family, dirName] of [['exaone', 'exaone35-tokenizer'], ['exaone4', 'exaone4-tokenizer']]) {
  if (!want(dirName)) continue;
  const dir = path.join(fixtures, dirName);
  const json = slowToJson(dir, family);
  const jsonPath = path.join(tmp, `${family}.tokenizer.json`);
  fs.writeFileSync(jsonPath, JSON.stringify(json));
  let t1 = Date.now();
  const hf = await hfIds(json, true);
  console.log(`  (HF encoded in ${since(t1)})`);
  t1 = Date.now();
  compare(`${dirName} (slow files)`, hf, kexaIds(dir));
  console.log(`  (kexa encoded in ${since(t1)})`);
  compare(`${dirName} (tokenizer.json)`, hf, kexaIds(jsonPath));
}
const trainPath = trainingFile();
if (want('superbpe')) {
  let t1 = Date.now();
  const json = trainSuperBpe(trainPath);
  console.log(`  (trained in ${since(t1)})`);
  const jsonPath = path.join(tmp, 'superbpe.tokenizer.json');
  fs.writeFileSync(jsonPath, JSON.stringify(json));
  const nSuper = Object.keys(json.model.vocab).filter((t) => /\S\u0120\S/.test(t)).length;
  console.log(`trained SuperBPE test vocab: ${Object.keys(json.model.vocab).length} tokens, ${json.model.merges.length} merges, ${nSuper} cross-word tokens`);
  const hf = await hfIds(json, true);
  // With a normalizer the round trip gives NFC(x); tokens with lstrip/rstrip eat the spaces
  // next to them by design, so the round trip runs on NFC texts without those tokens.
  const nfcPath = path.join(tmp, 'items.nfc.jsonl');
  const nfcItems = items.map((s) => s.normalize('NFC')).filter((s) => !s.includes('<mask>') && !s.includes('<|user|>'));
  fs.writeFileSync(nfcPath, nfcItems.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const kx = kexaIds(jsonPath);
  const rt = kexaIds(jsonPath, nfcPath);
  console.log(`  (round trip on ${nfcItems.length} NFC texts: ${rt.roundtrip ? 'ok' : rt.stderr.trim()})`);
  compare('superbpe+NFC (trained)', hf, { ...kx, roundtrip: rt.roundtrip, stderr: rt.stderr });
}
if (want('spm')) {
  const json = trainSpmStyle(trainPath);
  const jsonPath = path.join(tmp, 'spm-style.tokenizer.json');
  fs.writeFileSync(jsonPath, JSON.stringify(json));
  // An extra schema check (not an EXAONE vocabulary): every 4th text keeps the suite short.
  const sub = items.filter((_, i) => i % 4 === 0);
  const subPath = path.join(tmp, 'items.sub.jsonl');
  fs.writeFileSync(subPath, sub.map((s) => JSON.stringify(s)).join('\n') + '\n');
  console.log(`trained SentencePiece-style test vocab: ${Object.keys(json.model.vocab).length} tokens`);
  const hf = await hfIds(json, true, sub);
  const kx = kexaIds(jsonPath, subPath);
  configurations++;
  if (!kx.ids || kx.ids.length !== sub.length) {
    failures++;
    console.log(`spm-style: ${sub.length} texts, but kexa gave ${kx.ids ? kx.ids.length : 'no'} results`);
  }
  let mism = 0;
  for (let i = 0; i < sub.length; ++i) {
    const a = hf[i], k = (kx.ids && kx.ids[i]) || [];
    if (a.length !== k.length || a.some((v, j) => v !== k[j])) {
      if (mism++ < 3) console.log(`  MISMATCH spm-style: ${JSON.stringify(sub[i]).slice(0, 200)}\n    hf:   ${a.slice(0, 40).join(' ')}\n    kexa: ${k.slice(0, 40).join(' ')}`);
    }
  }
  compared += sub.length;
  if (mism || !kx.roundtrip) failures++;
  console.log(`spm-style byte-fallback (trained): ${sub.length} texts compared, ${mism} mismatches; decode(encode(x))==x: ${kx.roundtrip ? 'all' : 'NO'}`);
}
// A run that compared nothing, or fewer texts or configurations than the corpora and the list
// above give, must not pass: KEXA_TOKENIZER_ONLY matching nothing, a corpus read as empty.
const minTexts = sanitized ? MIN_TEXTS_SANITIZED : MIN_TEXTS;
if (items.length < minTexts) {
  failures++;
  console.log(`FAIL only ${items.length} texts (expected >= ${minTexts}): a corpus is missing or empty`);
}
const wantConfigurations = only ? 1 : ALL_CONFIGURATIONS;
if (configurations < wantConfigurations || compared === 0) {
  failures++;
  console.log(`FAIL ${configurations} configurations compared ${compared} texts (expected >= ${wantConfigurations} configurations` +
    `${only ? `; KEXA_TOKENIZER_ONLY=${only} matched ${configurations}` : ''})`);
}
console.log(`summary: ${compared} texts compared in ${configurations} configurations, ${failures} failing, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failures ? 1 : 0);
