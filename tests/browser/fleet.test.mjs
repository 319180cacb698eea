// Issue 26 in Debian's Chromium: two real servers on one private PostgreSQL
// registry (tests/pg/pg-cluster); a page open on node B shows, without a
// reload, the verdict recorded through node A (LISTEN/NOTIFY to B's event
// stream).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchBrowser, openPage } from './lib/browser.mjs';
import { crashingConfig, startServer } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const clusterScript = path.join(here, '..', 'pg', 'pg-cluster');
const TEST = { timeout: 120000 };

describe('a fleet of two nodes in the page', () => {
  // Outside the servers' temp dirs: the cluster may run as the `postgres`
  // user (as root), which must reach its directory.
  const clusterDir = path.join(os.tmpdir(), `mw-browser-pg-${process.pid}`);
  let url = '';
  let skip = '';
  let a;
  let b;
  let browser;

  before(async () => {
    const r = spawnSync(clusterScript, ['start', clusterDir], { encoding: 'utf8', timeout: 120000 });
    const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    if (r.status !== 0) throw new Error(`PostgreSQL did not start: ${r.stdout}${r.stderr}`);
    if (last.startsWith('SKIP:')) {
      skip = last.slice(5).trim();  // pg-cluster fails instead under make test and CI (tests/require.sh)
      return;
    }
    url = last;
    a = await startServer({ registry: url });
    b = await startServer({ registry: url });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    for (const s of [a, b]) if (s) await s.stop();
    spawnSync(clusterScript, ['stop', clusterDir], { timeout: 60000 });
  });

  it('a verdict recorded through node A shows on a page open on node B', TEST, async (t) => {
    if (skip) return t.skip(skip);
    await a.ok('POST', '/api/models', {
      model_name: 'crashy', engine: 'command', cache_location: 'primary', load_config: crashingConfig(),
    });
    const { page, record } = await openPage(browser, `${b.url}/`);
    await page.locator('.card[data-model="crashy"][data-status="unknown"]').waitFor({ timeout: 10000 });
    const load = await a.api('POST', '/api/orchestrate/load', { model_name: 'crashy' });
    assert.equal(load.status, 422, load.text);
    // B was asked nothing: its event stream carried A's verdict. (The page's
    // fallback poll comes every 15 s; the goal is 2 s, the deadline
    // here leaves room for a loaded CI machine.)
    await page.locator('.card[data-model="crashy"][data-status="incompatible"]').waitFor({ timeout: 5000 });
    assert.deepEqual(record.errors, []);
  });
});
