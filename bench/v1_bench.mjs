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
//                           [--only load,single,concurrent,cold,first] [--cold-sizes 1000,200]
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
//   cold first token     (issue 22, SPEC §16) a streamed /v1 request for a model
//                        that is not loaded: request sent -> first content event,
//                        modelwarden (its defaults: verify = "decode") vs llama.cpp's
//                        router (mw-llama-server --models-dir DIR --models-max 1,
//                        autoload, the same flags without --no-warmup, as a user runs
//                        it); both unloaded before each round, interleaved, round 0
//                        dropped, on make-test-model --size-mb 1000 and 200 (--cold-sizes),
//                        page cache warm, then cold (the GGUF evicted before each
//                        request: `dd iflag=nocache count=0`, this file only).
//                        Goal <= 0.8x the router.
//   first request after start  spawn of the server -> first content event of a
//                        request for the (registered, unloaded) model, both sides.
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
const only = new Set(String(opts.only ?? 'load,single,concurrent,cold,first').split(','));
const coldSizes = String(opts['cold-sizes'] ?? '1000,200').split(',').map(Number).filter((n) => n > 0);
// The cold rows need only the first token; a few more keep the request realistic.
const COLD_TOKENS = 4;
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
  return ensureTestModel(1000);
}

// make-test-model --size-mb N, made once into the bench cache.
function ensureTestModel(sizeMb) {
  const out = path.join(cacheDir, sizeMb === 1000 ? 'bench-1gb.gguf' : `bench-${sizeMb}mb.gguf`);
  if (fs.existsSync(out) && fs.statSync(out).size > 0) return out;
  fs.mkdirSync(cacheDir, { recursive: true });
  const r = spawnSync(bin('modelwarden'), ['make-test-model', out, '--size-mb', String(sizeMb)], { encoding: 'utf8' });
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

// `modelwarden serve --config FILE` (written from `toml`, port added) on a
// free port (or `port`); resolves once /api/status answers.
async function serveModelwarden(name, toml, port) {
  port = port ?? await freePort();
  const cfg = path.join(tmp, `${name}.toml`);
  fs.writeFileSync(cfg, `[server]\nport = ${port}\n${toml}`);
  const proc = start(bin('modelwarden'), ['serve', '--config', cfg], `${name}.log`);
  const t0 = nowMs();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`modelwarden exited (${proc.exitCode}): ${fs.readFileSync(path.join(tmp, `${name}.log`), 'utf8').slice(-400)}`);
    try { if ((await request(port, 'GET', '/api/status')).status === 200) break; } catch { /* not yet */ }
    if (nowMs() - t0 > 60000) throw new Error('modelwarden did not answer /api/status within 60 s');
    await sleep(20);
  }
  return { proc, port };
}

// `modelwarden serve` on a free port, verify = "load", models never unloaded
// when idle; resolves with the port once /api/status answers.
async function startModelwarden(modelPath) {
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  let toml = `data_dir = "${dataDir}"\nkeep_alive = "-1"\nmax_queue = 64\nverify = "load"\n`;
  toml += `[locations]\nbench = "${path.dirname(modelPath)}"\n`;
  if (fixture) toml += `[engines.fixture]\nargv = ["${bin('mw-openai-engine')}", "--port", "{port}"]\nhealth_path = "/health"\n`;
  const { proc, port } = await serveModelwarden('modelwarden', toml);
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

// ---- Cold start (issue 22, SPEC §16): the request that finds its model unloaded.

// The GGUF's pages out of the page cache (POSIX_FADV_DONTNEED on the whole
// file: GNU dd's iflag=nocache with count=0), so its next load reads the disk.
// Only this file: the rest of the machine keeps its cache.
function evict(file) {
  const r = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dd iflag=nocache ${file}: ${r.stderr}`);
}

// Resident share of a file's pages (fincore), for the table: proves the eviction.
function residentShare(file) {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES,SIZE', file], { encoding: 'utf8' });
  const [res, size] = (r.stdout || '').trim().split(/\s+/).map(Number);
  return size > 0 ? res / size : NaN;
}

// llama.cpp's router over a directory of links to the cold models, with the
// flags the worker derives from the load_config (a user's router runs the
// engine's warm-up decode: no --no-warmup).
function routerArgs(modelsDir, port) {
  return ['--models-dir', modelsDir, '--models-max', '1', '--host', '127.0.0.1', '--port', String(port), '--no-webui',
    '--ctx-size', String(N_CTX_PER_SLOT), '--parallel', '1', '--flash-attn', flashAttn, '--batch-size', String(batch),
    '--threads', String(threads)];
}

async function startRouter(modelsDir, port) {
  port = port ?? await freePort();
  const proc = start(bin('mw-llama-server'), routerArgs(modelsDir, port), 'router.log');
  const t0 = nowMs();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the router exited (${proc.exitCode}) before GET /models answered`);
    try { if ((await request(port, 'GET', '/models')).status === 200) break; } catch { /* not yet */ }
    if (nowMs() - t0 > 60000) throw new Error('the router did not answer GET /models within 60 s');
    await sleep(5);
  }
  return { proc, port };
}

