// The server's door and request contract, through the official `openai` SDK and plain fetch:
// with --api-key every route but /health and the UI's files answers 401 without the key or with a
// wrong one (/metrics takes --metrics-key instead); logit_bias bans and forces tokens exactly
// (chat and completions, streamed or not, alone or batched); n > 1 returns n choices that share
// one prefill (greedy: identical to n = 1; seeded: choice i is what seed + i gives alone).
// Usage: node server_contract.mjs BASE_URL API_KEY METRICS_KEY
import OpenAI from "openai";

const [base, apiKey, metricsKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + "/v1", apiKey, maxRetries: 0, timeout: 120000 });
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + detail : "")); }
}
async function call(method, path, body, key) {
  const headers = { "Content-Type": "application/json" };
  if (key !== undefined) headers.Authorization = "Bearer " + key;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* text routes */ }
  return { status: res.status, json, text };
}
const post = (path, body, key = apiKey) => call("POST", path, body, key);
const messages = [{ role: "user", content: "Say hello in Korean. 안녕?" }];

// 1. Access control: every route with no key, a wrong key and the right key.
const routes = [
  ["GET", "/v1/models"], ["POST", "/v1/chat/completions", { messages, max_tokens: 1 }],
  ["POST", "/v1/completions", { prompt: "hi", max_tokens: 1 }], ["POST", "/tokenize", { content: "hi" }],
  ["POST", "/detokenize", { tokens: [1] }], ["POST", "/apply-template", { messages }],
  ["GET", "/v1/kexa/features"], ["GET", "/v1/rag/documents"], ["POST", "/v1/rag/query", { question: "x", max_tokens: 1 }],
  ["DELETE", "/v1/rag/documents/none.md"], ["POST", "/v1/sql/query", { sql: "SELECT 1" }],
];
for (const [method, path, body] of routes) {
  const none = await call(method, path, body);
  const wrong = await call(method, path, body, apiKey + "x");
  const right = await call(method, path, body, apiKey);
  check(`${method} ${path}: 401 without the key, 401 with a wrong one, answered with it`,
    none.status === 401 && none.json?.error?.type === "authentication_error" && /missing API key/.test(none.json.error.message) &&
    wrong.status === 401 && /invalid API key/.test(wrong.json?.error?.message ?? "") && right.status !== 401,
    `${none.status} ${wrong.status} ${right.status} ${JSON.stringify(right.json)?.slice(0, 120)}`);
}
const metricsNone = await call("GET", "/metrics");
const metricsApi = await call("GET", "/metrics", undefined, apiKey);
const metricsRight = await call("GET", "/metrics", undefined, metricsKey);
check("/metrics takes the metrics key only", metricsNone.status === 401 && metricsApi.status === 401 &&
  metricsRight.status === 200 && metricsRight.text.includes("kexa_requests_total"),
  `${metricsNone.status} ${metricsApi.status} ${metricsRight.status}`);
const sdkMetricsKey = new OpenAI({ baseURL: base + "/v1", apiKey: metricsKey, maxRetries: 0 });
try { await sdkMetricsKey.models.list(); check("the metrics key does not open the API", false); }
catch (e) { check("the metrics key does not open the API", e.status === 401, String(e.status)); }
for (const path of ["/health", "/", "/index.html", "/app.js", "/style.css"]) {
  const r = await call("GET", path);
  check(`GET ${path} needs no key`, r.status === 200, String(r.status));
}
const unknown = await call("GET", "/no/such/route");
const unknownKeyed = await call("GET", "/no/such/route", undefined, apiKey);
check("an unknown route is 401 without the key, 404 with it", unknown.status === 401 && unknownKeyed.status === 404,
  `${unknown.status} ${unknownKeyed.status}`);

async function metric(name) {
  const r = await call("GET", "/metrics", undefined, metricsKey);
  const line = r.text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? parseFloat(line.split(" ")[1]) : NaN;
}
async function idOf(text) {  // the one id whose text this is, checked by a round trip
  const t = await post("/tokenize", { content: text, add_special: false, parse_special: false });
  const ids = t.json?.tokens ?? [];
  if (ids.length !== 1) return null;
  const back = await post("/detokenize", { tokens: ids });
  return back.json?.content === text ? ids[0] : null;
}

// 2. logit_bias on /v1/completions: ban the greedy first token, then force one.
const prompt = "Once upon a time";
const plain = await client.completions.create({ model: "m", prompt, max_tokens: 8, temperature: 0, logprobs: 2 });
const plainTokens = plain.choices[0].logprobs.tokens;
const banId = await idOf(plainTokens[0]);
check("the greedy first token has an id (round trip)", banId !== null, JSON.stringify(plainTokens[0]));
const banned = await client.completions.create({
  model: "m", prompt, max_tokens: 8, temperature: 0, logprobs: 2, logit_bias: { [banId]: -100 },
});
const bannedTokens = banned.choices[0].logprobs.tokens;
check("completions: a -100 bias bans the token (it never appears)", bannedTokens.length >= 1 && !bannedTokens.includes(plainTokens[0]),
  JSON.stringify([plainTokens, bannedTokens]));
