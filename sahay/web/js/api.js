// The Sahay API client: fetch with the bearer token, one shared refresh, errors as ApiError, and
// the chat's server-sent events. Nothing here touches the page.

const API = "/api/v1";
const KEYS = { access: "sahay.access_token", refresh: "sahay.refresh_token", user: "sahay.user" };
const JOB_POLL_MS = 1500;

export class ApiError extends Error {
  /** kind: the server's error kind ("out_of_domain", ...); plain: its message without API advice. */
  constructor(status, message, kind = null, plain = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.kind = kind;
    this.plain = plain || message;
  }
}

export class SessionExpired extends ApiError {
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
  const kind = body && typeof body.kind === "string" ? body.kind : null;
  const plain = body && typeof body.message === "string" ? body.message : null;
  return new ApiError(response.status, detailMessage(body, response.status), kind, plain);
}

// Session storage: the tokens last as long as the tab, and other tabs do not share them.
export const tokens = {
  get access() { return sessionStorage.getItem(KEYS.access); },
  get refresh() { return sessionStorage.getItem(KEYS.refresh); },
  get user() {
    try {
      return JSON.parse(sessionStorage.getItem(KEYS.user) || "null");
    } catch {
      return null;
    }
  },
  set user(user) { sessionStorage.setItem(KEYS.user, JSON.stringify(user)); },
  store(body) {
    sessionStorage.setItem(KEYS.access, body.access_token);
    if (body.refresh_token) sessionStorage.setItem(KEYS.refresh, body.refresh_token);
    if (body.user) this.user = body.user;
  },
  clear() {
    for (const key of Object.values(KEYS)) sessionStorage.removeItem(key);
  },
};

let expired = () => {};

/** Who to tell when the tokens are spent and cannot be refreshed (the UI goes back to sign-in). */
export function onSessionExpired(handler) {
  expired = handler;
}

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

/** fetch() with the access token; on a 401, refresh once and retry, else the session is over.
 * `send` replaces fetch where progress must be followed (uploads). */
export async function apiFetch(path, options = {}, send = fetch) {
  const url = path.startsWith("/") ? path : `${API}/${path}`;
  const response = await send(url, authorised(options));
  if (response.status !== 401) return response;
  if (await refreshTokens()) {
    const again = await send(url, authorised(options));
    if (again.status !== 401) return again;
  }
  tokens.clear();
  expired();
  throw new SessionExpired();
}

