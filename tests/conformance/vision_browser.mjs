// The web UI on a vision model (the tiny EXAONE 4.5 of vision.sh), in headless Chromium: a
// picture attached with the Image button is previewed, sent as an image_url data: URL part with
// the text, shown in the conversation, and the model's reply appears (no error).
// Usage: node vision_browser.mjs BASE_URL PNG
import { launchBrowser, newRecordingPage } from "./lib/browser.mjs";
import fs from "node:fs";

const [base, pngPath] = process.argv.slice(2);
let failed = 0;
function check(name, cond, detail = "") {
  console.log((cond ? "  ok   " : "  FAIL ") + name + (cond || !detail ? "" : ": " + detail));
  if (!cond) failed++;
}
const png = fs.readFileSync(pngPath);
const browser = await launchBrowser();
try {
  const page = await newRecordingPage(browser);
  await page.goto(base + "/");
  await page.click("#settings summary");
  await page.fill("#max-tokens", "16");
  await page.setInputFiles("#image-file", { name: "picture.png", mimeType: "image/png", buffer: png });
  await page.waitForFunction(() => document.querySelectorAll("#attachments img").length === 1, null, { timeout: 10000 });
  await page.fill("#input", "Describe the picture.");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length > 0 &&
    !document.querySelector("#send").disabled, null, { timeout: 60000 });
  const sent = await page.evaluate(() => window.kexaLastRequest);
  const content = sent.messages[sent.messages.length - 1].content;
  check("the picture is sent as an image_url data: URL part, then the text",
    Array.isArray(content) && content[0].type === "image_url" &&
    content[0].image_url.url === "data:image/png;base64," + png.toString("base64") && content[1].text === "Describe the picture.",
    JSON.stringify(content).slice(0, 200));
  const shown = await page.locator(".msg.user").last().locator(".images img").count();
  check("the picture is shown in the user's message", shown === 1, String(shown));
  const last = page.locator(".msg.assistant").last();
  const error = await last.locator(".error").count();
  const reply = (await last.locator(".content").textContent().catch(() => "")) ?? "";
  check("the model's reply appears, no error", error === 0 && reply.trim().length > 0,
    JSON.stringify([error ? await last.locator(".error").textContent() : "", reply]));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
