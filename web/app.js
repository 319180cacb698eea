// modelwarden web page: model cards, details modal, load warnings. The entry
// module: it wires the parts of the page (ES modules, one per part: core,
// cards, events, loads, details, register, pull; chat.js is the chat panel).
//
// Plain browser JavaScript, no framework, no network beyond this server.
// Safety rule: every string that comes from the server (names, notes, log
// lines, error messages) reaches the page through textContent, value or an
// attribute, never through innerHTML, so text from logs can never become
// markup or script.

import { $, STATUS_POLL_MS, degradedWarning, incompatibleWarning, parseConfig, showError, state, submitKey } from './core.js';
import { recentFailureStreak, renderCounts, setConnection } from './cards.js';
import { connectEvents, refreshModels, refreshStatus, schedulePoll } from './events.js';
import { deleteModel, saveDetails, trapFocus } from './details.js';
import { openRegister, submitRegister, syncPresetField } from './register.js';
import { openPull, refreshPulls, submitPull } from './pull.js';

// --------------------------------------------------------------- start --

function start() {
  for (const id of ['details', 'register', 'pull', 'confirm']) trapFocus($(id));
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
  $('pull-open').addEventListener('click', openPull);
  $('pull-form').addEventListener('submit', submitPull);
  $('pull').addEventListener('close', () => $('pull-open').focus());

  renderCounts();
  setConnection(false);
  refreshModels().then(schedulePoll);
  refreshStatus();
  setInterval(() => { if (!document.hidden) refreshStatus(); }, STATUS_POLL_MS);
  connectEvents();
  refreshPulls();
}

// Exposed for tests and the console; changes nothing by itself.
window.modelwarden = Object.freeze({ incompatibleWarning, degradedWarning, recentFailureStreak });

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
