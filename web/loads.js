// modelwarden web page: the Load / Unload / cancel buttons of a card, with the warnings of SPEC §7.
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { $, api, confirmDialog, degradedWarning, incompatibleWarning, state, str, toast, validStatus } from './core.js';
import { renderCard } from './cards.js';
import { refreshModels, refreshStatus, schedulePoll } from './events.js';

// ------------------------------------------------------ load / unload --

// `forced`: the user already chose "Load anyway" (after the out-of-memory refusal).
export async function loadModel(name, forced = false) {
  const m = state.models.get(name);
  if (!m) return;
  let force = forced;
  let retryForced = false;
  const status = validStatus(m.compatibility_status);
  if (forced) {
    // asked already
  } else if (status === 'incompatible') {
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
    if (e.httpStatus === 507 && err.code === 'insufficient_memory' && !force) {
      // SPEC §18: the page offers a button, not an API field.
      const text = str(err.message).replace(/;\s*load it with force_load=true to try anyway\.?$/, '.');
      retryForced = await confirmDialog(`⚠️ "${name}" would not fit in free memory.\n\n${text}\n\n`
        + 'Lower n_ctx in its load_config (details), or try to load it anyway?', 'Load anyway (force)');
    } else {
      const classification = err.classification || (e.body && e.body.classification);
      const summary = classification && typeof classification.summary === 'string'
        ? ` (${classification.summary})` : '';
      toast(`Loading "${name}" failed: ${e.message}${summary}`, 'error');
    }
  } finally {
    state.pending.delete(name);
    if (!state.cancelsInFlight.has(name)) state.cancelling.delete(name);
    await refreshModels();
    refreshStatus();
    schedulePoll();
  }
  if (retryForced) await loadModel(name, true);
}

// Retest (SPEC §11): the status becomes unknown with a note, then a load.
export async function retestModel(name) {
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
export async function cancelLoad(name) {
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

export async function unloadModel(name) {
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