export async function checked(response) {
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJSON(path, options = {}) {
  const response = await checked(await apiFetch(path, { ...options, headers: { Accept: "application/json" } }));
  return response.json();
}

async function getBlobURL(path, options = {}) {
  const response = await checked(await apiFetch(path, options));
  return URL.createObjectURL(await response.blob());
}

const analysisPath = (id, rest = "") => `analyses/${encodeURIComponent(id)}${rest}`;

// ---------------------------------------------------------------- sign-in

export async function signIn(username, password) {
  const response = await fetch(`${API}/auth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams({ username, password }),
  });
  if (!response.ok) throw await errorFrom(response);
  tokens.store(await response.json());
}

/** Forget the tokens here and revoke the refresh token on the server (best effort). */
export async function signOut() {
  const refresh = tokens.refresh;
  const access = tokens.access;
  tokens.clear();
  if (!refresh) return;
  const headers = { "Content-Type": "application/json" };
  if (access) headers.Authorization = `Bearer ${access}`;
  try {
    await fetch(`${API}/auth/logout`, { method: "POST", headers, body: JSON.stringify({ refresh_token: refresh }) });
  } catch {
    // The tokens are gone from this browser either way.
  }
}

export const me = () => getJSON("users/me");

/** What this server offers: explanation methods, report formats, models and more. */
export const capabilities = () => getJSON("capabilities");

// ---------------------------------------------------------------- analyses

/** Upload an image; some explanation methods run as a background job (202), which is awaited.
 * onUpload(fraction) follows the upload (fetch cannot report it, so this one uses XHR). */
export async function analyse(form, onUpload = () => {}) {
  const send = (url, options) => sendWithUploadProgress(url, options, onUpload);
  const response = await checked(await apiFetch("analyses", { method: "POST", body: form }, send));
  return response.status === 202 ? waitForJob(await response.json()) : response.json();
}

/** fetch() for a request body, with XMLHttpRequest so that upload progress can be followed. */
function sendWithUploadProgress(url, options, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(options.method, url);
    xhr.responseType = "blob";
    options.headers.forEach((value, name) => xhr.setRequestHeader(name, value));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total) onUpload(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", () => onUpload(1));
    xhr.addEventListener("load", () => {
      const headers = new Headers();
      for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      resolve(new Response(xhr.response, { status: xhr.status, headers }));
    });
    // Like fetch: a network failure is a TypeError, which the page words as "could not reach".
    xhr.addEventListener("error", () => reject(new TypeError("network error")));
    xhr.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    xhr.send(options.body);
  });
}

async function waitForJob(job) {
  for (;;) {
    if (job.status === "done") return getAnalysis(job.analysis_id);
    if (job.status === "failed") {
      throw new ApiError(422, job.error || "The analysis failed.", job.error_kind, job.error_message);
    }
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    job = await getJSON(`jobs/${encodeURIComponent(job.id)}`);
  }
}

export const listAnalyses = (limit, offset) => getJSON(`analyses?limit=${limit}&offset=${offset}`);
export const getCase = (id) => getJSON(`cases/${encodeURIComponent(id)}`);
export const caseThumbnailURL = (id) => getBlobURL(`cases/${encodeURIComponent(id)}/thumbnail`);
export const getAnalysis = (id) => getJSON(analysisPath(id));
export const getChat = (id) => getJSON(analysisPath(id, "/chat"));
export const similarCases = (id, k) => getJSON(analysisPath(id, `/similar?k=${k}`));

export async function deleteAnalysis(id) {
  await checked(await apiFetch(analysisPath(id), { method: "DELETE" }));
}

/** The analysed image as an object URL; windowing ({center, width}) for greyscale DICOM. */
export function imageURL(id, windowing, signal) {
  let query = "";
  if (windowing) {
    query = `?${new URLSearchParams({
      window_center: String(windowing.center),
      window_width: String(windowing.width),
    })}`;
  }
  return getBlobURL(analysisPath(id, `/image${query}`), { signal });
}

export const heatmapLayerURL = (id, label) =>
  getBlobURL(analysisPath(id, `/heatmaps/${encodeURIComponent(label)}/layer`));

/** A report as {name, blob}; the name is the server's, else `fallback`, never a path. */
export async function downloadReport(id, format, fallback) {
  const response = await checked(await apiFetch(analysisPath(id, `/reports/${encodeURIComponent(format)}`)));
  const name = (filenameFrom(response.headers.get("Content-Disposition")) || fallback).replace(/[\\/]/g, "_");
  return { name, blob: await response.blob() };
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

// ---------------------------------------------------------------- chat

/** Ask a question; onEvent(name, data) gets each server-sent event (token, answer, error, done). */
export async function ask(id, question, onEvent) {
  const response = await checked(
    await apiFetch(analysisPath(id, "/chat"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ question }),
    }),
  );
  await readEventStream(response, onEvent);
}

/** Read a text/event-stream body; calls onEvent(name, data) for each event. */
async function readEventStream(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) !== -1) {
      emitEvent(buffer.slice(0, boundary), onEvent);
      buffer = buffer.slice(boundary + 2);
    }
  }
  buffer += decoder.decode().replace(/\r\n?/g, "\n");
  if (buffer.trim()) emitEvent(buffer, onEvent);
}

function emitEvent(block, onEvent) {
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
  let parsed;
  try {
    parsed = data.length ? JSON.parse(data.join("\n")) : {};
  } catch {
    parsed = { text: data.join("\n") };
  }
  onEvent(name, parsed);
}

// ---------------------------------------------------------------- administration

export const listUsers = () => getJSON("users");
export const auditLog = (limit) => getJSON(`audit?limit=${limit}`);

async function sendJSON(method, path, body) {
  const response = await checked(
    await apiFetch(path, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  return response.status === 204 ? null : response.json();
}

export const createUser = (username, password, role) => sendJSON("POST", "users", { username, password, role });
export const setUserActive = (id, active) =>
  sendJSON("POST", `users/${encodeURIComponent(id)}/${active ? "enable" : "disable"}`);
