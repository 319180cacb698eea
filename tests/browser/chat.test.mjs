// The chat panel of the model details, in Debian's Chromium, against the
// real server: it streams from /v1/chat/completions (loading the model on
// demand), renders text only, stops an answer, and shows refusals.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { card, launchBrowser, openPage, screenshot } from './lib/browser.mjs';
import { startServer } from './lib/server.mjs';
import { openAiEngineConfig } from './lib/openai_engine.mjs';

const TEST = { timeout: 120000 };

describe('chat panel against the real server', () => {
  let server;
  let browser;
  const opened = [];

  before(async () => {
    server = await startServer();
    await server.ok('POST', '/api/models', { model_name: 'echo', engine: 'command', load_config: openAiEngineConfig() });
    await server.ok('POST', '/api/models', { model_name: 'refused', engine: 'command', load_config: openAiEngineConfig() });
    await server.ok('PATCH', '/api/models/refused/config',
      { compatibility_status: 'incompatible', compatibility_notes: 'Hardware incompatibility detected: test' });
    // flash_attn off at n_ctx 2^24: far beyond any machine's memory (refused before any attempt).
    await server.ok('POST', '/api/models', {
      model_name: 'too-big', file_path: server.makeTestModel('tiny.gguf'), load_config: { n_ctx: 16777216, flash_attn: 'off' },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const o of opened) await o.context.close().catch(() => {});
    if (browser) await browser.close();
    if (server) {
      if (process.env.MW_DEBUG) console.log(server.output);
      await server.stop();
    }
  });

  async function openChat(name) {
    const o = await openPage(browser, `${server.url}/`);
    opened.push(o);
    await card(o.page, name).locator('.model-name').click();
    await o.page.locator('#details').waitFor();
    await o.page.locator('#chat-input').waitFor();
    return o;
  }

  const answers = (page) => page.locator('.chat-assistant .chat-text');

  it('streams an answer, keeps the conversation, renders text only', TEST, async () => {
    const { page, record } = await openChat('echo');
    await page.fill('#chat-input', 'TOKENS=3 <img src=x onerror="window.__xss=1">');
    await page.click('#chat-send');
    await page.waitForFunction(() => {
      const a = document.querySelectorAll('.chat-assistant .chat-text');
      return a.length === 1 && a[0].textContent === 'Hello w1 w2';
    }, null, { timeout: 60000 });
    // The user's text is shown as text, never as markup.
    assert.equal(await page.locator('.chat-user .chat-text').textContent(), 'TOKENS=3 <img src=x onerror="window.__xss=1">');
    assert.equal(await page.locator('#chat-log img').count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    // Loaded on demand, through the gate.
    assert.equal((await server.model('echo')).loaded, true);
    // Enter sends the next turn.
    await page.fill('#chat-input', 'TOKENS=1');
    await page.press('#chat-input', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('.chat-assistant .chat-text').length === 2
      && document.querySelectorAll('.chat-assistant .chat-text')[1].textContent === 'Hello', null, { timeout: 60000 });
    assert.equal(await page.locator('#details').isVisible(), true, 'Enter does not submit the details form');
    await screenshot(page, 'chat-panel.png', false);
    assert.deepEqual(record.errors, []);
    assert.deepEqual(record.dialogs, []);
  });

  it('Stop ends the answer; the model stays loaded and answers again', TEST, async () => {
    const { page, record } = await openChat('echo');
    await page.fill('#chat-input', 'TOKENS=2000 DELAY_MS=20');
    await page.click('#chat-send');
    await page.waitForFunction(() => {
      const a = document.querySelector('.chat-assistant .chat-text');
      return a && a.textContent.startsWith('Hello w1');
    }, null, { timeout: 60000 });
    await page.click('#chat-stop');
    await page.waitForFunction(() => document.querySelector('.chat-assistant .chat-text').textContent.endsWith('[stopped]'));
    assert.equal(await page.locator('#chat-stop').isVisible(), false);
    assert.equal(await page.locator('#chat-send').isDisabled(), false);
    assert.equal((await server.model('echo')).loaded, true);
    await page.fill('#chat-input', 'TOKENS=2');
    await page.click('#chat-send');
    await page.waitForFunction(() => {
      const a = document.querySelectorAll('.chat-assistant .chat-text');
      return a.length === 2 && a[1].textContent === 'Hello w1';
    }, null, { timeout: 60000 });
    assert.deepEqual(record.errors, []);
  });

  // SPEC §18: the server's advice in the page's words, not API fields.
  it('a refusal reads in the words of the page', TEST, async () => {
    const { page } = await openChat('too-big');
    await page.fill('#chat-input', 'hi');
    await page.click('#chat-send');
    const error = page.locator('#chat-error');
    await error.waitFor({ state: 'visible' });
    const text = await error.textContent();
    assert.match(text, /would not fit.*use Load on its card to try anyway/);
    assert.doesNotMatch(text, /force_load|POST \/api|PATCH \/api/);
  });

  // SPEC §18: no chat is offered for an incompatible model (the Load
  // button's warning is the way to try it).
  it('offers no chat for an incompatible model', TEST, async () => {
    const o = await openPage(browser, `${server.url}/`);
    opened.push(o);
    await card(o.page, 'refused').locator('.model-name').click();
    await o.page.locator('#details').waitFor();
    await o.page.locator('#chat-refused').waitFor({ state: 'visible' });
    assert.match(await o.page.locator('#chat-refused').textContent(), /marked incompatible/);
    assert.ok(await o.page.locator('#chat-input').isHidden(), 'no message box');
    assert.equal((await server.model('refused')).attempts.length, 0, 'never forced');
  });
});
