// Load test for `kexa serve` on loopback: 16 concurrent streaming clients x 4 requests each, all
// complete and well-formed with no 5xx; then 8 clients that disconnect mid-stream while 8 others
// run: their slots are freed (seen in /metrics) and the others finish.
// Usage: node server_load.mjs BASE_URL API_KEY METRICS_KEY
const [base, apiKey, metricsKey] = process.argv.slice(2);
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + detail : "")); }
}

async function streamOnce(i, { abortAfterFirst = false, maxTokens = 24 } = {}) {
  const controller = new AbortController();
  const res = await fetch(base + "/v1/chat/completions", {
    method: "POST", signal: controller.signal,
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + apiKey },
    body: JSON.stringify({
      messages: [{ role: "user", content: `Tell story number ${i}.` }], stream: true, max_tokens: maxTokens,
      temperature: 0.8, seed: i, stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200) return { status: res.status, ok: false };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", done = false, finish = null, usage = null, malformed = 0, chunks = 0;
  try {
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) { malformed++; continue; }
        const data = event.slice(6);
        if (data === "[DONE]") { done = true; continue; }
        try {
          const chunk = JSON.parse(data);
          chunks++;
          if (chunk.usage) usage = chunk.usage;
          if (chunk.choices?.[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
          if (chunk.object !== "chat.completion.chunk") malformed++;
        } catch { malformed++; }
        if (abortAfterFirst && chunks >= 2) {
          controller.abort();
          return { status: 200, aborted: true };
        }
      }
    }
  } catch (e) {
    if (abortAfterFirst) return { status: 200, aborted: true };
    throw e;
  }
  const ok = done && finish !== null && usage !== null && malformed === 0 && buffer === "" &&
    usage.completion_tokens >= 1 && usage.completion_tokens <= maxTokens;
  return { status: 200, ok, done, finish, usage, malformed };
}

async function metric(name) {
  const text = await (await fetch(base + "/metrics", { headers: { Authorization: "Bearer " + metricsKey } })).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? parseFloat(line.split(" ")[1]) : NaN;
}

// Phase 1: 16 clients x 4 requests.
const t0 = Date.now();
const results = await Promise.all(Array.from({ length: 16 }, async (_, c) => {
  const out = [];
  for (let r = 0; r < 4; r++) out.push(await streamOnce(c * 4 + r));
  return out;
}));
const flat = results.flat();
check("64 streaming responses", flat.length === 64);
check("no 5xx", flat.every((r) => r.status < 500), JSON.stringify(flat.filter((r) => r.status >= 500)));
check("every response complete and well-formed", flat.every((r) => r.ok), JSON.stringify(flat.find((r) => !r.ok)));
console.log(`  (phase 1 took ${((Date.now() - t0) / 1000).toFixed(1)} s)`);

// Phase 2: 8 clients disconnect after their first tokens while 8 others stream long replies.
// The counters are read before and after, so only phase 2's work is counted.
const before = { generated: await metric("kexa_generated_tokens_total"), steps: await metric("kexa_batch_steps_total") };
const quitters = Array.from({ length: 8 }, (_, i) => streamOnce(100 + i, { abortAfterFirst: true, maxTokens: 400 }));
const stayers = Array.from({ length: 8 }, (_, i) => streamOnce(200 + i, { maxTokens: 48 }));
const q = await Promise.all(quitters);
check("8 clients disconnected mid-stream", q.every((r) => r.aborted), JSON.stringify(q));
const s = await Promise.all(stayers);
check("the others finish", s.every((r) => r.ok), JSON.stringify(s.find((r) => !r.ok)));
let active = NaN;
for (let i = 0; i < 50; i++) {
  active = await metric("kexa_sequences_active");
  if (active === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
check("slots of disconnected clients are freed (kexa_sequences_active = 0)", active === 0, String(active));
// What the quitters generated. kexa_generated_tokens_total counts a request's tokens when it
// completes (the stayers' usage.completion_tokens; the count may land just after [DONE], hence the
// wait), so a quitter that ran to its end adds up to 400. The decoding steps bound how long any
// quitter ran: the stayers need at most 48 decode steps plus their prefill, a quitter that ran on
// 400. With 8 slots and 16 requests the stayers wait only for quitters to be cancelled.
const stayerTokens = s.reduce((a, r) => a + (r.usage?.completion_tokens ?? 0), 0);
let generated = NaN;
for (let i = 0; i < 50; i++) {
  generated = (await metric("kexa_generated_tokens_total")) - before.generated;
  if (generated >= stayerTokens) break;
  await new Promise((r) => setTimeout(r, 100));
}
const steps = (await metric("kexa_batch_steps_total")) - before.steps;
const quitterTokens = generated - stayerTokens;
check("disconnected clients' requests were cancelled, not completed (< 8 x 50 of their 8 x 400 tokens counted)",
  quitterTokens >= 0 && quitterTokens < 8 * 50, `phase 2: ${generated} tokens counted, stayers ${stayerTokens}`);
check("disconnected clients stopped generating early (phase 2 took < 200 decoding steps; 400 if one ran to its end)",
  steps < 200, `${steps} steps`);
console.log(`  (phase 2: ${generated} tokens counted, ${stayerTokens} by the stayers, ${steps} decoding steps)`);
const health = await fetch(base + "/health");
check("server still healthy", health.status === 200);

console.log(`server-load: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