const forcedId = await idOf(" hello") ?? await idOf("hello");
const forced = await client.completions.create({ model: "m", prompt, max_tokens: 4, temperature: 0.9, seed: 3, logit_bias: { [forcedId]: 100 } });
const forcedText = (await post("/detokenize", { tokens: [forcedId, forcedId, forcedId, forcedId] })).json.content;
check("completions: a +100 bias forces the token (sampling too)", forced.choices[0].text === forcedText && forced.usage.completion_tokens === 4,
  JSON.stringify([forced.choices[0].text, forcedText]));

// A token that holds part of a character (byte-level BPE splits a rare emoji into byte tokens):
// its text shows as U+FFFD in the logprobs (chat keeps the exact bytes), and /tokenize gives its
// piece as a bytes array; none of it may break the JSON (it once ended in a 500).
const emoji = await post("/tokenize", { content: "\u{1F999}", add_special: false, parse_special: false, with_pieces: true });
const bytePiece = (emoji.json?.tokens ?? []).find((p) => Array.isArray(p.piece));
check("/tokenize: a partial-character piece is a bytes array", emoji.status === 200 && bytePiece !== undefined,
  JSON.stringify(emoji.json));
if (bytePiece) {
  const partial = await client.completions.create({ model: "m", prompt, max_tokens: 2, temperature: 0, logprobs: 1, logit_bias: { [bytePiece.id]: 100 } });
  check("completions: logprobs of a partial-character token show U+FFFD", /^\uFFFD+$/u.test(partial.choices[0].logprobs.tokens[0]),
    JSON.stringify(partial.choices[0].logprobs));
  const partialChat = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 2,
    temperature: 0, logprobs: true, top_logprobs: 1, logit_bias: { [bytePiece.id]: 100 } });
  const entry = partialChat.choices[0].logprobs.content[0];
  check("chat: logprobs of a partial-character token keep its bytes", /^\uFFFD+$/u.test(entry.token) &&
    JSON.stringify(entry.bytes) === JSON.stringify(bytePiece.piece), JSON.stringify([entry, bytePiece]));
}

// 3. logit_bias on chat, streamed and not, alone and batched beside unbiased requests.
const chatPlain = await client.chat.completions.create({ model: "m", messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 });
const chatFirst = chatPlain.choices[0].logprobs.content[0].token;
const chatBanId = await idOf(chatFirst);
const chatBody = { model: "m", messages, max_tokens: 8, temperature: 0, logprobs: true, logit_bias: { [chatBanId]: -100 } };
const chatBanned = await client.chat.completions.create(chatBody);
const chatBannedTokens = chatBanned.choices[0].logprobs.content.map((e) => e.token);
check("chat: a -100 bias bans the token", chatBanId !== null && !chatBannedTokens.includes(chatFirst),
  JSON.stringify([chatFirst, chatBannedTokens]));
// Logprobs stay the raw model's: the banned run's first token is the unbiased run's runner-up.
const runnerUp = chatPlain.choices[0].logprobs.content[0].top_logprobs[1];
const bannedFirst = chatBanned.choices[0].logprobs.content[0];
check("chat: with the best token banned, the runner-up comes first", bannedFirst.token === runnerUp.token &&
  Math.abs(bannedFirst.logprob - runnerUp.logprob) < 1e-5, JSON.stringify([bannedFirst, runnerUp]));
let streamed = "";
for await (const chunk of await client.chat.completions.create({ ...chatBody, stream: true })) streamed += chunk.choices[0]?.delta?.content ?? "";
check("chat: streamed with the bias equals the non-streamed text", streamed === chatBanned.choices[0].message.content,
  JSON.stringify([streamed, chatBanned.choices[0].message.content]));
const batched = await Promise.all([
  client.chat.completions.create(chatBody), client.chat.completions.create({ ...chatBody, logit_bias: undefined }),
  client.chat.completions.create(chatBody), client.completions.create({ model: "m", prompt, max_tokens: 8, temperature: 0, logit_bias: { [banId]: -100 } }),
]);
check("batched: biased and unbiased requests side by side each get their own answer",
  batched[0].choices[0].message.content === chatBanned.choices[0].message.content &&
  batched[2].choices[0].message.content === chatBanned.choices[0].message.content &&
  batched[1].choices[0].message.content === chatPlain.choices[0].message.content &&
  batched[3].choices[0].text === banned.choices[0].text, JSON.stringify(batched.map((b) => b.choices[0].message?.content ?? b.choices[0].text)));

