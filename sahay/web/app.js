// Sahay browser UI: plain JavaScript, no build step. It talks to the web service under /api/v1.
// Decision support, not a diagnosis: the disclaimer in index.html stays visible on every screen.

const API = "/api/v1";
const KEYS = {
  access: "sahay.access_token",
  refresh: "sahay.refresh_token",
  user: "sahay.user",
  current: "sahay.current_analysis",
};
const HISTORY_PAGE = 20;
const WINDOW_DEBOUNCE_MS = 350;
const MIN_ZOOM = 1;
const MAX_ZOOM = 10;
const REPORT_FORMATS = [
  { format: "html", label: "HTML report", ext: "html", dicom: false },
  { format: "pdf", label: "PDF report", ext: "pdf", dicom: false },
  { format: "fhir", label: "FHIR DiagnosticReport (JSON)", ext: "json", dicom: false },
  { format: "dicom-sr", label: "DICOM Structured Report", ext: "dcm", dicom: true },
  { format: "dicom-sc", label: "DICOM Secondary Capture", ext: "dcm", dicom: true },
];

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- small helpers

/** Build an element. Text children become text nodes, so server data is never parsed as HTML. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const percent = (value) => `${(value * 100).toFixed(1)}%`;

function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function setStatus(message) {
  $("status").textContent = message || "";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  const box = $("error");
  box.textContent = "";
  box.hidden = true;
}

/** Report an error from any action: API messages as given, anything else in plain words. */
function reportError(error, context) {
  if (error instanceof SessionExpired) return; // the login screen already says so
  if (error && error.name === "AbortError") return;
  let message;
  if (error instanceof ApiError) message = error.message;
  else if (error instanceof TypeError) message = "Could not reach the Sahay server. Check the connection and try again.";
  else message = (error && error.message) || String(error);
  showError(context ? `${context}: ${message}` : message);
  setStatus("");
}

// ---------------------------------------------------------------- API access

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

class SessionExpired extends ApiError {
  constructor() {
    super(401, "Your session has expired. Please sign in again.");
    this.name = "SessionExpired";
  }
}

function detailMessage(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail
      .map((item) => {
        if (!item || typeof item !== "object") return String(item);
        const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        return where ? `${where}: ${item.msg}` : item.msg;
      })
      .join("; ");
  }
  if (status === 413) return "The file is too large.";
  if (status === 415) return "This file type is not supported.";
  return `The server answered with status ${status}.`;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, detailMessage(body, response.status));
}

const tokens = {
  get access() { return sessionStorage.getItem(KEYS.access); },
  get refresh() { return sessionStorage.getItem(KEYS.refresh); },
  store(body) {
    sessionStorage.setItem(KEYS.access, body.access_token);
    if (body.refresh_token) sessionStorage.setItem(KEYS.refresh, body.refresh_token);
    if (body.user) sessionStorage.setItem(KEYS.user, JSON.stringify(body.user));
  },
  clear() {
    for (const key of Object.values(KEYS)) sessionStorage.removeItem(key);
  },
  get user() {
    try {
      return JSON.parse(sessionStorage.getItem(KEYS.user) || "null");
    } catch {
      return null;
    }
  },
};

function authorised(options = {}) {
  const headers = new Headers(options.headers || {});
  const access = tokens.access;
  if (access) headers.set("Authorization", `Bearer ${access}`);
  return { ...options, headers };
}

let refreshing = null;

/** Swap the refresh token for new tokens; one attempt shared by every request that got a 401. */
function refreshTokens() {
  const refresh = tokens.refresh;
  if (!refresh) return Promise.resolve(false);
  if (!refreshing) {
    refreshing = fetch(`${API}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh_token: refresh }),
    })
      .then(async (response) => {
        if (!response.ok) return false;
        tokens.store(await response.json());
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** fetch() with the access token; on a 401, refresh once and retry, else back to the login. */
async function apiFetch(path, options = {}) {
  const url = path.startsWith("/") ? path : `${API}/${path}`;
  const response = await fetch(url, authorised(options));
  if (response.status !== 401) return response;
  if (await refreshTokens()) {
    const again = await fetch(url, authorised(options));
    if (again.status !== 401) return again;
  }
  sessionExpired();
  throw new SessionExpired();
}

async function checked(response) {
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function getJSON(path, options = {}) {
  const response = await checked(await apiFetch(path, { ...options, headers: { Accept: "application/json" } }));
  return response.json();
}

async function getBlobURL(path, options = {}) {
  const response = await checked(await apiFetch(path, options));
  return URL.createObjectURL(await response.blob());
}

// ---------------------------------------------------------------- state

const state = {
  models: [],
  analysis: null,
  selectedFile: null,
  historyOffset: 0,
  historyTotal: 0,
  urls: new Set(), // object URLs belonging to the current analysis
  layerUrls: new Map(), // label -> object URL of its heatmap layer
  imageUrl: null,
  imageAbort: null,
  heatmapLabel: "",
  view: { scale: 1, x: 0, y: 0, baseW: 0, baseH: 0, naturalW: 0, naturalH: 0 },
  chatBusy: false,
  citationTrigger: null,
};

function track(url) {
  state.urls.add(url);
  return url;
}

function releaseAnalysisResources() {
  if (state.imageAbort) state.imageAbort.abort();
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls.clear();
  state.layerUrls.clear();
  state.imageUrl = null;
  state.heatmapLabel = "";
}

// ---------------------------------------------------------------- screens

function showLogin(message) {
  releaseAnalysisResources();
  state.analysis = null;
  $("app-screen").hidden = true;
  $("app-nav").hidden = true;
  $("session").hidden = true;
  $("result").hidden = true;
  $("login-screen").hidden = false;
  $("password").value = "";
  setStatus("");
  if (message) showError(message);
  $("username").focus();
}

function sessionExpired() {
  tokens.clear();
  showLogin("Your session has expired. Please sign in again.");
}

async function showApp() {
  const user = tokens.user;
  $("login-screen").hidden = true;
  $("app-screen").hidden = false;
  $("app-nav").hidden = false;
  $("session").hidden = false;
  $("session-user").textContent = user ? `Signed in as ${user.username} (${user.role})` : "";
  const models = loadModels();
  const history = loadHistory(true);
  const current = sessionStorage.getItem(KEYS.current);
  await Promise.allSettled([models, history]);
  if (current && !state.analysis) {
    openAnalysis(current, { focus: false }).catch(() => sessionStorage.removeItem(KEYS.current));
  }
}

// ---------------------------------------------------------------- login and logout

async function onLogin(event) {
  event.preventDefault();
  clearError();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    showError("Enter your username and password.");
    (username ? $("password") : $("username")).focus();
    return;
  }
  const button = $("login-button");
  button.disabled = true;
  setStatus("Signing in…");
  try {
    const response = await fetch(`${API}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ username, password }),
    });
    if (!response.ok) throw await errorFrom(response);
    tokens.store(await response.json());
    $("password").value = "";
    setStatus(`Signed in as ${username}.`);
    await showApp();
    $("file-input").focus();
  } catch (error) {
    reportError(error, "Sign-in failed");
    $("password").focus();
  } finally {
    button.disabled = false;
  }
}

