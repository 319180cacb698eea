// modelwarden web page: keeping the page current: polling, GET /api/models and /api/status, the
// server-sent event stream.
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { $, EVENTS_RETRY_MS, POLL_BUSY_MS, POLL_LIVE_MS, POLL_OFFLINE_MS, api, el, showError, state } from './core.js';
import { renderAll, renderBanner, renderStatus, setConnection, upsertModel } from './cards.js';
import { renderPresets } from './register.js';
import { onPullEvent } from './pull.js';

// ------------------------------------------------------------ refresh --

export async function refreshModels() {
  try {
    const data = await api('GET', '/api/models');
    const list = data && Array.isArray(data.models) ? data.models : [];
    const seen = new Set();
    for (const m of list) {
      if (!m || typeof m.model_name !== 'string') continue;
      seen.add(m.model_name);
      state.models.set(m.model_name, m);
    }
    for (const name of [...state.models.keys()]) if (!seen.has(name)) state.models.delete(name);
    state.loadedOnce = true;
    showError($('models-error'), '');
    renderAll();
    if (state.details && !state.models.has(state.details.name)) $('details').close();
  } catch (e) {
    showError($('models-error'), `Could not read the model list: ${e.message}`);
  }
}

export async function refreshStatus() {
  try {
    state.status = await api('GET', '/api/status');
    renderStatus();
    renderBanner();
    renderPresets();
  } catch (e) {
    $('devices').replaceChildren(el('li', { className: 'muted', text: `Status unavailable: ${e.message}` }));
  }
}

export function schedulePoll() {
  clearTimeout(state.pollTimer);
  const busy = state.pending.size > 0
    || [...state.models.values()].some((m) => m.load_state === 'loading' || m.load_state === 'queued');
  const delay = state.eventsLive ? POLL_LIVE_MS : busy ? POLL_BUSY_MS : POLL_OFFLINE_MS;
  state.pollTimer = setTimeout(async () => {
    if (!document.hidden) await refreshModels();
    schedulePoll();
  }, delay);
}

// Opens the event stream, replacing any open one. EventSource cannot send
// headers, so the key goes in ?access_token= (accepted on this path only).
export function connectEvents() {
  if (!('EventSource' in window)) { setConnection(false); return; }
  clearTimeout(state.eventsRetry);
  if (state.source) state.source.close();
  const url = state.apiKey ? `/api/events?access_token=${encodeURIComponent(state.apiKey)}` : '/api/events';
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener('open', () => { setConnection(true); schedulePoll(); });
  source.addEventListener('error', () => {
    if (state.source !== source) return;
    setConnection(false);
    schedulePoll();
    // The browser retries by itself unless the stream was refused outright
    // (a 401 too: entering the key reconnects at once).
    if (source.readyState === EventSource.CLOSED) {
      state.eventsRetry = setTimeout(() => { if ($('auth').hidden) connectEvents(); }, EVENTS_RETRY_MS);
    }
  });
  source.addEventListener('pull', onPullEvent);  // SPEC §17: a pull's progress and end
  source.addEventListener('model', (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    upsertModel(m);
  });
  // SPEC §11: the environment went failing or ok again.
  source.addEventListener('environment', (ev) => {
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    if (!data || typeof data.environment !== 'object') return;
    if (state.status) state.status.environment = data.environment;
    renderBanner();
    refreshStatus();
  });
  source.addEventListener('status', (ev) => {
    // Counts come from the model list itself so that header and cards
    // never disagree; a status event only says that something changed.
    refreshStatus();
    // A delete sends no model event, only new counts: when they no longer
    // add up to the cards shown, re-read the list now, not at the next poll.
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    const counts = data && typeof data.counts === 'object' && data.counts ? data.counts : null;
    if (!counts) return;
    const total = Object.values(counts).reduce((sum, n) => sum + (Number(n) || 0), 0);
    if (total !== state.models.size) refreshModels();
  });
}
