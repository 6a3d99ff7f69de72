// noteloom's page: every action is a call to the public HTTP API with the user's key.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = { key: localStorage.getItem("noteloom-key") || "", docs: null, chunkers: null, job: null };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function showError(message) { $("#error").textContent = message || ""; }

async function api(method, path, body) {
  const headers = state.key ? { "X-API-Key": state.key } : {};
  const init = { method, headers };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(path, init);
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.blob();
  if (!response.ok) {
    const err = new Error(data.detail || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

// Run an action, showing its error (a 401 points at the key field).
async function guarded(action) {
  showError("");
  try { return await action(); } catch (err) {
    showError(err.status === 401 ? "The server needs an API key: enter it at the top." : err.message);
  }
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// --- tabs (arrow keys move between them, as the ARIA tabs pattern says) ---
const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", on);
    t.tabIndex = on ? 0 : -1;
    $("#" + t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
  const loaders = { "tab-notes": loadNotes, "tab-chunks": loadChunkExplorer, "tab-generate": loadStatus };
  if (loaders[tab.id]) guarded(loaders[tab.id]);
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step) selectTab(tabs[(i + step + tabs.length) % tabs.length]);
  });
});

// --- the note viewer: the cited span highlighted and scrolled into view ---
async function documentsBySource() {
  if (!state.docs) state.docs = (await api("GET", "/documents?limit=1000")).documents;
  return state.docs;
}

async function openNote(docId, start, end) {
  const doc = await api("GET", `/documents/${docId}`);
  $("#viewer").hidden = false;
  $("#viewer-title").textContent = doc.title || doc.source;
  $("#viewer-source").textContent = `${doc.source} · characters ${start}–${end}`;
  const mark = el("mark", { id: "highlight", tabIndex: -1 }, doc.text.slice(start, end));
  $("#note-text").replaceChildren(doc.text.slice(0, start), mark, doc.text.slice(end));
  mark.scrollIntoView({ block: "center" });
  mark.focus({ preventScroll: true });
}

async function openBySource(source, start, end) {
  const doc = (await documentsBySource()).find((d) => d.source === source);
  if (!doc) throw new Error(`no stored note ${source}`);
  await openNote(doc.id, start, end);
}
$("#viewer-close").addEventListener("click", () => { $("#viewer").hidden = true; });

function citationButton(label, open) {
  return el("button", { type: "button", className: "link citation", onclick: () => guarded(open) }, label);
}

// --- ask and search ---
$("#ask-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const answer = await api("POST", "/ask", { question: $("#question").value });
    $("#answer-box").hidden = false;
    $("#answer").textContent = answer.answer;
    $("#citations").replaceChildren(...answer.citations.map((c) => el("li", {},
      citationButton(`${c.source} [${c.start}–${c.end}]`, () => openNote(c.doc_id, c.start, c.end)),
      el("p", { className: "snippet cited", dataset: { docId: c.doc_id, start: c.start, end: c.end } }, c.text))));
  });
});

$("#search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const tags = $("#tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    const prefix = $("#source-prefix").value.trim();
    const filters = prefix || tags.length ? { source_prefix: prefix || null, tags } : null;
    const result = await api("POST", "/search", { query: $("#query").value, k: Number($("#k").value) || 5, mode: $("#mode").value, filters });
    $("#hits").replaceChildren(...result.hits.map((h) => el("li", {},
      citationButton(h.source, () => openNote(h.doc_id, h.start, h.end)),
      el("span", { className: "muted" }, ` ${h.headings.join(" › ")} · score ${h.score.toFixed(3)}`),
      el("p", { className: "snippet" }, h.text.length > 300 ? h.text.slice(0, 300) + "…" : h.text))));
    if (!result.hits.length) $("#hits").replaceChildren(el("li", {}, "No results."));
  });
});

