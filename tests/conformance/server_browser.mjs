// Browser test of the web chat UI with Playwright (playwright-core) driving Debian's Chromium
// headless: open the UI, send a message, streamed text appears, the stop button stops it, the
// thinking toggle changes the request. Saves a screenshot.
// Usage: node server_browser.mjs BASE_URL API_KEY SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, apiKey, screenshot] = process.argv.slice(2);
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + detail : "")); }
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 750 } });
  await page.goto(base + "/");
  check("UI loads", (await page.title()) === "kexa chat");
  await page.click("#settings summary");
  await page.fill("#api-key", apiKey);
  await page.fill("#max-tokens", "12");

  // 1. A message streams a reply.
  await page.fill("#input", "Hello there");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => {
    const msgs = document.querySelectorAll(".msg.assistant .content");
    return msgs.length > 0 && msgs[msgs.length - 1].textContent.trim().length > 0;
  }, null, { timeout: 30000 });
  await page.waitForFunction(() => !document.querySelector("#send").disabled, null, { timeout: 30000 });
  const reply = await page.locator(".msg.assistant .content").last().textContent();
  check("streamed reply text appears", reply.trim().length > 0, reply);
  const first = await page.evaluate(() => window.kexaLastRequest);
  check("request streams with thinking off", first.stream === true && first.chat_template_kwargs.enable_thinking === false);

  // 2. The thinking toggle changes the request; the stop button stops a long reply.
  await page.check("#thinking");
  await page.fill("#max-tokens", "2000");
  await page.fill("#input", "Write a very long story");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => !document.querySelector("#stop").disabled, null, { timeout: 10000 });
  await page.waitForFunction(() => {
    const m = document.querySelectorAll(".msg.assistant");
    const last = m[m.length - 1];
    return last && (last.textContent.length > 40);
  }, null, { timeout: 30000 });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#stop").disabled, null, { timeout: 10000 });
  const second = await page.evaluate(() => window.kexaLastRequest);
  check("thinking toggle sets enable_thinking", second.chat_template_kwargs.enable_thinking === true);
  const lengthAtStop = await page.locator(".msg.assistant").last().textContent();
  await page.waitForTimeout(1500);
  const lengthLater = await page.locator(".msg.assistant").last().textContent();
  check("stop button stops the stream", lengthAtStop === lengthLater && lengthLater.length < 2000 * 8);
  const conversations = await page.locator("#conversations li").count();
  check("conversation kept in the list", conversations >= 1);
  await page.screenshot({ path: screenshot, fullPage: true });
  check("screenshot saved", true);
} finally {
  await browser.close();
}
console.log(`server-browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
