#!/usr/bin/env node
// Server benchmarks of issue 7, against the real binaries. Prints figures,
// never asserts them: every benchmark that cannot run becomes a row saying
// why, and the exit code is always 0.
//
//   node bench/serve_bench.mjs --build-dir DIR [--runs N] [--quick]
//        [--only load,crash,startup,http,classifier,fleet,route] [--llama-server PATH] [--json FILE]
//        (fleet includes route: the routed /v1 request of SPEC §21; route alone runs only that)
// `startup` adds its PostgreSQL row and `fleet` compares the two registry
// backends (bench/fleet_bench.mjs, on a private PostgreSQL cluster).
//
// Node (already needed by the browser tests) drives the processes; timings
// use process.hrtime (CLOCK_MONOTONIC), the same clock mw-bench-crash stamps.
// Generated GGUF files are cached in DIR/bench-cache/models; everything else
// lives in a temp dir that is removed at the end.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { benchFleet, benchRoute, benchStartupPg, stopPgCluster } from './fleet_bench.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const opts = parseArgs(process.argv.slice(2));
const buildDir = path.resolve(opts['build-dir'] ?? 'build');
const bin = (name) => path.join(buildDir, 'bin', name);
const quick = opts.quick === true;
const runs = Number(opts.runs ?? (quick ? 2 : 5));
const wrkSeconds = quick ? 3 : 10;
const only = new Set(String(opts.only ?? 'load,crash,startup,http,classifier,fleet').split(','));
const cacheDir = path.join(buildDir, 'bench-cache', 'models');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-bench-'));
const children = new Set();
const rows = [];
const results = { date: new Date().toISOString(), host: hostInfo(), runs, quick };

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[key] = argv[++i];
    else out[key] = true;
  }
  return out;
}

function hostInfo() {
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return `${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, load avg ${load}`;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmtMs = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + ' ms' : 'n/a');
const fmtMB = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function row(benchmark, modelwarden, bare = '-', llamaServer = '-', target = '-', verdict = '-') {
  rows.push({ benchmark, modelwarden, bare, llamaServer, target, verdict });
}

// ---- HTTP ---------------------------------------------------------------

function request(port, method, urlPath, body, timeoutMs = 600000) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const t0 = nowMs();
    const req = http.request(
      {
        host: '127.0.0.1', port, method, path: urlPath, agent: false, timeout: timeoutMs,
        headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const t1 = nowMs();
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, text, json, ms: t1 - t0, end: t1 });
        });
      });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timed out`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

async function expectOk(port, method, urlPath, body, okStatuses = [200, 201]) {
  const r = await request(port, method, urlPath, body);
  if (!okStatuses.includes(r.status)) throw new Error(`${method} ${urlPath} -> ${r.status}: ${r.text.slice(0, 300)}`);
  return r;
}

// ---- processes ----------------------------------------------------------

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} exited ${r.status}: ${(r.stderr || r.stdout).slice(-400)}`);
  return r.stdout;
}

function spawnSqlite(db, sql) {
  const r = spawnSync('sqlite3', ['-batch', db], { input: sql, encoding: 'utf8' });
  if (r.error) throw new Error(`sqlite3: ${r.error.message} (install the sqlite3 CLI)`);
  if (r.status !== 0) throw new Error(`sqlite3: ${r.stderr.slice(0, 400)}`);
  return r.stdout;
}

