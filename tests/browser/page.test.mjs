// The web page, in Debian's Chromium, against the real `modelwarden serve`
// with real models (make-test-model) and crashing `command` fixtures.
// Tests run in order and share one server; each uses its own models.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { card, launchBrowser, openPage, requestsTo, screenshot } from './lib/browser.mjs';
import { crashingConfig, hangingConfig, slowReadyConfig, startServer } from './lib/server.mjs';

const LOAD_TIMEOUT = 90000;
const TEST = { timeout: 180000 };

// SPEC §7, word for word.
const incompatibleText = (name, notes) => `⚠️ WARNING: "${name}" is marked as INCOMPATIBLE with this hardware!

This model has failed to load previously and may crash the server.

Notes: ${notes}

Do you want to retry loading anyway? (This will use force_load=true)`;

const degradedText = (name, notes) => `⚠️ WARNING: "${name}" has DEGRADED compatibility!

This model has loaded successfully before but recently failed.
This might be a temporary issue (WSL/GPU reset needed).

Notes: ${notes}

Do you want to try loading anyway?`;

const XSS = '<img src=x onerror="window.__xss=1">';

// Closes what a describe block opened: pages, the browser, the server.
async function closeAll(opened, browser, server) {
  for (const o of opened) await o.context.close().catch(() => {});
  if (browser) await browser.close();
  if (server) {
    if (process.env.MW_DEBUG) console.log(server.output);
    await server.stop();
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('web page against the real server', () => {
  let server;
  let browser;
  let tinyFile;
  const opened = [];

  before(async () => {
    server = await startServer();
    tinyFile = server.makeTestModel('tiny.gguf');
    browser = await launchBrowser();
  });

  after(() => closeAll(opened, browser, server));

  async function open(options) {
    const o = await openPage(browser, `${server.url}/`, options);
    opened.push(o);
    return o;
  }

  // Nothing the page did may have thrown or raised a native dialog.
  function assertClean(o) {
    assert.deepEqual(o.record.errors, [], 'page errors');
    assert.deepEqual(o.record.dialogs, [], 'native dialogs');
  }

  async function registerTiny(name, extra = {}) {
    await server.ok('POST', '/api/models', {
      model_name: name, hf_path: `test/${name}`, cache_location: 'primary', file_path: tinyFile, ...extra,
    });
  }

  async function registerCrashing(name) {
    await server.ok('POST', '/api/models', {
      model_name: name, engine: 'command', cache_location: 'primary', load_config: crashingConfig(),
    });
  }

  async function patch(name, body) {
    return server.ok('PATCH', `/api/models/${encodeURIComponent(name)}/config`, body);
  }

  async function waitStatus(page, name, status, timeout = LOAD_TIMEOUT) {
    await page.locator(`.card[data-model="${name}"][data-status="${status}"]`).waitFor({ timeout });
  }

  it('registers a model with the form and loads it to green, then unloads it', TEST, async () => {
    const o = await open();
    const { page } = o;
    await page.getByRole('button', { name: 'Register a model' }).click();
    const dialog = page.locator('#register');
    await dialog.waitFor();
    await page.fill('#reg-name', 'tiny-green');
    await page.fill('#reg-hf', 'test/tiny-green');
    await page.fill('#reg-file', tinyFile);
    await page.fill('#reg-config', '{"n_ctx": 256}');
    await page.click('#register-submit');
    await dialog.waitFor({ state: 'hidden' });

    const c = card(page, 'tiny-green');
    await waitStatus(page, 'tiny-green', 'unknown', 10000);
    assert.equal(await c.locator('.badge').textContent(), 'unknown');
    assert.equal(await c.locator('.hf-path').textContent(), 'test/tiny-green');
    assert.equal(await c.locator('.engine').textContent(), 'llama.cpp');
    const registered = await server.model('tiny-green');
    assert.equal(registered.load_config.n_ctx, 256);

    await c.getByRole('button', { name: 'Load tiny-green', exact: true }).click();
    await waitStatus(page, 'tiny-green', 'compatible');
    await c.locator('.unload-btn:not([disabled])').waitFor();
    assert.equal(await c.locator('.badge').textContent(), 'compatible');
    assert.equal(await c.locator('.total-loads').textContent(), '1');
    assert.equal(await c.locator('.total-failures').textContent(), '0');
    assert.ok(await c.locator('.load-btn').isDisabled(), 'Load is disabled while loaded');
    await page.waitForFunction(() => document.getElementById('loaded-models').textContent.includes('tiny-green'));
    assert.equal(requestsTo(o.record, '/api/orchestrate/load').length, 1);

    await c.getByRole('button', { name: 'Unload tiny-green', exact: true }).click();
    await c.locator('.load-btn:not([disabled])').waitFor({ timeout: 30000 });
    assert.equal((await server.model('tiny-green')).loaded, false);
    assert.equal(await c.locator('.badge').textContent(), 'compatible');
    assertClean(o);
  });

  it('registers a command model through an engine preset of the configuration and loads it', TEST, async () => {
    const o = await open();
    const { page } = o;
    await page.getByRole('button', { name: 'Register a model' }).click();
    const dialog = page.locator('#register');
    await dialog.waitFor();
    assert.ok(await page.locator('#reg-preset-field').isHidden(), 'no preset choice for llama.cpp');
    await page.fill('#reg-name', 'preset-cmd');
    await page.selectOption('#reg-engine', 'command');
    await page.locator('#reg-preset-field').waitFor();
    assert.deepEqual(await page.locator('#reg-preset option').allTextContents(), ['fake-ready']);
    await page.click('#register-submit');
    await dialog.waitFor({ state: 'hidden' });
    const registered = await server.model('preset-cmd');
    assert.equal(registered.engine, 'command');
    assert.deepEqual(registered.load_config, { preset: 'fake-ready' });

    const c = card(page, 'preset-cmd');
    await c.getByRole('button', { name: 'Load preset-cmd', exact: true }).click();
    await waitStatus(page, 'preset-cmd', 'compatible');
    await c.getByRole('button', { name: 'Unload preset-cmd', exact: true }).click();
    await c.locator('.load-btn:not([disabled])').waitFor({ timeout: 30000 });
    assertClean(o);
  });

  it('shows live progress (blue, testing) while a slow model loads', TEST, async () => {
    await server.ok('POST', '/api/models', {
      model_name: 'slow-ready', engine: 'command', cache_location: 'primary', load_config: slowReadyConfig(4),
    });
    const o = await open();
    const { page } = o;
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 10000 });
    const c = card(page, 'slow-ready');
    await c.locator('.load-btn').click();
    await waitStatus(page, 'slow-ready', 'testing', 3500);
    assert.ok(await c.locator('.progress-wrap').isVisible(), 'progress shown while loading');
    assert.equal(await c.locator('.badge').textContent(), 'testing');
    const blue = await c.locator('.badge').evaluate((n) => getComputedStyle(n).backgroundColor);
    assert.match(blue, /^rgb/);
    await waitStatus(page, 'slow-ready', 'compatible');
    await c.locator('.progress-wrap').waitFor({ state: 'hidden' });
    await server.ok('POST', '/api/orchestrate/unload', { model_name: 'slow-ready' });
    assertClean(o);
  });

  it('a load in progress can be cancelled: the attempt ends cancelled, the status is restored', TEST, async () => {
    const notes = 'worked last week';
    await server.ok('POST', '/api/models', {
      model_name: 'hangs', engine: 'command', cache_location: 'primary', load_config: hangingConfig(600),
    });
    // Not the default status, so that "restored" cannot pass as "reset".
    await patch('hangs', { compatibility_status: 'compatible', compatibility_notes: notes });
    // Whatever happens, the hanging load must not block the later tests' loads.
    try {
      const o = await open();
      const { page } = o;
      await page.locator('#connection[data-state="live"]').waitFor({ timeout: 10000 });
      const c = card(page, 'hangs');
      await waitStatus(page, 'hangs', 'compatible', 10000);
      assert.ok(await c.locator('.cancel-btn').isHidden(), 'no Cancel while idle');

      await c.getByRole('button', { name: 'Load hangs', exact: true }).click();
      const cancel = c.getByRole('button', { name: 'Cancel loading hangs', exact: true });
      await cancel.waitFor({ timeout: 10000 });
      await waitStatus(page, 'hangs', 'testing', 10000);
      assert.ok(await c.locator('.unload-btn').isHidden(), 'Cancel takes the place of Unload');
      assert.equal(await cancel.textContent(), 'Cancel');

      await cancel.click();
      await page.locator('.toast', { hasText: 'Cancelled loading "hangs".' }).waitFor({ timeout: 30000 });
      await waitStatus(page, 'hangs', 'compatible', 30000);
      await c.locator('.load-btn:not([disabled])').waitFor({ timeout: 10000 });
      assert.ok(await c.locator('.cancel-btn').isHidden(), 'Cancel gone once the load ended');
      assert.ok(await c.locator('.unload-btn').isVisible());
      assert.equal(await c.locator('.load-state').textContent(), 'idle');
      assert.equal(await c.locator('.total-failures').textContent(), '0');

      const unloads = requestsTo(o.record, '/api/orchestrate/unload');
      assert.equal(unloads.length, 1);
      assert.deepEqual(JSON.parse(unloads[0].body), { model_name: 'hangs' });
      // SPEC §6 "a stop asked for by a user is never recorded as a failure";
      // docs/api.md: the attempt ends `cancelled`, the status is restored.
      const m = await server.model('hangs');
      assert.equal(m.loaded, false);
      assert.equal(m.load_state, 'idle');
      assert.equal(m.compatibility_status, 'compatible');
      assert.equal(m.compatibility_notes, notes);
      assert.equal(m.total_failures, 0);
      assert.equal(m.total_loads, 0);
      assert.equal(m.last_failed_at, null);
      assert.equal(m.attempts.length, 1);
      assert.equal(m.attempts[0].outcome, 'cancelled');
      assert.equal(m.attempts[0].status_before, 'compatible');
      assert.equal(m.attempts[0].status_after, 'compatible');
      // The load request's own 409 "cancelled" is not reported as a failure.
      assert.equal(await page.locator('.toast-error', { hasText: 'hangs' }).count(), 0);
      assertClean(o);
    } finally {
      await server.api('POST', '/api/orchestrate/unload', { model_name: 'hangs' });
    }
  });

  it('a model deleted elsewhere leaves the page at once, not at the next poll', TEST, async () => {
    await registerTiny('tiny-gone');
    const o = await open();
    const { page } = o;
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 10000 });
    await card(page, 'tiny-gone').waitFor({ timeout: 10000 });
    await server.ok('DELETE', '/api/models/tiny-gone');
    // While events flow the fallback poll runs every 15 s: the card must go well before.
    await card(page, 'tiny-gone').waitFor({ state: 'detached', timeout: 5000 });
    assertClean(o);
  });

  it('a crashing model turns red, with its log excerpt shown as text', TEST, async () => {
    await registerCrashing('crashy');
    const o = await open();
    const { page } = o;
    const c = card(page, 'crashy');
    await c.locator('.load-btn').click(); // status unknown: no warning
    await waitStatus(page, 'crashy', 'incompatible');
    assert.equal(await c.locator('.badge').textContent(), 'incompatible');
    await page.waitForFunction(() =>
      document.querySelector('.card[data-model="crashy"] .total-failures').textContent === '1');
    const model = await server.model('crashy');
    assert.ok(model.compatibility_notes, 'the server wrote notes');
    const shown = model.last_error || model.compatibility_notes;
    const firstLine = shown.split('\n').map((l) => l.trim()).find(Boolean);
    assert.equal(await c.locator('.last-error-text').textContent(), firstLine);
    const toast = page.locator('.toast-error', { hasText: 'crashy' });
    await toast.first().waitFor();

    // Details: the attempt, its outcome and log excerpt, as text.
    await c.locator('.model-name').click();
    const dialog = page.locator('#details');
    await dialog.waitFor();
    const attempt = dialog.locator('.attempt').first();
    await attempt.waitFor();
    assert.ok(['crashed', 'failed'].includes(await attempt.getAttribute('data-outcome')));
    const log = await attempt.locator('.log-excerpt').textContent();
    assert.ok(log.includes('<img src=x onerror="window.__xssLog=1">'), `log excerpt as text: ${log}`);
    assert.equal(await dialog.locator('img').count(), 0, 'no element made from log text');
    assert.equal(await page.evaluate(() => window.__xssLog), undefined);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // Loading it again shows the incompatible warning with its real notes;
    // cancel loads nothing.
    const before = requestsTo(o.record, '/api/orchestrate/load').length;
    await c.locator('.load-btn').click();
    const message = page.locator('#confirm-message');
    await message.waitFor();
    assert.equal(await message.textContent(), incompatibleText('crashy', model.compatibility_notes));
    await page.click('#confirm-cancel');
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    await sleep(300);
    assert.equal(requestsTo(o.record, '/api/orchestrate/load').length, before);
    assertClean(o);
  });

  it('incompatible: the exact warning; cancel loads nothing, confirm force-loads', TEST, async () => {
    const notes = 'Hardware incompatibility detected: CreateContext failed (hipErrorNoDevice)';
    await registerTiny('tiny-red');
    await patch('tiny-red', { compatibility_status: 'incompatible', compatibility_notes: notes });
    const o = await open();
    const { page } = o;
    const c = card(page, 'tiny-red');
    await waitStatus(page, 'tiny-red', 'incompatible', 10000);

    await c.locator('.load-btn').click();
    const message = page.locator('#confirm-message');
    await message.waitFor();
    assert.equal(await message.textContent(), incompatibleText('tiny-red', notes));
    // Cancel has the focus: Enter or Esc never loads by accident.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel');
    await page.click('#confirm-cancel');
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    await sleep(500);
    assert.equal(requestsTo(o.record, '/api/orchestrate/load').length, 0, 'no load request');
    const untouched = await server.model('tiny-red');
    assert.equal(untouched.compatibility_status, 'incompatible');
    assert.equal(untouched.attempts.length, 0, 'no attempt recorded');
    assert.equal(untouched.loaded, false);

    await c.locator('.load-btn').click();
    await message.waitFor();
    await page.click('#confirm-ok');
    await waitStatus(page, 'tiny-red', 'compatible');
    const loads = requestsTo(o.record, '/api/orchestrate/load');
    assert.equal(loads.length, 1);
    assert.deepEqual(JSON.parse(loads[0].body), { model_name: 'tiny-red', force_load: true });
    const forced = await server.model('tiny-red');
    assert.equal(forced.attempts[0].forced, true);
    assert.equal(forced.loaded, true);
    await server.ok('POST', '/api/orchestrate/unload', { model_name: 'tiny-red' });
    assertClean(o);
  });

  it('degraded: the exact warning; cancel loads nothing, confirm loads normally', TEST, async () => {
    const notes = 'Intermittent issue detected (loaded successfully 5 times before): Aborted (core dumped)';
    await registerTiny('tiny-yellow');
    await patch('tiny-yellow', { compatibility_status: 'degraded', compatibility_notes: notes });
    const o = await open();
    const { page } = o;
    const c = card(page, 'tiny-yellow');
    await waitStatus(page, 'tiny-yellow', 'degraded', 10000);

    await c.locator('.load-btn').click();
    const message = page.locator('#confirm-message');
    await message.waitFor();
    assert.equal(await message.textContent(), degradedText('tiny-yellow', notes));
    await page.keyboard.press('Escape'); // Esc is a cancel too
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    await sleep(500);
    assert.equal(requestsTo(o.record, '/api/orchestrate/load').length, 0, 'no load request');
    assert.equal((await server.model('tiny-yellow')).attempts.length, 0);

    await c.locator('.load-btn').click();
    await message.waitFor();
    await page.click('#confirm-ok');
    await waitStatus(page, 'tiny-yellow', 'compatible');
    const loads = requestsTo(o.record, '/api/orchestrate/load');
    assert.equal(loads.length, 1);
    assert.deepEqual(JSON.parse(loads[0].body), { model_name: 'tiny-yellow' }, 'a normal load, not forced');
    await server.ok('POST', '/api/orchestrate/unload', { model_name: 'tiny-yellow' });
    assertClean(o);
  });

  it('details modal: load_config editor validates, saves, and shows server refusals', TEST, async () => {
    await registerTiny('tiny-config');
    const o = await open();
    const { page } = o;
    const c = card(page, 'tiny-config');
    await c.locator('.model-name').click();
    const dialog = page.locator('#details');
    await dialog.waitFor();
    assert.deepEqual(await page.locator('#details-status option').evaluateAll((os) => os.map((x) => x.value)),
      ['unknown', 'compatible', 'incompatible', 'degraded'], 'never offers testing');

    const patches = () => requestsTo(o.record, '/api/models/tiny-config/config');
    // Valid: saved.
    await page.fill('#details-config', '{"n_ctx": 512, "flash_attn": false}');
    await page.click('#details-save');
    await page.locator('.toast', { hasText: 'Saved "tiny-config"' }).waitFor();
    const saved = await server.model('tiny-config');
    assert.equal(saved.load_config.n_ctx, 512);
    assert.equal(saved.load_config.flash_attn, false);
    assert.deepEqual(JSON.parse(patches()[0].body), { load_config: { n_ctx: 512, flash_attn: false } });

    // Invalid JSON: inline error, nothing sent.
    await page.fill('#details-config', '{"n_ctx": ');
    await page.click('#details-save');
    const inline = page.locator('#details-config-error');
    await inline.waitFor();
    assert.match(await inline.textContent(), /^load_config is not valid JSON/);
    assert.equal(await page.getAttribute('#details-config', 'aria-invalid'), 'true');
    // Valid JSON that is not an object: refused too.
    await page.fill('#details-config', '[1, 2]');
    await page.click('#details-save');
    assert.match(await inline.textContent(), /must be a JSON object/);
    await sleep(300);
    assert.equal(patches().length, 1, 'no request for invalid JSON');

    // Valid JSON the server refuses (unknown key): its message is shown.
    await page.fill('#details-config', '{"no_such_key": 1}');
    assert.ok(await inline.isHidden(), 'the inline error clears once the JSON is valid');
    await page.click('#details-save');
    const refused = page.locator('#details-error');
    await refused.waitFor();
    const direct = await server.api('PATCH', '/api/models/tiny-config/config', { load_config: { no_such_key: 1 } });
    assert.equal(direct.status, 400);
    assert.equal(await refused.textContent(), `The server refused the change: ${direct.body.error.message}`);
    assert.equal((await server.model('tiny-config')).load_config.n_ctx, 512, 'nothing changed');

    // Status and notes from the dropdown and the textarea.
    await page.fill('#details-config', '{"n_ctx": 512, "flash_attn": false}');
    await page.selectOption('#details-status', 'degraded');
    await page.fill('#details-notes', 'checked by hand');
    await page.click('#details-save');
    await waitStatus(page, 'tiny-config', 'degraded', 10000);
    const edited = await server.model('tiny-config');
    assert.equal(edited.compatibility_status, 'degraded');
    assert.equal(edited.compatibility_notes, 'checked by hand');
    assertClean(o);
  });

  it('a note holding HTML markup shows as literal text and runs no script', TEST, async () => {
    await registerTiny('tiny-xss');
    const o = await open();
    const { page } = o;
    const c = card(page, 'tiny-xss');
    await c.locator('.model-name').click();
    await page.locator('#details').waitFor();
    await page.fill('#details-notes', XSS);
    await page.click('#details-save');
    await page.locator('.toast', { hasText: 'Saved "tiny-xss"' }).waitFor();
    assert.equal((await server.model('tiny-xss')).compatibility_notes, XSS);
    await page.keyboard.press('Escape');

    for (let round = 0; round < 2; round += 1) {
      await c.locator('.last-error-text').waitFor();
      assert.equal(await c.locator('.last-error-text').textContent(), XSS);
      assert.equal(await page.locator('.card img, #details img').count(), 0);
      await c.locator('.model-name').click();
      assert.equal(await page.inputValue('#details-notes'), XSS);
      await page.keyboard.press('Escape');
      assert.equal(await page.evaluate(() => window.__xss), undefined, 'no script ran');
      await page.reload(); // and again, rendered from a fresh page load
    }
    assertClean(o);
  });

  it('is keyboard usable: Enter opens the details, Tab stays inside, Esc closes', TEST, async () => {
    const o = await open();
    const { page } = o;
    const name = card(page, 'tiny-config').locator('.model-name');
    await name.focus();
    await page.keyboard.press('Enter');
    await page.locator('#details').waitFor();
    for (let i = 0; i < 25; i += 1) {
      await page.keyboard.press(i % 5 === 4 ? 'Shift+Tab' : 'Tab');
      assert.ok(await page.evaluate(() => document.getElementById('details').contains(document.activeElement)),
        'focus stays in the dialog');
    }
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'focus is visible');
    await page.keyboard.press('Escape');
    await page.locator('#details').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'tiny-config',
      'focus returns to the model name');
    assertClean(o);
  });

  // SPEC §12: memory in use by the loaded models against the memory free,
  // from GET /api/status, following loads and unloads (evictions too).
  it('the header shows the memory in use by loaded models against the memory free', TEST, async () => {
    await registerTiny('tiny-mem', { load_config: { n_ctx: 256 } });
    const o = await open();
    const { page } = o;
    const summary = page.locator('#memory-summary');
    const shape = /^(\d+(\.\d)? (B|KiB|MiB|GiB|TiB)) in use · \d+(\.\d)? (B|KiB|MiB|GiB|TiB) free$/;
    await page.waitForFunction(() => document.getElementById('memory-summary').textContent.includes(' free'));
    const inUse = async () => (await summary.textContent()).split(' in use')[0];
    assert.match(await summary.textContent(), shape);
    const before = await inUse();
    const status = await server.ok('GET', '/api/status');
    assert.equal(typeof status.memory.in_use_bytes, 'number');
    assert.equal(typeof status.memory.free_bytes, 'number');

    await server.ok('POST', '/api/orchestrate/load', { model_name: 'tiny-mem' });
    const held = (await server.ok('GET', '/api/status')).loaded_models.find((m) => m.model_name === 'tiny-mem');
    assert.ok(held && held.memory_used > 0, JSON.stringify(held));
    await page.waitForFunction((b) => !document.getElementById('memory-summary').textContent.startsWith(`${b} in use`),
      before, { timeout: 20000 });
    assert.match(await summary.textContent(), shape);
    await server.ok('POST', '/api/orchestrate/unload', { model_name: 'tiny-mem' });
    await page.waitForFunction((b) => document.getElementById('memory-summary').textContent.startsWith(`${b} in use`),
      before, { timeout: 20000 });
    // Text only: the summary is a single text node.
    assert.equal(await page.evaluate(() => document.getElementById('memory-summary').children.length), 0);
    assertClean(o);
  });

  // SPEC §18 (issue 23 points 8, 10, 11): a model that will not fit says so on
  // its card before anyone clicks, the details show the estimate; the card
  // names the file; the CPU's bar and the memory line give one free figure.
  it("a model that will not fit says so on its card; details show the estimate", TEST, async () => {
    // flash_attn off at n_ctx 2^24: a compute buffer of hundreds of GiB.
    await server.ok('POST', '/api/models', {
      model_name: 'too-big', file_path: tinyFile, load_config: { n_ctx: 16777216, flash_attn: 'off' },
    });
    const o = await open();
    const { page } = o;
    const c = card(page, 'too-big');
    await c.locator('.no-fit-mark').waitFor({ state: 'visible', timeout: 30000 });
    assert.match(await c.locator('.no-fit-mark').getAttribute('title'), /would fit with n_ctx 2048/);
    assert.equal(await c.locator('.hf-path').textContent(), tinyFile);
    await c.locator('.model-name').click();
    const facts = page.locator('#details-facts');
    await page.waitForFunction(() => document.getElementById('details-facts').textContent.includes('will not fit'),
      null, { timeout: 20000 });
    assert.match(await facts.textContent(), /Memory estimate.*at n_ctx 16777216 — will not fit/);
    assert.doesNotMatch(await facts.textContent(), /\(loaded\)/);
    await page.keyboard.press('Escape');
    // Load anyway: the refusal offers a button, never an API field.
    await c.locator('.load-btn').click();
    const message = page.locator('#confirm-message');
    await message.waitFor();
    assert.match(await message.textContent(), /would not fit in free memory/);
    assert.doesNotMatch(await message.textContent(), /force_load/);
    assert.equal(await page.locator('#confirm-ok').textContent(), 'Load anyway (force)');
    await page.click('#confirm-cancel');
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    assert.equal(requestsTo(o.record, '/api/orchestrate/load').length, 1, 'only the refused load');
    const status = await server.ok('GET', '/api/status');
    const cpu = status.devices.find((d) => d.kind === 'cpu');
    if (cpu) assert.ok(cpu.memory_free < cpu.memory_total, JSON.stringify(cpu));  // MemAvailable, not the total
    assertClean(o);
  });

  it('shows a banner when the recent loads of several models all failed', TEST, async () => {
    const o = await open();
    const { page } = o;
    await page.locator('.card').first().waitFor();
    assert.ok(await page.locator('#system-banner').isHidden(), 'no banner while loads succeed');
    for (const name of ['gpu-a', 'gpu-b', 'gpu-c']) {
      await registerCrashing(name);
      const res = await server.api('POST', '/api/orchestrate/load', { model_name: name });
      assert.equal(res.status, 422, `${name} fails to load: ${res.text}`);
    }
    const banner = page.locator('#system-banner');
    await banner.waitFor({ timeout: 20000 });
    const text = await banner.textContent();
    assert.match(text, /system-wide GPU or driver problem is more likely than bad models/);
    for (const name of ['gpu-a', 'gpu-b', 'gpu-c']) assert.ok(text.includes(name), text);
    assertClean(o);
  });

  it('renders cleanly in light and dark mode and at phone width (screenshots)', TEST, async () => {
    const colors = {};
    for (const colorScheme of ['light', 'dark']) {
      for (const width of [1280, 375]) {
        const o = await open({ colorScheme, viewport: { width, height: 900 } });
        const { page } = o;
        await page.locator('.card[data-status="incompatible"]').first().waitFor();
        await page.waitForTimeout(300);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `no horizontal scrolling at ${width}px (${overflow}px over)`);
        if (width === 1280) {
          colors[colorScheme] = await page.evaluate(() => Object.fromEntries(
            [...document.querySelectorAll('#status-counts .count')].map((li) => [li.dataset.status,
              getComputedStyle(li.querySelector('.badge')).backgroundColor])));
        }
        await screenshot(page, `page-${colorScheme}-${width}.png`);
        if (width === 1280) {
          await card(page, 'crashy').locator('.model-name').click();
          await page.locator('#details .attempt').first().waitFor();
          await screenshot(page, `details-${colorScheme}.png`, false);
          await page.keyboard.press('Escape');
          await card(page, 'crashy').locator('.load-btn').click();
          await page.locator('#confirm-message').waitFor();
          await screenshot(page, `warning-${colorScheme}.png`, false);
          await page.click('#confirm-cancel');
        }
        assertClean(o);
        await o.context.close();
      }
    }
    // SPEC §1 colours: gray, green, red, yellow, blue, in both schemes.
    for (const scheme of ['light', 'dark']) {
      const rgb = Object.fromEntries(Object.entries(colors[scheme]).map(([k, v]) => [k, v.match(/\d+/g).map(Number)]));
      const [ur, ug, ub] = rgb.unknown;
      assert.ok(Math.max(ur, ug, ub) - Math.min(ur, ug, ub) < 40, `${scheme} unknown is gray ${rgb.unknown}`);
      const [cr, cg, cb] = rgb.compatible;
      assert.ok(cg > cr && cg > cb, `${scheme} compatible is green ${rgb.compatible}`);
      const [ir, ig, ib] = rgb.incompatible;
      assert.ok(ir > ig && ir > ib, `${scheme} incompatible is red ${rgb.incompatible}`);
      const [dr, dg, db] = rgb.degraded;
      assert.ok(dr > db && dg > db && dr - dg < 80, `${scheme} degraded is yellow ${rgb.degraded}`);
      const [tr, tg, tb] = rgb.testing;
      assert.ok(tb > tr && tb > tg, `${scheme} testing is blue ${rgb.testing}`);
    }
  });

  // SPEC §11. A shell engine written here: its size is part of the verdict's
  // environment, so rewriting it makes the verdict stale.
  function writeEngine(file, body) {
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }

  // SPEC §14. One server on its SQLite registry is one node of its own fleet.
  it('the header shows the node count; details show the verdicts of other classes', TEST, async () => {
    await registerTiny('tiny-fleet', { load_config: { n_ctx: 256 } });
    const o = await open();
    const { page } = o;
    const chip = page.locator('#node-count');
    await chip.waitFor();
    assert.equal(await chip.textContent(), '1 node');
    const status = await server.ok('GET', '/api/status');
    assert.ok((await chip.getAttribute('title')).includes(status.node.node_id));

    // One class (SQLite): nothing more to show.
    await card(page, 'tiny-fleet').locator('.model-name').click();
    await page.locator('#attempts-empty').filter({ hasText: 'No load attempts yet.' }).waitFor();
    assert.ok(await page.locator('#verdicts-section').isHidden());
    await page.keyboard.press('Escape');

    // A second class exists only with several servers on PostgreSQL: the
    // real answer gets one more class's verdict on its way to the page.
    await page.route('**/api/models/tiny-fleet', async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      body.verdicts.push({
        environment_class: 'rocm gfx1100 | driver 6 | llama b1', status: 'incompatible',
        notes: `Hardware incompatibility detected: ${XSS}`, nodes: ['gpu-b', 'gpu-c'],
        total_loads: 0, total_failures: 1, this_node_class: false,
      });
      await route.fulfill({ response, json: body });
    });
    await card(page, 'tiny-fleet').locator('.model-name').click();
    const other = page.locator('#verdicts .verdict');
    await other.first().waitFor();
    assert.equal(await other.count(), 1, 'this node\'s own class is the badge, not a second entry');
    assert.equal(await other.getAttribute('data-status'), 'incompatible');
    assert.equal(await other.locator('.badge').textContent(), 'incompatible');
    assert.equal(await other.locator('.verdict-class').textContent(), 'rocm gfx1100 | driver 6 | llama b1');
    assert.match(await other.textContent(), /nodes: gpu-b, gpu-c/);
    assert.ok((await other.locator('.attempt-summary').textContent()).includes(XSS), 'notes are text');
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    await other.scrollIntoViewIfNeeded();
    await screenshot(page, 'details-verdicts.png', false);
    await page.keyboard.press('Escape');
    await page.unroute('**/api/models/tiny-fleet');
    assertClean(o);
  });

  it('a stale verdict is marked on its card and Retest loads the model', TEST, async () => {
    const engine = path.join(server.dataDir, 'stale-engine.sh');
    writeEngine(engine, "echo 'GGML_ASSERT(ggml_nelements(a) == ne0) failed' >&2\nexit 1");
    await server.ok('POST', '/api/models', {
      model_name: 'stale-one', engine: 'command', load_config: { argv: [engine], ready_pattern: 'ready' },
    });
    const failed = await server.api('POST', '/api/orchestrate/load', { model_name: 'stale-one' });
    assert.equal(failed.status, 422, failed.text);
    const o = await open();
    const { page } = o;
    await waitStatus(page, 'stale-one', 'incompatible', 10000);
    const c = card(page, 'stale-one');
    assert.ok(await c.locator('.stale-mark').isHidden(), 'not stale in the environment it was judged in');
    assert.ok(await c.locator('.retest-btn').isHidden());

    writeEngine(engine, 'echo ready\nexec sleep 600');  // the engine was updated
    await page.reload();
    await c.locator('.stale-mark').waitFor({ timeout: 10000 });
    assert.match(await c.locator('.stale-mark').getAttribute('title'), /engine_binary changed/);
    await c.locator('.retest-btn').click();
    await waitStatus(page, 'stale-one', 'compatible');
    await page.locator('.card[data-model="stale-one"].is-loaded').waitFor({ timeout: 20000 });
    assert.ok(await c.locator('.stale-mark').isHidden());
    assertClean(o);
    await server.ok('POST', '/api/orchestrate/unload', { model_name: 'stale-one' });
  });

  it("shows the server's banner while the environment is failing", TEST, async () => {
    const engine = path.join(server.dataDir, 'gpu-engine.sh');
    writeEngine(engine, "echo 'CUDA error: unspecified launch failure' >&2\nkill -ABRT $$");
    const o = await open();
    const { page } = o;
    await page.locator('.card').first().waitFor();
    for (const name of ['env-a', 'env-b', 'env-c']) {
      await server.ok('POST', '/api/models', {
        model_name: name, engine: 'command', load_config: { argv: [engine], ready_pattern: 'ready' },
      });
      const res = await server.api('POST', '/api/orchestrate/load', { model_name: name });
      assert.equal(res.status, 422, `${name} fails to load: ${res.text}`);
    }
    const banner = page.locator('#system-banner');
    await page.waitForFunction(() => /environment is failing/.test(document.querySelector('#system-banner').textContent),
      null, { timeout: 20000 });
    const text = await banner.textContent();
    for (const name of ['env-a', 'env-b', 'env-c']) assert.ok(text.includes(name), text);
    await waitStatus(page, 'env-a', 'unknown', 10000);  // the verdicts were reverted
    await server.ok('POST', '/api/environment/reset');
    await page.waitForFunction(() => !/environment is failing/.test(document.querySelector('#system-banner').textContent),
      null, { timeout: 20000 });
    assertClean(o);
  });
});

