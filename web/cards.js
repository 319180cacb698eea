// modelwarden web page: the model cards and the header (counts, status, memory, banner, connection).
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { $, FAILURE_STREAK, STATUSES, STATUS_SOON_MS, api, el, firstLine, formatBytes, formatTime, memoryUsed, setHidden, state, str, validStatus } from './core.js';
import { refreshStatus } from './events.js';
import { cancelLoad, loadModel, retestModel, unloadModel } from './loads.js';
import { onDetailsModelChanged, openDetails } from './details.js';

// --------------------------------------------------------------- cards --

export function cardFor(name) {
  let card = state.cards.get(name);
  if (card) return card;
  const li = $('card-template').content.firstElementChild.cloneNode(true);
  card = {
    li,
    name: li.querySelector('.model-name'),
    badge: li.querySelector('.badge'),
    hf: li.querySelector('.hf-path'),
    engine: li.querySelector('.engine'),
    loads: li.querySelector('.total-loads'),
    failures: li.querySelector('.total-failures'),
    loadState: li.querySelector('.load-state'),
    memoryItem: li.querySelector('.memory-item'),
    memory: li.querySelector('.memory'),
    progressWrap: li.querySelector('.progress-wrap'),
    progress: li.querySelector('.progress'),
    progressText: li.querySelector('.progress-text'),
    lastError: li.querySelector('.last-error'),
    load: li.querySelector('.load-btn'),
    unload: li.querySelector('.unload-btn'),
    cancel: li.querySelector('.cancel-btn'),
    // SPEC §11: a stale verdict's mark and the Retest button.
    stale: el('span', { className: 'chip stale-mark', text: 'stale verdict' }),
    // SPEC §18: a model that will not fit says so before anyone clicks Load.
    noFit: el('span', { className: 'chip no-fit-mark', text: "won't fit" }),
    retest: el('button', { className: 'btn retest-btn', text: 'Retest' }),
    // SPEC §19: when the health watch last stopped its engine for hanging.
    hung: el('span', { className: 'chip hung-mark' }),
  };
  card.stale.hidden = true;
  card.noFit.hidden = true;
  card.hung.hidden = true;
  card.retest.type = 'button';
  card.retest.hidden = true;
  card.badge.after(card.stale);
  card.stale.after(card.noFit);
  card.noFit.after(card.hung);
  card.cancel.after(card.retest);
  card.retest.addEventListener('click', () => retestModel(name));
  li.dataset.model = name;
  card.name.addEventListener('click', () => openDetails(name, card.name));
  card.load.addEventListener('click', () => loadModel(name));
  card.unload.addEventListener('click', () => unloadModel(name));
  card.cancel.addEventListener('click', () => cancelLoad(name));
  state.cards.set(name, card);
  return card;
}

