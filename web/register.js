// modelwarden web page: the register form.
// An ES module of the page (see app.js); the safety rule of app.js holds here too.

import { $, MODEL_NAME_RE, api, el, parseConfig, showError, state, str, toast } from './core.js';
import { refreshModels } from './events.js';

// ------------------------------------------------------------ register --

// The register form's preset choice: the names GET /api/status lists.
export function renderPresets() {
  const select = $('reg-preset');
  const presets = (state.status && Array.isArray(state.status.engine_presets)) ? state.status.engine_presets : [];
  const chosen = select.value;
  select.replaceChildren(...presets.map((p) => el('option', { text: str(p) })));
  for (const option of select.options) option.value = option.textContent;
  if (presets.includes(chosen)) select.value = chosen;
  syncPresetField();
}

export function syncPresetField() {
  const command = $('reg-engine').value === 'command';
  $('reg-preset-field').hidden = !command;
  if (command && $('reg-preset').options.length === 0) {
    $('reg-preset-hint').textContent =
      'No engine presets are configured: add an [engines.NAME] table (argv, ready_pattern or health_path) to the server\'s configuration file.';
  }
}

export function openRegister() {
  showError($('register-error'), '');
  showError($('reg-config-error'), '');
  syncPresetField();
  $('register').showModal();
  $('reg-name').focus();
}

export async function submitRegister(ev) {
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