async function routerStatus(router, id) {
  const r = await request(router.port, 'GET', '/models');
  const m = JSON.parse(r.text).data.find((e) => e.id === id);
  if (!m) throw new Error(`the router does not list ${id}`);
  return m.status.value;
}

// Unloads a model of the router and waits until its child is gone.
async function routerUnload(router, id) {
  if ((await routerStatus(router, id)) === 'unloaded') return;
  await request(router.port, 'POST', '/models/unload', { model: id });
  const t0 = nowMs();
  while ((await routerStatus(router, id)) !== 'unloaded') {
    if (nowMs() - t0 > 60000) throw new Error(`the router did not unload ${id} within 60 s`);
    await sleep(5);
  }
}

function coldBody(model) {
  return { model, messages: [{ role: 'user', content: 'Write a long story about a lighthouse.' }], max_tokens: COLD_TOKENS,
    stream: true, temperature: 0, seed: 1, ignore_eos: true };
}

async function coldStream(port, model) {
  const r = await stream(port, coldBody(model));
  if (r.status !== 200 || r.error || !Number.isFinite(r.ttft)) {
    throw new Error(`${model} on :${port} answered ${r.status} ${r.error}: ${r.raw.slice(0, 300)}`);
  }
  return r.ttft;
}

const range = (xs) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
const loadAvg = () => os.loadavg()[0].toFixed(2);

// The cold models (in the bench cache): one link each in a directory of their
// own for the router (--models-dir; its model ids are the file names without
// .gguf), registered under the same names in a modelwarden with the server
// defaults (verify = "decode"). A --model outside the cache is not used here.
async function coldSetUp() {
  const modelsDir = path.join(tmp, 'cold-models');
  fs.mkdirSync(modelsDir, { recursive: true });
  const models = coldSizes.map((mb) => {
    const file = ensureTestModel(mb);
    const id = `cold-${mb}mb`;
    fs.symlinkSync(file, path.join(modelsDir, `${id}.gguf`));
    return { mb, file, id };
  });
  const dataDir = path.join(tmp, 'cold-data');
  fs.mkdirSync(dataDir, { recursive: true });
  const toml = `data_dir = "${dataDir}"\nkeep_alive = "-1"\n[locations]\ncold = "${cacheDir}"\n`;
  const mw = await serveModelwarden('cold', toml);
  const load_config = { n_ctx: N_CTX_PER_SLOT, n_parallel: 1, n_threads: threads, n_batch: batch, flash_attn: flashAttn };
  for (const m of models) {
    await expectOk(mw.port, 'POST', '/api/models', { model_name: m.id, cache_location: 'cold', file_path: path.relative(cacheDir, m.file), load_config });
  }
  await request(mw.port, 'GET', '/api/status');
  return { modelsDir, models, toml, mw, router: await startRouter(modelsDir) };
}