async function onLogout() {
  const refresh = tokens.refresh;
  const access = tokens.access;
  tokens.clear();
  clearError();
  if (refresh) {
    const headers = { "Content-Type": "application/json" };
    if (access) headers.Authorization = `Bearer ${access}`;
    try {
      await fetch(`${API}/auth/logout`, { method: "POST", headers, body: JSON.stringify({ refresh_token: refresh }) });
    } catch {
      // The tokens are gone from this browser either way.
    }
  }
  $("history-list").replaceChildren();
  $("chat-answers").replaceChildren();
  showLogin();
  setStatus("You have been logged out.");
}

// ---------------------------------------------------------------- models

async function loadModels() {
  try {
    state.models = await getJSON("models");
  } catch (error) {
    reportError(error, "Could not load the list of models");
    return;
  }
  const select = $("model");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "Automatic (default)"));
  for (const model of state.models) {
    const suffix = model.demonstration ? " (demonstration)" : "";
    select.append(el("option", { value: model.name }, `${model.name} ${model.version}${suffix}`));
  }
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  describeModel();
}

function describeModel() {
  const model = state.models.find((m) => m.name === $("model").value);
  const help = $("model-help");
  if (!model) {
    help.textContent = "Sahay picks a model that fits the image.";
    return;
  }
  const parts = [];
  if (model.modalities && model.modalities.length) parts.push(`For ${model.modalities.join(", ")}`);
  if (model.body_part) parts.push(model.body_part);
  if (model.demonstration) parts.unshift("Demonstration model");
  let text = parts.join(", ");
  if (model.intended_use) text += `${text ? ". " : ""}${model.intended_use}`;
  help.textContent = text;
}

// ---------------------------------------------------------------- upload

function chooseFile(file) {
  state.selectedFile = file || null;
  $("file-chosen").textContent = file
    ? `Chosen: ${file.name} (${(file.size / 1024).toFixed(0)} KB)`
    : "No file chosen.";
}

function setAnalysing(busy) {
  const button = $("analyze-button");
  button.disabled = busy;
  button.textContent = busy ? "Analysing…" : "Analyse";
  $("progress").hidden = !busy;
  $("upload-form").setAttribute("aria-busy", busy ? "true" : "false");
}

async function onAnalyse(event) {
  event.preventDefault();
  clearError();
  const file = state.selectedFile || $("file-input").files[0];
  if (!file) {
    showError("Choose an image file first (DICOM, PNG, JPEG or TIFF).");
    $("file-input").focus();
    return;
  }
  const form = new FormData();
  form.append("image", file, file.name);
  const notes = $("notes").value;
  if (notes.trim()) form.append("notes", notes);
  const model = $("model").value;
  if (model) form.append("model", model);

  setAnalysing(true);
  setStatus(`Analysing ${file.name}. This can take up to a minute.`);
  try {
    const response = await checked(await apiFetch("analyses", { method: "POST", body: form }));
    const analysis = response.status === 202 ? await waitForJob(await response.json()) : await response.json();
    renderAnalysis(analysis);
    const positives = analysis.findings.filter((f) => f.positive).length;
    setStatus(
      `Analysis finished: ${positives} positive finding${positives === 1 ? "" : "s"} of ${analysis.findings.length}.`,
    );
    loadHistory(true);
    $("result").focus();
  } catch (error) {
    reportError(error, "The analysis failed");
  } finally {
    setAnalysing(false);
  }
}

/** Some explanation methods run as a background job (202): poll it, then fetch the analysis. */
async function waitForJob(job) {
  for (;;) {
    if (job.status === "done") return getJSON(`analyses/${encodeURIComponent(job.analysis_id)}`);
    if (job.status === "failed") throw new ApiError(422, job.error || "The analysis failed.");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    job = await getJSON(`jobs/${encodeURIComponent(job.id)}`);
  }
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("file-input");
  input.addEventListener("change", () => chooseFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragover");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragover");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragover");
    const files = event.dataTransfer.files;
    if (!files || !files.length) return;
    try {
      input.files = files;
    } catch {
      // Older browsers: the file is kept in state instead.
    }
    chooseFile(files[0]);
  });
  // A file dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