// Starts `modelwarden serve` on a free port; resolves once it printed its
// listening line. `lines` keeps every stdout line with its arrival time.
function startServer(name, extraToml = '', dataDir = path.join(tmpRoot, name, 'data')) {
  fs.mkdirSync(dataDir, { recursive: true });
  const cfg = path.join(tmpRoot, name, 'config.toml');
  fs.writeFileSync(cfg, `[server]\nport = 0\ndata_dir = "${dataDir}"\n${extraToml}`);
  const stderrPath = path.join(tmpRoot, name, 'server.log');
  const logStart = fs.existsSync(stderrPath) ? fs.statSync(stderrPath).size : 0;  // this run's log begins here
  const errFd = fs.openSync(stderrPath, 'a');
  const t0 = nowMs();
  const proc = spawn(bin('modelwarden'), ['serve', '--config', cfg], {
    stdio: ['ignore', 'pipe', errFd],
    env: { ...process.env, XDG_CONFIG_HOME: path.join(tmpRoot, 'xdg') },
  });
  fs.closeSync(errFd);
  children.add(proc);
  const server = { proc, t0, lines: [], stderrPath, logStart, dataDir, port: 0, exited: false };
  proc.on('exit', () => { server.exited = true; children.delete(proc); });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${name}: server did not listen within 120 s`)), 120000);
    proc.stdout.on('data', (chunk) => {
      const t = nowMs();
      buf += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        server.lines.push({ t, line });
        const m = /listening on http:\/\/[^:]+:(\d+)/.exec(line);
        if (m) {
          server.port = Number(m[1]);
          server.tListen = t;
          clearTimeout(timer);
          resolve(server);
        }
      }
    });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (!server.port) {
        const log = fs.existsSync(stderrPath) ? fs.readFileSync(stderrPath, 'utf8').slice(-600) : '';
        reject(new Error(`${name}: server exited (${code ?? sig}) before listening: ${log}`));
      }
    });
  });
}

function stopProcess(proc, timeoutMs = 15000) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', () => { clearTimeout(timer); resolve(); });
    proc.kill('SIGTERM');
  });
}

function rssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

// ---- test models --------------------------------------------------------

function ensureModel(file, args) {
  const out = path.join(cacheDir, file);
  if (fs.existsSync(out) && fs.statSync(out).size > 0) return out;
  fs.mkdirSync(cacheDir, { recursive: true });
  run(bin('modelwarden'), ['make-test-model', out, ...args]);
  return out;
}

// ---- 1. load overhead ---------------------------------------------------
// The three loaders take turns within each repetition (bare, modelwarden,
// llama-server), so that a burst of load from elsewhere on a shared machine
// hits all of them alike. Repetition 0 warms the page cache and is dropped.

function bareLoad(modelPath) {
  const t0 = nowMs();
  const out = run(bin('bare-llama-load'), [modelPath, '--quiet']);
  const wall = nowMs() - t0;
  const j = JSON.parse(out.trim().split('\n').pop());
  // spawn -> model + context ready, on the same clock (CLOCK_MONOTONIC): what
  // a separate loader process pays, exec and dynamic linking included.
  const spawnReady = Number.isFinite(j.ready_mono_ms) ? j.ready_mono_ms - t0 : NaN;
  return { ...j, wall_ms: wall, spawn_ready_ms: spawnReady };
}

// One load + unload through modelwarden; returns POST load -> 200 in ms.
async function modelwardenLoad(server, name) {
  const r = await expectOk(server.port, 'POST', '/api/orchestrate/load', { model_name: name }, [200]);
  await expectOk(server.port, 'POST', '/api/orchestrate/unload', { model_name: name }, [200]);
  return r.ms;
}

// llama-server in router mode over the cache directory, with the parameters
// modelwarden-worker uses (n_ctx, threads), one slot and no warm-up decode
// (modelwarden's load does not run one either).
async function startLlamaServer(llamaBin, nCtx) {
  const port = await freePort();
  const errPath = path.join(tmpRoot, 'llama-server.log');
  const errFd = fs.openSync(errPath, 'a');
  const proc = spawn(llamaBin, ['--models-dir', cacheDir, '--host', '127.0.0.1', '--port', String(port),
    '-c', String(nCtx), '-t', String(os.cpus().length), '-np', '1', '--no-warmup', '--models-max', '1'],
  { stdio: ['ignore', errFd, errFd] });
  fs.closeSync(errFd);
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  for (let i = 0; i < 600; ++i) {
    if (proc.exitCode !== null) break;
    try {
      const r = await request(port, 'GET', '/models');
      if (r.status === 200 && r.json?.data) return { proc, port };
    } catch { /* not listening yet */ }
    await sleep(50);
  }
  await stopProcess(proc);
  throw new Error(`llama-server did not answer GET /models (see ${errPath})`);
}

// One load + unload through the router: POST /models/load, then GET /models
// every 2 ms until the model is "loaded" (so the figure has ~2 ms resolution).
async function llamaServerLoad(ls, file) {
  const models = (await request(ls.port, 'GET', '/models')).json.data;
  const entry = models.find((m) => path.basename(m.path ?? '') === file || m.id === file.replace(/\.gguf$/, ''));
  if (!entry) throw new Error(`llama-server does not list ${file}: ${models.map((m) => m.id).join(', ')}`);
  const statusOf = async () => (await request(ls.port, 'GET', '/models')).json.data.find((m) => m.id === entry.id).status;
  const waitFor = async (value, t0) => {
    for (;;) {
      const s = await statusOf();
      if (s.value === value) return nowMs() - t0;
      if (s.failed) throw new Error(`llama-server: load of ${entry.id} failed (exit ${s.exit_code})`);
      if (nowMs() - t0 > 600000) throw new Error(`llama-server: ${entry.id} not ${value} after 600 s`);
      await sleep(2);
    }
  };
  const t0 = nowMs();
  await expectOk(ls.port, 'POST', '/models/load', { model: entry.id }, [200]);
  const ms = await waitFor('loaded', t0);
  await expectOk(ls.port, 'POST', '/models/unload', { model: entry.id }, [200]);
  await waitFor('unloaded', nowMs());
  return ms;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

function findLlamaServer() {
  if (typeof opts['llama-server'] === 'string') return opts['llama-server'];
  const prefix = spawnSync(path.join(here, '..', 'scripts', 'bootstrap'), ['--print-llama-dir'], { encoding: 'utf8' }).stdout?.trim();
  const candidate = prefix ? `${prefix}-server/build/bin/llama-server` : '';
  return candidate && fs.existsSync(candidate) && fs.existsSync(`${prefix}-server/.complete`) ? candidate : null;
}

async function benchLoad() {
  const models = [
    { label: 'tiny', file: 'bench-tiny.gguf', args: [] },
    { label: '~1 GB', file: 'bench-1gb.gguf', args: ['--size-mb', '1000'] },
  ];
  const llamaBin = findLlamaServer();
  results.load = {};
  for (const m of models) {
    const label = `load ${m.label}`;
    let server = null;
    let ls = null;
    try {
      const modelPath = ensureModel(m.file, m.args);
      const size = fs.statSync(modelPath).size;
      const name = m.file.replace(/\.gguf$/, '');
      server = await startServer(`load-${name}`, `[locations]\nbench = "${cacheDir}"\n`);
      await expectOk(server.port, 'POST', '/api/models', { model_name: name, cache_location: 'bench', file_path: m.file });
      let lsNote = llamaBin ? '' : 'n/a (run scripts/build-llama-server)';
      const bare = [];
      const mw = [];
      const router = [];
      for (let i = 0; i <= runs; ++i) {
        const b = bareLoad(modelPath);
        const w = await modelwardenLoad(server, name);
        if (i > 0) { bare.push(b); mw.push(w); }
        if (llamaBin && !lsNote) {
          try {
            if (!ls) ls = await startLlamaServer(llamaBin, b.n_ctx);
            const t = await llamaServerLoad(ls, m.file);
            if (i > 0) router.push(t);
          } catch (e) { lsNote = `error: ${e.message}`; }
        }
      }
      const bareReady = median(bare.map((b) => b.ready_ms));
      const bareWall = median(bare.map((b) => b.wall_ms));
      const bareSpawnReady = median(bare.map((b) => b.spawn_ready_ms));
      const mwMs = median(mw);
      const lsMs = router.length ? median(router) : NaN;
      const limit = 1.05 * bareReady + 20;
      const ratio = mwMs / bareReady;
      results.load[m.label] = { size, bare, bareReady, bareWall, bareSpawnReady, modelwarden: mw, llama_server: router, ratio };
      row(`${label} (${fmtMB(size)}): request -> loaded, median of ${runs}`,
        `${fmtMs(mwMs)} (${ratio.toFixed(2)}x bare)`,
        `${fmtMs(bareReady)} in-process; ${fmtMs(bareSpawnReady)} spawn..ready; ${fmtMs(bareWall)} exec..exit`,
        lsNote || fmtMs(lsMs),
        `<= 1.05x bare + 20 ms = ${fmtMs(limit)}; < llama-server`,
        (mwMs <= limit ? 'met' : `missed by ${fmtMs(mwMs - limit)}`) +
          (Number.isFinite(lsMs) ? (mwMs < lsMs ? '; faster than llama-server' : '; slower than llama-server') : ''));
    } catch (e) {
      row(label, `error: ${e.message}`);
    } finally {
      if (server) await stopProcess(server.proc);
      if (ls) await stopProcess(ls.proc);
    }
  }
}

// ---- 2. crash to durable ------------------------------------------------

// Median time of a 4 KiB write + fsync in `dir`: the floor under any durable
// commit on this disk (SQLite WAL with synchronous=FULL syncs once per commit).
function fsyncMs(dir) {
  const file = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(file, 'w');
  const times = [];
  const block = Buffer.alloc(4096, 1);
  for (let i = 0; i < 20; ++i) {
    const t0 = nowMs();
    fs.writeSync(fd, block);
    fs.fsyncSync(fd);
    times.push(nowMs() - t0);
  }
  fs.closeSync(fd);
  fs.rmSync(file);
  return median(times);
}

async function benchCrash() {
  const label = 'crash -> outcome durable';
  try {
    // The crashing loader is an argv sent through the API (SPEC §9.1: only
    // with allow_api_commands).
    const server = await startServer('crash', 'allow_api_commands = true\n');
    try {
      const stamp = path.join(tmpRoot, 'crash', 'stamp');
      await expectOk(server.port, 'POST', '/api/models', {
        model_name: 'crasher', engine: 'command',
        load_config: { argv: [bin('mw-bench-crash'), stamp, '--after-ms', '50'], ready_pattern: '^never ready$' },
      });
      const viaHttp = [];
      const viaRecord = [];
      const stamps = [];
      for (let i = 0; i <= runs; ++i) {
        fs.rmSync(stamp, { force: true });
        const r = await request(server.port, 'POST', '/api/orchestrate/load', { model_name: 'crasher', force_load: true });
        if (r.status !== 422) throw new Error(`expected 422 load_failed, got ${r.status}: ${r.text.slice(0, 300)}`);
        const [mono, real] = fs.readFileSync(stamp, 'utf8').trim().split(/\s+/).map(BigInt);
        if (i === 0) continue;  // warm-up
        viaHttp.push(r.end - Number(mono) / 1e6);
        const model = (await expectOk(server.port, 'GET', '/api/models/crasher', undefined, [200])).json;
        const attempt = model.attempts?.[0] ?? {};
        const finished = Date.parse(attempt.finished_at ?? '');
        if (Number.isFinite(finished)) viaRecord.push(finished - Number(real) / 1e6);
        stamps.push({ id: attempt.id, realMs: Number(real) / 1e6 });
      }
      // The server logs "load attempt N ended" right after the commit: with
      // millisecond timestamps, the crash -> durable time as the server saw it.
      const log = fs.readFileSync(server.stderrPath, 'utf8');
      const viaLog = [];
      for (const { id, realMs } of stamps) {
        const m = new RegExp(`^(\\S+) \\S+ \\[compat\\] load attempt ${id} ended`, 'm').exec(log);
        if (m) viaLog.push(Date.parse(m[1]) - realMs);
      }
      const fsync = fsyncMs(path.join(tmpRoot, 'crash', 'data'));
      results.crash = { http_ms: viaHttp, finished_at_minus_crash_ms: viaRecord, commit_logged_minus_crash_ms: viaLog, fsync_ms: fsync };
      const med = median(viaHttp);
      row(`crash -> outcome durable (SIGSEGV of a command loader), median of ${runs}`,
        `${fmtMs(med)} to the 422 answer (max ${fmtMs(Math.max(...viaHttp))}); commit logged at ${fmtMs(median(viaLog))}; ` +
        `seen ${fmtMs(median(viaRecord))}; one fsync here: ${fmtMs(fsync)}`,
        '-', '-', '< 10 ms', med < 10 ? 'met' : 'missed');
    } finally {
      await stopProcess(server.proc);
    }
  } catch (e) {
    row(label, `error: ${e.message}`);
  }
}

// ---- shared: bulk registry ----------------------------------------------

// Creates the schema with the real server (start + stop), then bulk-inserts
// `count` models; every `testingEvery`-th one stuck in `testing` with an open
// attempt, as after a crash. `attemptsPer` closed attempts per model give the
// detail endpoint some history.
async function makeRegistry(name, count, testingEvery, attemptsPer) {
  const dataDir = path.join(tmpRoot, name, 'data');
  const s = await startServer(name, '', dataDir);
  await stopProcess(s.proc);
  const db = path.join(dataDir, 'registry.db');
  const now = new Date().toISOString();
  const testing = testingEvery > 0 ? `i % ${testingEvery} = 0` : '0';
  spawnSqlite(db, `
PRAGMA foreign_keys = ON;
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ${count})
INSERT INTO models (model_name, hf_path, cache_location, file_path, engine, compatibility_status,
                    compatibility_notes, load_config, total_loads, total_failures, created_at, updated_at,
                    last_loaded_at, last_failed_at)
