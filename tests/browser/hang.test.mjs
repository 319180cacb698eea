// SPEC §19 on the page: a model whose engine was stopped for hanging says so
// on its card (and in its details), against the real server with a short
// hang_timeout_s and a `command` engine that answers no HTTP.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { card, launchBrowser, openPage } from './lib/browser.mjs';
import { silentConfig, startServer } from './lib/server.mjs';

describe('engines that stop answering, on the page', () => {
  let server;
  let browser;
  let opened;

  before(async () => {
    server = await startServer({ extraConfig: 'health_interval_s = 1\nhang_timeout_s = 2\n' });
    browser = await launchBrowser();
  });

  after(async () => {
    if (opened) await opened.context.close().catch(() => {});
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  it('the card says when the model was last stopped for hanging', { timeout: 120000 }, async () => {
    await server.ok('POST', '/api/models', { model_name: 'silent', engine: 'command', load_config: silentConfig() });
    opened = await openPage(browser, `${server.url}/`);
    const { page } = opened;
    const c = card(page, 'silent');
    await c.waitFor();
    assert.ok(await c.locator('.hung-mark').isHidden(), 'never hung yet');
    await server.ok('POST', '/api/orchestrate/load', { model_name: 'silent' });
    // Judged after 2 s without an answer, stopped, recorded: the card turns red and says so.
    await page.locator('.card[data-model="silent"][data-status="incompatible"]').waitFor({ timeout: 60000 });
    await c.locator('.hung-mark').waitFor({ timeout: 10000 });
    assert.match(await c.locator('.hung-mark').textContent(), /^stopped for hanging /);
    const model = await server.ok('GET', '/api/models/silent');
    assert.equal(model.attempts[0].outcome, 'hung_while_serving');
    assert.ok(model.last_hung_at);
    assert.deepEqual(opened.record.errors, [], 'page errors');
  });
});
