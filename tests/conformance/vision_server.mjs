// A picture through `kexa serve` on a vision model (the tiny EXAONE 4.5 of vision.sh), with the
// official `openai` SDK: the greedy reply equals `kexa run --image` on the same picture and text
// (whole and streamed), and usage.prompt_tokens equals the /tokenize count of the rendered prompt
// (/apply-template), minus the one placeholder each picture renders as, plus its image tokens.
// Usage: node vision_server.mjs BASE PNG RUN_OUTPUT_FILE IMAGE_TOKENS
import OpenAI from "openai";
import fs from "node:fs";

const [base, png, runOutput, imageTokens] = process.argv.slice(2);
let failed = 0;
function check(name, cond, detail = "") {
  console.log((cond ? "  ok   " : "  FAIL ") + name + (cond || !detail ? "" : ": " + detail));
  if (!cond) failed++;
}
const text = "Describe the picture.";
const url = `data:image/png;base64,${fs.readFileSync(png).toString("base64")}`;
const messages = [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text }] }];
const client = new OpenAI({ baseURL: base + "/v1", apiKey: "unused" });
const want = fs.readFileSync(runOutput, "utf8").replace(/\n$/, "");

const whole = await client.chat.completions.create({ model: "m", messages, max_tokens: 24, temperature: 0 });
check("the SDK's reply equals kexa run --image", whole.choices[0].message.content === want,
  JSON.stringify([whole.choices[0].message.content, want]));
let streamed = "";
const stream = await client.chat.completions.create({ model: "m", messages, max_tokens: 24, temperature: 0, stream: true });
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
check("streamed, the same reply", streamed === want, JSON.stringify([streamed, want]));

const post = async (path, body) => (await fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body) })).json();
const rendered = await post("/apply-template", { messages });
const tokenized = await post("/tokenize", { content: rendered.prompt ?? "", add_special: false, parse_special: true });
check("/apply-template renders the picture's placeholder", (rendered.prompt ?? "").includes("<|image_pad|>"), JSON.stringify(rendered));
const count = tokenized.tokens?.length ?? NaN;
const expected = count - 1 + Number(imageTokens);
check(`usage.prompt_tokens = /tokenize count ${count} - 1 placeholder + ${imageTokens} image tokens`,
  whole.usage.prompt_tokens === expected, `${whole.usage.prompt_tokens} != ${expected}`);
process.exit(failed ? 1 : 0);