// Request sent -> first token for an unloaded model, both sides in turn.
async function benchCold(cold) {
  for (const pageCache of ['warm', 'cold']) {
    for (const m of cold.models) {
      const t = { router: [], mw: [] };
      const resident = [];
      const mwRounds = [];  // wall clock of each modelwarden request: sent, first token
      for (let i = 0; i <= runs; ++i) {
        for (const side of (i % 2 ? ['mw', 'router'] : ['router', 'mw'])) {
          await routerUnload(cold.router, m.id);
          await request(cold.mw.port, 'POST', '/api/orchestrate/unload', { model_name: m.id });
          if (pageCache === 'cold') {
            evict(m.file);
            resident.push(residentShare(m.file));
          }
          const sent = Date.now();
          const ms = await coldStream(side === 'mw' ? cold.mw.port : cold.router.port, m.id);
          if (i > 0) t[side].push(ms);
          if (i > 0 && side === 'mw') mwRounds.push({ sent, first: sent + ms });
        }
      }
      breakdowns.push([`${m.mb} MB, page cache ${pageCache}`, coldBreakdown(m.id, mwRounds)]);
      await routerUnload(cold.router, m.id);
      await request(cold.mw.port, 'POST', '/api/orchestrate/unload', { model_name: m.id });
      const r = median(t.router), w = median(t.mw);
      const note = pageCache === 'cold' ? `; GGUF resident before each request <= ${(100 * Math.max(...resident)).toFixed(0)} %` : '';
      rows.push([`cold first token, ${m.mb} MB model, page cache ${pageCache}, median of ${runs} (load avg ${loadAvg()})`,
        `${fmt(r)} (${range(t.router)})`, `${fmt(w)} (${range(t.mw)})`, `${(w / r).toFixed(3)}x`, `<= 0.8x router = ${fmt(0.8 * r)}${note}`]);
    }
  }
}

// Where modelwarden's cold request spends its time (SPEC §16), per phase, from
// the server log of the cold instance (ms timestamps, wall clock) and the
// worker's phases line the supervisor logs at `loaded`; the request's own
// sent / first-token instants come from this driver's wall clock.
const breakdowns = [];
const PHASES = [
  ['gate + testing commit', 'sent', 'testing'],
  ['worker spawn (keeper, fork)', 'testing', 'spawned'],
  ['worker exec + dynamic linking', 'spawned', 'main'],
  ['ggml backends', 'main', 'backends'],
  ['model + context load, engine up', 'backends', 'ready'],
  ['verification decode', 'ready', 'decoded'],
  ['loaded -> success committed', 'loaded', 'committed'],
  ['request: prompt + first token + proxy', 'committed', 'first'],
];

function coldBreakdown(id, rounds) {
  const text = fs.readFileSync(path.join(tmp, 'cold.log'), 'utf8');
  const at = (line) => Date.parse(line.slice(0, line.indexOf(' ')));
  const loads = [];  // one per attempt, in log order
  for (const line of text.split('\n')) {
    if (line.includes(`[load] model=${id} attempt=`) && line.includes(' started ')) loads.push({ testing: at(line) });
    const cur = loads[loads.length - 1];
    if (!cur) continue;
    if (line.includes(`[supervisor] loading model=${id} `)) cur.spawned = at(line);
    const phases = line.includes(`[supervisor] loaded model=${id} `) && /worker phases: started (\S+); (.*)/.exec(line);
    if (phases) {
      cur.main = Date.parse(phases[1]);
      for (const [, name, ms] of phases[2].matchAll(/([a-z ]+) \+(\d+) ms/g)) {
        const key = { backends: 'backends', 'engine ready': 'ready', 'first decode': 'decoded', loaded: 'loaded' }[name.trim()];
        if (key) cur[key] = cur.main + Number(ms);
      }
      if (cur.decoded === undefined) cur.decoded = cur.ready;
    }
    if (line.includes(`[load] model=${id} attempt=`) && line.includes(' loaded in ')) cur.committed = at(line);
  }
  const per = PHASES.map(() => []);
  for (const r of rounds) {
    const load = loads.find((l) => l.testing >= r.sent - 1 && l.testing <= r.first);
    if (!load) continue;
    const ev = { ...load, sent: r.sent, first: r.first };
    PHASES.forEach(([, from, to], k) => { if (Number.isFinite(ev[from]) && Number.isFinite(ev[to])) per[k].push(ev[to] - ev[from]); });
  }
  return per.map((xs) => median(xs));
}