// --- notes and the store's status ---
async function loadStatus() {
  const s = await api("GET", "/status");
  const rows = [["Documents", s.documents], ["Chunks", s.chunks], ["Index", `${s.index.kind ?? "none yet"} (${s.index.vectors} vectors)`],
    ["Embedding model", s.embedding.model], ["Chunker", typeof s.chunker === "object" && s.chunker ? JSON.stringify(s.chunker) : s.chunker ?? "per document"]];
  $("#status").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  $("#notices").replaceChildren(...s.notices.map((n) => el("li", { className: "notice" }, n)));
  const g = s.generation;
  $("#model-notice").hidden = g.configured;
  $("#model-notice").textContent = g.configured ? "" : "Image generation is off: " + g.detail;
  const scheduler = $("#scheduler");
  if (scheduler.options.length === 1) scheduler.append(...g.schedulers.map((name) => el("option", { value: name }, name)));
  $("#n").max = g.max_images; $("#steps").max = g.max_steps;
  $("#connection").textContent = `${s.documents} notes, ${s.chunks} chunks`;
  return s;
}

async function loadNotes() {
  await loadStatus();
  state.docs = null;
  const docs = await documentsBySource();
  $("#documents tbody").replaceChildren(...docs.map((d) => el("tr", {},
    el("td", {}, citationButton(d.source, () => openNote(d.id, 0, 0))), el("td", {}, d.title), el("td", {}, d.tags.join(", ")),
    el("td", {}, String(d.chunks)), el("td", {}, new Date((d.mtime ?? d.added_at) * 1000).toLocaleString()),
    el("td", {}, el("button", { type: "button", "aria-label": `Delete ${d.source}`, onclick: () => deleteNote(d) }, "Delete")))));
}

function deleteNote(doc) {
  if (!confirm(`Delete ${doc.source}?`)) return;
  guarded(async () => { await api("DELETE", `/documents/${doc.id}`); await loadNotes(); });
}

$("#upload-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const form = new FormData();
    form.append("file", $("#upload-file").files[0]);
    if ($("#upload-source").value.trim()) form.append("source", $("#upload-source").value.trim());
    await api("POST", "/documents", form);
    e.target.reset();
    await loadNotes();
  });
});

$("#paste-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    await api("POST", "/documents", { text: $("#paste-text").value, source: $("#paste-source").value.trim(), kind: $("#paste-kind").value });
    e.target.reset();
    await loadNotes();
  });
});

// --- prompt builder: the server counts with the real CLIP tokenizer ---
function renderEmphasis(phrases) {
  const parts = [];
  phrases.forEach((p, i) => {
    if (i) parts.push(", ");
    const weighted = p.weight !== 1;
    parts.push(weighted ? el("span", { className: "w" + (p.weight < 1 ? " down" : ""), title: `weight ${p.weight}` }, `${p.text} ×${p.weight}`) : p.text);
  });
  return parts;
}

