// The web UI's renderer under hostile text (run by server_browser.mjs, in its browser): model
// answers, reasoning, document and web-page sources, and SQL rows carrying script and markup
// (<script>, <img onerror>, <svg onload>, javascript: links, raw and markdown, split across
// streamed chunks) must run nothing, load nothing from elsewhere and show as text; markdown
// still renders (highlighted code, tables, lists, safe links). The server's answers are replaced
// with Playwright's route() so the text is exactly this; one real round trip (a hostile user
// message to the real server) and a reload (conversations come back from localStorage) go
// through the same renderer. The page runs with its Content-Security-Policy bypassed, so the
// sanitiser alone is what stops the payloads; the policy itself is checked apart.

// Every payload, if it ran, would raise window.kexaPwned or open a dialog.
const RUN = "window.kexaPwned=(window.kexaPwned||0)+1";
const HOSTILE = [
  `<img src=x onerror="${RUN}">`,
  `<script>${RUN}</script>`,
  `<svg onload="${RUN}"><circle r="1"/></svg>`,
  `<a href="javascript:${RUN}">raw link</a>`,
  `<iframe src="javascript:alert(1)"></iframe>`,
  `<details open ontoggle="${RUN}">d</details>`,
  `<b onmouseover="${RUN}">hover</b>`,
  "<style>body{display:none}</style>",
];
const ANSWER = [
  "# Heading",
  "",
  `Inline: ${HOSTILE.join(" ")}`,
  "",
  `[md javascript link](javascript:${RUN}) [md data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)`,
  `[md vbscript link](vbscript:msgbox) ![md image](javascript:alert(1)) ![tracking pixel](http://127.0.0.1:9/pixel.png)`,
  "[safe link](https://example.com/page) and <https://example.org/auto> and <mailto:someone@example.com>",
  "",
  "```python",
  "def add(x, y):",
  "    return x + y  # <script>alert(1)</script>",
  "```",
  "",
  "| name | value |",
  "|:-----|------:|",
  '| one | <img src=x onerror="window.kexaPwned=1"> |',
  "| two | 2 |",
  "",
  "- first",
  "- **second**",
  "- third",
  "",
  "1. alpha",
  "2. beta",
].join("\n");

