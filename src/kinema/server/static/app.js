// Kinema web page: a plain client of the server's OpenAI-compatible Videos API (no build step).
"use strict";

const KEY_STORAGE = "kinema.apiKey";
const $ = (id) => document.getElementById(id);
const state = { config: null, blobs: new Map(), cards: new Map(), timer: null, busy: false };

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!res.ok) {
    let message = res.status + " " + res.statusText;
    try { const body = await res.json(); if (body && body.error && body.error.message) message = body.error.message; }
    catch (_) { /* not JSON */ }
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return res;
}

// ----- configuration -----------------------------------------------------------------------
async function loadConfig() {
  try {
    state.config = await (await fetch("/v1/kinema/config")).json();
  } catch (_) {
    state.config = { model: "kinema", sizes: {}, openai_seconds: ["4", "8", "12"], scale: 128, fps: 12,
                     openai_seconds_scale: 0.5, keys_required: false };
  }
  const cfg = state.config;
  $("model").textContent = "model: " + cfg.model;
  const size = $("size");
  size.innerHTML = "";
  const square = cfg.scale + "x" + cfg.scale;
  const add = (value, label) => { const o = document.createElement("option"); o.value = value; o.textContent = label; size.appendChild(o); };
  add(square, square + " (square, native)");
  for (const [openai, rendered] of Object.entries(cfg.sizes || {})) {
    const [w, h] = openai.split("x").map(Number);
    add(openai, openai + (w > h ? " landscape" : " portrait") + " → " + rendered);
  }
  const list = $("seconds-list");
  list.innerHTML = "";
  for (const s of cfg.openai_seconds || []) {
    const o = document.createElement("option");
    o.value = s;
    o.label = s + " (renders " + (Number(s) * cfg.openai_seconds_scale) + " s)";
    list.appendChild(o);
  }
  $("hint").textContent = "OpenAI durations 4/8/12 render " + cfg.openai_seconds_scale +
    "× as long; any other number is rendered as given, at " + cfg.fps + " fps.";
  showKeyState();
}

function showKeyState() {
  const needs = state.config && state.config.keys_required;
  $("key-state").textContent = apiKey() ? "key saved" : (needs ? "this server needs a key" : "no key needed");
}

// ----- the form ----------------------------------------------------------------------------
function onModeChange() {
  const mode = $("mode").value;
  const row = $("file-row");
  const file = $("file");
  if (mode === "image") { row.classList.remove("hidden"); $("file-label").textContent = "Image"; file.accept = "image/*"; }
  else if (mode === "extend" || mode === "edit") { row.classList.remove("hidden"); $("file-label").textContent = "Video clip"; file.accept = "video/*,image/gif"; }
  else { row.classList.add("hidden"); }
}

async function onSubmit(event) {
  event.preventDefault();
  const status = $("form-status");
  const mode = $("mode").value;
  const form = new FormData();
  form.append("prompt", $("prompt").value);
  const seconds = $("seconds").value.trim();
  if (seconds) form.append("seconds", seconds);
  const seed = $("seed").value.trim();
  if (seed) form.append("seed", seed);
  let path = "/v1/videos";
  const file = $("file").files[0];
  if (mode === "extend" || mode === "edit") {
    if (!file) { status.textContent = "choose a video clip to " + mode; status.className = "error"; return; }
    form.append("video", file);
    path = mode === "extend" ? "/v1/videos/extensions" : "/v1/videos/edits";
  } else {
    form.append("size", $("size").value);
    form.append("mode", mode);
    if (mode === "image") {
      if (!file) { status.textContent = "choose an image to animate"; status.className = "error"; return; }
      form.append("input_reference", file);
    }
  }
  $("generate").disabled = true;
  status.className = "";
  status.textContent = "submitting…";
  try {
    const video = await (await api(path, { method: "POST", body: form })).json();
    status.textContent = "queued " + video.id;
    await refresh();
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
  } finally {
    $("generate").disabled = false;
  }
}