async function buildPrompt() {
  const idea = $("#idea").value;
  if (!idea.trim()) return;
  const body = { idea, style: $("#style").value || null, budget: Number($("#budget").value) || 75,
    k: $("#from-notes").checked ? 5 : 0, negative: $("#with-negative").checked };
  const r = await api("POST", "/prompts", body);
  if ($("#idea").value !== idea) return; // an older answer: a newer request is on its way
  $("#prompt-count").textContent = `${r.tokens.prompt} / 75`;
  $("#prompt-count").dataset.count = r.tokens.prompt;
  $("#prompt-meter").value = r.tokens.prompt;
  $("#prompt-rendered").replaceChildren(...renderEmphasis(r.phrases));
  $("#prompt-text").textContent = r.prompt;
  $("#dropped-line").hidden = !r.dropped.length;
  $("#dropped").textContent = r.dropped.join(", ");
  $("#phrases").replaceChildren(...r.phrases.filter((p) => p.source).map((p) => el("li", {}, `${p.text} — from `,
    citationButton(`${p.source} [${p.start}–${p.end}]`, () => openBySource(p.source, p.start, p.end)))));
  $("#negative-count").textContent = `${r.tokens.negative_prompt} / 75`;
  $("#negative-text").textContent = r.negative_prompt;
}
const buildSoon = debounce(() => guarded(buildPrompt), 300);
$("#prompt-form").addEventListener("input", buildSoon);
$("#prompt-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(buildPrompt); });
$("#use-prompt").addEventListener("click", () => {
  $("#gen-prompt").value = $("#prompt-text").textContent;
  $("#gen-negative").value = $("#negative-text").textContent;
  selectTab($("#tab-generate"));
});

// --- generate and compare ---
function generationBody() {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  const seeds = $("#seeds").value.split(/[\s,]+/).filter(Boolean).map(Number);
  const body = { prompt: $("#gen-prompt").value, negative_prompt: $("#gen-negative").value || null, steps: num("#steps"),
    guidance_scale: num("#guidance"), width: num("#width"), height: num("#height"), scheduler: $("#scheduler").value || null,
    n: seeds.length > 1 ? seeds.length : num("#n") || 1, wait: false };
  if (seeds.length === 1) body.seed = seeds[0];
  if (seeds.length > 1) body.seeds = seeds;
  return body;
}

async function generate() {
  const body = generationBody();
  const init = $("#init-image").files[0], mask = $("#mask-image").files[0];
  let payload = body;
  if (init) {
    body.strength = Number($("#strength").value) || 0.75;
    payload = new FormData();
    payload.append("request", JSON.stringify(body));
    payload.append("init_image", init);
    if (mask) payload.append("mask_image", mask);
  }
  $("#generate-button").disabled = true;
  try {
    const accepted = await api("POST", "/generate", payload);
    state.job = accepted.job;
    $("#progress-box").hidden = false;
    const done = await pollJob(accepted.poll);
    await showGallery(done.result.images);
  } finally {
    $("#generate-button").disabled = false;
    state.job = null;
  }
}

async function pollJob(path) {
  for (;;) {
    const job = await api("GET", path);
    $("#progress").max = Math.max(job.steps_total, 1);
    $("#progress").value = job.steps_done;
    $("#progress-text").textContent = `${job.status}: step ${job.steps_done} of ${job.steps_total || "?"}`;
    if (job.status === "done") return job;
    if (job.status === "failed" || job.status === "cancelled") throw new Error(job.error?.detail || `the job was ${job.status}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function showGallery(images) {
  const cards = await Promise.all(images.map(async (img, rank) => {
    const blob = await api("GET", img.url); // fetched with the key: an <img src> could not send it
    const p = img.params;
    const summary = `${p.mode ?? "txt2img"} · steps ${p.steps ?? "?"} · guidance ${p.guidance_scale ?? "?"} · ${p.width ?? "?"}×${p.height ?? "?"} · ${p.scheduler ?? "default"}`;
    return el("li", { className: "image", dataset: { score: img.score ?? "", seed: img.seed } },
      el("img", { src: URL.createObjectURL(blob), alt: `image ${rank + 1}, seed ${img.seed}` }),
      el("p", {}, el("strong", {}, `score ${img.score === null ? "—" : img.score.toFixed(2)}`), ` · seed ${img.seed}`),
      el("p", { className: "muted" }, summary),
      el("button", { type: "button", onclick: () => rerun(img.seed) }, `Re-run seed ${img.seed}`));
  }));
  $("#gallery").replaceChildren(...cards);
}

function rerun(seed) {
  $("#seeds").value = String(seed);
  $("#n").value = 1;
  guarded(generate);
}

$("#generate-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(generate); });
$("#cancel-job").addEventListener("click", () => state.job && guarded(() => api("DELETE", `/jobs/${state.job}`)));

// --- chunk explorer: the chunker's own offsets, drawn over the note ---
async function loadChunkExplorer() {
  if (!state.chunkers) {
    state.chunkers = await api("GET", "/chunkers");
    $("#chunk-method").replaceChildren(...state.chunkers.chunkers.map((c) => el("option", { value: c.name }, c.name)));
    $("#chunk-method").value = state.chunkers.default.method;
    renderParams();
  }
  const docs = await documentsBySource();
  const chosen = $("#chunk-doc").value;
  $("#chunk-doc").replaceChildren(...docs.map((d) => el("option", { value: d.id }, d.source)));
  if (chosen) $("#chunk-doc").value = chosen;
}

function renderParams() {
  const info = state.chunkers.chunkers.find((c) => c.name === $("#chunk-method").value);
  const defaults = state.chunkers.default.method === info.name ? state.chunkers.default : {};
  $("#chunk-params").replaceChildren(...Object.entries(info.parameters).map(([name, fallback]) => {
    const value = defaults[name] ?? fallback;
    let input;
    if (name === "tokenizer") input = el("select", {}, ...info.tokenizers.map((t) => el("option", { value: t, selected: t === value }, t)));
    else input = el("input", { type: typeof fallback === "number" ? "number" : "text", step: "any", value: value ?? "", placeholder: value === null ? "none" : "" });
    input.dataset.param = name;
    input.dataset.kind = typeof fallback;
    return el("label", {}, name + " ", input);
  }));
}
$("#chunk-method").addEventListener("change", renderParams);

function chunkParams() {
  const params = {};
  for (const input of document.querySelectorAll("#chunk-params [data-param]")) {
    if (input.value === "") continue;
    const numeric = input.dataset.kind === "number" || (input.dataset.kind === "object" && /^-?[\d.]+$/.test(input.value));
    params[input.dataset.param] = numeric ? Number(input.value) : input.value;
  }
  return params;
}

function chunkSpans(text, chunks) {
  const points = [...new Set([0, text.length, ...chunks.flatMap((c) => [c.start, c.end])])].sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    for (const c of chunks.filter((c) => c.start === a)) {
      out.push(el("span", { className: "badge", dataset: { index: c.index } }, `#${c.index} · ${c.token_count} tok`));
    }
    const covering = chunks.filter((c) => c.start <= a && c.end >= b);
    if (!covering.length) { out.push(text.slice(a, b)); continue; }
    const first = covering[0];
    out.push(el("span", { className: `chunk c${first.index % 6}` + (covering.length > 1 ? " overlap" : ""),
      title: covering.map((c) => `chunk ${c.index}: ${c.token_count} tokens`).join("; "),
      dataset: { chunks: covering.map((c) => c.index).join(" "), start: a, end: b } }, text.slice(a, b)));
  }
  return out;
}

$("#chunk-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const docId = Number($("#chunk-doc").value);
    const [doc, preview] = await Promise.all([api("GET", `/documents/${docId}`),
      api("POST", "/chunks/preview", { doc_id: docId, method: $("#chunk-method").value, params: chunkParams() })]);
    const tokens = preview.chunks.map((c) => c.token_count);
    $("#chunk-summary").textContent = `${preview.chunks.length} chunks by ${preview.method}; tokens per chunk ${Math.min(...tokens)}–${Math.max(...tokens)}`;
    $("#chunk-view").replaceChildren(...chunkSpans(doc.text, preview.chunks));
    $("#chunk-list").replaceChildren(...preview.chunks.map((c) => el("li", { dataset: { start: c.start, end: c.end, tokens: c.token_count } },
      `characters ${c.start}–${c.end}, ${c.token_count} tokens`)));
  });
});

// --- start ---
$("#api-key").value = state.key;
$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("#api-key").value.trim();
  localStorage.setItem("noteloom-key", state.key);
  state.docs = null;
  guarded(loadStatus);
});
guarded(loadStatus).then(() => { document.body.dataset.ready = "1"; performance.mark("noteloom-ready"); }); // bench/web_bench.py reads the mark