SELECT printf('bench-model-%06d', i), printf('bench-org/model-%d-GGUF', i), 'primary', printf('model-%06d.gguf', i),
       'llama.cpp',
       CASE WHEN ${testing} THEN 'testing'
            ELSE CASE i % 4 WHEN 0 THEN 'unknown' WHEN 1 THEN 'compatible' WHEN 2 THEN 'incompatible' ELSE 'degraded' END END,
       CASE i % 4 WHEN 2 THEN 'Hardware incompatibility detected: CreateContext failed (hipErrorNoDevice)' ELSE NULL END,
       '{"n_ctx":4096,"flash_attn":"auto","n_gpu_layers":-1}', i % 7, i % 3, '${now}', '${now}', '${now}', NULL
FROM c;
INSERT INTO load_attempts (model_name, started_at, status_before, load_config)
SELECT model_name, '${now}', 'unknown', load_config FROM models WHERE compatibility_status = 'testing';
WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j + 1 < ${attemptsPer})
INSERT INTO load_attempts (model_name, started_at, finished_at, outcome, status_before, status_after, load_config,
                           exit_code, category, summary, duration_ms)
SELECT model_name, '${now}', '${now}', CASE j % 2 WHEN 0 THEN 'success' ELSE 'crashed' END, 'unknown', 'compatible',
       load_config, CASE j % 2 WHEN 0 THEN 0 ELSE NULL END, 'other', 'bench history entry', 1234