export function renderCard(m) {
  const name = m.model_name;
  const card = cardFor(name);
  const status = validStatus(m.compatibility_status);
  const pending = state.pending.has(name);
  const loadState = str(m.load_state) || (m.loaded ? 'loaded' : 'idle');
  const busy = pending || loadState === 'queued' || loadState === 'loading' || status === 'testing';

  card.li.dataset.status = status;
  card.li.dataset.loadState = loadState;
  card.li.classList.toggle('is-loaded', Boolean(m.loaded));
  card.name.textContent = name;
  card.name.setAttribute('aria-label', `${name}: details`);
  card.badge.textContent = status;
  card.badge.className = `badge badge-${status}`;
  const stale = m.verdict_stale === true;
  setHidden(card.stale, !stale);
  card.stale.title = stale ? `This verdict was made in another environment: ${str(m.verdict_stale_reason)}` : '';
  setHidden(card.retest, !stale || busy || Boolean(m.loaded));
  const hungAt = str(m.last_hung_at);
  card.hung.textContent = hungAt ? `stopped for hanging ${formatTime(hungAt)}` : '';
  card.hung.title = hungAt ? 'The health watch stopped its engine: it answered nothing, or made no progress, for hang_timeout_s' : '';
  setHidden(card.hung, !hungAt);
  card.retest.disabled = busy;
  card.retest.setAttribute('aria-label', `Retest ${name}`);
  renderFit(card, m);
  // SPEC §18: where the model comes from: its Hugging Face path, else its file.
  card.hf.textContent = str(m.hf_path) || str(m.file_path) || 'no file';
  card.hf.classList.toggle('muted', !m.hf_path && !m.file_path);
  card.engine.textContent = str(m.engine) || 'llama.cpp';
  card.loads.textContent = String(m.total_loads ?? 0);
  card.failures.textContent = String(m.total_failures ?? 0);
  card.loadState.textContent = pending && loadState === 'idle' ? 'requested' : loadState;
  const memory = memoryUsed(m);
  // SPEC §15: per device, and how many layers went to a GPU.
  const perDevice = Array.isArray(m.memory) && m.memory.length > 1
    ? ` (${m.memory.map((d) => `${str(d.name)} ${formatBytes(Number(d.memory_used) || 0)}`).join(', ')})` : '';
  const layers = Number.isFinite(Number(m.n_layers)) && m.n_layers !== null
    ? ` · ${m.offloaded_layers}/${m.n_layers} layers on GPU` : '';
  card.memory.textContent = memory === null ? '' : formatBytes(memory) + perDevice + layers;
  setHidden(card.memoryItem, !m.loaded || memory === null);

  setHidden(card.progressWrap, !busy);
  if (busy) {
    const p = m.load_progress;
    if (typeof p === 'number' && Number.isFinite(p) && loadState === 'loading') {
      const clamped = Math.min(1, Math.max(0, p));
      card.progress.value = clamped;
      card.progressText.textContent = `${Math.round(clamped * 100)} %`;
    } else {
      card.progress.removeAttribute('value'); // indeterminate
      card.progressText.textContent = loadState === 'queued' ? 'queued' : 'loading…';
    }
    card.progress.setAttribute('aria-label', `Loading ${name}`);
  }

  // Last error line: the reason a loaded worker died, else the notes.
  const lastError = str(m.last_error);
  const notes = str(m.compatibility_notes);
  const text = lastError || notes;
  card.lastError.replaceChildren();
  if (text) {
    const isError = Boolean(lastError) || status === 'incompatible' || status === 'degraded';
    card.lastError.append(
      el('span', { className: 'last-error-label', text: lastError ? 'Last error: ' : 'Notes: ' }),
      el('span', { className: 'last-error-text', text: firstLine(text) }));
    card.lastError.title = text;
    card.lastError.classList.toggle('is-error', isError);
  } else {
    card.lastError.removeAttribute('title');
  }
  setHidden(card.lastError, !text);

  card.load.disabled = busy || Boolean(m.loaded);
  card.load.textContent = busy ? 'Loading…' : m.loaded ? 'Loaded' : 'Load';
  card.load.setAttribute('aria-label', `Load ${name}`);
  card.unload.disabled = !m.loaded;
  card.unload.setAttribute('aria-label', `Unload ${name}`);
  // Cancel only once the server has the load (queued, loading or testing):
  // before that an unload would find nothing to cancel.
  const serverBusy = loadState === 'queued' || loadState === 'loading' || status === 'testing';
  const cancelling = state.cancelling.has(name);
  setHidden(card.unload, serverBusy);
  setHidden(card.cancel, !serverBusy);
  card.cancel.disabled = cancelling;
  card.cancel.textContent = cancelling ? 'Cancelling…' : 'Cancel';
  card.cancel.setAttribute('aria-label', `Cancel loading ${name}`);
  if (!serverBusy && document.activeElement === card.cancel) card.load.focus();
}

// The "won't fit" mark: the list has no estimate, the single-model answer
// has; it is asked once per version of the model (not while it is loaded).
function renderFit(card, m) {
  const name = m.model_name;
  const key = `${str(m.updated_at)}|${JSON.stringify(m.load_config ?? null)}`;
  const known = state.fits.get(name);
  const wanted = str(m.engine || 'llama.cpp') === 'llama.cpp' && !m.loaded;
  if (wanted && (!known || known.key !== key)) {
    state.fits.set(name, { key, fit: null });
    api('GET', `/api/models/${encodeURIComponent(name)}`).then((full) => {
      const entry = state.fits.get(name);
      if (!entry || entry.key !== key || !full) return;
      entry.fit = full.fit && typeof full.fit === 'object' ? full.fit : null;
      const now = state.models.get(name);
      if (now) renderFit(card, now);
    }).catch(() => {});
  }
  const entry = state.fits.get(name);
  const fit = wanted && entry && entry.key === key ? entry.fit : null;
  const noFit = Boolean(fit && fit.fits === false);
  setHidden(card.noFit, !noFit);
  card.noFit.title = noFit
    ? `Needs ${formatBytes(Number(fit.estimate_bytes) || 0)}: it ${str(fit.reason)}`
      + (fit.largest_fitting_n_ctx ? `; it would fit with n_ctx ${fit.largest_fitting_n_ctx}` : '')
    : '';
}