function sse(deltas) {
  return deltas.map((d) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: d }] })}\n\n`).join("") + "data: [DONE]\n\n";
}

// Splits text into pieces of n characters (tags arrive cut in two, as tokens cut them).
function pieces(text, n) {
  const out = [];
  for (let i = 0; i < text.length; i += n) out.push(text.slice(i, i + n));
  return out;
}

// What the page shows inside .msg: anything that could run or fetch (ignores the page's own UI).
async function domFindings(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll(".msg *")) {
      const tag = el.tagName.toLowerCase();
      if (["script", "img", "svg", "iframe", "style", "object", "embed", "form", "input", "link", "meta", "math"].includes(tag))
        bad.push("element " + tag);
      for (const attr of el.attributes) {
        if (/^on/i.test(attr.name)) bad.push(`${tag}[${attr.name}]`);
        if (attr.name === "style") bad.push(`${tag}[style]`);
        if (["href", "src", "action", "formaction", "xlink:href"].includes(attr.name) && !/^(https?:|mailto:)/i.test(attr.value))
          bad.push(`${tag}[${attr.name}=${attr.value}]`);
      }
      if (tag === "a" && el.hasAttribute("href")) {
        const rel = (el.getAttribute("rel") || "").split(/\s+/);
        if (!rel.includes("noopener") || !rel.includes("noreferrer") || el.getAttribute("target") !== "_blank")
          bad.push(`a without noopener noreferrer / _blank: ${el.outerHTML.slice(0, 80)}`);
      }
    }
    return bad;
  });
}

export async function checkRendering(browser, base, apiKey, check, screenshot) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 750 }, bypassCSP: true });
  const page = await context.newPage();
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  const outside = [];
  await context.route((url) => !url.href.startsWith(base), (route) => { outside.push(route.request().url()); route.abort(); });

  await page.route("**/v1/chat/completions", (route) => {
    const messages = route.request().postDataJSON().messages;
    if (messages[messages.length - 1].content !== "mocked answer please") return route.fallback();
    const deltas = pieces(HOSTILE.join(" "), 7).map((r) => ({ reasoning_content: r }))
      .concat(pieces(ANSWER, 5).map((c) => ({ content: c })));
    return route.fulfill({ status: 200, contentType: "text/event-stream", body: sse(deltas) });
  });
  const citations = [
    { number: 1, path: `docs/a${HOSTILE[0]}.md`, unit: "bytes", begin: 0, end: 12, text: HOSTILE.join("\n") },
    { number: 2, url: `javascript:${RUN}`, title: HOSTILE[2], begin: 0, end: 5, text: HOSTILE[1] },
    { number: 3, url: "https://example.com/news?id=1&x=<b>", title: "Example <i>page</i>", begin: 0, end: 5, text: "quoted span" },
  ];
  await page.route("**/v1/rag/query", (route) => route.fulfill({
    status: 200, contentType: "application/json",
    body: JSON.stringify({ answer: ANSWER + "\n\nAs [1] and [3] say.", reasoning: HOSTILE[1], citations }),
  }));
  await page.route("**/v1/sql/query", (route) => route.fulfill({
    status: 200, contentType: "application/json",
    body: JSON.stringify({ executed: true, answer: HOSTILE.slice(0, 3).join(" "), sql: `SELECT '${HOSTILE[0]}'`,
      result: { columns: [HOSTILE[1], "n"], rows: [[HOSTILE[0], null], [HOSTILE[2], 2]], truncated: false } }),
  }));

  await page.goto(base + "/");
  await page.click("#settings summary");
  await page.fill("#api-key", apiKey);
  await page.fill("#max-tokens", "8");
  const idle = () => page.waitForFunction(() => !document.querySelector("#send").disabled, null, { timeout: 30000 });
  const assistants = () => page.locator(".msg.assistant").count();

  // 1. A streamed chat answer (mocked) and one real round trip carrying the payloads.
  await page.fill("#input", "mocked answer please");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant ol li").length === 2, null, { timeout: 30000 });
  await idle();
  await page.waitForTimeout(200);
  check("the streamed hostile answer ran nothing", (await page.evaluate(() => window.kexaPwned)) === undefined && dialogs.length === 0);
  let before = await assistants();
  const real = "Real round trip: " + HOSTILE.join(" ");
  await page.fill("#input", real);
  await page.press("#input", "Enter");
  await page.waitForFunction((n) => document.querySelectorAll(".msg.assistant").length > n, before, { timeout: 30000 });
  await idle();
  const sent = await page.evaluate(() => window.kexaLastRequest);
  const shownUser = await page.locator(".msg.user .content").last().textContent();
  check("real round trip: the hostile message reaches the server verbatim and shows as text",
    sent.messages[sent.messages.length - 1].content === real && shownUser.trim() === real, shownUser);

  // 2. Documents mode and Database mode (mocked answers with hostile sources and rows).
  await page.waitForSelector('#mode option[value="rag"]:not([disabled])', { state: "attached", timeout: 10000 });
  await page.waitForSelector('#mode option[value="sql-run"]:not([disabled])', { state: "attached", timeout: 10000 });
  before = await assistants();
  await page.selectOption("#mode", "rag");
  await page.fill("#input", "question for the documents");
  await page.press("#input", "Enter");
  await page.waitForFunction((n) => document.querySelectorAll(".msg.assistant .sources").length > 0 &&
    document.querySelectorAll(".msg.assistant").length > n, before, { timeout: 30000 });
  await idle();
  const rag = page.locator(".msg.assistant").last();
  for (const b of await rag.locator(".citation").all()) await b.click();
  const quotes = await rag.locator("blockquote.quote").allTextContents();
  check("quoted spans of sources show as text", quotes[0] === citations[0].text && quotes[1] === citations[1].text, JSON.stringify(quotes));
  const labels = await rag.locator(".citation").allTextContents();
  check("source labels show file names and page titles as text",
    labels[0].startsWith(`[1] a${HOSTILE[0]}.md, bytes`) && labels[1] === `[2] ${HOSTILE[2]}` && labels[2] === "[3] Example <i>page</i>",
    JSON.stringify(labels));
  const links = await rag.locator(".sources a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
  check("only the http(s) source becomes a link", JSON.stringify(links) === JSON.stringify([citations[2].url]), JSON.stringify(links));

  before = await assistants();
  await page.selectOption("#mode", "sql-run");
  await page.fill("#input", "SELECT 1");
  await page.press("#input", "Enter");
  await page.waitForFunction((n) => document.querySelectorAll(".msg.assistant").length > n, before, { timeout: 30000 });
  await idle();
  const sqlMsg = page.locator(".msg.assistant").last();
  const head = await sqlMsg.locator("table.rows th").allTextContents();
  const cells = await sqlMsg.locator("table.rows td").allTextContents();
  const code = await sqlMsg.locator(".sql-result code.sql").textContent();
  check("SQL columns, rows and statement show as text", head[0] === HOSTILE[1] && cells[0] === HOSTILE[0] &&
    cells[1] === "NULL" && cells[2] === HOSTILE[2] && code === `SELECT '${HOSTILE[0]}'`, JSON.stringify([head, cells, code]));
  check("the SQL statement is highlighted", (await sqlMsg.locator(".sql-result code.hljs span[class^=hljs-]").count()) > 0);

  // 3. Markdown renders, hostile markup stays text.
  const chat = page.locator(".msg.assistant").first();
  const content = chat.locator(".content");
  const text = await content.textContent();
  check("raw HTML in an answer shows as text", HOSTILE.every((h) => text.includes(h)), text.slice(0, 300));
  const reasoning = await chat.locator(".reasoning-text").textContent();
  check("reasoning shows as text", reasoning === HOSTILE.join(" "), reasoning.slice(0, 200));
  check("a fenced code block is highlighted",
    (await content.locator("pre code.hljs.language-python span.hljs-keyword").count()) > 0 &&
    (await content.locator("pre code").textContent()).includes("return x + y  # <script>alert(1)</script>"));
  const table = await content.locator("table").evaluateAll((ts) => ts.map((t) => ({
    head: [...t.querySelectorAll("th")].map((th) => [th.textContent, th.className]),
    rows: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.cells].map((td) => td.textContent)),
  })));
  check("a table renders (with alignment)", JSON.stringify(table) === JSON.stringify([{
    head: [["name", "align-left"], ["value", "align-right"]],
    rows: [["one", '<img src=x onerror="window.kexaPwned=1">'], ["two", "2"]],
  }]), JSON.stringify(table));
  check("lists render", JSON.stringify(await content.locator("ul li").allTextContents()) === '["first","second","third"]' &&
    (await content.locator("ul li strong").count()) === 1 &&
    JSON.stringify(await content.locator("ol li").allTextContents()) === '["alpha","beta"]');
  check("a heading renders", (await content.locator("h1").textContent()) === "Heading");
  const hrefs = await content.locator("a").evaluateAll((as) => as.map((a) => [a.getAttribute("href"), a.textContent]));
  check("safe links render; javascript:, data:, vbscript: and images do not become links or images",
    JSON.stringify(hrefs) === JSON.stringify([
      ["http://127.0.0.1:9/pixel.png", "tracking pixel"], ["https://example.com/page", "safe link"],
      ["https://example.org/auto", "https://example.org/auto"], ["mailto:someone@example.com", "mailto:someone@example.com"]]) &&
    text.includes(`[md javascript link](javascript:${RUN})`), JSON.stringify(hrefs));

  // 4. Nothing ran, even when poked at; nothing was fetched from elsewhere; after a reload
  // (conversations come back from localStorage) still nothing.
  await page.evaluate(() => {
    for (const el of document.querySelectorAll(".msg *"))
      for (const type of ["mouseover", "focus", "toggle", "load", "error"]) el.dispatchEvent(new Event(type));
  });
  await page.waitForTimeout(300);
  if (screenshot) {
    await chat.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshot });
  }
  const findings = await domFindings(page);
  check("no script, handler, style, image or unsafe link in the rendered messages", findings.length === 0, findings.join("; "));
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length >= 4, null, { timeout: 10000 });
  await page.waitForTimeout(300);
  const afterReload = await domFindings(page);
  const pwned = await page.evaluate(() => window.kexaPwned);
  check("no payload ran (no flag, no dialog), before or after a reload",
    pwned === undefined && dialogs.length === 0 && afterReload.length === 0, JSON.stringify([pwned, dialogs, afterReload]));
  check("nothing was requested from any other address", outside.length === 0, outside.join(" "));
  await context.close();

  // 5. The UI's own Content-Security-Policy (the second line of defence) is sent with its files.
  const res = await fetch(base + "/");
  const csp = res.headers.get("content-security-policy") || "";
  check("the UI is served with a Content-Security-Policy", /script-src 'self'/.test(csp) && /default-src 'self'/.test(csp) &&
    /object-src 'none'/.test(csp) && !/unsafe/.test(csp), csp);
}
