// kexa web chat: streams /v1/chat/completions, keeps conversations in localStorage. Bundled with
// its npm libraries into the embedded /app.js at build time (cmake/bundle_web.mjs).
import { answerElement, codeElement } from "./render.js";

const $ = (id) => document.getElementById(id);
const STORE = "kexa.conversations.v1";
const SETTINGS = "kexa.settings.v1";

let conversations = JSON.parse(localStorage.getItem(STORE) || "[]");
let current = null;
let controller = null;
window.kexaLastRequest = null;  // the last request body sent (for tests and debugging)

let attachments = [];  // data: URLs of the images attached to the next chat message

// Conversations with pictures can outgrow localStorage's quota: then they are kept without the
// pictures' data (the page still shows them until reloaded).
function save() {
  try {
    localStorage.setItem(STORE, JSON.stringify(conversations));
  } catch {
    const slim = conversations.map((c) => ({ ...c, messages: c.messages.map((m) => (m.images ? { ...m, images: [] } : m)) }));
    try { localStorage.setItem(STORE, JSON.stringify(slim)); } catch { /* nothing more to drop */ }
  }
}

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
  if (m.images && m.images.length) {
    const box = document.createElement("div");
    box.className = "images";
    m.images.forEach((url, i) => {
      const img = document.createElement("img");
      img.src = url;
      img.alt = `attached image ${i + 1}`;
      box.appendChild(img);
    });
    div.appendChild(box);
  }
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
  div.appendChild(answerElement(m.content, m.citations));
  if (m.sql !== undefined) div.appendChild(sqlElement(m));
  if (m.note) {
    const n = document.createElement("div");
    n.className = "muted note";
    n.textContent = m.note;
    div.appendChild(n);
  }
  if (m.error) {
    const e = document.createElement("div");
    e.className = "error";
    e.textContent = m.error;
    div.appendChild(e);
  }
  return div;
}
function sqlElement(m) {
  const box = document.createElement("div");
  box.className = "sql-result";
  if (m.sql) {
    box.appendChild(codeElement(m.sql, "sql", "sql"));
  }
  if (m.columns) {
    const table = document.createElement("table");
    table.className = "rows";
    const head = table.createTHead().insertRow();
    for (const c of m.columns) {
      const th = document.createElement("th");
      th.textContent = c;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const row of m.rows || []) {
      const tr = body.insertRow();
      for (const v of row) tr.insertCell().textContent = v === null ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v);
    }
    box.appendChild(table);
    if (m.truncated) {
      const more = document.createElement("div");
      more.className = "muted";
      more.textContent = "(more rows than shown)";
      box.appendChild(more);
    }
  }
  return box;
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

