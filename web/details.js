// modelwarden web page: the details modal: facts, settings form, attempts, verdicts, save, delete.
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { $, MANUAL_STATUSES, api, canonical, confirmDialog, el, formatBytes, formatDuration, formatTime, modelUrl, parseConfig, setHidden, showError, state, str, toast, validStatus } from './core.js';
import { upsertModel } from './cards.js';
import { refreshModels } from './events.js';

// -------------------------------------------------------------- modal --

// Keeps Tab and Shift+Tab inside an open dialog (showModal already makes
// the page behind it inert; this also stops focus leaving for the browser UI).
export function trapFocus(dialog) {
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

export function fillDetailsFacts(m) {
  const facts = $('details-facts');
  const rows = [
    ['Hugging Face path', str(m.hf_path) || '—'],
    ['Engine', str(m.engine) || 'llama.cpp'],
    ['Location', str(m.cache_location) || '—'],
    ['File', str(m.file_path) || '—'],
    ['Loads / failures', `${m.total_loads ?? 0} / ${m.total_failures ?? 0}`],
    ['Last loaded', formatTime(m.last_loaded_at) || 'never'],
    ['Last failed', formatTime(m.last_failed_at) || 'never'],
    ['Last stopped for hanging', formatTime(m.last_hung_at) || 'never'],
    ['State', `${str(m.load_state) || 'idle'}${m.loaded && str(m.load_state) !== 'loaded' ? ' (loaded)' : ''}`],
  ];
  if (m.last_error) rows.push(['Last error', str(m.last_error)]);
  // SPEC §18: the memory estimate (the single-model answer carries it), and
  // whether it fits, before anyone clicks Load.
  const fit = m.fit && typeof m.fit === 'object' ? m.fit : null;
  if (fit && Number.isFinite(Number(fit.estimate_bytes))) {
    const suggest = Number.isFinite(Number(fit.largest_fitting_n_ctx)) && fit.largest_fitting_n_ctx !== null
      ? `; it would fit with n_ctx ${fit.largest_fitting_n_ctx}` : '';
    rows.push(['Memory estimate', `${formatBytes(Number(fit.estimate_bytes))} at n_ctx ${str(fit.n_ctx)}`
      + (fit.fits === false ? ` — will not fit: it ${str(fit.reason)}${suggest}` : ' — fits')]);
  }
  facts.replaceChildren(...rows.map(([k, v]) => el('div', {}, [el('dt', { text: k }), el('dd', { text: v })])));
  const status = validStatus(m.compatibility_status);
  const badge = $('details-badge');
  badge.textContent = status;
  badge.className = `badge badge-${status}`;
}

// Fills the editable fields and remembers them, to send only what changed.
export function fillDetailsForm(m) {
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

export function renderAttempts(attempts) {
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
export function renderVerdicts(verdicts) {
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

export async function loadDetails(name) {
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

export async function openDetails(name, opener) {
  const m = state.models.get(name);
  if (!m) return;
  state.details = { name, opener, original: null };
  $('details-title').textContent = name;
  showError($('details-error'), '');
  fillDetailsFacts(m);
  fillDetailsForm(m);
  renderAttempts([]);
  renderVerdicts([]);
  // chat.js: a new conversation; none for an incompatible model that is not loaded (SPEC §18).
  if (window.modelwardenChat) {
    window.modelwardenChat.open(name, validStatus(m.compatibility_status) === 'incompatible' && !m.loaded);
  }
  $('attempts-empty').textContent = 'Loading attempts…';
  $('details').showModal();
  $('details-status').focus();
  const full = await loadDetails(name);
  $('attempts-empty').textContent = 'No load attempts yet.';
  if (full && state.details && state.details.name === name && !detailsDirty()) fillDetailsForm(full);
}

export function detailsDirty() {
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
export function onDetailsModelChanged(old, m) {
  fillDetailsFacts(m);
  const ended = old && (old.total_loads !== m.total_loads || old.total_failures !== m.total_failures
    || old.compatibility_status !== m.compatibility_status);
  if (ended) loadDetails(m.model_name);
  if (!detailsDirty()) fillDetailsForm(m);
}

export async function saveDetails(ev) {
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

export async function deleteModel() {
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
