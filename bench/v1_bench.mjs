#!/usr/bin/env node
// /v1 side by side (issue 10, Performance): modelwarden's /v1 serving a GGUF
// model through its own worker (llama.cpp's server code embedded in
// modelwarden-worker, engine "llama.cpp") against llama.cpp's server run
// directly on the same GGUF with the same settings (build/bin/mw-llama-server:
// the stock llama-server main on the same libmw-llama-server.so). Same n_ctx,
// n_parallel, threads, batch size and flash attention on both sides; every
// row interleaves the two. Prints figures, never asserts them, exit code 0.
//
//   node bench/v1_bench.mjs --build-dir DIR [--runs N] [--tokens N] [--model GGUF] [--threads N]
//                           [--batch N] [--flash-attn on|off|auto] [--fixture] [--keep-tmp]
//
// Model: --model, else DIR/bench-cache/models/bench-1gb.gguf (`make-test-model
// --size-mb 1000`, made once and cached there, as bench/serve_bench.mjs does).
// --fixture: mw-openai-engine (tests/fixtures) instead of llama.cpp, as an
// [engines.fixture] preset of a `command` model, paced at 5 ms a token: what
// the gate and the reverse proxy alone cost.
//
// Rows (goals from issue 10):
//   request -> loaded    POST /api/orchestrate/load -> 200 (verify = "load", so
//                        no forward pass) vs the direct engine's start: spawn ->
//                        GET /health 200 (model loaded; --no-warmup, as the worker
//                        passes with verify = "load"). Goal <= 1.05x direct + 20 ms.
//   time to first token  streamed chat request sent -> first content event.
//                        Goal <= direct + 5 ms.
//   decode tokens/s      one stream: (completion tokens - 1) / (first -> last
//                        content event). Goal >= 0.97x direct.
//   4 streams            n_parallel = 4, 4 concurrent streams: all completion
//                        tokens / wall time. Goal >= 0.95x direct.
// Timings: process.hrtime (monotonic). Run on a quiet machine: on shared cores
// llama.cpp's spinning thread pool makes single figures meaningless.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const opts = {};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (!a.startsWith('--')) continue;
  opts[a.slice(2)] = i + 1 < process.argv.length && !process.argv[i + 1].startsWith('--') ? process.argv[++i] : true;
}
const buildDir = path.resolve(opts['build-dir'] ?? 'build');
const runs = Math.max(1, Number(opts.runs ?? 10));
const fixture = Boolean(opts.fixture);
const threads = Number(opts.threads ?? os.cpus().length);
const batch = Number(opts.batch ?? 512);
const flashAttn = String(opts['flash-attn'] ?? 'off');
const N_CTX_PER_SLOT = 2048;
const N_TOKENS = Math.max(2, Number(opts.tokens ?? 64));
const bin = (n) => path.join(buildDir, 'bin', n);
const cacheDir = path.join(buildDir, 'bench-cache', 'models');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-v1-bench-'));
const children = new Set();
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
}

function request(port, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
    const r = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    r.on('error', reject);
    r.end(data);
  });
}

async function expectOk(port, method, urlPath, body, ok = [200, 201]) {
  const r = await request(port, method, urlPath, body);
  if (!ok.includes(r.status)) throw new Error(`${method} ${urlPath} answered ${r.status}: ${r.text.slice(0, 300)}`);
  return r;
}