// 4. logit_bias errors: 400 naming the field.
for (const [name, bias] of [["a non-numeric key", { abc: 1 }], ["a negative key", { "-1": 1 }], ["an out-of-vocabulary id", { 999999999: 1 }],
  ["a bias above 100", { 5: 100.5 }], ["a bias below -100", { 5: -101 }], ["a string bias", { 5: "1" }], ["a boolean bias", { 5: true }],
  ["an array", [1, 2]]]) {
  const r = await post("/v1/chat/completions", { messages, max_tokens: 1, logit_bias: bias });
  check(`logit_bias with ${name} -> 400`, r.status === 400 && r.json?.error?.param === "logit_bias", JSON.stringify(r.json));
}

// 5. n > 1: greedy choices are identical to n = 1, the prompt is prefilled once.
const one = await client.chat.completions.create({ model: "m", messages, max_tokens: 10, temperature: 0 });
const before = await metric("kexa_prompt_tokens_evaluated_total");
const three = await client.chat.completions.create({ model: "m", messages, max_tokens: 10, temperature: 0, n: 3 });
const after = await metric("kexa_prompt_tokens_evaluated_total");
check("n = 3 greedy: three choices, index 0..2, each equal to n = 1",
  three.choices.length === 3 && three.choices.every((c, i) => c.index === i && c.message.content === one.choices[0].message.content &&
    c.finish_reason === one.choices[0].finish_reason), JSON.stringify(three.choices).slice(0, 300));
check("n = 3: usage counts the prompt once and sums the completions",
  three.usage.prompt_tokens === one.usage.prompt_tokens && three.usage.completion_tokens === 3 * one.usage.completion_tokens &&
  three.usage.total_tokens === three.usage.prompt_tokens + three.usage.completion_tokens, JSON.stringify([one.usage, three.usage]));
check("n = 3: the prompt is evaluated once (kexa_prompt_tokens_evaluated_total)", after - before === one.usage.prompt_tokens,
  `${before} -> ${after}, prompt ${one.usage.prompt_tokens}`);

// Seeded sampling: reproducible, choice i equals n = 1 with seed + i.
const sampled = { model: "m", messages, max_tokens: 12, temperature: 1.3, seed: 41 };
const two = await client.chat.completions.create({ ...sampled, n: 2 });
const twoAgain = await client.chat.completions.create({ ...sampled, n: 2 });
const seed41 = await client.chat.completions.create(sampled);
const seed42 = await client.chat.completions.create({ ...sampled, seed: 42 });
const texts = (r) => r.choices.map((c) => c.message.content);
check("n = 2 seeded: reproducible", JSON.stringify(texts(two)) === JSON.stringify(texts(twoAgain)), JSON.stringify([texts(two), texts(twoAgain)]));
check("n = 2 seeded: choice i is what seed + i gives alone, and they differ",
  two.choices[0].message.content === seed41.choices[0].message.content && two.choices[1].message.content === seed42.choices[0].message.content &&
  two.choices[0].message.content !== two.choices[1].message.content, JSON.stringify([texts(two), texts(seed41), texts(seed42)]));

// Streaming n = 2: chunks tagged by index, each choice's text equal to the non-streamed one.
const parts = ["", ""], finishes = [null, null];
let streamUsage = null, badIndex = 0;
for await (const chunk of await client.chat.completions.create({ ...sampled, n: 2, stream: true, stream_options: { include_usage: true } })) {
  if (chunk.usage) streamUsage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.index !== 0 && c.index !== 1) { badIndex++; continue; }
    parts[c.index] += c.delta?.content ?? "";
    if (c.finish_reason) finishes[c.index] = c.finish_reason;
  }
}
check("n = 2 streamed: chunks by index equal the non-streamed choices", badIndex === 0 &&
  JSON.stringify(parts) === JSON.stringify(texts(two)) && finishes.every((f, i) => f === two.choices[i].finish_reason),
  JSON.stringify([parts, texts(two), finishes]));
check("n = 2 streamed: usage sums both choices", streamUsage?.completion_tokens === two.usage.completion_tokens &&
  streamUsage?.prompt_tokens === two.usage.prompt_tokens, JSON.stringify([streamUsage, two.usage]));

// Completions with n and a bias together.
const compTwo = await client.completions.create({ model: "m", prompt, max_tokens: 8, temperature: 0, n: 2, logit_bias: { [banId]: -100 } });
check("completions n = 2 with a bias: both equal the biased n = 1", compTwo.choices.length === 2 &&
  compTwo.choices.every((c, i) => c.index === i && c.text === banned.choices[0].text), JSON.stringify(compTwo.choices));

for (const n of [0, 9, 1.5, "2"]) {
  const r = await post("/v1/chat/completions", { messages, max_tokens: 1, n });
  check(`n = ${JSON.stringify(n)} -> 400 naming n`, r.status === 400 && r.json?.error?.param === "n", JSON.stringify(r.json));
}

console.log(`server-contract: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