// ---------------------------------------------------------------- history

async function loadHistory(reset) {
  if (reset) state.historyOffset = 0;
  let page;
  try {
    page = await getJSON(`analyses?limit=${HISTORY_PAGE}&offset=${state.historyOffset}`);
  } catch (error) {
    reportError(error, "Could not load the history");
    return;
  }
  const list = $("history-list");
  if (reset) list.replaceChildren();
  for (const item of page.items) list.append(historyItem(item));
  state.historyOffset += page.items.length;
  state.historyTotal = page.total;
  $("history-empty").hidden = page.total > 0;
  $("history-more").hidden = state.historyOffset >= page.total;
  markCurrentInHistory();
}

function historyItem(item) {
  const when = formatDate(item.created_at);
  const positives = item.positives && item.positives.length
    ? `Positive: ${item.positives.join(", ")}`
    : "No positive findings";
  const meta = [when, item.model, item.modality].filter(Boolean).join(" · ");
  const open = el(
    "button",
    { type: "button", class: "history-open", dataset: { id: item.id }, onclick: () => openAnalysis(item.id).catch(() => {}) },
    el("span", { class: "h-name" }, item.filename || item.id),
    el("span", { class: "h-meta" }, meta),
    el("span", { class: "h-pos" }, positives),
  );
  const remove = el(
    "button",
    {
      type: "button",
      class: "danger small",
      "aria-label": `Delete the analysis of ${item.filename || item.id} from ${when}`,
      onclick: () => deleteAnalysis(item),
    },
    "Delete",
  );
  return el("li", { dataset: { id: item.id } }, open, remove);
}