FROM models, k;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
`);
  return { dataDir, db };
}

// ---- 3. startup with 100 000 models -------------------------------------

// The server's own timer, from the last "startup cleanup: N models in X ms"
// line of its log (stderr); null if there is none (an older server).
// What this run of the server wrote to stderr (its log, with the startup
// cleanup's SPEC §1.4 lines among the log lines).
function serverLog(server) {
  if (!fs.existsSync(server.stderrPath)) return '';
  return fs.readFileSync(server.stderrPath).subarray(server.logStart).toString('utf8');
}

// Counts the `   - Marked '...'` lines of the startup cleanup in this run's log.
function markedLines(server) {
  return serverLog(server).split('\n').filter((l) => l.startsWith("   - Marked '")).length;
}

function loggedCleanup(server) {
  const log = serverLog(server);
  const all = [...log.matchAll(/startup cleanup: (\d+) models in (\d+) ms/g)];
  if (!all.length) return null;
  const m = all[all.length - 1];
  return { models: Number(m[1]), ms: Number(m[2]) };
}

async function benchStartup() {
  const label = 'startup, 100 000 models, 1 000 in testing';
  try {
    const { dataDir, db } = await makeRegistry('startup', 100000, 100, 0);
    const pristine = `${db}.pristine`;
    fs.copyFileSync(db, pristine);
    const dirty = [];
    const clean = [];
    let marked = 0;
    const reps = Math.max(1, Math.min(runs, 3));
    for (let i = 0; i < reps; ++i) {
      for (const f of ['registry.db-wal', 'registry.db-shm']) fs.rmSync(path.join(dataDir, f), { force: true });
      fs.copyFileSync(pristine, db);
      const a = await startServer('startup', '', dataDir);
      await stopProcess(a.proc);
      marked = markedLines(a);
      dirty.push({ listen: a.tListen - a.t0, logged: loggedCleanup(a) });
      const b = await startServer('startup', '', dataDir);  // same registry, now clean
      await stopProcess(b.proc);
      clean.push({ listen: b.tListen - b.t0 });
    }
    const empty = [];
    for (let i = 0; i <= reps; ++i) {  // the first start creates the registry
      const e = await startServer('startup-empty');
      await stopProcess(e.proc);
      if (i > 0) empty.push(e.tListen - e.t0);
    }
    const dirtyMs = median(dirty.map((d) => d.listen));
    const cleanMs = median(clean.map((d) => d.listen));
    const cleanup = dirtyMs - cleanMs;
    const logged = dirty.every((d) => d.logged) ? median(dirty.map((d) => d.logged.ms)) : null;
    results.startup = { dirty, clean, empty, marked, logged_cleanup_ms: logged };
    row(`${label}: exec -> listening, median of ${reps}`,
      `${fmtMs(dirtyMs)}; same registry once clean ${fmtMs(cleanMs)}; empty registry ${fmtMs(median(empty))}; ${marked} marked`,
      '-', '-', '-', '-');
    if (logged !== null) {
      row(`startup cleanup of those 1 000 (server's own timer), median of ${reps}`,
        `${fmtMs(logged)} (runs: ${dirty.map((d) => fmtMs(d.logged.ms)).join(', ')}); dirty - clean start: ${fmtMs(cleanup)}`,
        '-', '-', '< 500 ms', logged < 500 ? 'met' : 'missed');
    } else {
      row('startup cleanup of those 1 000 (difference of the two)', fmtMs(cleanup), '-', '-', '< 500 ms',
        cleanup < 500 ? 'met' : 'missed');
    }
  } catch (e) {
    row(label, `error: ${e.message}`);
  }
}

