// Drives `kexa serve` with the official, unmodified `openai` npm SDK.
// Usage: node server_openai.mjs BASE_URL API_KEY REFERENCE_PROMPT_FILE
// REFERENCE_PROMPT_FILE holds the tools conversation rendered by Python Jinja2 (the reference).
import OpenAI from "openai";
import fs from "node:fs";

const [base, apiKey, referenceFile] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + "/v1", apiKey, maxRetries: 0, timeout: 120000 });
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + detail : "")); }
}
async function post(path, body, key = apiKey) {
  const res = await fetch(base + path, {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const messages = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Say hello in Korean. 안녕?" },
];

// 1. models
const models = await client.models.list();
const modelId = models.data[0]?.id;
check("GET /v1/models lists the model", typeof modelId === "string" && modelId.length > 0);

// 2. non-streaming chat, usage equal to /tokenize of the rendered prompt
const chat = await client.chat.completions.create({ model: modelId, messages, max_tokens: 16, temperature: 0, seed: 1 });
const choice = chat.choices[0];
check("chat completion has an assistant message", choice.message.role === "assistant" && typeof choice.message.content === "string");
check("finish_reason is stop or length", ["stop", "length"].includes(choice.finish_reason), choice.finish_reason);
const rendered = await post("/apply-template", { messages });
const tokenized = await post("/tokenize", { content: rendered.body.prompt });
check("usage.prompt_tokens equals /tokenize of /apply-template", chat.usage.prompt_tokens === tokenized.body.tokens.length,
  `${chat.usage.prompt_tokens} vs ${tokenized.body.tokens.length}`);
check("usage.total = prompt + completion", chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens);
check("completion_tokens within max_tokens", chat.usage.completion_tokens >= 1 && chat.usage.completion_tokens <= 16);

// 3. streaming chat gives the same text as non-streaming (greedy)
const stream = await client.chat.completions.create({
  model: modelId, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let streamed = "", chunks = 0, usage = null, finish = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  if (c.delta?.content) streamed += c.delta.content;
  if (c.finish_reason) finish = c.finish_reason;
}
check("stream yields several chunks", chunks >= 3, String(chunks));
check("streamed text equals the non-streamed text", streamed === (choice.message.content ?? ""), JSON.stringify([streamed, choice.message.content]));
check("last stream chunk carries usage", usage && usage.completion_tokens === chat.usage.completion_tokens);
check("stream ends with a finish_reason", finish === choice.finish_reason, String(finish));

// 3b. logprobs: one entry per generated token, the chosen token among the top alternatives
const lp = await client.chat.completions.create({ model: modelId, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
const entries = lp.choices[0].logprobs?.content ?? [];
check("logprobs: one entry per token", entries.length >= 1 && entries.length <= 6, String(entries.length));
check("logprobs: greedy token is the top alternative", entries.every((e) => e.logprob <= 0 && e.top_logprobs.length === 3 &&
  Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-5), JSON.stringify(entries[0]));
// stop strings end the text before the stop sequence
const full = choice.message.content ?? "";
const words = full.trim().split(/\s+/);
if (words.length >= 2) {
  const stopWord = words[1];
  const stopped = await client.chat.completions.create({ model: modelId, messages, max_tokens: 16, temperature: 0, stop: [stopWord] });
  check("stop string cuts the reply", !stopped.choices[0].message.content.includes(stopWord) && stopped.choices[0].finish_reason === "stop",
    JSON.stringify(stopped.choices[0]));
}

// 4. /v1/completions
const comp = await client.completions.create({ model: modelId, prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
check("/v1/completions returns text", typeof comp.choices[0].text === "string" && comp.usage.completion_tokens >= 1);

// 5. tools: the rendered prompt holds the declarations exactly as the reference renders them
const tools = [{
  type: "function",
  function: {
    name: "get_weather", description: "날씨를 알려줍니다 (weather)",
    parameters: { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } }, required: ["city"] },
  },
}];
const toolMessages = [{ role: "user", content: "서울 날씨 어때?" }];
const withTools = await post("/apply-template", { messages: toolMessages, tools });
const reference = fs.readFileSync(referenceFile, "utf8");
check("tools prompt is byte-identical to the Jinja2 reference", withTools.body.prompt === reference,
  JSON.stringify(withTools.body.prompt).slice(0, 300));
const toolChat = await client.chat.completions.create({ model: modelId, messages: toolMessages, tools, max_tokens: 8, temperature: 0 });
check("tools request is answered", toolChat.choices.length === 1);

// 6. json_schema output parses and validates
const schema = {
  type: "object",
  properties: { name: { type: "string" }, age: { type: "integer" }, tags: { type: "array", items: { type: "string" }, maxItems: 3 } },
  required: ["name", "age"], additionalProperties: false,
};
const structured = await client.chat.completions.create({
  model: modelId, messages: [{ role: "user", content: "Describe a person as JSON." }], max_tokens: 120, temperature: 0.8, seed: 7,
  response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
});
let parsed = null;
try { parsed = JSON.parse(structured.choices[0].message.content); } catch (e) { /* reported below */ }
const valid = parsed && typeof parsed === "object" && typeof parsed.name === "string" && Number.isInteger(parsed.age) &&
  Object.keys(parsed).every((k) => ["name", "age", "tags"].includes(k)) &&
  (parsed.tags === undefined || (Array.isArray(parsed.tags) && parsed.tags.length <= 3 && parsed.tags.every((t) => typeof t === "string")));
check("json_schema output parses and validates", valid, structured.choices[0].message.content);
const obj = await client.chat.completions.create({
  model: modelId, messages: [{ role: "user", content: "JSON please" }], max_tokens: 60, temperature: 0.8, seed: 3,
  response_format: { type: "json_object" },
});
let objParsed = null;
try { objParsed = JSON.parse(obj.choices[0].message.content); } catch (e) { /* reported below */ }
check("json_object output is a JSON object", objParsed !== null && typeof objParsed === "object" && !Array.isArray(objParsed),
  obj.choices[0].message.content);

// 7. errors: 401 without the key, 400 naming the field, OpenAI error shape
const noKey = new OpenAI({ baseURL: base + "/v1", apiKey: "wrong", maxRetries: 0 });
try { await noKey.models.list(); check("401 without the right key", false); }
catch (e) { check("401 without the right key", e.status === 401, String(e.status)); }
const bad = await post("/v1/chat/completions", { messages, temperature: "hot" });
check("wrong type -> 400 naming the field", bad.status === 400 && bad.body.error?.param === "temperature", JSON.stringify(bad.body));
const badMsg = await post("/v1/chat/completions", { messages: [{ role: "wizard", content: "x" }] });
check("bad role -> 400", badMsg.status === 400 && /role/.test(badMsg.body.error?.message ?? ""));
const long = await post("/v1/chat/completions", { messages: [{ role: "user", content: "hello ".repeat(5000) }] });
check("prompt beyond the context -> 400", long.status === 400 && /context/.test(long.body.error?.message ?? ""), JSON.stringify(long.body).slice(0, 200));
const notJson = await fetch(base + "/v1/chat/completions", { method: "POST", headers: { Authorization: "Bearer " + apiKey }, body: "{oops" });
check("bad JSON -> 400", notJson.status === 400);

console.log(`server-openai: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