// Server spawn -> first token of the first request (the model registered,
// nothing loaded), both sides in turn, page cache warm; the cold set-up's
// servers are restarted on their ports each round. Round 0 is dropped.
async function benchFirst(cold) {
  const m = cold.models[0];
  const t = { router: [], mw: [] };
  await stop(cold.mw.proc);
  await stop(cold.router.proc);
  const rounds = Math.max(3, Math.ceil(runs / 2));
  for (let i = 0; i <= rounds; ++i) {
    for (const side of (i % 2 ? ['mw', 'router'] : ['router', 'mw'])) {
      const port = side === 'mw' ? cold.mw.port : cold.router.port;
      const t0 = nowMs();
      const server = side === 'mw' ? start(bin('modelwarden'), ['serve', '--config', path.join(tmp, 'cold.toml')], 'cold.log')
        : start(bin('mw-llama-server'), routerArgs(cold.modelsDir, port), 'router.log');
      let ms = NaN;
      for (;;) {
        if (server.exitCode !== null) throw new Error(`${side} exited (${server.exitCode}) before its first answer`);
        // Not listening yet, or (the router) listening but still starting: 503 "Loading model".
        try { await coldStream(port, m.id); ms = nowMs() - t0; break; } catch (e) {
          if (!/ECONNREFUSED|answered 503/.test(String(e.code ?? e.message))) throw e;
        }
        if (nowMs() - t0 > 120000) throw new Error(`${side}: no first token within 120 s of the start`);
        await sleep(5);
      }
      await stop(server);
      if (i > 0) t[side].push(ms);
    }
  }
  const r = median(t.router), w = median(t.mw);
  rows.push([`first request after start (spawn -> first token), ${m.mb} MB model, median of ${rounds} (load avg ${loadAvg()})`,
    `${fmt(r)} (${range(t.router)})`, `${fmt(w)} (${range(t.mw)})`, `${(w / r).toFixed(3)}x`, '']);
}

async function main() {
  const modelPath = fixture ? '' : ensureModel();
  const wanted = [['load', benchLoad], ['single', benchSingle], ['concurrent', benchConcurrent]].filter(([n]) => only.has(n));
  if (wanted.length) {
    const mw = await startModelwarden(modelPath || path.join(tmp, 'none.gguf'));
    try {
      for (const [name, fn] of wanted) {
        try { await fn(mw, modelPath); } catch (e) { rows.push([name, `error: ${e.message}`, '', '', '']); }
      }
    } finally {
      await stop(mw.proc);
    }
  }
  // The cold rows compare with llama.cpp's router: a real engine only.
  if (!fixture && (only.has('cold') || only.has('first'))) {
    let cold;
    try {
      cold = await coldSetUp();
      if (only.has('cold')) await benchCold(cold);
      if (only.has('first')) await benchFirst(cold);
    } catch (e) {
      rows.push(['cold', `error: ${e.message}`, '', '', '']);
    } finally {
      if (cold) await Promise.all([stop(cold.mw.proc), stop(cold.router.proc)]);
    }
  }
  const size = modelPath && wanted.length ? ` ${path.basename(modelPath)} (${(fs.statSync(modelPath).size / 1048576).toFixed(0)} MiB)` : '';
  const engine = fixture ? 'mw-openai-engine (fixture: gate + proxy cost only)'
    : `llama.cpp (libmw-llama-server.so): modelwarden-worker vs mw-llama-server,${size}`;
  console.log(`\n/v1 side by side: ${engine}`);
  console.log(`settings: n_ctx ${N_CTX_PER_SLOT} per slot, threads ${threads}, batch ${batch}, flash_attn ${flashAttn}, ` +
    `${N_TOKENS} tokens a request (cold rows: ${COLD_TOKENS}); ${runs} interleaved runs; ${os.cpus().length} CPU(s), load avg ${os.loadavg()[0].toFixed(2)}`);
  const head = ['benchmark', 'direct (cold rows: router)', 'modelwarden /v1', 'ratio', 'goal'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  for (const r of all) console.log(r.map((c, i) => String(c).padEnd(w[i])).join('  '));
  if (breakdowns.length) {
    console.log('\nmodelwarden cold request by phase (medians, ms; server log + worker phases, 1 ms resolution):');
    const bh = ['phase', ...breakdowns.map(([label]) => label)];
    const b = [bh, ...PHASES.map(([name], k) => [name, ...breakdowns.map(([, per]) => (Number.isFinite(per[k]) ? per[k].toFixed(0) : '-'))])];
    const bw = bh.map((_, i) => Math.max(...b.map((r) => String(r[i]).length)));
    for (const r of b) console.log(r.map((c, i) => String(c).padEnd(bw[i])).join('  '));
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { for (const c of children) c.kill('SIGKILL'); process.exit(1); });
}

main().catch((e) => console.log(`/v1 side by side: n/a (${e.message})`)).finally(async () => {
  await Promise.all([...children].map((c) => stop(c)));
  if (!opts['keep-tmp']) fs.rmSync(tmp, { recursive: true, force: true });
});