// ---- 4. HTTP throughput and memory --------------------------------------

function wrk(url, extra = []) {
  const script = path.join(here, 'wrk_report.lua');
  const out = run('wrk', ['-t2', '-c16', `-d${wrkSeconds}s`, '--latency', '-s', script, url, ...extra]);
  const line = out.split('\n').find((l) => l.startsWith('MWBENCH '));
  if (!line) throw new Error(`wrk printed no summary: ${out.slice(-300)}`);
  return JSON.parse(line.slice('MWBENCH '.length));
}

async function benchHttp() {
  const label = 'HTTP with 1 000 models';
  try {
    const { dataDir } = await makeRegistry('http', 1000, 0, 5);
    const server = await startServer('http', '', dataDir);
    try {
      const list = await expectOk(server.port, 'GET', '/api/models', undefined, [200]);
      const one = await expectOk(server.port, 'GET', '/api/models/bench-model-000001', undefined, [200]);
      await sleep(1000);
      const atRest = rssBytes(server.proc.pid);
      const base = `http://127.0.0.1:${server.port}`;
      const w1 = wrk(`${base}/api/models`);
      const w2 = wrk(`${base}/api/models/bench-model-000000`, ['/api/models/bench-model-', '1000']);
      const after = rssBytes(server.proc.pid);
      results.http = { list_bytes: list.text.length, one_bytes: one.text.length, list: w1, one: w2, atRest, after };
      for (const [name, w, bytes] of [['GET /api/models', w1, list.text.length], ['GET /api/models/{name}', w2, one.text.length]]) {
        const rps = w.requests / (w.duration_us / 1e6);
        const p99 = w.p99_us / 1000;
        const errs = w.errors_status + w.errors_connect + w.errors_read + w.errors_timeout;
        row(`${name} (${(bytes / 1024).toFixed(0)} KiB body), wrk -t2 -c16 -d${wrkSeconds}s`,
          `${rps.toFixed(0)} req/s, p50 ${fmtMs(w.p50_us / 1000)}, p99 ${fmtMs(p99)}${errs ? `, ${errs} errors` : ''}`,
          '-', '-', '> 2 000 req/s, p99 < 20 ms', rps > 2000 && p99 < 20 && !errs ? 'met' : 'missed');
      }
      row('server memory at rest, 1 000 models (VmRSS)', `${fmtMB(atRest.rss)} (after wrk: ${fmtMB(after.rss)}, peak ${fmtMB(after.hwm)})`);
    } finally {
      await stopProcess(server.proc);
    }
  } catch (e) {
    row(label, `error: ${e.message}`);
  }
}

