// sre-kb web page: ask a question, read the answer, open its cited sources.
// Plain DOM, no dependencies. All API data goes in through textContent / createTextNode, never innerHTML.
"use strict";

(() => {
  const KEY_STORE = "srekb.apiKey";
  const $ = (id) => document.getElementById(id);

  const ui = {
    layout: document.querySelector(".layout"),
    keySettings: $("key-settings"),
    keyState: $("key-state"),
    keyForm: $("key-form"),
    keyInput: $("api-key"),
    keyForget: $("key-forget"),
    form: $("ask-form"),
    question: $("question"),
    stream: $("stream"),
    button: $("ask-button"),
    status: $("status"),
    error: $("error"),
    result: $("result"),
    intent: $("intent"),
    mode: $("mode"),
    backend: $("backend"),
    took: $("took"),
    notice: $("answer-notice"),
    answer: $("answer"),
    citations: $("citations"),
    noCitations: $("no-citations"),
    source: $("source"),
    sourceTitle: $("source-title"),
    sourceMeta: $("source-meta"),
    sourceNote: $("source-note"),
    sourceBody: $("source-body"),
    sourceClose: $("source-close"),
  };

  /** Build an element; children are nodes or strings (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  // ---------------------------------------------------------------- API key

  function apiKey() {
    try { return sessionStorage.getItem(KEY_STORE) || ""; } catch { return ""; }
  }

  function setApiKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORE, value);
      else sessionStorage.removeItem(KEY_STORE);
    } catch { /* storage disabled: the key lives for this page only */ }
    showKeyState();
  }

  function showKeyState() {
    ui.keyState.textContent = apiKey() ? "set for this tab" : "none";
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  // ---------------------------------------------------------------- errors

  class ApiError extends Error {
    constructor(type, message, detail, status) {
      super(message);
      this.type = type;
      this.detail = detail;
      this.status = status;
    }
  }

  /** The API's {"error": {type, message, detail?}} body as an ApiError (or a readable fallback). */
  async function errorFrom(response) {
    let text = "";
    try { text = await response.text(); } catch { /* keep the status line */ }
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        return new ApiError(String(body.error.type || "error"), String(body.error.message || response.statusText), body.error.detail, response.status);
      }
    } catch { /* not JSON */ }
    const snippet = text.trim().slice(0, 300);
    return new ApiError(`http_${response.status}`, snippet || response.statusText || "request failed", undefined, response.status);
  }

  function clearError() {
    ui.error.hidden = true;
    ui.error.replaceChildren();
  }

  function showError(err) {
    let type = "error";
    let message = String(err && err.message ? err.message : err);
    let detail;
    if (err instanceof ApiError) {
      type = err.type;
      detail = err.detail;
    } else if (err instanceof TypeError) {
      type = "network";
      message = `Could not reach the API (${message}). Is the service running?`;
    }
    const title = el("p", { className: "error-title" }, err && err.status ? `Error ${err.status}: ${type}` : `Error: ${type}`);
    const parts = [title, el("p", { className: "error-message" }, message)];
    if (Array.isArray(detail) && detail.length) {
      const list = el("ul");
      for (const d of detail.slice(0, 10)) {
        const loc = Array.isArray(d.loc) ? d.loc.join(".") : "";
        list.append(el("li", {}, loc ? `${loc}: ${d.msg || ""}` : String(d.msg || JSON.stringify(d))));
      }
      parts.push(list);
    }
    if (err instanceof ApiError && err.status === 401) {
      parts.push(el("p", {}, "Enter an API key under “API key” at the top of the page, then ask again."));
      ui.keySettings.open = true;
      ui.keyInput.focus();
    }
    ui.error.replaceChildren(...parts);
    ui.error.hidden = false;
  }

  // ---------------------------------------------------------------- answer rendering

  const state = { citations: new Map(), text: "", controller: null, sourceSeq: 0, opener: null };

  const INLINE = /\[(\d+)\]|`([^`\n]+)`|\*\*([^*\n]+)\*\*|\*(?![\s*])([^*\n]*?[^\s*])\*/g;

  /** One paragraph of answer text: [n] markers become links to their citations, `code`, **bold** and *italics* are kept. */
  function inline(text) {
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) frag.append(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) {
        const n = Number(m[1]);
        const c = state.citations.get(n);
        if (c) {
          const a = el("a", { className: "marker", href: `#cite-${n}`, "data-n": n, title: c.label, "aria-label": `citation ${n}: ${c.label}` }, `[${n}]`);
          frag.append(a);
        } else {
          frag.append(el("span", { className: "marker pending" }, `[${n}]`));
        }
      } else if (m[2] !== undefined) {
        frag.append(el("code", {}, m[2]));
      } else if (m[3] !== undefined) {
        frag.append(el("strong", {}, m[3]));
      } else {
        frag.append(el("em", {}, m[4]));
      }
      last = m.index + m[0].length;
    }
    if (last < text.length) frag.append(document.createTextNode(text.slice(last)));
    return frag;
  }

  // Block Markdown, the subset answers use: paragraphs, headings, ordered lists (their start number
  // kept: an answer may quote steps 2 and 3), bullet lists, nested lists, fenced code (verbatim).
  // Parsed into plain objects, then built as DOM nodes: anything else, raw HTML included, stays text.
  const FENCE = /^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
  const ITEM = /^( {0,3})(?:(\d{1,9})[.)]|[-*+])(?:(\s+)(.*))?$/;

  const startsBlock = (line) => FENCE.test(line) || HEADING.test(line) || ITEM.test(line);
  const dedent = (line, n) => line.replace(new RegExp(`^ {0,${n}}`), "");

  /** Lines of Markdown as blocks: {type: "code", lang, text} | {type: "heading", level, text} | {type: "list", ordered, start, items: [blocks]} | {type: "para", text}. */
  function parseBlocks(lines) {
    const blocks = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) {
        i += 1;
      } else if ((m = FENCE.exec(line))) {
        const mark = m[2];
        const closes = (l) => { const t = l.trim(); return t.length >= mark.length && [...t].every((ch) => ch === mark[0]); };
        const body = [];
        for (i += 1; i < lines.length && !closes(lines[i]); i += 1) body.push(dedent(lines[i], m[1].length));
        i += 1; // the closing fence (a fence still streaming runs to the end)
        blocks.push({ type: "code", lang: m[3], text: body.join("\n") });
      } else if ((m = HEADING.exec(line))) {
        blocks.push({ type: "heading", level: m[1].length, text: m[2] });
        i += 1;
      } else if (ITEM.test(line)) {
        i = parseList(lines, i, blocks);
      } else {
        const para = [line.trim()];
        for (i += 1; i < lines.length && lines[i].trim() && !startsBlock(lines[i]); i += 1) para.push(lines[i].trim());
        blocks.push({ type: "para", text: para.join("\n") });
      }
    }
    return blocks;
  }

  /** The list starting at lines[i]: each item is the lines indented under its marker (parsed as blocks) plus lazy continuation lines. */
  function parseList(lines, i, blocks) {
    const ordered = ITEM.exec(lines[i])[2] !== undefined;
    const list = { type: "list", ordered, start: ordered ? Number(ITEM.exec(lines[i])[2]) : 1, items: [] };
    while (i < lines.length) {
      const m = ITEM.exec(lines[i]);
      if (!m || (m[2] !== undefined) !== ordered) break;
      const offset = m[4] === undefined ? lines[i].trimEnd().length + 1 : lines[i].length - m[4].length;
      const body = [m[4] || ""];
      for (i += 1; i < lines.length; i += 1) {
        const l = lines[i];
        if (!l.trim()) body.push("");
        else if (l.length - l.trimStart().length >= offset) body.push(l.slice(offset));
        else if (startsBlock(l) || body[body.length - 1] === "") break;
        else body.push(l.trim()); // a paragraph's lazy continuation
      }
      while (body.length && body[body.length - 1] === "") body.pop();
      list.items.push(parseBlocks(body));
      const next = lines[i] === undefined ? null : ITEM.exec(lines[i]);
      if (!next) break;
    }
    blocks.push(list);
    return i;
  }

  function renderBlocks(blocks) {
    return blocks.map((b) => {
      if (b.type === "code") {
        const lang = b.lang.replace(/[^\w+-]/g, "");
        return el("pre", { className: "code" }, el("code", lang ? { className: `language-${lang}` } : {}, b.text));
      }
      if (b.type === "heading") return el(`h${Math.min(b.level + 3, 6)}`, { className: "answer-heading" }, inline(b.text));
      if (b.type === "list") {
        const items = b.items.map((item) => el("li", {},
          ...(item.length === 1 && item[0].type === "para" ? [inline(item[0].text)] : renderBlocks(item))));
        return b.ordered ? el("ol", { start: b.start === 1 ? null : b.start }, ...items) : el("ul", {}, ...items);
      }
      return el("p", {}, inline(b.text));
    });
  }

  const BLOCKS = new Set(["P", "OL", "UL", "LI", "PRE", "H4", "H5", "H6"]);

  /** The answer so far (streaming: re-rendered on every delta, a cursor after its last block) or the final one. */
  function renderAnswer(streaming) {
    const text = state.text.replace(/\r\n?/g, "\n").replace(/^\s*\n/, "").trimEnd();
    const nodes = text ? renderBlocks(parseBlocks(text.split("\n"))) : [el("p", {}, streaming ? "" : "(no answer text)")];
    ui.answer.replaceChildren(...nodes);
    if (!streaming) return;
    let node = ui.answer;
    while (node.lastElementChild && BLOCKS.has(node.lastElementChild.tagName)) node = node.lastElementChild;
    if (node !== ui.answer) node.classList.add("streaming");
  }

  /** Who wrote the answer, and any warning: a configured model that failed, sentences removed as unsupported. */
  function setBackend(data) {
    const abstained = data.mode === "abstained" || data.abstained;
    ui.backend.textContent = data.backend ? String(data.backend) : abstained ? "none" : "none: quoted from the sources";
    const notes = [];
    if (data.llm_error) {
      const why = String(data.llm_error);
      if (data.backend) notes.push(`A model failed (${why}) before ${data.backend} answered.`);
      else if (abstained) notes.push(`The model failed (${why}).`);
      else notes.push(`The model failed (${why}); this answer is quoted from the sources.`);
    }
    const n = Number(data.unsupported) || 0;
    if (n > 0) notes.push(`${n} unsupported sentence${n === 1 ? " was" : "s were"} removed: no source supports ${n === 1 ? "it" : "them"}.`);
    ui.notice.replaceChildren(...notes.map((note) => el("p", {}, note)));
    ui.notice.hidden = notes.length === 0;
  }

  function setIntent(intent) {
    ui.intent.textContent = intent || "…";
  }

  function setMode(mode, abstained) {
    const value = mode || (abstained ? "abstained" : "");
    ui.mode.replaceChildren(value ? el("span", { className: `badge mode-${value}` }, value) : "…");
    ui.answer.classList.toggle("abstained", value === "abstained");
  }

  function setTimings(timings) {
    const total = timings && typeof timings.total === "number" ? timings.total : null;
    ui.took.textContent = total === null ? "…" : `${Math.round(total)} ms`;
  }

  function lineRange(c) {
    if (!Array.isArray(c.lines) || c.lines.length !== 2) return "";
    return c.lines[0] === c.lines[1] ? `line ${c.lines[0]}` : `lines ${c.lines[0]}–${c.lines[1]}`;
  }

  function renderCitations(citations) {
    state.citations = new Map(citations.map((c) => [Number(c.n), c]));
    const items = citations.map((c) => {
      const button = el("button", { type: "button", className: "cite-open", "data-n": c.n,
        "aria-label": `Open source of citation ${c.n}: ${c.label}` }, c.label);
      const range = lineRange(c);
      return el("li", { id: `cite-${c.n}`, value: c.n }, button,
        el("span", { className: "cite-type" }, c.source_type + (range ? ` · ${range}` : "")));
    });
    ui.citations.replaceChildren(...items);
    ui.noCitations.hidden = citations.length > 0;
  }

  function resetResult(question) {
    state.text = "";
    state.citations = new Map();
    setIntent("");
    setMode("", false);
    setTimings(null);
    ui.backend.textContent = "…";
    ui.notice.replaceChildren();
    ui.notice.hidden = true;
    ui.answer.replaceChildren();
    ui.citations.replaceChildren();
    ui.noCitations.hidden = true;
    ui.result.hidden = false;
    ui.result.setAttribute("aria-busy", "true");
    ui.result.dataset.question = question;
  }

  function finish(data) {
    if (data.intent) setIntent(data.intent);
    if (typeof data.answer === "string") state.text = data.answer;
    if (Array.isArray(data.citations)) renderCitations(data.citations);
    setMode(data.outcome === "caveat" ? "caveat" : data.mode, data.abstained);
    setBackend(data);
    setTimings(data.timings_ms);
    renderAnswer(false);
    ui.noCitations.hidden = state.citations.size > 0;
    ui.result.setAttribute("aria-busy", "false");
    ui.status.textContent = data.mode === "abstained" || data.abstained
      ? "The knowledge base has no good answer to this question."
      : `Answered${data.outcome === "caveat" ? " with a caveat" : ""} with ${state.citations.size} citation${state.citations.size === 1 ? "" : "s"}.`;
  }

  // ---------------------------------------------------------------- asking

  async function askJson(question, signal) {
    const response = await fetch("/v1/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify({ question }),
      signal,
    });
    if (!response.ok) throw await errorFrom(response);
    finish(await response.json());
  }

  /** POST /v1/ask with "stream": true, reading the SSE events intent, hits, delta…, citations, done (or error). */
  async function askStream(question, signal) {
    const response = await fetch("/v1/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ question, stream: true }),
      signal,
    });
    if (!response.ok) throw await errorFrom(response);
    if (!response.body || !(response.headers.get("content-type") || "").includes("text/event-stream")) {
      finish(await response.json());
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    const handle = (name, data) => {
      switch (name) {
        case "intent":
          setIntent(data.intent);
          break;
        case "hits":
          ui.status.textContent = `Found ${(data.hits || []).length} passages; writing the answer…`;
          break;
        case "delta":
          state.text += data.text || "";
          renderAnswer(true);
          break;
        case "citations":
          renderCitations(data.citations || []);
          renderAnswer(true);
          break;
        case "done": // the whole checked answer: its text replaces what the deltas showed
          done = true;
          finish(data);
          break;
        case "error":
          done = true;
          ui.result.setAttribute("aria-busy", "false");
          throw new ApiError(String(data.type || "error"), String(data.message || "the answer stream failed"));
        default:
          break;
      }
    };
    for (;;) {
      const { value, done: eof } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !eof }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) handle(name, JSON.parse(data.join("\n")));
      }
      if (eof) break;
    }
    if (!done) throw new ApiError("stream_ended", "the answer stream ended before it was complete; try again");
  }

  async function ask(event) {
    event.preventDefault();
    const question = ui.question.value.trim();
    clearError();
    if (!question) {
      showError(new ApiError("empty_question", "Type a question first."));
      ui.question.focus();
      return;
    }
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    resetResult(question);
    ui.button.disabled = true;
    ui.status.textContent = "Searching the knowledge base…";
    try {
      if (ui.stream.checked) await askStream(question, controller.signal);
      else await askJson(question, controller.signal);
    } catch (err) {
      if (err && err.name === "AbortError") return;
      ui.result.setAttribute("aria-busy", "false");
      if (!state.text) ui.result.hidden = true;
      ui.status.textContent = "";
      showError(err);
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        ui.button.disabled = false;
      }
    }
  }

  // ---------------------------------------------------------------- sources

  function sourceUrl(path) {
    return `/v1/sources/${path.split("/").map(encodeURIComponent).join("/")}`;
  }

  function closeSource() {
    state.sourceSeq += 1;
    ui.source.hidden = true;
    ui.layout.classList.remove("with-source");
    for (const li of ui.citations.querySelectorAll("li.current")) {
      li.classList.remove("current");
      li.removeAttribute("aria-current");
    }
    if (state.opener && document.contains(state.opener)) state.opener.focus();
    state.opener = null;
  }

  function markCurrent(n) {
    for (const li of ui.citations.querySelectorAll("li")) {
      const on = li.id === `cite-${n}`;
      li.classList.toggle("current", on);
      if (on) li.setAttribute("aria-current", "true");
      else li.removeAttribute("aria-current");
    }
  }

  /** Scroll the panel (not the page) so the cited range is in view: centred when it fits, else its first line near the top. */
  function scrollToCited(first, last) {
    const body = ui.sourceBody;
    if (!first) {
      body.scrollTop = 0;
      return;
    }
    const top = first.offsetTop;
    const bottom = last.offsetTop + last.offsetHeight;
    const room = body.clientHeight;
    const target = bottom - top < room * 0.8 ? top - (room - (bottom - top)) / 2 : top - first.offsetHeight * 2;
    body.scrollTop = Math.max(0, target);
  }

  async function openSource(c, opener) {
    const seq = ++state.sourceSeq;
    state.opener = opener || null;
    markCurrent(c.n);
    ui.layout.classList.add("with-source");
    ui.source.hidden = false;
    ui.source.setAttribute("aria-busy", "true");
    ui.sourceTitle.textContent = c.title || c.path;
    ui.sourceMeta.textContent = `${c.path}${lineRange(c) ? ` · cited ${lineRange(c)}` : ""}`;
    ui.sourceNote.hidden = true;
    ui.sourceBody.replaceChildren(el("p", { className: "gap" }, "Loading the source…"));
    let data;
    try {
      const response = await fetch(sourceUrl(c.path), { headers: headers({ Accept: "application/json" }) });
      if (!response.ok) throw await errorFrom(response);
      data = await response.json();
    } catch (err) {
      if (seq !== state.sourceSeq) return;
      ui.source.setAttribute("aria-busy", "false");
      ui.sourceBody.replaceChildren();
      showError(err);
      return;
    }
    if (seq !== state.sourceSeq) return; // another citation was opened meanwhile
    renderSource(data, c);
  }

  function renderSource(data, c) {
    const [start, end] = Array.isArray(c.lines) && c.lines.length === 2 ? c.lines : [0, -1];
    ui.sourceTitle.textContent = data.title || data.path;
    ui.sourceMeta.textContent = `${data.path} · ${data.source_type}${start ? ` · cited ${lineRange(c)}` : ""}`;
    if (!data.from_file) {
      ui.sourceNote.textContent = data.changed_since_ingest
        ? "The file changed since it was ingested: this is the indexed version (rebuilt from its chunks, so the line numbers match the citations); re-ingest to update."
        : "The file is no longer on disk: this text is rebuilt from the indexed chunks, so some lines may be missing.";
      ui.sourceNote.hidden = false;
    }
    const rows = [];
    let prev = 0;
    let first = null;
    let last = null;
    for (const line of data.lines || []) {
      const n = Number(line.n);
      if (prev && n > prev + 1) {
        rows.push(el("div", { className: "gap" }, n - prev === 2 ? `… line ${prev + 1} not indexed` : `… lines ${prev + 1}–${n - 1} not indexed`));
      }
      prev = n;
      const cited = n >= start && n <= end;
      const row = el("div", { className: cited ? "line hl" : "line", id: `L${n}`, "data-n": n },
        el("span", { className: "ln" }, String(n)),
        el("span", { className: "lt" }, line.text === "" ? "\u200b" : String(line.text)));
      if (cited) {
        row.setAttribute("data-cited", "true");
        first = first || row;
        last = row;
      }
      rows.push(row);
    }
    if (!rows.length) rows.push(el("p", { className: "gap" }, "This source has no text."));
    ui.sourceBody.replaceChildren(...rows);
    ui.source.setAttribute("aria-busy", "false");
    // On a narrow screen the panel sits below the answer: bring all of it into the window first.
    const rect = ui.source.getBoundingClientRect();
    if (rect.top < 0 || rect.bottom > window.innerHeight + 1) ui.source.scrollIntoView({ block: "start" });
    scrollToCited(first, last);
    ui.sourceTitle.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- wiring

  ui.form.addEventListener("submit", ask);
  ui.question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.form.requestSubmit();
    }
  });

  ui.citations.addEventListener("click", (e) => {
    const button = e.target.closest("button.cite-open");
    if (!button) return;
    const c = state.citations.get(Number(button.dataset.n));
    if (c) openSource(c, button);
  });

  ui.answer.addEventListener("click", (e) => {
    const a = e.target.closest("a.marker");
    if (!a) return;
    e.preventDefault();
    const n = Number(a.dataset.n);
    const c = state.citations.get(n);
    if (!c) return;
    const li = $(`cite-${n}`);
    if (li) li.scrollIntoView({ block: "nearest" });
    openSource(c, a);
  });

  ui.sourceClose.addEventListener("click", closeSource);
  ui.source.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeSource();
  });

  ui.keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    setApiKey(ui.keyInput.value.trim());
    ui.keyInput.value = "";
    ui.keySettings.open = false;
    ui.status.textContent = apiKey() ? "API key saved for this tab." : "API key cleared.";
    ui.question.focus();
  });
  ui.keySettings.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && ui.keySettings.open) {
      ui.keySettings.open = false;
      ui.keySettings.querySelector("summary").focus();
    }
  });
  ui.keyForget.addEventListener("click", () => {
    setApiKey("");
    ui.keyInput.value = "";
    ui.status.textContent = "API key cleared.";
  });

  showKeyState();
  ui.question.focus();
})();