function markCurrentInHistory() {
  const current = state.analysis && state.analysis.id;
  for (const button of document.querySelectorAll(".history-open")) {
    if (button.dataset.id === current) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

async function openAnalysis(id, { focus = true } = {}) {
  clearError();
  setStatus("Loading the analysis…");
  try {
    const analysis = await getJSON(`analyses/${encodeURIComponent(id)}`);
    renderAnalysis(analysis);
    setStatus(`Showing the analysis of ${analysis.image.filename}.`);
    if (focus) $("result").focus();
  } catch (error) {
    reportError(error, "Could not open the analysis");
    throw error;
  }
}

async function deleteAnalysis(item) {
  const name = item.filename || item.id;
  if (!window.confirm(`Delete the analysis of ${name}? This cannot be undone.`)) return;
  clearError();
  try {
    await checked(await apiFetch(`analyses/${encodeURIComponent(item.id)}`, { method: "DELETE" }));
    if (state.analysis && state.analysis.id === item.id) closeAnalysis();
    setStatus(`Deleted the analysis of ${name}.`);
    await loadHistory(true);
  } catch (error) {
    reportError(error, "Could not delete the analysis");
  }
}

function closeAnalysis() {
  releaseAnalysisResources();
  state.analysis = null;
  sessionStorage.removeItem(KEYS.current);
  $("result").hidden = true;
  $("nav-result").hidden = true;
  markCurrentInHistory();
}

// ---------------------------------------------------------------- the result

function renderAnalysis(analysis) {
  releaseAnalysisResources();
  state.analysis = analysis;
  sessionStorage.setItem(KEYS.current, analysis.id);
  $("result").hidden = false;
  $("nav-result").hidden = false;

  const image = analysis.image;
  const model = analysis.model || {};
  $("result-title").textContent = `Result: ${image.filename}`;
  $("result-meta").textContent = [
    image.modality || (image.format || "").toUpperCase(),
    `${image.columns} × ${image.rows} px`,
    `model ${model.name} ${model.version}`,
    formatDate(analysis.created_at),
  ]
    .filter(Boolean)
    .join(" · ");

  const notice = $("demonstration-notice");
  notice.textContent = analysis.demonstration_notice || "";
  notice.hidden = !analysis.demonstration_notice;

  const warnings = $("warnings");
  warnings.replaceChildren(...(analysis.warnings || []).map((w) => el("li", {}, w)));
  warnings.hidden = !(analysis.warnings && analysis.warnings.length);

  renderFindings(analysis);
  renderViewer(analysis);
  renderNotes(analysis);
  renderChat(analysis);
  renderReports(analysis);
  loadSimilar(analysis);
  markCurrentInHistory();
}

function sortedFindings(analysis) {
  return [...analysis.findings].sort(
    (a, b) => Number(b.positive) - Number(a.positive) || b.probability - a.probability,
  );
}

/** A label that may wrap after underscores and slashes (long model label names). */
function breakable(text) {
  return text.split(/(?<=[_/])/).flatMap((part, i) => (i ? [el("wbr"), part] : [part]));
}

function renderFindings(analysis) {
  const body = $("findings").tBodies[0];
  body.replaceChildren();
  for (const finding of sortedFindings(analysis)) {
    const kind = finding.positive ? "positive" : "negative";
    const bar = el(
      "div",
      { class: "bar", "aria-hidden": "true" },
      el("div", { class: "bar-fill", style: { width: percent(finding.probability) } }),
      el("div", {
        class: "bar-threshold",
        style: { left: percent(finding.threshold) },
        title: `threshold ${percent(finding.threshold)}`,
      }),
    );
    const mapButton = finding.explanation
      ? el(
          "button",
          {
            type: "button",
            class: "secondary small",
            "aria-label": `Show the heatmap for ${finding.label}`,
            onclick: () => {
              $("heatmap-select").value = finding.label;
              selectHeatmap(finding.label);
              $("viewer").scrollIntoView({ block: "nearest" });
            },
          },
          "Map",
        )
      : "";
    body.append(
      el(
        "tr",
        { class: kind, dataset: { label: finding.label } },
        el("th", { scope: "row" }, breakable(finding.label)),
        el("td", {}, el("div", { class: "prob" }, el("span", { class: "prob-value" }, percent(finding.probability)), bar)),
        el("td", {}, percent(finding.threshold)),
        el("td", {}, el("span", { class: `result-badge ${kind}` }, finding.positive ? "Positive" : "Negative")),
        el("td", {}, mapButton),
      ),
    );
  }
}

// ---------------------------------------------------------------- viewer

function isDicom(analysis) {
  return analysis.source_format === "dicom" || (analysis.image && analysis.image.format === "dicom");
}

function renderViewer(analysis) {
  const select = $("heatmap-select");
  select.replaceChildren(el("option", { value: "" }, "No heatmap"));
  const explained = sortedFindings(analysis).filter((f) => f.explanation);
  for (const finding of explained) {
    select.append(
      el("option", { value: finding.label }, `${finding.label} (${finding.positive ? "Positive" : "Negative"})`),
    );
  }
  select.disabled = explained.length === 0;
  const layer = $("heatmap-layer");
  layer.hidden = true;
  layer.removeAttribute("src");
  $("regions-layer").replaceChildren();
  $("explanation").replaceChildren(
    explained.length ? "" : el("p", { class: "muted" }, "This analysis has no heatmaps."),
  );
  setLayerOpacity();

  const image = analysis.image;
  state.view.naturalW = image.columns;
  state.view.naturalH = image.rows;
  $("regions-layer").setAttribute("viewBox", `0 0 ${image.columns} ${image.rows}`);
  fitStage();

  setUpWindowControls(analysis);
  loadImage();

  const first = explained[0];
  select.value = first ? first.label : "";
  selectHeatmap(select.value);
}

async function loadImage(windowing) {
  const analysis = state.analysis;
  if (!analysis) return;
  if (state.imageAbort) state.imageAbort.abort();
  const abort = new AbortController();
  state.imageAbort = abort;
  let path = `analyses/${encodeURIComponent(analysis.id)}/image`;
  if (windowing) {
    const query = new URLSearchParams({
      window_center: String(windowing.center),
      window_width: String(windowing.width),
    });
    path += `?${query}`;
  }
  $("viewer-loading").hidden = false;
  try {
    const url = track(await getBlobURL(path, { signal: abort.signal }));
    if (state.analysis !== analysis || abort.signal.aborted) {
      URL.revokeObjectURL(url);
      return;
    }
    const img = $("viewer-image");
    const previous = state.imageUrl;
    state.imageUrl = url;
    img.src = url;
    img.alt = `The analysed image, ${analysis.image.filename}`;
    if (previous) {
      img.addEventListener(
        "load",
        () => {
          URL.revokeObjectURL(previous);
          state.urls.delete(previous);
        },
        { once: true },
      );
    }
  } catch (error) {
    reportError(error, "Could not load the image");
  } finally {
    if (state.imageAbort === abort) $("viewer-loading").hidden = true;
  }
}

async function selectHeatmap(label) {
  state.heatmapLabel = label;
  const analysis = state.analysis;
  const layer = $("heatmap-layer");
  const finding = analysis && analysis.findings.find((f) => f.label === label);
  drawRegions(finding);
  describeExplanation(finding);
  if (!finding || !finding.explanation) {
    layer.hidden = true;
    layer.removeAttribute("src");
    return;
  }
  try {
    let url = state.layerUrls.get(label);
    if (!url) {
      const path = `analyses/${encodeURIComponent(analysis.id)}/heatmaps/${encodeURIComponent(label)}/layer`;
      url = track(await getBlobURL(path));
      if (state.analysis !== analysis) return;
      state.layerUrls.set(label, url);
    }
    if (state.heatmapLabel !== label) return;
    layer.src = url;
    layer.alt = "";
    layer.hidden = false;
    setLayerOpacity();
  } catch (error) {
    reportError(error, `Could not load the heatmap for ${label}`);
  }
}

function setLayerOpacity() {
  const value = Number($("opacity").value);
  $("heatmap-layer").style.opacity = String(value / 100);
  $("opacity-value").textContent = `${value}%`;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawRegions(finding) {
  const layer = $("regions-layer");
  layer.replaceChildren();
  const regions = (finding && finding.explanation && finding.explanation.regions) || [];
  layer.hidden = !$("show-regions").checked || regions.length === 0;
  const { naturalW, naturalH } = state.view;
  const size = Math.max(10, Math.round(Math.min(naturalW, naturalH) / 24));
  for (const region of regions) {
    const [x, y, w, h] = region.box;
    const group = svg("g", { class: "region", "data-index": region.index });
    group.append(svg("title", {}, `Region ${region.index}: ${region.location}`));
    group.append(svg("rect", { x, y, width: w, height: h }));
    const labelWidth = size * (0.75 + 0.6 * String(region.index).length);
    const labelY = y >= size * 1.3 ? y - size * 1.3 : y;
    group.append(svg("rect", { class: "region-label-bg", x, y: labelY, width: labelWidth, height: size * 1.3 }));
    group.append(
      svg("text", { x: x + size * 0.35, y: labelY + size * 1.02, "font-size": size }, String(region.index)),
    );
    layer.append(group);
  }
}

function describeExplanation(finding) {
  const box = $("explanation");
  if (!finding || !finding.explanation) {
    const any = state.analysis && state.analysis.findings.some((f) => f.explanation);
    box.replaceChildren(
      any ? el("p", { class: "muted" }, "No heatmap shown.") : el("p", { class: "muted" }, "This analysis has no heatmaps."),
    );
    return;
  }
  const explanation = finding.explanation;
  const parts = [
    el("p", {}, el("strong", {}, `${finding.label}: ${explanation.method_title}. `), explanation.summary || ""),
  ];
  if (explanation.class_specific === false) {
    parts.push(el("p", { class: "muted" }, "This method gives every finding the same map."));
  }
  if (explanation.regions && explanation.regions.length) {
    parts.push(
      el(
        "ol",
        { "aria-label": "Regions" },
        explanation.regions.map((r) =>
          el("li", { value: r.index }, `${r.location} (${percent(r.mass_share)} of the map's weight)`),
        ),
      ),
    );
  }
  if (explanation.faithfulness) {
    const f = explanation.faithfulness;
    parts.push(
      el(
        "p",
        { class: "muted" },
        `Faithfulness score ${f.score.toFixed(2)} (deletion ${f.deletion_auc.toFixed(2)}, insertion ${f.insertion_auc.toFixed(2)}; higher is more faithful).`,
      ),
    );
  }
  parts.push(el("p", { class: "muted" }, "A heatmap shows where the model looked, not where disease is."));
  box.replaceChildren(...parts);
}

// Zoom and pan: the stage holds the image, the heatmap layer and the regions, and moves as one.

function fitStage() {
  const viewer = $("viewer");
  const v = state.view;
  if (!v.naturalW || !v.naturalH) return;
  const vw = viewer.clientWidth || 1;
  const vh = viewer.clientHeight || 1;
  const fit = Math.min(vw / v.naturalW, vh / v.naturalH);
  v.baseW = v.naturalW * fit;
  v.baseH = v.naturalH * fit;
  const stage = $("viewer-stage");
  stage.style.width = `${v.baseW}px`;
  stage.style.height = `${v.baseH}px`;
  resetView();
}

function resetView() {
  const viewer = $("viewer");
  const v = state.view;
  v.scale = 1;
  v.x = (viewer.clientWidth - v.baseW) / 2;
  v.y = (viewer.clientHeight - v.baseH) / 2;
  applyView();
}

function applyView() {
  const viewer = $("viewer");
  const v = state.view;
  const w = v.baseW * v.scale;
  const h = v.baseH * v.scale;
  const vw = viewer.clientWidth;
  const vh = viewer.clientHeight;
  // Keep the image overlapping the middle of the viewport, so it cannot be lost off screen.
  v.x = Math.min(Math.max(v.x, vw / 2 - w), vw / 2);
  v.y = Math.min(Math.max(v.y, vh / 2 - h), vh / 2);
  $("viewer-stage").style.transform = `translate(${v.x}px, ${v.y}px) scale(${v.scale})`;
}

function zoomAt(factor, cx, cy) {
  const v = state.view;
  const scale = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, v.scale * factor));
  if (scale === v.scale) return;
  v.x = cx - ((cx - v.x) * scale) / v.scale;
  v.y = cy - ((cy - v.y) * scale) / v.scale;
  v.scale = scale;
  if (scale === MIN_ZOOM) {
    resetView();
    return;
  }
  applyView();
}

function zoomCentre(factor) {
  const viewer = $("viewer");
  zoomAt(factor, viewer.clientWidth / 2, viewer.clientHeight / 2);
}

function panBy(dx, dy) {
  state.view.x += dx;
  state.view.y += dy;
  applyView();
}

function setUpViewer() {
  const viewer = $("viewer");
  viewer.addEventListener(
    "wheel",
    (event) => {
      if (!state.analysis) return;
      event.preventDefault();
      const rect = viewer.getBoundingClientRect();
      zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - rect.left, event.clientY - rect.top);
    },
    { passive: false },
  );
  let drag = null;
  viewer.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    drag = { id: event.pointerId, x: event.clientX, y: event.clientY };
    viewer.setPointerCapture(event.pointerId);
    viewer.classList.add("dragging");
  });
  viewer.addEventListener("pointermove", (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    panBy(event.clientX - drag.x, event.clientY - drag.y);
    drag.x = event.clientX;
    drag.y = event.clientY;
  });
  const endDrag = (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    drag = null;
    viewer.classList.remove("dragging");
  };
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);
  viewer.addEventListener("keydown", (event) => {
    const step = 40;
    const actions = {
      ArrowLeft: () => panBy(step, 0),
      ArrowRight: () => panBy(-step, 0),
      ArrowUp: () => panBy(0, step),
      ArrowDown: () => panBy(0, -step),
      "+": () => zoomCentre(1.25),
      "=": () => zoomCentre(1.25),
      "-": () => zoomCentre(1 / 1.25),
      0: () => resetView(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  $("zoom-in").addEventListener("click", () => zoomCentre(1.25));
  $("zoom-out").addEventListener("click", () => zoomCentre(1 / 1.25));
  $("zoom-reset").addEventListener("click", resetView);
  $("opacity").addEventListener("input", setLayerOpacity);
  $("heatmap-select").addEventListener("change", (event) => selectHeatmap(event.target.value));
  $("show-regions").addEventListener("change", () => {
    const finding = state.analysis && state.analysis.findings.find((f) => f.label === state.heatmapLabel);
    drawRegions(finding);
  });
  $("viewer-image").addEventListener("load", () => {
    const img = $("viewer-image");
    const v = state.view;
    if (img.naturalWidth && (img.naturalWidth !== v.naturalW || img.naturalHeight !== v.naturalH)) {
      v.naturalW = img.naturalWidth;
      v.naturalH = img.naturalHeight;
      fitStage();
    }
  });
  window.addEventListener(
    "resize",
    debounce(() => {
      if (state.analysis) fitStage();
    }, 150),
  );
}

// Window and level, for DICOM: the server renders the image again with the chosen window.

function windowRange(analysis) {
  const image = analysis.image;
  let lo;
  let hi;
  if ((image.modality || "").toUpperCase() === "CT") {
    lo = -1024;
    hi = 3071;
  } else if (image.bits_stored) {
    lo = 0;
    hi = 2 ** image.bits_stored - 1;
  } else {
    lo = 0;
    hi = 4095;
  }
  const [center, width] = image.window || [null, null];
  if (center !== null && width !== null) {
    lo = Math.min(lo, Math.floor(center - width));
    hi = Math.max(hi, Math.ceil(center + width));
  }
  return {
    lo,
    hi,
    center: center ?? Math.round((lo + hi) / 2),
    width: width ?? hi - lo,
  };
}

function setUpWindowControls(analysis) {
  const box = $("window-controls");
  box.hidden = !isDicom(analysis);
  if (box.hidden) return;
  const range = windowRange(analysis);
  const center = $("window-center");
  const width = $("window-width");
  center.min = String(range.lo);
  center.max = String(range.hi);
  width.min = "1";
  width.max = String(Math.max(2, (range.hi - range.lo) * 2));
  center.value = String(Math.round(range.center));
  width.value = String(Math.round(range.width));
  showWindowValues();
}

function showWindowValues() {
  $("window-center-value").textContent = $("window-center").value;
  $("window-width-value").textContent = $("window-width").value;
}

const reloadWindowed = debounce(() => {
  loadImage({ center: Number($("window-center").value), width: Number($("window-width").value) });
}, WINDOW_DEBOUNCE_MS);

function setUpWindowing() {
  for (const id of ["window-center", "window-width"]) {
    $(id).addEventListener("input", () => {
      showWindowValues();
      reloadWindowed();
    });
  }
  $("window-reset").addEventListener("click", () => {
    if (!state.analysis) return;
    setUpWindowControls(state.analysis);
    loadImage();
  });
}

// ---------------------------------------------------------------- notes

function entityStatus(entity) {
  if (entity.negated) return { cls: "negated", text: "negated" };
  if (entity.uncertain) return { cls: "uncertain", text: "uncertain" };
  if (entity.hypothetical) return { cls: "uncertain", text: "hypothetical" };
  if (entity.family) return { cls: "historical", text: "family history" };
  if (entity.historical) return { cls: "historical", text: "historical" };
  return { cls: "affirmed", text: "affirmed" };
}

function renderNotes(analysis) {
  const section = $("notes-section");
  const text = analysis.notes_text;
  const reading = analysis.notes;
  section.hidden = !text && !reading;
  if (section.hidden) return;

  const paragraph = $("notes-text");
  paragraph.replaceChildren();
  if (text) {
    const entities = [...((reading && reading.entities) || [])].sort((a, b) => a.start - b.start || b.end - a.end);
    let position = 0;
    for (const entity of entities) {
      if (entity.start < position || entity.end > text.length || entity.end <= entity.start) continue;
      paragraph.append(text.slice(position, entity.start));
      const status = entityStatus(entity);
      paragraph.append(
        el(
          "mark",
          { class: `entity ${status.cls}`, title: `${entity.concept}: ${status.text}`, dataset: { status: status.cls } },
          text.slice(entity.start, entity.end),
          el("span", { class: "visually-hidden" }, ` (${entity.concept}, ${status.text})`),
        ),
      );
      position = entity.end;
    }
    paragraph.append(text.slice(position));
  } else {
    paragraph.textContent = "The note's text is not stored with this analysis.";
  }

  const fusion = analysis.fusion;
  const fusionBox = $("fusion");
  fusionBox.replaceChildren();
  if (fusion && fusion.findings && fusion.findings.length) {
    fusionBox.append(
      el("h4", {}, "Image and notes together"),
      el(
        "ul",
        {},
        fusion.findings.map((f) =>
          el("li", {}, el("span", { class: "assessment" }, `${f.label}: ${f.assessment.replace(/-/g, " ")}`), ". ", f.explanation),
        ),
      ),
    );
  }
  if (fusion && fusion.flags && fusion.flags.length) {
    fusionBox.append(
      el("h4", {}, "Flags"),
      el(
        "ul",
        {},
        fusion.flags.map((flag) =>
          el(
            "li",
            {},
            flag.text,
            (flag.sources || []).length ? " Sources: " : "",
            (flag.sources || []).map((s, i) => [
              i ? ", " : "",
              el("a", { href: s.url, target: "_blank", rel: "noopener noreferrer" }, s.title),
            ]),
          ),
        ),
      ),
    );
  }
  const discordances = (fusion && fusion.discordances) || [];
  $("discordances").replaceChildren(...discordances.map((d) => el("li", {}, d)));
  $("discordances-box").hidden = discordances.length === 0;
}

// ---------------------------------------------------------------- chat

function renderChat(analysis) {
  $("chat-answers").replaceChildren();
  closeCitation();
  $("chat-question").value = "";
  loadChat(analysis);
}

async function loadChat(analysis) {
  try {
    const body = await getJSON(`analyses/${encodeURIComponent(analysis.id)}/chat`);
    if (state.analysis !== analysis) return;
    for (const message of body.messages || []) {
      if (message.role === "user") addUserMessage(message.text, message.author);
      else {
        const item = addAssistantMessage();
        if (message.answer) renderAnswer(item, message.answer);
        else item.querySelector(".text").textContent = message.text;
      }
    }
  } catch (error) {
    reportError(error, "Could not load the conversation");
  }
}

function addUserMessage(text, author = null) {
  // An administrator may have asked about this analysis: name anyone who is not the reader.
  const who = author && author !== tokens.user?.username ? author : "You";
  const item = el("li", { class: "user" }, el("span", { class: "who" }, who), el("p", { class: "text" }, text));
  $("chat-answers").append(item);
  scrollChat();
  return item;
}

function addAssistantMessage() {
  const item = el("li", { class: "assistant" }, el("span", { class: "who" }, "Sahay"), el("p", { class: "text" }));
  $("chat-answers").append(item);
  scrollChat();
  return item;
}

function scrollChat() {
  const list = $("chat-answers");
  list.scrollTop = list.scrollHeight;
}

/** The answer text with each [n] or [An] marker as a button that opens the cited passage. */
function renderAnswer(item, answer) {
  const text = item.querySelector(".text");
  text.replaceChildren();
  const source = answer.answer || "";
  const pattern = /\[(A?\d+)\]/g;
  let position = 0;
  for (const match of source.matchAll(pattern)) {
    const marker = match[1];
    const cited = findCitation(answer, marker);
    if (!cited) continue;
    text.append(source.slice(position, match.index));
    text.append(
      el(
        "button",
        {
          type: "button",
          class: "cite",
          "aria-label": `Citation ${marker}: ${cited.title}`,
          "aria-controls": "citation-box",
          "aria-expanded": "false",
          dataset: { cite: marker },
          onclick: (event) => openCitation(cited, event.currentTarget),
        },
        `[${marker}]`,
      ),
    );
    position = match.index + match[0].length;
  }
  text.append(source.slice(position));
  for (const old of item.querySelectorAll(".answer-disclaimer, .removed")) old.remove();
  if (answer.removed && answer.removed.length) {
    const n = answer.removed.length;
    item.append(
      el(
        "p",
        { class: "removed" },
        `${n} sentence${n === 1 ? " was" : "s were"} left out because ${n === 1 ? "it" : "they"} could not be checked against the sources.`,
      ),
    );
  }
  if (answer.disclaimer) item.append(el("p", { class: "answer-disclaimer" }, answer.disclaimer));
  item.removeAttribute("aria-busy");
  scrollChat();
}

function findCitation(answer, marker) {
  if (marker.startsWith("A")) {
    for (const sentence of answer.sentences || []) {
      for (const evidence of sentence.evidence || []) {
        if (evidence.type === "analysis" && String(evidence.id) === marker) {
          return { kind: "analysis", marker, title: "From this analysis", field: evidence.field, passage: evidence.text };
        }
      }
    }
    return null;
  }
  const citation = (answer.citations || []).find((c) => String(c.id) === marker);
  if (citation) return { kind: "passage", marker, ...citation };
  for (const sentence of answer.sentences || []) {
    for (const evidence of sentence.evidence || []) {
      if (evidence.type === "passage" && String(evidence.id) === marker) {
        return { kind: "passage", marker, title: evidence.document, document: evidence.document, passage: evidence.text, sources: [] };
      }
    }
  }
  return null;
}

function openCitation(cited, trigger) {
  if (state.citationTrigger) state.citationTrigger.setAttribute("aria-expanded", "false");
  state.citationTrigger = trigger;
  trigger.setAttribute("aria-expanded", "true");
  $("citation-title").textContent = `[${cited.marker}] ${cited.title || "Citation"}`;
  const body = $("citation-body");
  const parts = [];
  if (cited.kind === "analysis") {
    if (cited.field) parts.push(el("p", { class: "muted" }, `Field: ${cited.field}`));
  } else {
    if (cited.section) parts.push(el("p", { class: "citation-section" }, el("strong", {}, "Section: "), cited.section));
    if (cited.document) parts.push(el("p", { class: "muted" }, `Knowledge-base article: ${cited.document}`));
  }
  parts.push(el("blockquote", { class: "citation-passage" }, cited.passage || ""));
  const sources = cited.sources || [];
  if (sources.length) {
    parts.push(
      el("h5", {}, "Sources"),
      el(
        "ul",
        { class: "citation-sources" },
        sources.map((s) =>
          el(
            "li",
            {},
            s.url ? el("a", { href: s.url, target: "_blank", rel: "noopener noreferrer" }, s.title) : s.title,
            [s.publisher, s.year].filter(Boolean).length ? ` (${[s.publisher, s.year].filter(Boolean).join(", ")})` : "",
          ),
        ),
      ),
    );
  }
  body.replaceChildren(...parts);
  const box = $("citation-box");
  box.hidden = false;
  box.closest(".chat-layout").classList.add("with-citation");
  box.focus();
}

function closeCitation() {
  const box = $("citation-box");
  box.hidden = true;
  box.closest(".chat-layout").classList.remove("with-citation");
  const trigger = state.citationTrigger;
  state.citationTrigger = null;
  if (trigger) {
    trigger.setAttribute("aria-expanded", "false");
    if (trigger.isConnected) trigger.focus();
  }
}

/** Read a text/event-stream body; calls onEvent(name, data) for each event. */
async function readEventStream(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length && name === "message") return;
    let parsed = null;
    try {
      parsed = data.length ? JSON.parse(data.join("\n")) : {};
    } catch {
      parsed = { text: data.join("\n") };
    }
    onEvent(name, parsed);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) !== -1) {
      dispatch(buffer.slice(0, boundary));
      buffer = buffer.slice(boundary + 2);
    }
  }
  buffer += decoder.decode().replace(/\r\n?/g, "\n");
  if (buffer.trim()) dispatch(buffer);
}

