// The page's "Pull from Hugging Face" form (SPEC §17) in Debian's Chromium,
// against the real server pulling from the suite's own hub
// (tests/hub/fake_hub.mjs, the bytes sent slowly so that progress shows).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { card, launchBrowser, openPage } from './lib/browser.mjs';
import { binDir, sourceDir, startServer } from './lib/server.mjs';

const TEST = { timeout: 180000 };

// Starts the hub with one repository holding `file`; resolves {url, proc}.
function startHub(dir, file) {
  const config = path.join(dir, 'hub.json');
  fs.writeFileSync(config, JSON.stringify({
    repos: { 'org/tiny-GGUF': { commit: 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00', files: { 'tiny.Q4_K_M.gguf': file } } },
  }));
  const proc = spawn(process.execPath, [path.join(sourceDir, 'tests', 'hub', 'fake_hub.mjs'), config],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.stdout.once('data', (chunk) => {
      const m = chunk.toString().match(/^hub (\d+) cdn (\d+)/);
      if (!m) return reject(new Error(`hub said: ${chunk}`));
      resolve({ url: `http://127.0.0.1:${m[1]}`, proc });
    });
    proc.once('exit', (code) => reject(new Error(`the hub exited: ${code}`)));
  });
}

describe('pull form against the real server and a local hub', () => {
  let dir;
  let hub;
  let server;
  let browser;
  let opened;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-pull-web-'));
    const file = path.join(dir, 'tiny.gguf');
    execFileSync(path.join(binDir(), 'modelwarden'), ['make-test-model', file], { stdio: 'ignore', timeout: 120000 });
    hub = await startHub(dir, file);
    // Slowly: 64 KiB every 40 ms, so the page sees the bar move.
    await fetch(`${hub.url}/_control/faults`, {
      method: 'POST', body: JSON.stringify({ 'tiny.Q4_K_M.gguf': { slow_ms: 40, chunk: 65536 } }),
    });
    server = await startServer({ extraConfig: `hf_endpoint = ${JSON.stringify(hub.url)}\n` });
    browser = await launchBrowser();
  });

  after(async () => {
    if (opened) await opened.context.close().catch(() => {});
    if (browser) await browser.close();
    if (server) await server.stop();
    if (hub) hub.proc.kill('SIGTERM');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pulls a model by quant tag, shows its progress and then its card', TEST, async () => {
    opened = await openPage(browser, `${server.url}/`);
    const { page, record } = opened;
    await page.getByRole('button', { name: 'Pull from Hugging Face' }).click();
    await page.locator('#pull-repo').fill('org/tiny-GGUF');
    await page.locator('#pull-quant').fill('q4_k_m');
    await page.locator('#pull-name').fill('pulled');
    await page.locator('#pull-submit').click();
    const row = page.locator('#pulls .pull').first();
    await row.waitFor({ timeout: 10000 });
    assert.match(await row.locator('.pull-title').textContent(), /org\/tiny-GGUF → pulled/);
    // Mid-way: the bar is partly filled and the text names bytes and a rate.
    await page.waitForFunction(() => {
      const bar = document.querySelector('#pulls .pull progress');
      return bar && bar.value > 0 && bar.value < bar.max;
    }, null, { timeout: 30000 });
    assert.match(await row.locator('.pull-text').textContent(), /MiB of .* MiB/);
    await card(page, 'pulled').waitFor({ timeout: 60000 });
    assert.equal(await row.getAttribute('data-state'), 'done');
    const model = await server.model('pulled');
    assert.equal(model.hf_path, 'org/tiny-GGUF');
    assert.equal(model.compatibility_status, 'unknown');
    assert.deepEqual(record.errors, [], 'page errors');
  });
});
