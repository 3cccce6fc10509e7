// The web through kexa serve's real clients, against web_mock.py (loopback only): the official
// `openai` npm SDK runs a tool-calling chat whose kexa_web_search call the server executes, and
// the UI's Web mode (Playwright, Debian's Chromium headless) shows the answer with numbered
// sources linking to the mock pages and the quoted spans. Called by web_check.py while its server
// runs with --web-search json:.../fixed/villages and --web-allow for the mock sites.
// Usage: node web_clients.mjs BASE_URL MOCK_URLS.json SCREENSHOT.png
// MOCK_URLS.json: every URL the mock sites serve (a page of the answer must be one of them).
import OpenAI from "openai";
import { launchBrowser, newRecordingPage } from "./lib/browser.mjs";
import fs from "node:fs";

const [base, mockFile, screenshot] = process.argv.slice(2);
const mockUrls = new Set(JSON.parse(fs.readFileSync(mockFile, "utf8")));
// The echo page quotes the query it was found for; its URL carries the query.
const isMock = (u) => mockUrls.has(u) || /^http:\/\/127\.0\.0\.1:\d+\/echo\.html\?q=/.test(u);
let passed = 0, failed = 0;
function check(name, cond, detail = "") {
  if (cond) { passed++; console.log("  ok   " + name); }
  else { failed++; console.log("  FAIL " + name + (detail ? ": " + String(detail).slice(0, 600) : "")); }
}

// 1. openai SDK: a forced kexa_web_search call runs server-side and its results come back.
const client = new OpenAI({ baseURL: base + "/v1", apiKey: "none", maxRetries: 0, timeout: 600000 });
try {
  const chat = await client.chat.completions.create({
    model: "kexa", max_tokens: 120, temperature: 0, seed: 3,
    messages: [{ role: "user", content: "When was the lighthouse of Tamsell built?" }],
    tools: [{ type: "function", function: { name: "kexa_web_search" } }],
    tool_choice: { type: "function", function: { name: "kexa_web_search" } },
  });
  const calls = chat.kexa_tool_calls || [];
  check("SDK: the chat called kexa_web_search", calls.length > 0 && calls[0].name === "kexa_web_search", JSON.stringify(chat));
  const res = (calls[0] && calls[0].result) || {};
  const results = res.results || [], passages = res.passages || [];
  check("SDK: the tool found results, every one a mock page read without error",
    !res.error && results.length === 8 && results.every((r) => isMock(r.url) && !r.error), JSON.stringify(res));
  check("SDK: the tool returned passages, numbered, quoted from the mock pages",
    passages.length > 0 && passages.every((p, i) => p.number === i + 1 && isMock(p.url) && p.text.length > 0),
    JSON.stringify(res));
  console.log(`       query ${JSON.stringify(String(res.query).slice(0, 40))}: ${results.length} results, ${passages.length} passages`);
} catch (e) {
  check("SDK: tool-calling chat", false, e.stack || e);
}

// 2. The UI's Web mode.
const browser = await launchBrowser();
try {
  const page = await newRecordingPage(browser);
  await page.goto(base + "/");
  await page.waitForFunction(() => !document.querySelector('#mode option[value="web"]').disabled, null, { timeout: 10000 });
  check("UI: Web mode offered when the server searches the web", true);
  await page.selectOption("#mode", "web");
  await page.click("#settings summary");
  await page.fill("#max-tokens", "16");
  const answered = page.waitForResponse((r) => r.url().endsWith("/v1/web/query"), { timeout: 300000 });
  await page.fill("#input", "When was the lighthouse of Kestrin built?");
  await page.press("#input", "Enter");
  const j = await (await answered).json();
  await page.waitForFunction(() => !document.querySelector("#send").disabled, null, { timeout: 30000 });
  const sent = await page.evaluate(() => window.kexaLastRequest);
  check("UI: Web mode posts the question to /v1/web/query", sent.question === "When was the lighthouse of Kestrin built?" &&
    sent.require_citation === true, JSON.stringify(sent));
  const cites = j.citations || [];
  check("UI: the server's answer cites mock pages", cites.length > 0 && cites.every((c) => isMock(c.url)), JSON.stringify(j).slice(0, 600));
  const last = page.locator(".msg.assistant").last();
  const shown = await last.locator(".source").evaluateAll((items) => items.map((it) => ({
    label: it.querySelector("button.citation").textContent,
    href: it.querySelector("a.source-link") && it.querySelector("a.source-link").getAttribute("href"),
    target: it.querySelector("a.source-link") && it.querySelector("a.source-link").target,
  })));
  check("UI: one numbered source per citation, [n] and the page's title",
    shown.length === cites.length && shown.every((s, i) => s.label === `[${cites[i].number}] ${cites[i].title || cites[i].url}`),
    JSON.stringify({ shown, cites }));
  check("UI: each source links to its mock page (href equals the page's URL, new tab)",
    shown.length > 0 && shown.every((s, i) => s.href === cites[i].url && isMock(s.href) && s.target === "_blank"),
    JSON.stringify(shown));
  const content = await last.locator(".content").textContent();
  check("UI: the answer text is shown", content.trim().length > 0, content);
  // A click on a source shows the span the answer quotes from that page.
  let spans = true;
  for (let i = 0; i < shown.length; ++i) {
    const item = last.locator(".source").nth(i);
    const quote = item.locator("blockquote.quote");
    if (await quote.isVisible()) spans = false;
    await item.locator("button.citation").click();
    if (!(await quote.isVisible()) || (await quote.textContent()) !== cites[i].text || !cites[i].text) spans = false;
  }
  check("UI: clicking a source shows its quoted span (the citation's text)", shown.length > 0 && spans);
  await page.screenshot({ path: screenshot });
  const violations = await page.evaluate(() => window.kexaCspViolations);
  check("UI: Web mode runs without a Content-Security-Policy violation", violations.length === 0, violations.join("; "));
} catch (e) {
  check("UI: Web mode", false, e.stack || e);
} finally {
  await browser.close();
}
console.log(`web clients: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
