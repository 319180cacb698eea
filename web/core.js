// modelwarden web page: the page's shared core: constants, state, HTTP (api, ApiError), DOM and
// format helpers, the warnings of SPEC §7, the API key.
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { statusSoon } from './cards.js';
import { connectEvents } from './events.js';

export const STATUSES = ['unknown', 'compatible', 'incompatible', 'degraded', 'testing'];
// A person may set any status but `testing` (SPEC §1 rule 5).
export const MANUAL_STATUSES = ['unknown', 'compatible', 'incompatible', 'degraded'];
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Banner rule: when the newest FAILURE_STREAK load outcomes known to the
// page are all failures, the machine is more likely at fault than the
// models. Each model contributes its last success (last_loaded_at) and its
// last failure (last_failed_at), so a streak of 3 failures means 3
// different models failed since anything last loaded successfully.
export const FAILURE_STREAK = 3;
export const POLL_LIVE_MS = 15000;   // fallback poll while live events flow
export const POLL_OFFLINE_MS = 3000; // poll while the event stream is down
export const POLL_BUSY_MS = 1000;    // poll while a load runs and events are down
export const STATUS_POLL_MS = 10000;
export const STATUS_SOON_MS = 300;   // re-read the status this long after a model (un)loaded
export const EVENTS_RETRY_MS = 5000;
// Where the API key is kept: this tab only, gone when it closes. The server
// never writes the key into the page; the user types it once per tab.
export const KEY_STORAGE = 'modelwarden.apiKey';

export const state = {
  models: new Map(),     // model_name -> model JSON
  cards: new Map(),      // model_name -> card elements
  pending: new Set(),    // names with a load request in flight from this page
  status: null,          // last GET /api/status
  loadedOnce: false,
  eventsLive: false,
  details: null,         // {name, opener, original:{status, notes, config}}
  pollTimer: 0,
  statusTimer: 0,        // statusSoon()
  apiKey: readStoredKey(), // '' when the server needs none (or none given yet)
  keyWaiters: [],        // resolvers of requests waiting for a key to be entered
  source: null,          // the EventSource in use
  eventsRetry: 0,
  cancelling: new Set(), // names whose load this page asked to cancel
  cancelsInFlight: new Set(), // names with an unload-to-cancel request in flight
  fits: new Map(),       // model_name -> {key, fit}: the memory estimate of GET /api/models/{name} (SPEC §18)
};

export const $ = (id) => document.getElementById(id);

// sessionStorage can be unavailable (storage disabled): the key then lasts
// as long as the page.
export function readStoredKey() {
  try { return sessionStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
}

export function storeKey(key) {
  state.apiKey = key;
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
  } catch { /* kept in memory only */ }
}

// ---------------------------------------------------------------- HTTP --

export class ApiError extends Error {
  constructor(httpStatus, code, message, body) {
    super(message);
    this.httpStatus = httpStatus;
    this.code = code;
    this.body = body;
  }
}

// One request, with the key if there is one; never retries.
export async function send(method, path, body, key) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (key) init.headers.Authorization = `Bearer ${key}`; // what the CLI sends
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the server (${e.message}).`, null);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const err = data && typeof data.error === 'object' && data.error ? data.error : {};
    const message = typeof err.message === 'string' && err.message
      ? err.message : `The server answered ${res.status} ${res.statusText}.`;
    throw new ApiError(res.status, err.code || `http_${res.status}`, message, data);
  }
  return data;
}

// A request of the page. On 401 unauthorized it waits for the user to
// enter a key the server accepts, then sends the request again (a refused
// request did nothing on the server, so sending it again is safe).
export async function api(method, path, body) {
  for (;;) {
    const key = state.apiKey;
    try {
      return await send(method, path, body, key);
    } catch (e) {
      if (e.httpStatus !== 401 || e.code !== 'unauthorized') throw e;
      // Another request may have brought a new key meanwhile: use it.
      if (state.apiKey === key) await waitForKey(key ? e.message : '');
    }
  }
}

export const modelUrl = (name) => `/api/models/${encodeURIComponent(name)}`;

// -------------------------------------------------------------- helpers --

// Creates an element; `text` always goes through textContent.
export function el(tag, opts = {}, children = []) {
  const node = document.createElement(tag);
  if (opts.className) node.className = opts.className;
  if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
  if (opts.title) node.title = opts.title;
  for (const child of children) if (child) node.append(child);
  return node;
}

export const str = (v) => (typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v));
export const validStatus = (s) => (STATUSES.includes(s) ? s : 'unknown');

export function firstLine(text) {
  const lines = str(text).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.length ? lines[0] : '';
}

export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function formatTime(iso) {
  if (!iso) return '';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? str(iso) : new Date(t).toLocaleString();
}

export function formatDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function setHidden(node, hidden) { node.hidden = hidden; }

// Bytes a loaded model holds, summed over its devices; null when unknown.
export function memoryUsed(m) {
  if (!Array.isArray(m.memory) || !m.memory.length) return null;
  let total = 0;
  for (const d of m.memory) {
    const n = Number(d && d.memory_used);
    if (Number.isFinite(n)) total += n;
  }
  return total;
}

export function showError(node, message) {
  node.textContent = message || '';
  node.hidden = !message;
}

export function toast(message, kind = 'info') {
  const box = el('div', { className: `toast toast-${kind}`, text: message });
  $('toasts').append(box);
  setTimeout(() => box.remove(), kind === 'error' ? 12000 : 6000);
}

// Parses a load_config editor's text: {ok, value} or {ok:false, message}.
export function parseConfig(text) {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, value: {} };
  let value;
  try {
    value = JSON.parse(trimmed);
  } catch (e) {
    return { ok: false, message: `load_config is not valid JSON: ${e.message}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, message: 'load_config must be a JSON object, like {"n_ctx": 2048}.' };
  }
  return { ok: true, value };
}