async function onAsk(event) {
  event.preventDefault();
  const analysis = state.analysis;
  const input = $("chat-question");
  const question = input.value.trim();
  if (!analysis || state.chatBusy) return;
  if (!question) {
    showError("Type a question first.");
    input.focus();
    return;
  }
  clearError();
  state.chatBusy = true;
  const send = $("chat-send");
  send.disabled = true;
  input.value = "";
  addUserMessage(question);
  const item = addAssistantMessage();
  item.setAttribute("aria-busy", "true");
  const text = item.querySelector(".text");
  text.textContent = "…";
  let streamed = "";
  let finished = false;
  setStatus("Sahay is answering…");
  try {
    const response = await checked(
      await apiFetch(`analyses/${encodeURIComponent(analysis.id)}/chat`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ question }),
      }),
    );
    await readEventStream(response, (name, data) => {
      if (name === "token") {
        streamed += data.text || "";
        text.textContent = streamed;
        scrollChat();
      } else if (name === "answer") {
        finished = true;
        renderAnswer(item, data);
      } else if (name === "error") {
        finished = true;
        item.classList.add("error-item");
        item.removeAttribute("aria-busy");
        text.textContent = data.detail || "The answer could not be completed.";
        showError(data.detail || "The answer could not be completed.");
      }
    });
    if (!finished) {
      item.removeAttribute("aria-busy");
      text.textContent = streamed || "No answer came back.";
      item.append(el("p", { class: "removed" }, "The answer was cut off before it was checked."));
    }
    setStatus(finished && !item.classList.contains("error-item") ? "Answer received." : "");
  } catch (error) {
    item.classList.add("error-item");
    item.removeAttribute("aria-busy");
    text.textContent = error instanceof ApiError ? error.message : "The question could not be sent.";
    reportError(error, "The question could not be answered");
  } finally {
    state.chatBusy = false;
    send.disabled = false;
    input.focus();
  }
}

