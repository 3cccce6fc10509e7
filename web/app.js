// kexa web chat: streams /v1/chat/completions, keeps conversations in localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE = "kexa.conversations.v1";
const SETTINGS = "kexa.settings.v1";

let conversations = JSON.parse(localStorage.getItem(STORE) || "[]");
let current = null;
let controller = null;
window.kexaLastRequest = null;  // the last request body sent (for tests and debugging)

function save() { localStorage.setItem(STORE, JSON.stringify(conversations)); }

function loadSettings() {
  const s = JSON.parse(localStorage.getItem(SETTINGS) || "{}");
  if (s.system !== undefined) $("system-prompt").value = s.system;
  if (s.temperature !== undefined) $("temperature").value = s.temperature;
  if (s.thinking !== undefined) $("thinking").checked = s.thinking;
  if (s.maxTokens !== undefined) $("max-tokens").value = s.maxTokens;
  if (s.apiKey !== undefined) $("api-key").value = s.apiKey;
  $("temperature-value").textContent = $("temperature").value;
}
function saveSettings() {
  localStorage.setItem(SETTINGS, JSON.stringify({
    system: $("system-prompt").value, temperature: $("temperature").value,
    thinking: $("thinking").checked, maxTokens: $("max-tokens").value, apiKey: $("api-key").value,
  }));
  $("temperature-value").textContent = $("temperature").value;
}

// --- a small, safe markdown renderer: escapes everything, then adds code, emphasis, lists -------
function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function inline(s) {
  return escapeHtml(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<em>$2</em>");
}
function renderMarkdown(text) {
  const out = [];
  const parts = text.split(/```/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const nl = part.indexOf("\n");
      const body = nl >= 0 ? part.slice(nl + 1) : part;
      out.push("<pre><code>" + escapeHtml(body) + "</code></pre>");
      return;
    }
    let list = null;
    for (const line of part.split("\n")) {
      const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
      const head = line.match(/^(#{1,6})\s+(.*)$/);
      if (item) {
        if (!list) { out.push("<ul>"); list = true; }
        out.push("<li>" + inline(item[1]) + "</li>");
        continue;
      }
      if (list) { out.push("</ul>"); list = null; }
      if (head) out.push(`<h${head[1].length}>${inline(head[2])}</h${head[1].length}>`);
      else if (line.trim() !== "") out.push("<p>" + inline(line) + "</p>");
    }
    if (list) out.push("</ul>");
  });
  return out.join("");
}

// --- conversations ------------------------------------------------------------------------------
function newConversation() {
  current = { id: Date.now().toString(36), title: "New chat", messages: [] };
  conversations.unshift(current);
  save();
  renderAll();
}
function renderList() {
  const ul = $("conversations");
  ul.innerHTML = "";
  for (const c of conversations) {
    const li = document.createElement("li");
    if (c === current) li.className = "active";
    const span = document.createElement("span");
    span.textContent = c.title;
    li.appendChild(span);
    const del = document.createElement("button");
    del.textContent = "×";
    del.title = "Delete";
    del.onclick = (e) => {
      e.stopPropagation();
      conversations = conversations.filter((x) => x !== c);
      if (current === c) current = conversations[0] || null;
      save();
      if (!current) newConversation(); else renderAll();
    };
    li.appendChild(del);
    li.onclick = () => { current = c; renderAll(); };
    ul.appendChild(li);
  }
}
function messageElement(m) {
  const div = document.createElement("div");
  div.className = "msg " + m.role;
  const role = document.createElement("div");
  role.className = "role";
  role.textContent = m.role;
  div.appendChild(role);
  if (m.reasoning) {
    const d = document.createElement("details");
    d.className = "reasoning";
    d.innerHTML = "<summary>Reasoning</summary>";
    const body = document.createElement("div");
    body.className = "reasoning-text";
    body.textContent = m.reasoning;
    d.appendChild(body);
    div.appendChild(d);
  }
  const content = document.createElement("div");
  content.className = "content";
  content.innerHTML = renderMarkdown(m.content || "");
  div.appendChild(content);
  if (m.error) {
    const e = document.createElement("div");
    e.className = "error";
    e.textContent = m.error;
    div.appendChild(e);
  }
  return div;
}
function renderMessages() {
  const box = $("messages");
  box.innerHTML = "";
  for (const m of current.messages) box.appendChild(messageElement(m));
  box.scrollTop = box.scrollHeight;
}
function renderAll() { renderList(); renderMessages(); }

// --- talking to the server ----------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function send(text) {
  const conv = current;
  conv.messages.push({ role: "user", content: text });
  if (conv.title === "New chat") conv.title = text.slice(0, 40);
  const reply = { role: "assistant", content: "", reasoning: "" };
  conv.messages.push(reply);
  save();
  renderAll();
  let el = $("messages").lastChild;
  const redraw = () => {
    const fresh = messageElement(reply);
    el.replaceWith(fresh);
    el = fresh;
    el.scrollIntoView({ block: "end" });
  };

  const messages = [];
  const system = $("system-prompt").value.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const m of conv.messages.slice(0, -1)) messages.push({ role: m.role, content: m.content });
  const body = {
    messages, stream: true, temperature: parseFloat($("temperature").value),
    max_tokens: parseInt($("max-tokens").value, 10) || 1024,
    chat_template_kwargs: { enable_thinking: $("thinking").checked },
    stream_options: { include_usage: true },
  };
  window.kexaLastRequest = body;
  controller = new AbortController();
  $("stop").disabled = false;
  $("send").disabled = true;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error((err.error && err.error.message) || res.statusText);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
        if (delta.reasoning_content) reply.reasoning += delta.reasoning_content;
        if (delta.content) reply.content += delta.content;
        if (delta.tool_calls) reply.content += "\n" + JSON.stringify(delta.tool_calls);
        redraw();
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") reply.error = String(e.message || e);
    else reply.stopped = true;
  } finally {
    controller = null;
    $("stop").disabled = true;
    $("send").disabled = false;
    save();
    renderMessages();
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("new-chat").addEventListener("click", newConversation);
for (const id of ["system-prompt", "temperature", "thinking", "max-tokens", "api-key"]) {
  $(id).addEventListener("input", saveSettings);
  $(id).addEventListener("change", saveSettings);
}

loadSettings();
fetch("/v1/models", { headers: headers() }).then((r) => r.json()).then((j) => {
  if (j.data && j.data[0]) $("model-name").textContent = "model: " + j.data[0].id;
}).catch(() => {});
if (conversations.length) { current = conversations[0]; renderAll(); } else newConversation();
