// One text-to-SQL request and three streaming chats sent at once to a `kexa serve --parallel 4
// (or more) --sql-db ...` (Spider's singer database): the SQL request's generations are ordinary scheduler jobs, so the streams keep
// producing tokens while it runs (nothing pauses the model), and every result equals what the same
// request gives when sent alone (greedy decoding).
// Usage: node server_sql_concurrent.mjs BASE_URL API_KEY
const [base, apiKey] = process.argv.slice(2);
const headers = { "Content-Type": "application/json", Authorization: "Bearer " + apiKey };
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + detail : "")); }
}

const sqlBody = { question: "How many singers are citizens of France?", max_retries: 0, max_sql_tokens: 64, max_tokens: 48 };
const chatBodies = [0, 1, 2].map((i) => ({
  messages: [{ role: "user", content: `Tell story number ${i} about the river.` }],
  max_tokens: 160, temperature: 0, stream: true, stream_options: { include_usage: true },
}));

async function sqlQuery() {
  const start = performance.now();
  const res = await fetch(base + "/v1/sql/query", {
    method: "POST", headers, body: JSON.stringify(sqlBody),
  });
  const body = await res.json();
  return { status: res.status, body, start, end: performance.now() };
}

// The stream's text and the arrival time of every chunk that carried generated text.
async function streamChat(body) {
  const res = await fetch(base + "/v1/chat/completions", {
    method: "POST", headers, body: JSON.stringify(body),
  });
  if (res.status !== 200) return { status: res.status, text: "", times: [] };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", text = "", finish = null, usage = null, done = false, end = 0;
  const times = [];
  for (;;) {
    const { value, done: eof } = await reader.read();
    if (eof) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(6, cut);
      buffer = buffer.slice(cut + 2);
      if (data === "[DONE]") { done = true; end = performance.now(); continue; }
      const chunk = JSON.parse(data);
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices?.[0];
      if (c?.delta?.content || c?.delta?.reasoning_content) {
        times.push(performance.now());
        text += c.delta.content ?? "";
      }
      if (c?.finish_reason) finish = c.finish_reason;
    }
  }
  return { status: 200, text, finish, usage, done, times, end };
}

// What must not depend on the company a request keeps (timings excluded).
function sqlOutcome(r) {
  const b = r.body;
  return JSON.stringify({ status: r.status, tables: b.linked_tables, attempts: b.attempts, sql: b.sql, executed: b.executed,
    rows: b.result?.rows, answer: b.answer, error: b.error });
}
function chatOutcome(r) {
  return JSON.stringify({ status: r.status, text: r.text, finish: r.finish, usage: r.usage, done: r.done });
}

// Alone, one after the other.
const sqlAlone = await sqlQuery();
check("text-to-SQL alone answers", sqlAlone.status === 200 && sqlAlone.body.attempts?.length >= 1, JSON.stringify(sqlAlone.body).slice(0, 300));
const chatsAlone = [];
for (const b of chatBodies) chatsAlone.push(await streamChat(b));
check("streams alone complete with several chunks", chatsAlone.every((r) => r.done && r.times.length >= 8),
  JSON.stringify(chatsAlone.map((r) => [r.done, r.times.length])));
console.log(`  (alone: SQL ${((sqlAlone.end - sqlAlone.start) / 1000).toFixed(2)} s, streams ` +
  chatsAlone.map((r) => r.times.length + " chunks").join(", ") + ")");

// Together.
const [sqlTogether, ...chatsTogether] = await Promise.all([sqlQuery(), ...chatBodies.map(streamChat)]);
check("text-to-SQL beside three streams equals text-to-SQL alone", sqlOutcome(sqlTogether) === sqlOutcome(sqlAlone),
  sqlOutcome(sqlTogether).slice(0, 300) + " vs " + sqlOutcome(sqlAlone).slice(0, 300));
chatsTogether.forEach((r, i) => check(`stream ${i} beside the others equals stream ${i} alone`,
  chatOutcome(r) === chatOutcome(chatsAlone[i]), chatOutcome(r).slice(0, 200) + " vs " + chatOutcome(chatsAlone[i]).slice(0, 200)));

// Progress: every stream gets tokens while the SQL request is in flight, and they keep coming
// through its second half (or the stream is already done by then). A scheduler paused for the
// SQL request would hold the streams from (nearly) its start to its end.
const { start, end } = sqlTogether;
const middle = (start + end) / 2;
const during = chatsTogether.map((r) => r.times.filter((t) => t > start && t < end).length);
const wanted = chatsAlone.map((r) => Math.min(8, r.times.length));
console.log(`  (together: SQL ${((end - start) / 1000).toFixed(2)} s; stream chunks during it: ${during.join(", ")} of ` +
  chatsTogether.map((r) => r.times.length).join(", ") + ")");
check("every stream receives tokens while the SQL request runs", during.every((n, i) => n >= wanted[i]),
  JSON.stringify({ during, wanted }));
check("stream tokens keep arriving through the SQL request's second half",
  chatsTogether.every((r) => r.end < end || r.times.some((t) => t > middle && t < end)),
  JSON.stringify(chatsTogether.map((r) => ({ last: r.times.at(-1) - start, end: r.end - start })).concat([{ sql: end - start }])));

console.log(`server-sql-concurrent: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
