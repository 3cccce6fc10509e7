// Aggregate decode throughput of `kexa serve` with N concurrent streams, and time to first token.
// Usage: node bench/server_throughput.mjs BASE_URL STREAMS MAX_TOKENS
// Prints one JSON line: {"streams", "tokens", "seconds", "aggregate_tok_s", "per_stream_tok_s",
// "ttft_median_s", "ttft_max_s"}.
//        node bench/server_throughput.mjs BASE_URL --join STREAMS MAX_TOKENS
// Time to first token of a request that arrives while STREAMS others are decoding (its prefill
// joins their batch): starts STREAMS streams, waits until all have produced tokens, then sends
// one more. Prints {"background_streams", "join_ttft_s", "background_tokens_during_join"}.
const args = process.argv.slice(2);
const join = args[1] === "--join";
const base = args[0];
const streams = parseInt(args[join ? 2 : 1], 10);
const maxTokens = parseInt(args[join ? 3 : 2], 10);
let tokensSeen = 0;  // text chunks received on every stream so far

async function one(i, maxTok = maxTokens) {
  const t0 = performance.now();
  // /v1/completions: the quantized GGUFs in bench/models carry no chat template.
  const res = await fetch(base + "/v1/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      prompt: `Write story ${i} about a cat.`, stream: true,
      max_tokens: maxTok, temperature: 0.8, seed: i, stream_options: { include_usage: true },
    }),
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", ttft = null, tokens = 0, firstAt = null, lastAt = null, chunks = 0;
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
      const text = chunk.choices?.[0]?.text;
      if (text) {
        tokensSeen++;
        chunks++;
        if (ttft === null) { ttft = (performance.now() - t0) / 1000; firstAt = performance.now(); }
        lastAt = performance.now();
      }
    }
  }
  return { ttft, tokens, firstAt, lastAt, chunks };
}

if (join) {
  const background = Array.from({ length: streams }, (_, i) => one(i));
  // Wait until every background stream is decoding (each has sent a few chunks).
  while (tokensSeen < streams * 4) await new Promise((r) => setTimeout(r, 20));
  const before = tokensSeen;
  const probe = await one(1000, 4);
  const during = tokensSeen - before - probe.chunks;  // the background streams' progress meanwhile
  await Promise.all(background);
  console.log(JSON.stringify({ background_streams: streams, join_ttft_s: +probe.ttft.toFixed(3),
    background_tokens_during_join: during }));
  process.exit(0);
}

const start = performance.now();
const results = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
const seconds = (performance.now() - start) / 1000;
const tokens = results.reduce((a, r) => a + r.tokens, 0);
const ttfts = results.map((r) => r.ttft ?? seconds).sort((a, b) => a - b);
console.log(JSON.stringify({
  streams, tokens, seconds: +seconds.toFixed(3), aggregate_tok_s: +(tokens / seconds).toFixed(2),
  per_stream_tok_s: +(tokens / seconds / streams).toFixed(2),
  // After the last stream's first token (the batched prefill), every step decodes: the rate to set
  // beside llama-batched-bench's S_TG.
  decode_tok_s: +((tokens - streams) / Math.max(seconds - ttfts[ttfts.length - 1], 1e-3)).toFixed(2),
  ttft_median_s: +ttfts[Math.floor(ttfts.length / 2)].toFixed(3), ttft_max_s: +ttfts[ttfts.length - 1].toFixed(3),
}));