// One streamed request: TTFT (sent -> first event with content) and decode
// tokens/s from the first to the last content event, counting the tokens the
// usage chunk reports (events can carry more than one token).
function stream(port, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const t0 = nowMs();
    let first = NaN;
    let last = NaN;
    let pieces = 0;
    let tokens = NaN;
    let error = '';
    let buffer = '';
    let raw = '';
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        const now = nowMs() - t0;
        buffer += chunk;
        if (raw.length < 2000) raw += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
          let j;
          try { j = JSON.parse(event.slice(6)); } catch { continue; }
          if (j.error) { error = j.error.message || 'error'; continue; }
          if (j.usage && Number.isFinite(j.usage.completion_tokens)) tokens = j.usage.completion_tokens;
          const c = j.choices && j.choices[0];
          const text = c && ((c.delta && c.delta.content) || c.text);
          if (!text) continue;
          if (Number.isNaN(first)) first = now;
          last = now;
          ++pieces;
        }
      });
      res.on('end', () => {
        const n = Number.isFinite(tokens) ? tokens : pieces;
        resolve({ status: res.statusCode, ttft: first, total: nowMs() - t0, tokens: n,
          tps: n > 1 && last > first ? (n - 1) / ((last - first) / 1000) : NaN, error, raw });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function chatBody() {
  // The fixture paces its tokens like a small model on a CPU (5 ms each).
  const content = fixture ? `TOKENS=${N_TOKENS} DELAY_MS=5` : 'Write a long story about a lighthouse.';
  return { model: 'm', messages: [{ role: 'user', content }], max_tokens: N_TOKENS, stream: true,
    stream_options: { include_usage: true }, temperature: 0, seed: 1, ignore_eos: true };
}

function start(cmd, args, logName) {
  const log = fs.openSync(path.join(tmp, logName), 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

function stop(p, timeoutMs = 15000) {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', () => { clearTimeout(timer); resolve(); });
    p.kill('SIGTERM');
  });
}

// Polls GET /health every 2 ms until 200 (llama.cpp answers 503 while the
// model loads): the resolution of the engine-start figure.
async function waitHealth(port, proc, timeoutMs = 600000) {
  const t0 = nowMs();
  while (nowMs() - t0 < timeoutMs) {
    if (proc && proc.exitCode !== null) throw new Error(`the engine exited (${proc.exitCode}) before /health answered 200`);
    try {
      if ((await request(port, 'GET', '/health')).status === 200) return;
    } catch { /* not listening yet */ }
    await sleep(2);
  }
  throw new Error(`nothing answered 200 on :${port}/health`);
}

function ensureModel() {
  if (typeof opts.model === 'string') return path.resolve(opts.model);
  const out = path.join(cacheDir, 'bench-1gb.gguf');
  if (fs.existsSync(out) && fs.statSync(out).size > 0) return out;
  fs.mkdirSync(cacheDir, { recursive: true });
  const r = spawnSync(bin('modelwarden'), ['make-test-model', out, '--size-mb', '1000'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make-test-model failed: ${(r.stderr || '').slice(-300)}`);
  return out;
}

// The engine, run directly: the flags modelwarden-worker gives llama_server()
// for the same load_config (src/worker/engine_args.cpp), on a port of ours.
function directArgv(modelPath, port, parallel) {
  if (fixture) return [bin('mw-openai-engine'), '--port', String(port)];
  return [bin('mw-llama-server'), '--model', modelPath, '--host', '127.0.0.1', '--port', String(port), '--no-webui',
    '--ctx-size', String(N_CTX_PER_SLOT * parallel), '--parallel', String(parallel), '--flash-attn', flashAttn,
    '--batch-size', String(batch), '--threads', String(threads), '--no-warmup'];
}

// The same settings as a load_config of the registered model.
function loadConfig(parallel) {
  if (fixture) return { preset: 'fixture', n_parallel: parallel, load_timeout_s: 600 };
  return { n_ctx: N_CTX_PER_SLOT * parallel, n_parallel: parallel, n_threads: threads, n_batch: batch, flash_attn: flashAttn };
}

// `modelwarden serve` on a free port, verify = "load", models never unloaded
// when idle; resolves with the port once /api/status answers.
async function startModelwarden(modelPath) {
  const port = await freePort();
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  let toml = `[server]\nport = ${port}\ndata_dir = "${dataDir}"\nkeep_alive = "-1"\nmax_queue = 64\nverify = "load"\n`;
  toml += `[locations]\nbench = "${path.dirname(modelPath)}"\n`;
  if (fixture) toml += `[engines.fixture]\nargv = ["${bin('mw-openai-engine')}", "--port", "{port}"]\nhealth_path = "/health"\n`;
  const cfg = path.join(tmp, 'config.toml');
  fs.writeFileSync(cfg, toml);
  const proc = start(bin('modelwarden'), ['serve', '--config', cfg], 'modelwarden.log');
  const t0 = nowMs();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`modelwarden exited (${proc.exitCode}): ${fs.readFileSync(path.join(tmp, 'modelwarden.log'), 'utf8').slice(-400)}`);
    try { if ((await request(port, 'GET', '/api/status')).status === 200) break; } catch { /* not yet */ }
    if (nowMs() - t0 > 60000) throw new Error('modelwarden did not answer /api/status within 60 s');
    await sleep(20);
  }
  for (const parallel of [1, 4]) {
    await expectOk(port, 'POST', '/api/models', fixture
      ? { model_name: `m${parallel}`, engine: 'command', load_config: loadConfig(parallel) }
      : { model_name: `m${parallel}`, cache_location: 'bench', file_path: path.basename(modelPath), load_config: loadConfig(parallel) });
  }
  return { proc, port };
}

const rows = [];
const fmt = (ms) => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
// Alternates which side goes first, so a burst of load from elsewhere hits both alike.
const order = (i) => (i % 2 ? ['mw', 'direct'] : ['direct', 'mw']);

// request -> loaded vs the direct engine's start. Round 0 warms the page cache
// and is dropped.
async function benchLoad(mw, modelPath) {
  const t = { direct: [], mw: [] };
  for (let i = 0; i <= runs; ++i) {
    for (const side of order(i)) {
      if (side === 'direct') {
        const port = await freePort();
        const t0 = nowMs();
        const [cmd, ...args] = directArgv(modelPath, port, 1);
        const p = start(cmd, args, 'direct-load.log');
        await waitHealth(port, p);
        const ms = nowMs() - t0;
        await stop(p);
        if (i > 0) t.direct.push(ms);
      } else {
        const t0 = nowMs();
        await expectOk(mw.port, 'POST', '/api/orchestrate/load', { model_name: 'm1' }, [200]);
        const ms = nowMs() - t0;
        await expectOk(mw.port, 'POST', '/api/orchestrate/unload', { model_name: 'm1' }, [200]);
        if (i > 0) t.mw.push(ms);
      }
    }
  }
  const d = median(t.direct), m = median(t.mw);
  rows.push([`request -> loaded (${fixture ? 'engine' : 'model'} start), median of ${runs}`, fmt(d), fmt(m),
    `${(m / d).toFixed(3)}x`, `<= 1.05x direct + 20 ms = ${fmt(1.05 * d + 20)}`]);
}

// A direct engine and the model loaded in modelwarden, both with `parallel` slots.
async function pair(mw, modelPath, parallel) {
  const port = await freePort();
  const [cmd, ...args] = directArgv(modelPath, port, parallel);
  const p = start(cmd, args, `direct-${parallel}.log`);
  await waitHealth(port, p);
  const t0 = nowMs();
  const first = await stream(mw.port, { ...chatBody(), model: `m${parallel}` });
  const firstMs = nowMs() - t0;
  if (first.status !== 200 || first.error) throw new Error(`modelwarden /v1 answered ${first.status} ${first.error}: ${first.raw.slice(0, 300)}`);
  const warm = await stream(port, chatBody());
  if (warm.status !== 200 || warm.error) throw new Error(`the direct engine answered ${warm.status} ${warm.error}: ${warm.raw.slice(0, 300)}`);
  return { proc: p, ports: { direct: port, mw: mw.port }, firstMs };
}

async function benchSingle(mw, modelPath) {
  const pr = await pair(mw, modelPath, 1);
  try {
    const ttft = { direct: [], mw: [] };
    const tps = { direct: [], mw: [] };
    const errors = { direct: 0, mw: 0 };
    for (let i = 0; i < runs; ++i) {
      for (const side of order(i)) {
        const r = await stream(pr.ports[side], { ...chatBody(), model: 'm1' });
        if (r.status !== 200 || r.error) errors[side] += 1;
        ttft[side].push(r.ttft);
        tps[side].push(r.tps);
      }
    }
    const d = median(ttft.direct), m = median(ttft.mw);
    rows.push([`time to first token, median of ${runs}`, fmt(d), fmt(m), `+${(m - d).toFixed(2)} ms`, `<= direct + 5 ms = ${fmt(d + 5)}`]);
    const dt = median(tps.direct), mt = median(tps.mw);
    rows.push([`single-stream decode tokens/s, median of ${runs}`, dt.toFixed(1), mt.toFixed(1), `${(mt / dt).toFixed(3)}x`, '>= 0.97x']);
    rows.push(['first /v1 request after start (on-demand load + answer)', '', fmt(pr.firstMs), '', '']);
    rows.push(['streams that ended with an error', String(errors.direct), String(errors.mw), '', '0']);
  } finally {
    await stop(pr.proc);
    await request(mw.port, 'POST', '/api/orchestrate/unload', { model_name: 'm1' }).catch(() => {});
  }
}

async function benchConcurrent(mw, modelPath) {
  const pr = await pair(mw, modelPath, 4);
  try {
    const agg = { direct: [], mw: [] };
    const rounds = Math.max(2, Math.ceil(runs / 2));
    for (let i = 0; i < rounds; ++i) {
      for (const side of order(i)) {
        const t0 = nowMs();
        const rs = await Promise.all([0, 1, 2, 3].map(() => stream(pr.ports[side], { ...chatBody(), model: 'm4' })));
        const bad = rs.find((r) => r.status !== 200 || r.error);
        if (bad) throw new Error(`${side}: a concurrent stream failed (${bad.status} ${bad.error})`);
        agg[side].push(rs.reduce((n, r) => n + r.tokens, 0) / ((nowMs() - t0) / 1000));
      }
    }
    const d = median(agg.direct), m = median(agg.mw);
    rows.push([`4 concurrent streams, n_parallel 4: aggregate tokens/s, median of ${rounds}`, d.toFixed(1), m.toFixed(1),
      `${(m / d).toFixed(3)}x`, '>= 0.95x']);
  } finally {
    await stop(pr.proc);
    await request(mw.port, 'POST', '/api/orchestrate/unload', { model_name: 'm4' }).catch(() => {});
  }
}

async function main() {
  const modelPath = fixture ? '' : ensureModel();
  const mw = await startModelwarden(modelPath || path.join(tmp, 'none.gguf'));
  try {
    for (const [name, fn] of [['load', benchLoad], ['single', benchSingle], ['concurrent', benchConcurrent]]) {
      try { await fn(mw, modelPath); } catch (e) { rows.push([name, `error: ${e.message}`, '', '', '']); }
    }
  } finally {
    await stop(mw.proc);
  }
  const size = modelPath ? ` ${path.basename(modelPath)} (${(fs.statSync(modelPath).size / 1048576).toFixed(0)} MiB)` : '';
  const engine = fixture ? 'mw-openai-engine (fixture: gate + proxy cost only)'
    : `llama.cpp (libmw-llama-server.so): modelwarden-worker vs mw-llama-server,${size}`;
  console.log(`\n/v1 side by side: ${engine}`);
  console.log(`settings: n_ctx ${N_CTX_PER_SLOT} per slot, threads ${threads}, batch ${batch}, flash_attn ${flashAttn}, ` +
    `${N_TOKENS} tokens a request; ${runs} interleaved runs; ${os.cpus().length} CPU(s), load avg ${os.loadavg()[0].toFixed(2)}`);
  const head = ['benchmark', 'direct', 'modelwarden /v1', 'ratio', 'goal'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  for (const r of all) console.log(r.map((c, i) => String(c).padEnd(w[i])).join('  '));
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { for (const c of children) c.kill('SIGKILL'); process.exit(1); });
}

main().catch((e) => console.log(`/v1 side by side: n/a (${e.message})`)).finally(async () => {
  await Promise.all([...children].map((c) => stop(c)));
  if (!opts['keep-tmp']) fs.rmSync(tmp, { recursive: true, force: true });
});
