// Pictures in chat requests (OpenAI image_url content parts), through the official `openai` SDK
// and plain fetch, against two servers: A (the suite's main server: data: URLs only, default
// limits) and B (--image-fetch --web-allow 127.0.0.1 --max-images 2 --max-image-bytes 100000
// --image-fetch-timeout-ms 1500; a loopback HTTP server here serves its pictures). The model has
// no vision tower, so a picture that decodes reaches prepare_turn and is refused there ("this
// model does not read images"): every other 400 below must come before it, naming the problem
// and the part's field. The pictures are tests/data/images (made by make_images.cpp).
// Usage: node server_images.mjs BASE_A API_KEY BASE_B
import OpenAI from "openai";
import fs from "node:fs";
import http from "node:http";

const [baseA, apiKey, baseB] = process.argv.slice(2);
const dir = new URL("../data/images/", import.meta.url);
const file = (name) => fs.readFileSync(new URL(name, dir));
const dataUrl = (bytes, type) => `data:${type};base64,${Buffer.from(bytes).toString("base64")}`;
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + detail : "")); }
}
async function chat(base, content, extra = {}) {
  const res = await fetch(base + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + apiKey },
    body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: 4, ...extra }),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, error: json?.error ?? {}, text };
}
const parts = (...urls) => [{ type: "text", text: "What is in the picture?" }, ...urls.map((url) => ({ type: "image_url", image_url: { url } }))];
const NO_VISION = "this model does not read images";
// A 400 whose message holds `want` and whose param names the part.
async function expect400(name, base, content, want, param = "messages[0].content[1].image_url.url", extra = {}) {
  const r = await chat(base, content, extra);
  check(`${name}: 400 "${want}"${param ? " on " + param : ""}`,
        r.status === 400 && (r.error.message ?? "").includes(want) && (!param || r.error.param === param) &&
        r.error.type === "invalid_request_error",
        `${r.status} ${r.text.slice(0, 300)}`);
}

// --- A: data: URLs ---------------------------------------------------------------------------------
for (const [name, type] of [["blocks.png", "image/png"], ["blocks.jpg", "image/jpeg"], ["blocks.webp", "image/webp"],
                            ["blocks.gif", "image/gif"], ["blocks.bmp", "image/bmp"], ["orient6.png", "image/png"]]) {
  await expect400(`${name} decodes and reaches the model`, baseA, parts(dataUrl(file(name), type)), NO_VISION, "messages");
}
await expect400("a data: URL with no declared type is read by its magic", baseA,
                parts(dataUrl(file("blocks.jpg"), "")), NO_VISION, "messages");
await expect400("two pictures", baseA, parts(dataUrl(file("blocks.png"), "image/png"), dataUrl(file("blocks.gif"), "image/gif")),
                NO_VISION + " (2 given)", "messages");
await expect400("the bare-string image_url form", baseA,
                [{ type: "image_url", image_url: dataUrl(file("blocks.png"), "image/png") }], NO_VISION, "messages");
const png = file("blocks.png"), jpg = file("blocks.jpg");
await expect400("truncated PNG", baseA, parts(dataUrl(png.subarray(0, 80), "image/png")), "PNG: truncated");
await expect400("truncated JPEG", baseA, parts(dataUrl(jpg.subarray(0, 640), "image/jpeg")), "JPEG: truncated");
const corrupt = Buffer.from(png); corrupt[corrupt.indexOf("IDAT") + 6] ^= 1;
await expect400("corrupt PNG (bad deflate data / CRC)", baseA, parts(dataUrl(corrupt, "image/png")), "PNG: ");
await expect400("PNG bomb (100000 x 100000 declared)", baseA, parts(dataUrl(file("bomb.png"), "image/png")),
                "PNG: 100000 x 100000 pixels has a side longer than the limit");
await expect400("unsupported format (TIFF)", baseA, parts(dataUrl(Buffer.from("49492a0008000000", "hex"), "image/tiff")),
                "not an image in a supported format (PNG, JPEG, WebP, GIF, BMP): the bytes start with 49 49 2a 00");
await expect400("unsupported format by magic", baseA, parts(dataUrl(Buffer.from("<svg></svg>"), "")),
                "not an image in a supported format (PNG, JPEG, WebP, GIF, BMP)");
await expect400("a data: URL that lies about its type", baseA, parts(dataUrl(jpg, "image/png")),
                "declared as image/png but its bytes are a JPEG image");
