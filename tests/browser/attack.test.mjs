// SPEC §9.1 with a real browser: a hostile page, served from another origin,
// tries what any web page can do to a server on 127.0.0.1 — a text/plain
// fetch, an auto-submitted form, and (with the hostile name resolved to
// 127.0.0.1, as DNS rebinding does) a "same-origin" JSON request. The server
// runs with allow_api_commands = true, the worst case: only the Host, Origin
// and Content-Type checks stand between the page and running a program.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { launchBrowser } from './lib/browser.mjs';
import { freePort, startServer } from './lib/server.mjs';

const TEST = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The hostile page: it sends the two requests of the issue-15 attack.
function attackPage(target, pwned) {
  const register = JSON.stringify({
    model_name: 'x', engine: 'command',
    load_config: { argv: ['/bin/touch', pwned], ready_pattern: 'x' },
  });
  // A text/plain form posts "name=value": split the JSON so the body is
  // exactly the JSON object plus a harmless padding key.
  const cut = register.length - 1;
  const formName = `${register.slice(0, cut)},"pad":"`;
  const formValue = '"}';
  return `<!doctype html><html><body>
<form id="f" method="POST" action="${target}/api/models" enctype="text/plain" target="sink">
  <input type="hidden" name='${formName.replace(/'/g, '&#39;')}' value='${formValue}'>
</form>
<iframe name="sink"></iframe>
<script>
  window.results = [];
  async function attack() {
    for (const [p, body] of [['/api/models', ${JSON.stringify(register)}],
                             ['/api/orchestrate/load', '{"model_name":"x"}']]) {
      try {
        await fetch('${target}' + p, { method: 'POST', mode: 'no-cors', body,
                                      headers: { 'Content-Type': 'text/plain' } });
        window.results.push('sent ' + p);
      } catch (e) { window.results.push('error ' + e.message); }
    }
    try {
      // Needs a CORS preflight, which the server refuses.
      await fetch('${target}/api/models', { method: 'POST', body: ${JSON.stringify(register)},
                                           headers: { 'Content-Type': 'application/json' } });
      window.results.push('json accepted');
    } catch (e) { window.results.push('json blocked'); }
    document.getElementById('f').submit();
    window.done = true;
  }
  attack();
</script></body></html>`;
}

describe('a hostile web page against the real server', () => {
  let server;
  let browser;
  let attacker;
  let attackerPort;
  let dir;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser(['--host-resolver-rules=MAP evil.example 127.0.0.1']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-attack-'));
    attackerPort = await freePort();
    attacker = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(attackPage(server.url, path.join(dir, 'pwned')));
    });
    await new Promise((resolve) => attacker.listen(attackerPort, '127.0.0.1', resolve));
  });

  after(async () => {
    if (browser) await browser.close();
    if (attacker) attacker.close();
    if (server) await server.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function assertNothingHappened() {
    const list = await server.ok('GET', '/api/models');
    assert.deepEqual(list.models.map((m) => m.model_name), []);
    assert.equal(fs.existsSync(path.join(dir, 'pwned')), false, 'the attacker\'s program ran');
  }

  it('cross-site text/plain fetches and a form post register and run nothing', TEST, async () => {
    for (const host of ['127.0.0.1', 'evil.example']) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const answers = [];
      page.on('response', (r) => {
        if (r.url().startsWith(server.url)) answers.push(r.status());
      });
      await page.goto(`http://${host}:${attackerPort}/`);
      await page.waitForFunction(() => window.done === true, null, { timeout: 20000 });
      await page.waitForLoadState('networkidle').catch(() => {});
      await sleep(500);
      const results = await page.evaluate(() => window.results);
      assert.ok(results.includes('sent /api/models'), JSON.stringify(results));
      assert.ok(results.includes('json blocked'), JSON.stringify(results));
      // The form post was answered with a refusal, not 201.
      assert.ok(!answers.includes(201), `answers: ${answers}`);
      await context.close();
    }
    await assertNothingHappened();
  });

  it('a rebound name reaches nothing, even same-origin', TEST, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // The server's own port under the attacker's name: what the page becomes
    // after DNS rebinding.
    const rebound = `http://evil.example:${server.port}`;
    const first = await page.goto(`${rebound}/`);
    assert.equal(first.status(), 403);
    const answers = await page.evaluate(async (pwned) => {
      const out = [];
      const register = JSON.stringify({
        model_name: 'x', engine: 'command',
        load_config: { argv: ['/bin/touch', pwned], ready_pattern: 'x' },
      });
      for (const [method, p, body] of [['GET', '/api/models'], ['POST', '/api/models', register],
        ['POST', '/api/orchestrate/load', '{"model_name":"x"}'], ['GET', '/api/status']]) {
        const r = await fetch(p, { method, body, headers: body ? { 'Content-Type': 'application/json' } : {} });
        out.push([p, r.status, (await r.json()).error?.code]);
      }
      return out;
    }, path.join(dir, 'pwned'));
    for (const [p, status, code] of answers) {
      assert.equal(status, 403, `${p}: ${status}`);
      assert.equal(code, 'host_not_allowed', p);
    }
    await context.close();
    await assertNothingHappened();
  });
});