// A server started with an api_key: every /api/ call needs the key, the page
// asks for it, keeps it in sessionStorage and sends it.
describe('web page against a server with an API key', () => {
  const KEY = 'browser-test-key-7f3a';
  let server;
  let browser;
  const opened = [];

  before(async () => {
    server = await startServer({ apiKey: KEY });
    const tinyFile = server.makeTestModel('tiny.gguf');
    await server.ok('POST', '/api/models', {
      model_name: 'tiny-key', hf_path: 'test/tiny-key', cache_location: 'primary', file_path: tinyFile,
    });
    browser = await launchBrowser();
  });

  after(() => closeAll(opened, browser, server));

  it('asks for the key, refuses a wrong one with the server message, then works with live updates', TEST, async () => {
    // The server really refuses the page's API calls without the key, and
    // never writes the key into the page.
    const refused = await fetch(`${server.url}/api/models`);
    assert.equal(refused.status, 401);
    const refusal = (await refused.json()).error;
    assert.equal(refusal.code, 'unauthorized');
    for (const asset of ['/', '/app.js']) {
      const text = await (await fetch(server.url + asset)).text();
      assert.ok(!text.includes(KEY), `${asset} holds no key`);
    }

    const o = await openPage(browser, `${server.url}/`);
    opened.push(o);
    const { page } = o;
    const apiRequests = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/api/')) {
        apiRequests.push({ path: u.pathname, auth: r.headers().authorization, token: u.searchParams.get('access_token') });
      }
    });

    const prompt = page.getByRole('region', { name: 'API key required' });
    await prompt.waitFor({ timeout: 10000 });
    const input = page.getByLabel('API key', { exact: true });
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'auth-key');
    assert.equal(await page.locator('.card').count(), 0, 'no model shown without the key');
    assert.ok(await page.locator('#auth-error').isHidden(), 'no error before a key was tried');

    await input.fill('not-the-key');
    await page.getByRole('button', { name: 'Use key' }).click();
    const error = page.locator('#auth-error');
    await error.waitFor();
    assert.equal(await error.textContent(), refusal.message);
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    assert.ok(await prompt.isVisible(), 'asks again');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('modelwarden.apiKey')), null);
    await screenshot(page, 'api-key-prompt.png', false);

    await input.fill(KEY);
    await input.press('Enter');
    await prompt.waitFor({ state: 'hidden' });
    const c = card(page, 'tiny-key');
    await waitCard(page, 'tiny-key', 'unknown');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('modelwarden.apiKey')), KEY);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 15000 });
    assert.ok(apiRequests.some((r) => r.path === '/api/events' && r.token === KEY), 'event stream with access_token');

    await c.getByRole('button', { name: 'Load tiny-key', exact: true }).click();
    await waitCard(page, 'tiny-key', 'compatible', LOAD_TIMEOUT);
    await c.locator('.unload-btn:not([disabled])').waitFor();
    assert.equal((await server.model('tiny-key')).loaded, true);
    // An unload done elsewhere reaches the page through the event stream
    // (its fallback poll runs every 15 s while the stream is live).
    await server.ok('POST', '/api/orchestrate/unload', { model_name: 'tiny-key' });
    await c.locator('.load-btn:not([disabled])').waitFor({ timeout: 5000 });

    const sent = apiRequests.filter((r) => r.path !== '/api/events' && r.auth);
    assert.ok(sent.some((r) => r.path === '/api/orchestrate/load'), 'the load carried the key');
    for (const r of sent) assert.ok(r.auth === `Bearer ${KEY}` || r.auth === 'Bearer not-the-key', r.path);
    assert.deepEqual(requestsTo(o.record, '/api/orchestrate/load').length, 1);

    // The key lasts for the tab: a reload asks nothing.
    await page.reload();
    await waitCard(page, 'tiny-key', 'compatible');
    assert.ok(await page.locator('#auth').isHidden(), 'no prompt after a reload');
    assert.deepEqual(o.record.errors, [], 'page errors');
    assert.deepEqual(o.record.dialogs, [], 'native dialogs (no window.prompt)');
  });

  it('a stored key the server no longer accepts is asked for again', TEST, async () => {
    const o = await openPage(browser, `${server.url}/`);
    opened.push(o);
    const { page } = o;
    await page.evaluate(() => sessionStorage.setItem('modelwarden.apiKey', 'an-old-key'));
    await page.reload();
    const error = page.locator('#auth-error');
    await error.waitFor({ timeout: 10000 });
    assert.match(await error.textContent(), /API key/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('modelwarden.apiKey')), null, 'the refused key is dropped');
    await page.getByLabel('API key', { exact: true }).fill(KEY);
    await page.getByRole('button', { name: 'Use key' }).click();
    await waitCard(page, 'tiny-key', 'compatible');
    assert.deepEqual(o.record.errors, [], 'page errors');
  });

  async function waitCard(page, name, status, timeout = 15000) {
    await page.locator(`.card[data-model="${name}"][data-status="${status}"]`).waitFor({ timeout });
  }
});