// ---------------------------------------------------------------- reports

function renderReports(analysis) {
  const box = $("reports");
  box.replaceChildren();
  for (const report of REPORT_FORMATS) {
    if (report.dicom && !isDicom(analysis)) continue;
    box.append(
      el(
        "button",
        {
          type: "button",
          class: "secondary",
          dataset: { format: report.format },
          onclick: (event) => downloadReport(report, event.currentTarget),
        },
        `Download ${report.label}`,
      ),
    );
  }
}

function filenameFrom(disposition) {
  if (!disposition) return null;
  let match = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(disposition);
  if (match) {
    try {
      return decodeURIComponent(match[2].trim().replace(/^"|"$/g, ""));
    } catch {
      // fall through to the plain filename
    }
  }
  match = /filename\s*=\s*"([^"]*)"/i.exec(disposition) || /filename\s*=\s*([^;]+)/i.exec(disposition);
  return match ? match[1].trim() : null;
}

async function downloadReport(report, button) {
  const analysis = state.analysis;
  if (!analysis) return;
  clearError();
  button.disabled = true;
  setStatus(`Preparing the ${report.label}…`);
  try {
    const response = await checked(
      await apiFetch(`analyses/${encodeURIComponent(analysis.id)}/reports/${report.format}`),
    );
    const fallback = `sahay-${analysis.id}-${report.format}.${report.ext}`;
    const name = (filenameFrom(response.headers.get("Content-Disposition")) || fallback).replace(/[\\/]/g, "_");
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    setStatus(`Downloaded ${name}.`);
  } catch (error) {
    reportError(error, `Could not download the ${report.label}`);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- similar cases

async function loadSimilar(analysis) {
  const box = $("similar");
  box.replaceChildren(el("p", { class: "muted" }, "Looking for similar cases…"));
  let body;
  try {
    body = await getJSON(`analyses/${encodeURIComponent(analysis.id)}/similar?k=5`);
  } catch (error) {
    if (state.analysis !== analysis || error instanceof SessionExpired) return;
    const short =
      error instanceof ApiError && error.status === 503
        ? "Similar-case search is not available on this server."
        : "Similar cases could not be loaded.";
    box.replaceChildren(
      el("p", { class: "muted" }, short),
      el("details", {}, el("summary", {}, "Details"), el("p", {}, error.message || String(error))),
    );
    return;
  }
  if (state.analysis !== analysis) return;
  const items = body.items || [];
  if (!items.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No similar cases in the case library."));
    return;
  }
  box.replaceChildren(
    el(
      "table",
      {},
      el("caption", { class: "visually-hidden" }, "Similar cases, most similar first"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ["Case", "Similarity", "Diagnosis", "Modality", "Labels", "Added"].map((h) => el("th", { scope: "col" }, h)),
        ),
      ),
      el(
        "tbody",
        {},
        items.map((c) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, c.case_id),
            el("td", {}, typeof c.score === "number" ? c.score.toFixed(2) : ""),
            el("td", {}, c.diagnosis || "not recorded"),
            el("td", {}, c.modality || ""),
            el("td", {}, (c.labels || []).join(", ")),
            el("td", {}, formatDate(c.created_at)),
          ),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------- start

function setUp() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("upload-form").addEventListener("submit", onAnalyse);
  $("model").addEventListener("change", describeModel);
  $("history-more").addEventListener("click", () => loadHistory(false));
  $("chat-form").addEventListener("submit", onAsk);
  $("chat-question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("citation-close").addEventListener("click", closeCitation);
  $("citation-box").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeCitation();
  });
  setUpDropZone();
  setUpViewer();
  setUpWindowing();
  describeModel();
}

async function start() {
  setUp();
  if (!tokens.access) {
    showLogin();
    return;
  }
  try {
    const me = await getJSON("users/me");
    sessionStorage.setItem(KEYS.user, JSON.stringify(me));
    await showApp();
  } catch (error) {
    if (!(error instanceof SessionExpired)) {
      tokens.clear();
      showLogin();
      reportError(error);
    }
  }
}

start();
