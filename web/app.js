// modelwarden web page: model cards, details modal, load warnings.
//
// Plain browser JavaScript, no framework, no network beyond this server.
// Safety rule: every string that comes from the server (names, notes, log
// lines, error messages) reaches the page through textContent, value or an
// attribute, never through innerHTML, so text from logs can never become
// markup or script.
'use strict';

(() => {
  const STATUSES = ['unknown', 'compatible', 'incompatible', 'degraded', 'testing'];
  // A person may set any status but `testing` (SPEC §1 rule 5).
  const MANUAL_STATUSES = ['unknown', 'compatible', 'incompatible', 'degraded'];
  const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
  // Banner rule: when the newest FAILURE_STREAK load outcomes known to the
  // page are all failures, the machine is more likely at fault than the
  // models. Each model contributes its last success (last_loaded_at) and its
  // last failure (last_failed_at), so a streak of 3 failures means 3
  // different models failed since anything last loaded successfully.
  const FAILURE_STREAK = 3;
  const POLL_LIVE_MS = 15000;   // fallback poll while live events flow
  const POLL_OFFLINE_MS = 3000; // poll while the event stream is down
  const POLL_BUSY_MS = 1000;    // poll while a load runs and events are down
  const STATUS_POLL_MS = 10000;
  const STATUS_SOON_MS = 300;   // re-read the status this long after a model (un)loaded
  const EVENTS_RETRY_MS = 5000;
  // Where the API key is kept: this tab only, gone when it closes. The server
  // never writes the key into the page; the user types it once per tab.
  const KEY_STORAGE = 'modelwarden.apiKey';

  const state = {
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
  };

  const $ = (id) => document.getElementById(id);

  // sessionStorage can be unavailable (storage disabled): the key then lasts
  // as long as the page.
  function readStoredKey() {
    try { return sessionStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
  }

  function storeKey(key) {
    state.apiKey = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
    } catch { /* kept in memory only */ }
  }

  // ---------------------------------------------------------------- HTTP --

  class ApiError extends Error {
    constructor(httpStatus, code, message, body) {
      super(message);
      this.httpStatus = httpStatus;
      this.code = code;
      this.body = body;
    }
  }

  // One request, with the key if there is one; never retries.
  async function send(method, path, body, key) {
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
  async function api(method, path, body) {
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

  const modelUrl = (name) => `/api/models/${encodeURIComponent(name)}`;

  // -------------------------------------------------------------- helpers --

  // Creates an element; `text` always goes through textContent.
  function el(tag, opts = {}, children = []) {
    const node = document.createElement(tag);
    if (opts.className) node.className = opts.className;
    if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
    if (opts.title) node.title = opts.title;
    for (const child of children) if (child) node.append(child);
    return node;
  }

  const str = (v) => (typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v));
  const validStatus = (s) => (STATUSES.includes(s) ? s : 'unknown');

  function firstLine(text) {
    const lines = str(text).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    return lines.length ? lines[0] : '';
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
  }

  function formatTime(iso) {
    if (!iso) return '';
    const t = Date.parse(iso);
    return Number.isNaN(t) ? str(iso) : new Date(t).toLocaleString();
  }

  function formatDuration(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  function setHidden(node, hidden) { node.hidden = hidden; }

  // Bytes a loaded model holds, summed over its devices; null when unknown.
  function memoryUsed(m) {
    if (!Array.isArray(m.memory) || !m.memory.length) return null;
    let total = 0;
    for (const d of m.memory) {
      const n = Number(d && d.memory_used);
      if (Number.isFinite(n)) total += n;
    }
    return total;
  }

  function showError(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  function toast(message, kind = 'info') {
    const box = el('div', { className: `toast toast-${kind}`, text: message });
    $('toasts').append(box);
    setTimeout(() => box.remove(), kind === 'error' ? 12000 : 6000);
  }

  // Parses a load_config editor's text: {ok, value} or {ok:false, message}.
  function parseConfig(text) {
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
  function canonical(value) {
    if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
    if (value && typeof value === 'object') {
      return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
    }
    return JSON.stringify(value === undefined ? null : value);
  }

  // ---------------------------------------------- warnings of SPEC §7 ----

  const notesText = (m) => str(m.compatibility_notes) || 'None';

  function incompatibleWarning(m) {
    return `⚠️ WARNING: "${m.model_name}" is marked as INCOMPATIBLE with this hardware!\n\n`
      + 'This model has failed to load previously and may crash the server.\n\n'
      + `Notes: ${notesText(m)}\n\n`
      + 'Do you want to retry loading anyway? (This will use force_load=true)';
  }

  function degradedWarning(m) {
    return `⚠️ WARNING: "${m.model_name}" has DEGRADED compatibility!\n\n`
      + 'This model has loaded successfully before but recently failed.\n'
      + 'This might be a temporary issue (WSL/GPU reset needed).\n\n'
      + `Notes: ${notesText(m)}\n\n`
      + 'Do you want to try loading anyway?';
  }

  // Our own confirm(): resolves true only on the OK button. Cancel has the
  // focus, so Enter or Esc never loads a risky model by accident.
  function confirmDialog(message, okLabel) {
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
  function waitForKey(rejected) {
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

  function showAuthError(message) {
    showError($('auth-error'), message);
    if (message) $('auth-key').setAttribute('aria-invalid', 'true');
    else $('auth-key').removeAttribute('aria-invalid');
  }

  // Checks the typed key against the server before anything else uses it: a
  // wrong key shows the server's own message and the prompt stays.
  async function submitKey(ev) {
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

  // --------------------------------------------------------------- cards --

  function cardFor(name) {
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
      retest: el('button', { className: 'btn retest-btn', text: 'Retest' }),
    };
    card.stale.hidden = true;
    card.retest.type = 'button';
    card.retest.hidden = true;
    card.badge.after(card.stale);
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

  function renderCard(m) {
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
    card.retest.disabled = busy;
    card.retest.setAttribute('aria-label', `Retest ${name}`);
    card.hf.textContent = str(m.hf_path) || 'no Hugging Face path';
    card.hf.classList.toggle('muted', !m.hf_path);
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

  // Keeps cards in name order, moving only what is out of place so that a
  // focused button keeps its focus across updates.
  function placeCards() {
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

  function renderAll() {
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

  function upsertModel(m, { replace = false } = {}) {
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

  function renderCounts() {
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

  function renderStatus() {
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
  function renderNodeCount(node) {
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
  function renderMemory() {
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
  function statusSoon() {
    clearTimeout(state.statusTimer);
    state.statusTimer = setTimeout(refreshStatus, STATUS_SOON_MS);
  }

  function renderLoaded() {
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

  function recentFailureStreak() {
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

  function renderBanner() {
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

  function setConnection(live) {
    state.eventsLive = live;
    const node = $('connection');
    node.dataset.state = live ? 'live' : 'polling';
    node.textContent = live ? 'live' : 'polling';
  }

  // ------------------------------------------------------------ refresh --

  async function refreshModels() {
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

  async function refreshStatus() {
    try {
      state.status = await api('GET', '/api/status');
      renderStatus();
      renderBanner();
      renderPresets();
    } catch (e) {
      $('devices').replaceChildren(el('li', { className: 'muted', text: `Status unavailable: ${e.message}` }));
    }
  }

  function schedulePoll() {
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
  function connectEvents() {
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

  // ------------------------------------------------------ load / unload --

  async function loadModel(name) {
    const m = state.models.get(name);
    if (!m) return;
    let force = false;
    const status = validStatus(m.compatibility_status);
    if (status === 'incompatible') {
      if (!await confirmDialog(incompatibleWarning(m), 'Load anyway (force)')) return;
      force = true;
    } else if (status === 'degraded') {
      if (!await confirmDialog(degradedWarning(m), 'Load anyway')) return;
    }
    state.pending.add(name);
    renderCard(state.models.get(name) || m);
    schedulePoll();
    try {
      const body = { model_name: name };
      if (force) body.force_load = true;
      const res = await api('POST', '/api/orchestrate/load', body);
      const warning = res && typeof res.warning === 'string' ? ` ${res.warning}` : '';
      // auto_fix healed a failure / auto_fit lowered unset settings (SPEC §11, §12).
      const settings = (o) => (o && typeof o === 'object'
        ? Object.entries(o).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ') : '');
      const fix = res && res.auto_fix ? settings(res.auto_fix.changed) : '';
      const healed = fix ? ` It failed first (${str(res.auto_fix.first_failure && res.auto_fix.first_failure.summary)})`
        + ` and loaded after changing ${fix}; that load_config is saved.` : '';
      const fitted = res && res.adjusted ? ` Fitted to memory: ${settings(res.adjusted)}.` : '';
      toast(`Loaded "${name}".${warning}${healed}${fitted}`, warning || healed ? 'warn' : 'ok');
    } catch (e) {
      if (state.cancelling.has(name) && e.httpStatus === 409) return; // cancelLoad says so

      const err = (e.body && e.body.error) || {};
      const classification = err.classification || (e.body && e.body.classification);
      const summary = classification && typeof classification.summary === 'string'
        ? ` (${classification.summary})` : '';
      toast(`Loading "${name}" failed: ${e.message}${summary}`, 'error');
    } finally {
      state.pending.delete(name);
      if (!state.cancelsInFlight.has(name)) state.cancelling.delete(name);
      await refreshModels();
      refreshStatus();
      schedulePoll();
    }
  }

  // Retest (SPEC §11): the status becomes unknown with a note, then a load.
  async function retestModel(name) {
    state.pending.add(name);
    const m = state.models.get(name);
    if (m) renderCard(m);
    try {
      await api('POST', `/api/models/${encodeURIComponent(name)}/retest`);
      toast(`Retested "${name}": it loaded.`, 'ok');
    } catch (e) {
      toast(`Retesting "${name}" failed: ${e.message}`, 'error');
    } finally {
      state.pending.delete(name);
      await refreshModels();
      refreshStatus();
      schedulePoll();
    }
  }

  // Unload cancels a queued or running load: the attempt ends `cancelled`
  // and the status goes back to what it was (docs/api.md).
  async function cancelLoad(name) {
    state.cancelling.add(name);
    state.cancelsInFlight.add(name);
    const m = state.models.get(name);
    if (m) renderCard(m);
    try {
      await api('POST', '/api/orchestrate/unload', { model_name: name });
      toast(`Cancelled loading "${name}".`, 'ok');
    } catch (e) {
      toast(`Cancelling the load of "${name}" failed: ${e.message}`, 'error');
    } finally {
      state.cancelsInFlight.delete(name);
      // Keep the mark until the load request itself has answered, so that its
      // 409 "cancelled" is not shown as a failure.
      if (!state.pending.has(name)) state.cancelling.delete(name);
      await refreshModels();
      refreshStatus();
      const fresh = state.models.get(name);
      if (fresh) renderCard(fresh);
    }
  }

  async function unloadModel(name) {
    const card = state.cards.get(name);
    if (card) card.unload.disabled = true;
    try {
      await api('POST', '/api/orchestrate/unload', { model_name: name });
      toast(`Unloaded "${name}".`, 'ok');
    } catch (e) {
      toast(`Unloading "${name}" failed: ${e.message}`, 'error');
    } finally {
      await refreshModels();
      refreshStatus();
    }
  }

  // -------------------------------------------------------------- modal --

  // Keeps Tab and Shift+Tab inside an open dialog (showModal already makes
  // the page behind it inert; this also stops focus leaving for the browser UI).
  function trapFocus(dialog) {
    dialog.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Tab') return;
      const focusable = [...dialog.querySelectorAll(
        'button, [href], input, select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
        .filter((n) => !n.disabled && !n.closest('[hidden]') && n.getClientRects().length > 0);
      if (!focusable.length) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (ev.shiftKey && document.activeElement === first) {
        ev.preventDefault();
        last.focus();
      } else if (!ev.shiftKey && document.activeElement === last) {
        ev.preventDefault();
        first.focus();
      }
    });
    for (const btn of dialog.querySelectorAll('[data-close]')) {
      btn.addEventListener('click', () => dialog.close());
    }
  }

  function fillDetailsFacts(m) {
    const facts = $('details-facts');
    const rows = [
      ['Hugging Face path', str(m.hf_path) || '—'],
      ['Engine', str(m.engine) || 'llama.cpp'],
      ['Location', str(m.cache_location) || '—'],
      ['File', str(m.file_path) || '—'],
      ['Loads / failures', `${m.total_loads ?? 0} / ${m.total_failures ?? 0}`],
      ['Last loaded', formatTime(m.last_loaded_at) || 'never'],
      ['Last failed', formatTime(m.last_failed_at) || 'never'],
      ['State', `${str(m.load_state) || 'idle'}${m.loaded ? ' (loaded)' : ''}`],
    ];
    if (m.last_error) rows.push(['Last error', str(m.last_error)]);
    facts.replaceChildren(...rows.map(([k, v]) => el('div', {}, [el('dt', { text: k }), el('dd', { text: v })])));
    const status = validStatus(m.compatibility_status);
    const badge = $('details-badge');
    badge.textContent = status;
    badge.className = `badge badge-${status}`;
  }

  // Fills the editable fields and remembers them, to send only what changed.
  function fillDetailsForm(m) {
    const status = validStatus(m.compatibility_status);
    const select = $('details-status');
    if (MANUAL_STATUSES.includes(status)) {
      select.value = status;
    } else {
      select.selectedIndex = -1; // `testing` is never offered
    }
    const hint = $('details-status-hint');
    hint.textContent = status === 'testing'
      ? 'A load attempt is in progress; its outcome will set the status.' : '';
    hint.hidden = status !== 'testing';
    $('details-notes').value = str(m.compatibility_notes);
    const config = m.load_config && typeof m.load_config === 'object' ? m.load_config : {};
    $('details-config').value = JSON.stringify(config, null, 2);
    $('details-config').removeAttribute('aria-invalid');
    showError($('details-config-error'), '');
    state.details.original = {
      status: MANUAL_STATUSES.includes(status) ? status : '',
      notes: str(m.compatibility_notes),
      config: canonical(config),
    };
  }

  function renderAttempts(attempts) {
    const list = $('attempts');
    const items = Array.isArray(attempts) ? attempts : [];
    setHidden($('attempts-empty'), items.length > 0);
    list.replaceChildren(...items.map((a, i) => {
      const outcome = str(a.outcome) || 'unknown';
      const head = el('div', { className: 'attempt-head' }, [
        el('span', { className: `badge outcome outcome-${outcome.replace(/[^a-z_]/g, '')}`, text: outcome }),
        a.forced ? el('span', { className: 'chip', text: 'forced' }) : null,
        el('span', { className: 'muted', text: formatTime(a.started_at) }),
        a.duration_ms !== undefined && a.duration_ms !== null
          ? el('span', { className: 'muted', text: formatDuration(a.duration_ms) }) : null,
      ]);
      const li = el('li', { className: 'attempt' }, [head]);
      li.dataset.outcome = outcome;
      if (a.status_before || a.status_after) {
        li.append(el('p', { className: 'attempt-line', text: `Status: ${str(a.status_before) || '?'} → ${str(a.status_after) || '?'}` }));
      }
      const exitBits = [];
      if (a.exit_code !== undefined && a.exit_code !== null) exitBits.push(`exit code ${a.exit_code}`);
      if (a.signal) exitBits.push(`signal ${str(a.signal)}`);
      if (a.category) exitBits.push(`category ${str(a.category)}${a.pattern_id ? ` (${str(a.pattern_id)})` : ''}`);
      if (exitBits.length) li.append(el('p', { className: 'attempt-line', text: exitBits.join(' · ') }));
      if (a.summary) li.append(el('p', { className: 'attempt-summary', text: str(a.summary) }));
      if (a.matched_line) li.append(el('pre', { className: 'matched-line', text: str(a.matched_line) }));
      if (a.log_excerpt) {
        const details = el('details', { className: 'log' }, [
          el('summary', { text: 'Log excerpt' }),
          el('pre', { className: 'log-excerpt', text: str(a.log_excerpt) }),
        ]);
        if (i === 0 && outcome !== 'success') details.open = true;
        li.append(details);
      }
      return li;
    }));
  }

  // SPEC §14: the verdicts of the fleet's other environment classes (the
  // first entry is this node's class, shown by the badge already).
  function renderVerdicts(verdicts) {
    const items = Array.isArray(verdicts) ? verdicts : [];
    const others = items.filter((v) => v && !v.this_node_class);
    setHidden($('verdicts-section'), items.length < 2 || others.length === 0);
    $('verdicts').replaceChildren(...others.map((v) => {
      const status = validStatus(v.status);
      const nodes = Array.isArray(v.nodes) ? v.nodes.map(str).filter(Boolean) : [];
      const li = el('li', { className: 'verdict' }, [
        el('div', { className: 'verdict-head' }, [
          el('span', { className: `badge badge-${status}`, text: status }),
          el('code', { className: 'verdict-class', text: str(v.environment_class) || '?' }),
        ]),
        el('p', { className: 'attempt-line',
          text: `Loads / failures: ${v.total_loads ?? 0} / ${v.total_failures ?? 0}`
            + (nodes.length ? ` · nodes: ${nodes.join(', ')}` : '') }),
      ]);
      if (v.notes) li.append(el('p', { className: 'attempt-summary', text: str(v.notes) }));
      li.dataset.status = status;
      return li;
    }));
  }

  async function loadDetails(name) {
    try {
      const m = await api('GET', modelUrl(name));
      if (!state.details || state.details.name !== name) return;
      fillDetailsFacts(m);
      renderVerdicts(m.verdicts);
      renderAttempts(m.attempts);
      return m;
    } catch (e) {
      if (state.details && state.details.name === name) showError($('details-error'), e.message);
      return null;
    }
  }

  async function openDetails(name, opener) {
    const m = state.models.get(name);
    if (!m) return;
    state.details = { name, opener, original: null };
    $('details-title').textContent = name;
    showError($('details-error'), '');
    fillDetailsFacts(m);
    fillDetailsForm(m);
    renderAttempts([]);
    renderVerdicts([]);
    if (window.modelwardenChat) window.modelwardenChat.open(name);  // chat.js: a new conversation
    $('attempts-empty').textContent = 'Loading attempts…';
    $('details').showModal();
    $('details-status').focus();
    const full = await loadDetails(name);
    $('attempts-empty').textContent = 'No load attempts yet.';
    if (full && state.details && state.details.name === name && !detailsDirty()) fillDetailsForm(full);
  }

  function detailsDirty() {
    const o = state.details && state.details.original;
    if (!o) return false;
    return $('details-status').value !== o.status
      || $('details-notes').value !== o.notes
      || $('details-config').value.trim() !== '' && (() => {
        const p = parseConfig($('details-config').value);
        return !p.ok || canonical(p.value) !== o.config;
      })();
  }

  // A live update for the open model: refresh what is read-only, and the
  // attempts once an attempt ended; never overwrite what the user is editing.
  function onDetailsModelChanged(old, m) {
    fillDetailsFacts(m);
    const ended = old && (old.total_loads !== m.total_loads || old.total_failures !== m.total_failures
      || old.compatibility_status !== m.compatibility_status);
    if (ended) loadDetails(m.model_name);
    if (!detailsDirty()) fillDetailsForm(m);
  }

  async function saveDetails(ev) {
    ev.preventDefault();
    const d = state.details;
    if (!d || !d.original) return;
    showError($('details-error'), '');
    const configEl = $('details-config');
    const parsed = parseConfig(configEl.value);
    if (!parsed.ok) {
      showError($('details-config-error'), parsed.message);
      configEl.setAttribute('aria-invalid', 'true');
      configEl.focus();
      return; // nothing is sent
    }
    showError($('details-config-error'), '');
    configEl.removeAttribute('aria-invalid');

    const patch = {};
    const status = $('details-status').value;
    if (status && status !== d.original.status && MANUAL_STATUSES.includes(status)) {
      patch.compatibility_status = status;
    }
    const notes = $('details-notes').value;
    if (notes !== d.original.notes) patch.compatibility_notes = notes;
    if (canonical(parsed.value) !== d.original.config) patch.load_config = parsed.value;
    if (!Object.keys(patch).length) {
      toast('Nothing to save: no field changed.');
      return;
    }

    const save = $('details-save');
    save.disabled = true;
    try {
      const updated = await api('PATCH', `${modelUrl(d.name)}/config`, patch);
      toast(`Saved "${d.name}".`, 'ok');
      const fresh = updated && typeof updated.model_name === 'string'
        ? updated : await api('GET', modelUrl(d.name));
      if (state.details === d) fillDetailsForm(fresh);
      upsertModel(fresh);
    } catch (e) {
      showError($('details-error'), `The server refused the change: ${e.message}`);
    } finally {
      save.disabled = false;
    }
  }

  async function deleteModel() {
    const d = state.details;
    if (!d) return;
    const ok = await confirmDialog(
      `Delete "${d.name}"?\n\nIt is unloaded first, and its load history is deleted with it.`, 'Delete');
    if (!ok) return;
    try {
      await api('DELETE', modelUrl(d.name));
      toast(`Deleted "${d.name}".`, 'ok');
      $('details').close();
    } catch (e) {
      showError($('details-error'), e.message);
    }
    await refreshModels();
  }

  // ------------------------------------------------------------ register --

  // The register form's preset choice: the names GET /api/status lists.
  function renderPresets() {
    const select = $('reg-preset');
    const presets = (state.status && Array.isArray(state.status.engine_presets)) ? state.status.engine_presets : [];
    const chosen = select.value;
    select.replaceChildren(...presets.map((p) => el('option', { text: str(p) })));
    for (const option of select.options) option.value = option.textContent;
    if (presets.includes(chosen)) select.value = chosen;
    syncPresetField();
  }

  function syncPresetField() {
    const command = $('reg-engine').value === 'command';
    $('reg-preset-field').hidden = !command;
    if (command && $('reg-preset').options.length === 0) {
      $('reg-preset-hint').textContent =
        'No engine presets are configured: add an [engines.NAME] table (argv, ready_pattern or health_path) to the server\'s configuration file.';
    }
  }

  function openRegister() {
    showError($('register-error'), '');
    showError($('reg-config-error'), '');
    syncPresetField();
    $('register').showModal();
    $('reg-name').focus();
  }

  async function submitRegister(ev) {
    ev.preventDefault();
    const form = $('register-form');
    const name = $('reg-name').value.trim();
    showError($('register-error'), '');
    if (!MODEL_NAME_RE.test(name)) {
      showError($('register-error'),
        'The model name must start with a letter or digit and hold only letters, digits, ".", "_" and "-" (at most 128).');
      $('reg-name').setAttribute('aria-invalid', 'true');
      $('reg-name').focus();
      return;
    }
    $('reg-name').removeAttribute('aria-invalid');
    const parsed = parseConfig($('reg-config').value);
    if (!parsed.ok) {
      showError($('reg-config-error'), parsed.message);
      $('reg-config').setAttribute('aria-invalid', 'true');
      $('reg-config').focus();
      return;
    }
    showError($('reg-config-error'), '');
    $('reg-config').removeAttribute('aria-invalid');

    const body = { model_name: name, engine: $('reg-engine').value };
    // A command model names the server's preset; an argv typed into the
    // load_config is refused by the server unless it allows API commands.
    if (body.engine === 'command' && $('reg-preset').value && !('argv' in parsed.value)) {
      parsed.value.preset = $('reg-preset').value;
    }
    const optional = { hf_path: 'reg-hf', file_path: 'reg-file', cache_location: 'reg-location' };
    for (const [key, id] of Object.entries(optional)) {
      const v = $(id).value.trim();
      if (v) body[key] = v;
    }
    if (Object.keys(parsed.value).length) body.load_config = parsed.value;

    const submit = $('register-submit');
    submit.disabled = true;
    try {
      await api('POST', '/api/models', body);
      toast(`Registered "${name}".`, 'ok');
      form.reset();
      $('register').close();
      await refreshModels();
      const card = state.cards.get(name);
      if (card) card.name.focus();
    } catch (e) {
      showError($('register-error'), e.message);
    } finally {
      submit.disabled = false;
    }
  }

  // --------------------------------------------------------------- start --

  function start() {
    for (const id of ['details', 'register', 'confirm']) trapFocus($(id));
    $('details').addEventListener('close', () => {
      const d = state.details;
      state.details = null;
      if (window.modelwardenChat) window.modelwardenChat.close();  // stops an answer in progress
      if (d && d.opener && d.opener.isConnected) d.opener.focus();
    });
    $('details-form').addEventListener('submit', saveDetails);
    $('details-delete').addEventListener('click', deleteModel);
    $('details-config').addEventListener('input', () => {
      // Clear a shown error as soon as the text is valid again.
      if (!$('details-config-error').hidden && parseConfig($('details-config').value).ok) {
        showError($('details-config-error'), '');
        $('details-config').removeAttribute('aria-invalid');
      }
    });
    $('register-open').addEventListener('click', openRegister);
    $('reg-engine').addEventListener('change', syncPresetField);
    $('register-form').addEventListener('submit', submitRegister);
    $('register').addEventListener('close', () => $('register-open').focus());
    $('auth-form').addEventListener('submit', submitKey);

    renderCounts();
    setConnection(false);
    refreshModels().then(schedulePoll);
    refreshStatus();
    setInterval(() => { if (!document.hidden) refreshStatus(); }, STATUS_POLL_MS);
    connectEvents();
  }

  // Exposed for tests and the console; changes nothing by itself.
  window.modelwarden = Object.freeze({ incompatibleWarning, degradedWarning, recentFailureStreak });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
