// modelwarden web page: the "Pull from Hugging Face" form and the progress of
// pulls (SPEC §17): POST /api/models/pull, then `pull` events on the event
// stream move each pull's progress bar; a finished pull brings its card.
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { $, MODEL_NAME_RE, api, el, showError, toast } from './core.js';
import { refreshModels } from './events.js';

const pulls = new Map();  // id -> the pull's <li>

function sizeText(bytes) {
  const n = Number(bytes) || 0;
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function etaText(s) {
  if (typeof s !== 'number') return '';
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s left` : `${s} s left`;
}

// Shows (or updates) one pull under the toolbar.
export function renderPull(p) {
  if (!p || typeof p.id !== 'string') return;
  let item = pulls.get(p.id);
  if (!item) {
    item = el('li', { className: 'pull' }, [
      el('span', { className: 'pull-title' }),
      el('progress', { className: 'pull-bar' }),
      el('span', { className: 'pull-text muted' }),
    ]);
    item.dataset.pull = p.id;
    pulls.set(p.id, item);
    $('pulls').prepend(item);
    $('pulls').hidden = false;
  }
  const [title, bar, text] = item.children;
  title.textContent = `${p.hf_path} → ${p.model_name}`;
  bar.max = Math.max(1, Number(p.bytes_total) || 0);
  bar.value = Math.min(bar.max, Number(p.bytes_done) || 0);
  bar.setAttribute('aria-label', `Pull of ${p.model_name}`);
  item.dataset.state = p.state;
  if (p.state === 'downloading') {
    const rate = Number(p.rate_bytes_per_s) || 0;
    text.textContent = `${sizeText(p.bytes_done)} of ${sizeText(p.bytes_total)}` +
      (rate > 0 ? ` · ${sizeText(rate)}/s · ${etaText(p.eta_s)}` : '');
  } else if (p.state === 'failed') {
    text.textContent = `Failed: ${p.error || ''}`;
  } else if (p.state === 'done') {
    text.textContent = p.compatibility_status ? `Done · tested: ${p.compatibility_status}` : 'Done';
  } else {
    text.textContent = p.state;
  }
  if (p.state === 'done' || p.state === 'failed' || p.state === 'cancelled') {
    if (!item.dataset.ended) {
      item.dataset.ended = '1';
      if (p.state === 'done') {
        toast(`Pulled "${p.model_name}".`, 'ok');
        refreshModels();
      } else if (p.state === 'failed') {
        toast(`Pull of ${p.hf_path} failed: ${p.error || ''}`, 'error');
      }
    }
  }
}

// The `pull` event of the event stream (events.js).
export function onPullEvent(ev) {
  let p;
  try { p = JSON.parse(ev.data); } catch { return; }
  renderPull(p);
}

export function openPull() {
  showError($('pull-error'), '');
  $('pull').showModal();
  $('pull-repo').focus();
}

export async function submitPull(ev) {
  ev.preventDefault();
  showError($('pull-error'), '');
  const repo = $('pull-repo').value.trim();
  if (!/^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/.test(repo)) {
    showError($('pull-error'), 'The repository looks like ORG/NAME, e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF.');
    $('pull-repo').focus();
    return;
  }
  const body = { hf_path: repo };
  const which = $('pull-quant').value.trim();
  if (which) body[/\.gguf$/i.test(which) ? 'file' : 'quant'] = which;
  const name = $('pull-name').value.trim();
  if (name) {
    if (!MODEL_NAME_RE.test(name)) {
      showError($('pull-error'), 'The model name must start with a letter or digit and hold only letters, digits, ".", "_" and "-".');
      $('pull-name').focus();
      return;
    }
    body.model_name = name;
  }
  const location = $('pull-location').value.trim();
  if (location) body.cache_location = location;
  if ($('pull-test').checked) body.test = true;
  const submit = $('pull-submit');
  submit.disabled = true;
  try {
    const data = await api('POST', '/api/models/pull', body);
    if (data && data.pull) renderPull(data.pull);
    $('pull-form').reset();
    $('pull').close();
  } catch (e) {
    showError($('pull-error'), e.message);
  } finally {
    submit.disabled = false;
  }
}

// Pulls already running when the page opens.
export async function refreshPulls() {
  try {
    const data = await api('GET', '/api/pulls');
    for (const p of (data && Array.isArray(data.pulls) ? data.pulls : []).reverse()) {
      if (p.state !== 'done' || pulls.has(p.id)) renderPull(p);
    }
  } catch {
    // The list is a convenience: the events bring new pulls anyway.
  }
}
