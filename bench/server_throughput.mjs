// Aggregate decode throughput of `kexa serve` with N concurrent streams, and time to first token.
// Usage: node bench/server_throughput.mjs BASE_URL STREAMS MAX_TOKENS
// Prints one JSON line: {"streams", "tokens", "seconds", "aggregate_tok_s", "per_stream_tok_s",
// "ttft_median_s", "ttft_max_s"}.
const [base, streamsArg, maxArg] = process.argv.slice(2);
const streams = parseInt(streamsArg, 10);
const maxTokens = parseInt(maxArg, 10);

async function one(i) {
  const t0 = performance.now();
  const res = await fetch(base + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      messages: [{ role: "user", content: `Write story ${i} about a cat.` }], stream: true,
      max_tokens: maxTokens, temperature: 0.8, seed: i, stream_options: { include_usage: true },
    }),
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", ttft = null, tokens = 0, firstAt = null, lastAt = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(6, cut);
      buffer = buffer.slice(cut + 2);
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      const d = chunk.choices?.[0]?.delta;
      if (d && (d.content || d.reasoning_content)) {
        if (ttft === null) { ttft = (performance.now() - t0) / 1000; firstAt = performance.now(); }
        lastAt = performance.now();
      }
    }
  }
  return { ttft, tokens, firstAt, lastAt };
}

const start = performance.now();
const results = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
const seconds = (performance.now() - start) / 1000;
const tokens = results.reduce((a, r) => a + r.tokens, 0);
const ttfts = results.map((r) => r.ttft ?? seconds).sort((a, b) => a - b);
console.log(JSON.stringify({
  streams, tokens, seconds: +seconds.toFixed(3), aggregate_tok_s: +(tokens / seconds).toFixed(2),
  per_stream_tok_s: +(tokens / seconds / streams).toFixed(2),
  ttft_median_s: +ttfts[Math.floor(ttfts.length / 2)].toFixed(3), ttft_max_s: +ttfts[ttfts.length - 1].toFixed(3),
}));