// Stable text of a JSON value, to tell whether an edit changed anything.
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

// ---------------------------------------------- warnings of SPEC §7 ----

export const notesText = (m) => str(m.compatibility_notes) || 'None';

// compat/state_machine.h kBadFileNotes: the notes of a file's fault (SPEC §18).
export const blamesFile = (m) => str(m.compatibility_notes).startsWith('The model file is bad: ');

export function incompatibleWarning(m) {
  if (blamesFile(m)) {
    return `⚠️ WARNING: "${m.model_name}" is marked as INCOMPATIBLE: its model file is bad!\n\n`
      + 'Loading this file failed before; replacing the file makes its verdict stale (then Retest).\n\n'
      + `Notes: ${notesText(m)}\n\n`
      + 'Do you want to retry loading anyway?';
  }
  return `⚠️ WARNING: "${m.model_name}" is marked as INCOMPATIBLE with this hardware!\n\n`
    + 'This model has failed to load previously and may crash the server.\n\n'
    + `Notes: ${notesText(m)}\n\n`
    + 'Do you want to retry loading anyway? (This will use force_load=true)';
}

export function degradedWarning(m) {
  return `⚠️ WARNING: "${m.model_name}" has DEGRADED compatibility!\n\n`
    + 'This model has loaded successfully before but recently failed.\n'
    + 'This might be a temporary issue (WSL/GPU reset needed).\n\n'
    + `Notes: ${notesText(m)}\n\n`
    + 'Do you want to try loading anyway?';
}

// Our own confirm(): resolves true only on the OK button. Cancel has the
// focus, so Enter or Esc never loads a risky model by accident.
export function confirmDialog(message, okLabel) {
  const dialog = $('confirm');
  $('confirm-message').textContent = message;
  $('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

// ------------------------------------------------------------ API key --

// Shows the key prompt (once, however many requests wait) and resolves
// when a key the server accepts has been entered. `rejected` is the
// server's message when the key in use was refused.
export function waitForKey(rejected) {
  if (rejected) storeKey('');
  const panel = $('auth');
  if (panel.hidden) {
    panel.hidden = false;
    $('auth-key').value = '';
    $('auth-key').focus();
  }
  if (rejected) showAuthError(rejected);
  return new Promise((resolve) => state.keyWaiters.push(resolve));
}

export function showAuthError(message) {
  showError($('auth-error'), message);
  if (message) $('auth-key').setAttribute('aria-invalid', 'true');
  else $('auth-key').removeAttribute('aria-invalid');
}

// Checks the typed key against the server before anything else uses it: a
// wrong key shows the server's own message and the prompt stays.
export async function submitKey(ev) {
  ev.preventDefault();
  const input = $('auth-key');
  const key = input.value.trim();
  if (!key) {
    showAuthError('Enter the API key.');
    input.focus();
    return;
  }
  const submit = $('auth-submit');
  submit.disabled = true;
  try {
    await send('GET', '/api/status', undefined, key);
  } catch (e) {
    showAuthError(e.httpStatus === 401 ? e.message : `Could not check the key: ${e.message}`);
    input.select();
    input.focus();
    return;
  } finally {
    submit.disabled = false;
  }
  storeKey(key);
  showAuthError('');
  input.value = '';
  $('auth').hidden = true;
  const waiters = state.keyWaiters.splice(0);
  for (const resolve of waiters) resolve();
  connectEvents(); // the stream was refused without the key
  $('models').focus();
}
