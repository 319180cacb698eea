// SPEC §20 with a real browser: while a llama.cpp model is loaded, a page
// from another origin scans the loopback ports (every TCP port listening on
// this machine) and tries the engine's own paths on each. The engine listens
// on a Unix socket only, so among the ports of the server's processes only
// the server's own answers, and nothing lets the page read an answer.
// (Before, the engine listened on 127.0.0.1:<random port> and reflected the
// page's Origin: the page read /v1/models, with the model's absolute path.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';

import { launchBrowser } from './lib/browser.mjs';
import { freePort, startServer } from './lib/server.mjs';

const TEST = { timeout: 120000 };

function readFile(p) {
  try { return fs.readFileSync(p, 'utf8'); } catch { return ''; }
}

function parentOf(pid) {
  const stat = readFile(`/proc/${pid}/stat`);
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[1]) || 0;
}

// `root` and every process below it.
function processTree(root) {
  const tree = [root];
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    for (let p = parentOf(pid), hops = 0; p > 1 && hops < 16; p = parentOf(p), hops += 1) {
      if (p === root) { tree.push(pid); break; }
    }
  }
  return tree;
}

// Listening TCP sockets on this machine: inode -> port.
function listeningTcp() {
  const out = new Map();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFile(table).split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      out.set(f[9], parseInt(f[1].split(':')[1], 16));
    }
  }
  return out;
}

// The TCP ports the processes `pids` listen on.
function portsOf(pids) {
  const listening = listeningTcp();
  const ports = new Set();
  for (const pid of pids) {
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link = '';
      try { link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && listening.has(m[1])) ports.add(listening.get(m[1]));
    }
  }
  return ports;
}

// The page: for each port, each engine path, a no-cors request (does
// anything answer?) and a CORS GET (can the page read the answer?).
function scanPage() {
  return `<!doctype html><html><body><script>
  window.scan = async (ports) => {
    const paths = ['/v1/models', '/props', '/slots', '/health', '/v1/chat/completions'];
    const out = [];
    await Promise.all(ports.map(async (port) => {
      const result = { port, answered: false, read: [] };
      for (const p of paths) {
        const url = 'http://127.0.0.1:' + port + p;
        try {
          const body = p === '/v1/chat/completions'
            ? '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}' : undefined;
          await fetch(url, { mode: 'no-cors', method: body ? 'POST' : 'GET', body,
                             headers: body ? { 'Content-Type': 'text/plain' } : {} });
          result.answered = true;
        } catch (e) { /* nothing listens, or the browser refuses the port */ }
        try {
          const r = await fetch(url);
          result.read.push(p + ' ' + r.status + ' ' + (await r.text()).slice(0, 200));
        } catch (e) { /* CORS refused, or nothing listens */ }
      }
      out.push(result);
    }));
    return out;
  };
  window.ready = true;
</script></body></html>`;
}

describe('a page that scans the loopback ports while a model is loaded', () => {
  let server;
  let browser;
  let attacker;
  let attackerPort;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    attackerPort = await freePort();
    attacker = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(scanPage());
    });
    await new Promise((resolve) => attacker.listen(attackerPort, '127.0.0.1', resolve));
  });

  after(async () => {
    if (browser) await browser.close();
    if (attacker) attacker.close();
    if (server) await server.stop();
  });

  it('reaches nothing of the engine: only the server answers, and the page reads nothing', TEST, async () => {
    const file = server.makeTestModel();
    await server.ok('POST', '/api/models', { model_name: 'tiny', file_path: file, load_config: { n_ctx: 256 } });
    const loaded = await server.api('POST', '/api/orchestrate/load', { model_name: 'tiny' });
    assert.equal(loaded.status, 200, loaded.text);
    // The model serves, through the server's proxy.
    const chat = await server.api('POST', '/v1/chat/completions',
      { model: 'tiny', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(chat.status, 200, chat.text);

    const ours = portsOf(processTree(server.proc.pid));
    // Every listening port on the machine (the engine's would be among them), and a few around ours.
    const scan = new Set([...listeningTcp().values()]);
    for (let p = server.port - 20; p <= server.port + 20; p += 1) if (p > 1024 && p < 65536) scan.add(p);
    scan.delete(attackerPort);

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${attackerPort}/`);
    await page.waitForFunction(() => window.ready === true);
    const results = await page.evaluate((ports) => window.scan(ports), [...scan]);
    await context.close();

    const answered = results.filter((r) => r.answered).map((r) => r.port);
    assert.ok(answered.includes(server.port), `the scan did not reach the server: ${JSON.stringify(answered)}`);
    // Of the server's processes, only the server itself answered anything...
    assert.deepEqual(answered.filter((p) => ours.has(p)), [server.port]);
    // ...and the page could read nothing from the server, nor anything that names the model.
    const read = results.filter((r) => r.read.length > 0);
    for (const r of read) {
      assert.notEqual(r.port, server.port, JSON.stringify(r));
      for (const text of r.read) assert.ok(!text.includes(server.modelsDir), `port ${r.port} told the page: ${text}`);
    }
    assert.deepEqual([...ours], [server.port], 'the server\'s processes listen on TCP only at the server\'s port');
  });
});