// Keeps cards in name order, moving only what is out of place so that a
// focused button keeps its focus across updates.
export function placeCards() {
  const list = $('models');
  const names = [...state.models.keys()].sort((a, b) => a.localeCompare(b));
  let cursor = list.firstElementChild;
  for (const name of names) {
    const li = state.cards.get(name).li;
    if (li === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      list.insertBefore(li, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    cursor.remove();
    cursor = next;
  }
}

export function renderAll() {
  for (const m of state.models.values()) renderCard(m);
  for (const [name] of state.cards) {
    if (!state.models.has(name)) state.cards.delete(name);
  }
  placeCards();
  setHidden($('models-empty'), !state.loadedOnce || state.models.size > 0);
  renderCounts();
  renderBanner();
  renderLoaded();
}

export function upsertModel(m, { replace = false } = {}) {
  if (!m || typeof m.model_name !== 'string') return;
  const old = state.models.get(m.model_name);
  // Events may carry only part of a model; keep what we knew.
  const merged = replace || !old ? m : { ...old, ...m };
  state.models.set(m.model_name, merged);
  renderCard(merged);
  placeCards();
  setHidden($('models-empty'), state.models.size > 0);
  renderCounts();
  renderBanner();
  renderLoaded();
  if (state.details && state.details.name === m.model_name) onDetailsModelChanged(old, merged);
  if (old && old.loaded !== merged.loaded) statusSoon();
}

// ------------------------------------------------------------- header --

export function renderCounts() {
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const m of state.models.values()) counts[validStatus(m.compatibility_status)] += 1;
  const list = $('status-counts');
  list.replaceChildren(...STATUSES.map((s) => {
    const li = el('li', { className: 'count' },
      [el('span', { className: `badge badge-${s}`, text: s }),
       el('span', { className: 'count-n', text: String(counts[s]) })]);
    li.dataset.status = s;
    return li;
  }));
}

export function renderStatus() {
  const s = state.status;
  if (!s) return;
  $('server-version').textContent = s.version ? `v${str(s.version)}` : '';
  renderNodeCount(s.node);
  const devices = Array.isArray(s.devices) ? s.devices : [];
  const list = $('devices');
  if (!devices.length) {
    const why = str(s.devices_error);
    list.replaceChildren(el('li', { className: 'muted', text: why ? `No devices reported: ${why}` : 'No devices reported' }));
  } else {
    list.replaceChildren(...devices.map((d) => {
      const total = Number(d.memory_total);
      const free = Number(d.memory_free);
      const children = [
        el('span', { className: 'device-name', text: str(d.name) || 'device' }),
        el('span', { className: 'chip', text: str(d.kind) || '?' }),
      ];
      if (str(d.backend)) children.push(el('span', { className: 'chip', text: str(d.backend) }));
      if (str(d.driver)) children.push(el('span', { className: 'muted', text: `driver ${str(d.driver)}` }));
      if (Number.isFinite(total) && total > 0) {
        const used = Number.isFinite(free) ? Math.max(0, total - free) : NaN;
        const meter = el('meter');
        meter.min = 0;
        meter.max = total;
        if (Number.isFinite(used)) meter.value = used;
        meter.setAttribute('aria-label', `${str(d.name)} memory used`);
        children.push(meter, el('span', {
          className: 'device-mem',
          text: `${formatBytes(free)} free of ${formatBytes(total)}`,
        }));
      }
      return el('li', { className: 'device' }, children);
    }));
  }
  renderLoaded();
  renderMemory();
}

// SPEC §14: how many servers share the registry (live leases), once this
// server has joined the fleet.
export function renderNodeCount(node) {
  const chip = $('node-count');
  const live = node ? Number(node.nodes_live) : NaN;
  const joined = node && str(node.node_id) !== '';
  setHidden(chip, !(joined && Number.isFinite(live)));
  if (chip.hidden) return;
  chip.textContent = `${live} ${live === 1 ? 'node' : 'nodes'}`;
  const cls = str(node.environment_class);
  chip.title = `Servers sharing this registry with a live lease. This node: ${str(node.node_id)}`
    + (cls ? ` (class ${cls})` : '');
}

// SPEC §12: memory held by the loaded models (as their engines report it)
// against the memory free now, and the server's max_loaded_models.
export function renderMemory() {
  const node = $('memory-summary');
  const mem = state.status && state.status.memory;
  const inUse = mem ? Number(mem.in_use_bytes) : NaN;
  const free = mem ? Number(mem.free_bytes) : NaN;
  if (!Number.isFinite(inUse) || !Number.isFinite(free)) {
    node.textContent = '—';
    node.classList.add('muted');
    return;
  }
  const cap = Number(state.status.max_loaded_models);
  node.textContent = `${formatBytes(inUse)} in use · ${formatBytes(free)} free`
    + (Number.isFinite(cap) && cap > 0 ? ` · at most ${cap} loaded` : '');
  node.classList.remove('muted');
}

// A model loaded or unloaded (an eviction too): the header's memory
// comes from GET /api/status, read again shortly (once per burst).
export function statusSoon() {
  clearTimeout(state.statusTimer);
  state.statusTimer = setTimeout(refreshStatus, STATUS_SOON_MS);
}

export function renderLoaded() {
  const names = new Set();
  for (const m of state.models.values()) if (m.loaded) names.add(m.model_name);
  const fromStatus = state.status && (state.status.loaded_models || state.status.loaded);
  if (Array.isArray(fromStatus)) {
    for (const x of fromStatus) {
      const n = typeof x === 'string' ? x : x && x.model_name;
      if (typeof n === 'string' && state.models.get(n)?.loaded !== false) names.add(n);
    }
  }
  const node = $('loaded-models');
  node.textContent = names.size ? [...names].sort().map((n) => {
    const m = state.models.get(n);
    const bytes = m ? memoryUsed(m) : null;
    return bytes === null ? n : `${n} (${formatBytes(bytes)})`;
  }).join(', ') : 'none';
  node.classList.toggle('muted', names.size === 0);
}

export function recentFailureStreak() {
  const outcomes = [];
  for (const m of state.models.values()) {
    const ok = Date.parse(m.last_loaded_at);
    const bad = Date.parse(m.last_failed_at);
    if (!Number.isNaN(ok)) outcomes.push({ t: ok, failed: false, name: m.model_name });
    if (!Number.isNaN(bad)) outcomes.push({ t: bad, failed: true, name: m.model_name });
  }
  // Newest first; on a tie (timestamps may be whole seconds) the success
  // counts as newer, so that the banner never shows on a guess.
  outcomes.sort((a, b) => b.t - a.t || Number(a.failed) - Number(b.failed));
  const recent = outcomes.slice(0, FAILURE_STREAK);
  if (recent.length < FAILURE_STREAK || !recent.every((o) => o.failed)) return null;
  return recent.map((o) => o.name);
}

export function renderBanner() {
  const banner = $('system-banner');
  const env = state.status && state.status.environment;
  const heading = banner.querySelector('strong');
  if (env && env.state === 'failing') {
    // The server's own verdict (SPEC §11) outranks the page's guess below.
    if (heading) heading.textContent = 'The machine, not the models.';
    $('system-banner-text').textContent = ` The environment is failing${env.since ? ` since ${formatTime(env.since)}` : ''}: `
      + `${str(env.reason)}. Device-level failures blame no model until a model loads, the device probe sees `
      + 'the missing devices again, or the state is reset (POST /api/environment/reset).';
    banner.hidden = false;
    return;
  }
  if (heading) heading.textContent = 'Every recent load failed.';
  const names = recentFailureStreak();
  if (!names) { banner.hidden = true; return; }
  $('system-banner-text').textContent =
    ` The last ${names.length} load attempts, on different models (${names.join(', ')}), `
    + 'all failed, and nothing has loaded since. A system-wide GPU or driver problem is more '
    + 'likely than bad models: check the GPU driver and free GPU memory (or reset the GPU / '
    + 'restart WSL) before marking models incompatible.';
  banner.hidden = false;
}

export function setConnection(live) {
  state.eventsLive = live;
  const node = $('connection');
  node.dataset.state = live ? 'live' : 'polling';
  node.textContent = live ? 'live' : 'polling';
}
