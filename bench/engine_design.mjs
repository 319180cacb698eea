// The engine-design measurement behind docs/architecture.md ("Serving"):
// cold set-up and request latency of the two ways to serve a llama.cpp model
// with llama.cpp's own server code, same build, same settings, interleaved:
//   embed      modelwarden-worker load --verify decode: spawn -> `loaded` on fd 3
//              (the worker runs llama_server() in-process, then the first decode)
//   supervise  mw-llama-server (the stock llama-server main on the same code):
//              spawn -> GET /health 200 -> the same first decode (POST /completion)
// then, on each, N chat completions (max_tokens 8, greedy) one after another.
// Prints figures; asserts nothing.
//   node bench/engine_design.mjs [--build-dir build] [--runs 10] [--size-mb 0] [--requests 20]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const buildDir = path.resolve(opt('--build-dir', 'build'));
const runs = Number(opt('--runs', '10'));
const sizeMb = Number(opt('--size-mb', '0'));
const requests = Number(opt('--requests', '20'));
const bin = (n) => path.join(buildDir, 'bin', n);
const nCtx = 2048;
const verifyBody = JSON.stringify({ prompt: 'The quick brown fox jumps over the lazy dog.', n_predict: 2, temperature: 0,
                                    cache_prompt: false, stream: false });
const chatBody = JSON.stringify({ messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 8, temperature: 0 });

const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };

async function http(port, method, p, body) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
  const text = await res.text();
  return { status: res.status, text };
}
function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function embed(model) {
  const t0 = now();
  const child = spawn(bin('modelwarden-worker'), ['load', '--model', model, '--config', JSON.stringify({ n_ctx: nCtx }), '--verify', 'decode'],
                      { stdio: ['pipe', 'ignore', 'ignore', 'pipe'] });
  let buf = '';
  const port = await new Promise((resolve, reject) => {
    child.stdio[3].on('data', (d) => {
      buf += d;
      for (const line of buf.split('\n')) {
        if (line.includes('"type":"loaded"')) resolve(JSON.parse(line).port);
        if (line.includes('"type":"error"')) reject(new Error(line));
      }
    });
    child.on('exit', (c, s) => reject(new Error(`worker ended ${c} ${s}`)));
  });
  const ready = now() - t0;
  return { ready, port, stop: async () => { child.stdin.write('stop\n'); await new Promise((r) => child.on('exit', r)); } };
}

async function supervise(model) {
  const port = await freePort();
  const t0 = now();
  const child = spawn(bin('mw-llama-server'), ['--model', model, '--host', '127.0.0.1', '--port', String(port), '--no-webui',
                                               '--ctx-size', String(nCtx), '--parallel', '1'], { stdio: ['ignore', 'ignore', 'ignore'] });
  let exited = false;
  child.on('exit', () => { exited = true; });
  for (;;) {
    if (exited) throw new Error('llama-server ended');
    try { if ((await http(port, 'GET', '/health')).status === 200) break; } catch { /* not listening yet */ }
    await sleep(5);
  }
  const v = await http(port, 'POST', '/completion', verifyBody);
  if (v.status !== 200) throw new Error(`first decode: ${v.status} ${v.text}`);
  const ready = now() - t0;
  return { ready, port, stop: async () => { child.kill('SIGTERM'); await new Promise((r) => (exited ? r() : child.on('exit', r))); } };
}

async function latency(port) {
  const xs = [];
  for (let i = 0; i < requests; ++i) {
    const t0 = now();
    const r = await http(port, 'POST', '/v1/chat/completions', chatBody);
    xs.push(now() - t0);
    if (r.status !== 200) xs.failures = (xs.failures || 0) + 1;
  }
  return xs;
}

const dir = mkdtempSync(path.join(tmpdir(), 'mw-engine-design-'));
try {
  const model = path.join(dir, 'm.gguf');
  const make = spawnSync(bin('modelwarden-worker'), ['make-test-model', model, ...(sizeMb > 0 ? ['--size-mb', String(sizeMb)] : [])]);
  if (make.status !== 0) throw new Error('make-test-model failed: ' + make.stderr);
  const r = { embed: { ready: [], lat: [], fail: 0 }, supervise: { ready: [], lat: [], fail: 0 } };
  for (let i = 0; i < runs; ++i) {
    for (const [name, fn] of (i % 2 ? [['supervise', supervise], ['embed', embed]] : [['embed', embed], ['supervise', supervise]])) {
      const e = await fn(model);
      r[name].ready.push(e.ready);
      const xs = await latency(e.port);
      r[name].lat.push(...xs);
      r[name].fail += xs.failures || 0;
      await e.stop();
    }
  }
  console.log(`model: make-test-model${sizeMb ? ' --size-mb ' + sizeMb : ''}, n_ctx ${nCtx}, ${runs} interleaved runs, ${requests} chat requests each`);
  for (const name of ['embed', 'supervise']) {
    const x = r[name];
    console.log(`${name.padEnd(10)} cold set-up median ${median(x.ready).toFixed(1)} ms (min ${Math.min(...x.ready).toFixed(1)}, max ${Math.max(...x.ready).toFixed(1)}); ` +
                `chat latency median ${median(x.lat).toFixed(2)} ms (non-200: ${x.fail})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