// ----- the gallery ---------------------------------------------------------------------------
function card(video) {
  let el = state.cards.get(video.id);
  if (!el) {
    el = document.createElement("div");
    el.className = "card";
    el.dataset.id = video.id;
    el.innerHTML = '<div class="media"></div><div class="prompt"></div><div class="meta"></div>' +
                   '<progress max="100" value="0"></progress><div class="actions"></div>';
    state.cards.set(video.id, el);
  }
  el.dataset.status = video.status;
  el.querySelector(".prompt").textContent = video.prompt || "";
  const k = video.kinema || {};
  const dims = k.width ? " · " + k.width + "x" + k.height + " · " + k.num_frames + " frames" : "";
  el.querySelector(".meta").textContent = video.status +
    (video.status === "in_progress" ? " " + video.progress + "%" : "") + " · " + video.seconds + " s · " + video.size + dims +
    (video.error ? " · " + video.error.message : "");
  const bar = el.querySelector("progress");
  bar.value = video.progress || 0;
  bar.classList.toggle("hidden", video.status === "completed" || video.status === "failed");
  if (video.status === "completed" && !el.querySelector("video")) attachVideo(el, video);
  if (!el.querySelector(".delete")) {
    const del = document.createElement("button");
    del.type = "button"; del.className = "secondary delete"; del.textContent = "Delete";
    del.onclick = () => removeVideo(video.id);
    el.querySelector(".actions").appendChild(del);
  }
  return el;
}

async function attachVideo(el, video) {
  if (el.dataset.loading) return;
  el.dataset.loading = "1";
  try {
    let url = state.blobs.get(video.id);
    if (!url) {
      const blob = await (await api("/v1/videos/" + encodeURIComponent(video.id) + "/content")).blob();
      url = URL.createObjectURL(blob);
      state.blobs.set(video.id, url);
    }
    const v = document.createElement("video");
    v.src = url; v.controls = true; v.loop = true; v.muted = true; v.playsInline = true; v.autoplay = true;
    v.preload = "auto";
    el.querySelector(".media").appendChild(v);
    const actions = el.querySelector(".actions");
    const a = document.createElement("a");
    a.href = url; a.download = video.id + ".mp4"; a.textContent = "Download"; a.className = "download";
    actions.prepend(a);
    const remix = document.createElement("button");
    remix.type = "button"; remix.className = "secondary remix"; remix.textContent = "Remix";
    remix.onclick = () => remixVideo(video);
    actions.appendChild(remix);
  } catch (err) {
    el.querySelector(".meta").textContent += " · " + err.message;
  } finally {
    delete el.dataset.loading;
  }
}

async function removeVideo(id) {
  try { await api("/v1/videos/" + encodeURIComponent(id), { method: "DELETE" }); }
  catch (err) { $("form-status").textContent = err.message; return; }
  const el = state.cards.get(id);
  if (el) el.remove();
  state.cards.delete(id);
  const url = state.blobs.get(id);
  if (url) URL.revokeObjectURL(url);
  state.blobs.delete(id);
  refresh();
}

async function remixVideo(video) {
  const prompt = window.prompt("New prompt for this clip", video.prompt || "");
  if (!prompt) return;
  try {
    await api("/v1/videos/" + encodeURIComponent(video.id) + "/remix", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt }) });
    refresh();
  } catch (err) { $("form-status").textContent = err.message; }
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  let pending = false;
  try {
    const page = await (await api("/v1/videos?limit=50&order=desc")).json();
    const gallery = $("gallery");
    const seen = new Set();
    page.data.forEach((video, i) => {
      seen.add(video.id);
      const el = card(video);
      if (gallery.children[i] !== el) gallery.insertBefore(el, gallery.children[i] || null);
      if (video.status === "queued" || video.status === "in_progress") pending = true;
    });
    for (const [id, el] of state.cards) if (!seen.has(id)) { el.remove(); state.cards.delete(id); }
    $("empty").classList.toggle("hidden", page.data.length > 0);
    if ($("form-status").className === "error" && $("form-status").dataset.auth) $("form-status").textContent = "";
  } catch (err) {
    $("form-status").textContent = err.status === 401 ? "enter a valid API key above" : err.message;
    $("form-status").className = "error";
    $("form-status").dataset.auth = err.status === 401 ? "1" : "";
  } finally {
    state.busy = false;
  }
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, pending ? 700 : 5000);
}

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
    showKeyState();
    state.cards.forEach((el) => el.remove());
    state.cards.clear();
    refresh();
  });
  $("mode").addEventListener("change", onModeChange);
  $("create-form").addEventListener("submit", onSubmit);
  $("refresh").addEventListener("click", refresh);
  onModeChange();
  loadConfig().then(refresh);
}

init();