// ---- 5. crash classifier (Google Benchmark, bench/classifier_bench) -----

function benchClassifier() {
  if (!fs.existsSync(bin('classifier_bench'))) return row('classify a 64 KiB log', 'n/a (classifier_bench not built)');
  try {
    const out = run(bin('classifier_bench'), ['--benchmark_format=json', '--benchmark_min_time=0.2']);
    const j = JSON.parse(out);
    const parts = j.benchmarks.map((b) => `${b.name.replace(/^BM_Classify64KiB_/, '')} ${b.cpu_time.toFixed(0)} ${b.time_unit}`);
    results.classifier = j.benchmarks;
    const worst = Math.max(...j.benchmarks.map((b) => b.cpu_time * (b.time_unit === 'ms' ? 1000 : b.time_unit === 'ns' ? 1e-3 : 1)));
    row('classify a 64 KiB loader log (CPU time)', parts.join(', '), '-', '-', '< 1 ms', worst < 1000 ? 'met' : 'missed');
  } catch (e) {
    row('classify a 64 KiB log', `error: ${e.message}`);
  }
}

// ---- table --------------------------------------------------------------

function printTable() {
  const head = { benchmark: 'benchmark', modelwarden: 'modelwarden', bare: 'bare llama.cpp', llamaServer: 'llama-server router', target: 'target', verdict: 'verdict' };
  const cols = Object.keys(head);
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[head, ...rows].map((r) => String(r[c]).length))]));
  const line = (r) => `| ${cols.map((c) => String(r[c]).padEnd(width[c])).join(' | ')} |`;
  console.log(`\nmodelwarden benchmarks — ${results.date} — ${results.host}`);
  console.log(line(head));
  console.log(`|${cols.map((c) => '-'.repeat(width[c] + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

async function main() {
  for (const b of ['modelwarden', 'modelwarden-worker']) {
    if (!fs.existsSync(bin(b))) { row('all', `n/a: ${bin(b)} is not built`); return; }
  }
  if (only.has('load')) await benchLoad();
  if (only.has('crash')) await benchCrash();
  const kit = { startServer, stopProcess, expectOk, row, bin, tmpRoot, runs, quick, wrkSeconds, makeRegistry,
    loggedCleanup, markedLines, results };
  if (only.has('startup')) { await benchStartup(); await benchStartupPg(kit); }
  if (only.has('http')) await benchHttp();
  if (only.has('classifier')) benchClassifier();
  if (only.has('fleet')) await benchFleet(kit);
  else if (only.has('route')) await benchRoute(kit);
}

const cleanup = () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  stopPgCluster();
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(130); });
try {
  await main();
} catch (e) {
  row('bench driver', `error: ${e.message}`);
} finally {
  cleanup();
  printTable();
  results.rows = rows;
  results.host_after = hostInfo();
  const jsonOut = typeof opts.json === 'string' ? opts.json : path.join(buildDir, 'bench-results.json');
  try { fs.writeFileSync(jsonOut, JSON.stringify(results, null, 2)); console.log(`(details: ${jsonOut})`); } catch { /* read-only build dir */ }
  if (!opts['keep-tmp']) fs.rmSync(tmpRoot, { recursive: true, force: true });
}
process.exit(0);