// Documents, Database and Web modes: one JSON request, no streaming.
async function ask(text, mode) {
  const conv = current;
  conv.messages.push({ role: "user", content: text });
  if (conv.title === "New chat") conv.title = text.slice(0, 40);
  const reply = { role: "assistant", content: "" };
  conv.messages.push(reply);
  save();
  renderAll();
  const path = mode === "rag" ? "/v1/rag/query" : mode === "web" ? "/v1/web/query" : "/v1/sql/query";
  // "sql-run": the message is one SQL statement, run by the server's read-only executor.
  const body = mode === "rag" || mode === "web"
    ? { question: text, temperature: parseFloat($("temperature").value), max_tokens: parseInt($("max-tokens").value, 10) || 512,
        require_citation: $("require-citation").checked }
    : mode === "sql-run" ? { sql: text }
    : { question: text, max_tokens: parseInt($("max-tokens").value, 10) || 256 };
  window.kexaLastRequest = body;
  controller = new AbortController();
  $("stop").disabled = false;
  $("send").disabled = true;
  try {
    const res = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    const j = await res.json();
    if (!res.ok) throw new Error((j.error && j.error.message) || res.statusText);
    if (mode === "rag") {
      reply.content = j.answer;
      reply.reasoning = j.reasoning || "";
      reply.citations = j.citations;
    } else if (mode === "web") {
      // Citations name the fetched page (URL, title) and the exact span quoted from it; a failure
      // (search down, every page failing) comes with the fixed abstention and says what failed.
      reply.content = j.answer;
      reply.citations = j.citations;
      if (j.failure) reply.note = j.failure;
    } else {
      reply.content = j.answer || (j.executed ? "" : (j.error || "no statement ran"));
      if (j.executed && !j.answer && j.result) reply.content = `${j.result.rows.length} row(s)`;
      reply.sql = j.sql || (j.attempts && j.attempts.length ? j.attempts[j.attempts.length - 1].sql : "");
      if (j.result) {
        reply.columns = j.result.columns;
        reply.rows = j.result.rows;
        reply.truncated = j.result.truncated;
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

// --- documents panel ----------------------------------------------------------------------------
async function refreshDocuments() {
  const res = await fetch("/v1/rag/documents", { headers: headers() });
  const j = await res.json();
  const ul = $("doc-list");
  ul.innerHTML = "";
  for (const d of j.data || []) {
    const li = document.createElement("li");
    li.dataset.name = d.name;
    const span = document.createElement("span");
    span.textContent = d.name;
    span.title = `${d.bytes} bytes`;
    li.appendChild(span);
    const del = document.createElement("button");
    del.type = "button";
    del.className = "doc-delete";
    del.textContent = "×";
    del.title = "Delete " + d.name;
    del.onclick = async () => {
      const r = await fetch("/v1/rag/documents/" + encodeURIComponent(d.name), { method: "DELETE", headers: headers() });
      const out = await r.json().catch(() => ({}));
      $("doc-status").textContent = r.ok ? `deleted ${d.name}` : (out.error && out.error.message) || r.statusText;
      refreshDocuments();
    };
    li.appendChild(del);
    ul.appendChild(li);
  }
  if (j.store) $("doc-status").dataset.totals = `${j.store.documents} documents, ${j.store.chunks} chunks`;
}
function base64Of(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
$("doc-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("doc-file").files[0];
  if (!file) return;
  if (features.max_document_bytes && file.size > features.max_document_bytes) {
    $("doc-status").textContent = `${file.name} is larger than ${features.max_document_bytes} bytes`;
    return;
  }
  $("doc-status").textContent = "uploading " + file.name + "…";
  const body = { name: file.name };
  if (/\.pdf$/i.test(file.name)) body.content_base64 = base64Of(await file.arrayBuffer());
  else body.content = await file.text();
  const res = await fetch("/v1/rag/documents", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const j = await res.json().catch(() => ({}));
  $("doc-status").textContent = res.ok ? `${file.name}: ${j.ingest.chunks} chunks` : (j.error && j.error.message) || res.statusText;
  $("doc-file").value = "";
  refreshDocuments();
});

let features = {};

// --- images (vision models) ---------------------------------------------------------------------
// Attached by the Image button or by pasting; sent as OpenAI image_url parts holding data: URLs.
function renderAttachments() {
  const box = $("attachments");
  box.innerHTML = "";
  attachments.forEach((url, i) => {
    const item = document.createElement("span");
    item.className = "attachment";
    const img = document.createElement("img");
    img.src = url;
    img.alt = `image ${i + 1} to send`;
    item.appendChild(img);
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "×";
    del.title = "Remove";
    del.onclick = () => { attachments.splice(i, 1); renderAttachments(); };
    item.appendChild(del);
    box.appendChild(item);
  });
}
function attachImage(file) {
  if (!file || !/^image\//.test(file.type || "image/")) return;
  const reader = new FileReader();
  reader.onload = () => { attachments.push(String(reader.result)); renderAttachments(); };
  reader.readAsDataURL(file);
}
$("attach").addEventListener("click", () => $("image-file").click());
$("image-file").addEventListener("change", () => {
  for (const f of $("image-file").files) attachImage(f);
  $("image-file").value = "";
});
$("input").addEventListener("paste", (e) => {
  const files = [...(e.clipboardData ? e.clipboardData.items : [])]
    .filter((it) => it.kind === "file" && it.type.startsWith("image/")).map((it) => it.getAsFile());
  if (!files.length) return;
  e.preventDefault();
  files.forEach(attachImage);
});
// A message as the API takes it: a string, or its images then its text as content parts.
function apiContent(m) {
  if (!m.images || !m.images.length) return m.content || "";
  return [...m.images.map((url) => ({ type: "image_url", image_url: { url } })), { type: "text", text: m.content || "" }];
}

async function send(text) {
  const mode = $("mode").value;
  if (mode !== "chat") return ask(text, mode);
  const conv = current;
  const images = attachments;
  attachments = [];
  renderAttachments();
  conv.messages.push(images.length ? { role: "user", content: text, images } : { role: "user", content: text });
  if (conv.title === "New chat") conv.title = text.slice(0, 40) || "Image";
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
  // An exchange the server refused (its reply an error with no text, e.g. pictures sent to a model
  // without a vision tower) is not sent again: the conversation stays usable.
  const history = conv.messages.slice(0, -1);
  history.forEach((m, i) => {
    const refused = (r) => r && r.role === "assistant" && r.error && !r.content;
    if (refused(m) || (m.role === "user" && refused(history[i + 1]))) return;
    messages.push({ role: m.role, content: apiContent(m) });
  });
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
  if ((!text && !(attachments.length && $("mode").value === "chat")) || controller) return;
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

// What the server offers (documents, database, web) and the model's name; asked again when the API
// key changes, since both answers need it on a server started with --api-key.
function loadServerInfo() {
  fetch("/v1/kexa/features", { headers: headers() }).then((r) => (r.ok ? r.json() : {})).then((j) => {
    features = j;
    $("documents").hidden = !j.rag;
    $("mode").querySelector('option[value="rag"]').disabled = !j.rag;
    $("mode").querySelector('option[value="sql"]').disabled = !j.sql;
    $("mode").querySelector('option[value="sql-run"]').disabled = !j.sql;
    $("mode").querySelector('option[value="web"]').disabled = !j.web;
    if (j.rag) refreshDocuments();
  }).catch(() => {});
  fetch("/v1/models", { headers: headers() }).then((r) => (r.ok ? r.json() : {})).then((j) => {
    if (j.data && j.data[0]) $("model-name").textContent = "model: " + j.data[0].id;
  }).catch(() => {});
}
let keyTimer = null;
$("api-key").addEventListener("input", () => {
  clearTimeout(keyTimer);
  keyTimer = setTimeout(loadServerInfo, 300);
});

loadSettings();
loadServerInfo();
if (conversations.length) { current = conversations[0]; renderAll(); } else newConversation();