await expect400("a data: URL declaring a non-image type", baseA, parts(dataUrl(png, "text/plain")),
                "the declared type text/plain is not an image type");
await expect400("not base64", baseA, parts("data:image/png;base64,!!!!"), "not base64");
await expect400("an empty picture", baseA, parts("data:image/png;base64,"), "the image is empty");
await expect400("neither data: nor http(s)", baseA, parts("file:///etc/passwd"), "not a data: URL or an http(s) URL");
await expect400("http(s) while fetching is off", baseA, parts("http://127.0.0.1:9/x.png"),
                "does not fetch images from URLs");
await expect400("more pictures than --max-images (8)", baseA, parts(...Array(9).fill(dataUrl(png, "image/png"))),
                "the request has 9 images; this server takes at most 8", "messages[0].content[9].image_url.url");
await expect400("an image part without a URL", baseA, [{ type: "image_url", image_url: {} }],
                "needs image_url.url", "messages[0].content[0].image_url.url");
await expect400("a streamed request is refused before its stream starts", baseA,
                parts(dataUrl(file("bomb.png"), "image/png")), "PNG: 100000 x 100000", undefined, { stream: true });
// The second message's part is named by its own index.
{
  const r = await chat(baseA, "hi", { messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" },
                                                  { role: "user", content: parts(dataUrl(png.subarray(0, 50), "image/png")) }] });
  check("the error names the failing message's part", r.status === 400 && r.error.param === "messages[2].content[1].image_url.url",
        r.text.slice(0, 300));
}
// The official SDK sends the same content parts.
{
  const client = new OpenAI({ baseURL: baseA + "/v1", apiKey, maxRetries: 0, timeout: 60000 });
  let err = null;
  try {
    await client.chat.completions.create({ messages: [{ role: "user", content: parts(dataUrl(png, "image/png")) }], max_tokens: 2 });
  } catch (e) { err = e; }
  check("openai SDK: an image data URL reaches the model (400 no vision tower)",
        err?.status === 400 && String(err?.message).includes(NO_VISION), String(err));
}

// --- B: fetched URLs -------------------------------------------------------------------------------
const pictures = http.createServer((req, res) => {
  const send = (type, body) => { res.writeHead(200, { "Content-Type": type }); res.end(body); };
  if (req.url === "/blocks.png") return send("image/png", png);
  if (req.url === "/untyped") return send("application/octet-stream", file("blocks.webp"));
  if (req.url === "/page.html") return send("text/html; charset=utf-8", "<html><body>not a picture</body></html>");
  if (req.url === "/lying.png") return send("image/png", jpg);
  if (req.url === "/big.png") return send("image/png", Buffer.concat([png, Buffer.alloc(200000)]));
  if (req.url === "/redirect") { res.writeHead(302, { Location: "http://10.1.2.3/x.png" }); return res.end(); }
  if (req.url === "/slow") return;  // never answers
  res.writeHead(404); res.end();
});
await new Promise((resolve) => pictures.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${pictures.address().port}`;
await expect400("a fetched PNG reaches the model", baseB, parts(origin + "/blocks.png"), NO_VISION, "messages");
await expect400("a fetched picture typed application/octet-stream is read by its magic", baseB, parts(origin + "/untyped"),
                NO_VISION, "messages");
await expect400("a fetched HTML page", baseB, parts(origin + "/page.html"), "is text/html, not an image");
await expect400("a fetched picture whose Content-Type lies", baseB, parts(origin + "/lying.png"),
                "declared as image/png but its bytes are a JPEG image");
await expect400("a fetched picture over --max-image-bytes", baseB, parts(origin + "/big.png"), "larger than 100000 bytes");
await expect400("a redirect to a private address", baseB, parts(origin + "/redirect"), "(private)");
await expect400("HTTP 404", baseB, parts(origin + "/missing.png"), "HTTP 404");
await expect400("a server that never answers (--image-fetch-timeout-ms 1500)", baseB, parts(origin + "/slow"), "1500 ms");
await expect400("more pictures than --max-images 2", baseB, parts(dataUrl(png, "image/png"), dataUrl(png, "image/png"), dataUrl(png, "image/png")),
                "the request has 3 images; this server takes at most 2", "messages[0].content[3].image_url.url");
await expect400("the URL server B fetched is refused by server A (no --image-fetch)", baseA,
                parts(origin + "/blocks.png"), "does not fetch images");
pictures.closeAllConnections?.();
pictures.close();

console.log(`server images: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
