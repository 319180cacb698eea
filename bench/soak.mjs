#!/usr/bin/env node
// Soak (issue 25, SPEC §19): the real server serving mixed /v1 traffic for
// MINUTES with engines SIGKILLed and SIGSTOPped at random, watching that
// nothing leaks. Not in CI: `make soak MINUTES=N`.
//
//   node bench/soak.mjs --build-dir DIR --minutes N [--clients 4] [--chaos-every-s 30]
//                       [--hang-timeout-s 10] [--health-interval-s 2] [--keep-tmp]
//
// Set-up: 3 make-test-model GGUFs (a, b: chat and completions; e: embeddings),
// max_loaded_models = 2 and keep_alive = "20s", so that traffic across the 3
// models loads them on demand and evicts the least recently used.
// Traffic: --clients loops, each picking a model and a form at random:
// streamed chat, non-streamed completion, embeddings, and a request dropped
// by the client at a random moment (0-400 ms). Every request gets an answer
// or an error, or it is "lost" (no HTTP answer within hang_timeout + 120 s).
// Chaos: every --chaos-every-s, a loaded engine (its modelwarden-worker) gets
// SIGKILL or SIGSTOP (half each). A SIGSTOPped engine must be judged
// (attempt hung_while_serving) within hang_timeout_s + 5 s; the time is
// measured. After a verdict the model's status is set back to `unknown`
// (PATCH), as an operator would, so that the soak goes on loading it.
// Sampling: every 5 s the server's RSS (VmRSS), open fds (/proc/PID/fd) and
// threads (/proc/PID/status Threads).
// Report (stdout, and JSON with --json FILE): requests by outcome, chaos
// events, hangs judged and the slowest judgement, models left in `testing`,
// processes left after the server's SIGTERM (orphans), RSS and fds after
// warm-up (min(5 min, a third of the run)) and at the end, with the growth.
// Prints figures, never asserts them: exit code 0 unless the set-up failed.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, nowMs, parseArgs, sleep } from './bench_util.mjs';

const opts = parseArgs(process.argv);
const buildDir = path.resolve(opts['build-dir'] ?? 'build');
const minutes = Number(opts.minutes ?? 10);
const clients = Number(opts.clients ?? 4);
const chaosEveryS = Number(opts['chaos-every-s'] ?? 30);
const hangTimeoutS = Number(opts['hang-timeout-s'] ?? 10);
const healthIntervalS = Number(opts['health-interval-s'] ?? 2);
const bin = (n) => path.join(buildDir, 'bin', n);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-soak-'));
const dataDir = path.join(tmp, 'data');
const MODELS = ['a', 'b', 'e'];

function request(port, method, urlPath, body, { abortAfterMs, timeoutMs = (hangTimeoutS + 120) * 1000 } = {}) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
    let done = false;
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); clearTimeout(abort); resolve(r); } };
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { if (text.length < 1 << 20) text += c; });
      res.on('end', () => finish({ status: res.statusCode, text }));
      res.on('error', () => finish({ status: res.statusCode, text, broken: true }));
    });
    const timer = setTimeout(() => { req.destroy(); finish({ lost: true }); }, timeoutMs);
    const abort = abortAfterMs === undefined ? null : setTimeout(() => { req.destroy(); finish({ dropped: true }); }, abortAfterMs);
    req.on('error', (e) => finish({ error: String(e.code || e.message) }));
    req.end(data);
  });
}

function outcomeOf(r) {
  if (r.dropped) return 'dropped by client';
  if (r.lost) return 'LOST (no answer)';
  if (r.error) return `transport error ${r.error}`;
  if (r.status === 200 && /"error"\s*:\s*\{/.test(r.text.slice(-4000)) && r.text.includes('data: ')) {
    const m = r.text.match(/"code"\s*:\s*"([a-z_]+)"[^]*$/);
    return `200 stream ended by error ${m ? m[1] : '?'}`;
  }
  if (r.status === 200) return '200';
  let code = '';
  try { code = JSON.parse(r.text).error.code; } catch { /* not JSON */ }
  return `${r.status} ${code}`;
}

function procRss(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}
// VmRSS split as the kernel counts it: RssAnon (heap, stacks: what malloc
// keeps), RssFile (mapped files: libraries), RssShmem (the SQLite WAL index).
function procRssParts(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(st.match(new RegExp(`${k}:\\s+(\\d+) kB`))?.[1] ?? NaN);
    return { anon_kb: kb('RssAnon'), file_kb: kb('RssFile'), shmem_kb: kb('RssShmem') };
  } catch { return {}; }
}
function procThreads(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/Threads:\s+(\d+)/);
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}
function procFds(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return NaN; }
}

// Processes whose environment holds the soak's marker (everything the
// server started inherits it), other than `except`.
function marked(except) {
  const out = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === except || Number(e) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/environ`, 'latin1').includes(`MW_SOAK_MARK=${tmp}`)) out.push(Number(e));
    } catch { /* gone */ }
  }
  return out;
}

// model name -> pid of the modelwarden-worker serving it.
function workers() {
  const out = new Map();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd;
    try { cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0'); } catch { continue; }
    if (!cmd[0].endsWith('modelwarden-worker') || !cmd.join(' ').includes(dataDir)) continue;
    // A pre-started worker (`load --standby`) gets its model on stdin, not in
    // its argv: the model it serves is the GGUF it has mapped.
    let maps = '';
    try { maps = fs.readFileSync(`/proc/${e}/maps`, 'latin1'); } catch { continue; }
    for (const m of MODELS) if (maps.includes(path.join(dataDir, 'models', `${m}.gguf`))) out.set(m, Number(e));
  }
  return out;
}

const counts = new Map();
const count = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);

async function client(port, stopAt, rnd) {
  while (nowMs() < stopAt) {
    const form = rnd() * 4 | 0;
    const model = form === 2 ? 'e' : rnd() < 0.5 ? 'a' : 'b';
    let r;
    if (form === 0) {
      r = await request(port, 'POST', '/v1/chat/completions', { model, stream: true, max_tokens: 16 + (rnd() * 48 | 0),
        messages: [{ role: 'user', content: 'Tell me about lighthouses.' }], ignore_eos: true });
      count(`stream chat: ${outcomeOf(r)}`);
    } else if (form === 1) {
      r = await request(port, 'POST', '/v1/completions', { model, prompt: 'Once upon a time', max_tokens: 16 + (rnd() * 48 | 0), ignore_eos: true });
      count(`completion: ${outcomeOf(r)}`);
    } else if (form === 2) {
      r = await request(port, 'POST', '/v1/embeddings', { model, input: 'the quick brown fox' });
      count(`embeddings: ${outcomeOf(r)}`);
    } else {
      r = await request(port, 'POST', '/v1/chat/completions', { model, stream: rnd() < 0.5, max_tokens: 64, ignore_eos: true,
        messages: [{ role: 'user', content: 'Hello' }] }, { abortAfterMs: rnd() * 400 | 0 });
      count(`dropped mid-way: ${outcomeOf(r)}`);
    }
  }
}

async function modelView(port, name) {
  const r = await request(port, 'GET', `/api/models/${name}`, undefined, { timeoutMs: 30000 });
  try { return JSON.parse(r.text); } catch { return null; }
}

async function chaos(port, stopAt, rnd, chaosLog) {
  while (nowMs() + chaosEveryS * 1000 < stopAt) {
    await sleep(chaosEveryS * 1000);
    // Engines of loaded models only: a load has its own (stall) timeout.
    let list = [];
    try { list = JSON.parse((await request(port, 'GET', '/api/models', undefined, { timeoutMs: 30000 })).text).models; } catch { /* none */ }
    const running = workers();
    const loaded = list.filter((m) => m.loaded && running.has(m.model_name)).map((m) => [m.model_name, running.get(m.model_name)]);
    if (!loaded.length) { chaosLog.push({ kind: 'none loaded' }); continue; }
    const [model, pid] = loaded[rnd() * loaded.length | 0];
    const before = (await modelView(port, model))?.attempts?.[0]?.id ?? 0;
    const kind = rnd() < 0.5 ? 'SIGKILL' : 'SIGSTOP';
    const t0 = nowMs();
    try { process.kill(pid, kind); } catch { chaosLog.push({ kind, model, skipped: 'gone' }); continue; }
    // The verdict: a new attempt crashed_while_serving / hung_while_serving
    // (environment_failure), or the engine unloaded first (an eviction or
    // the idle unload stops it: no verdict, not a failure).
    let judged = null;
    while (nowMs() - t0 < (hangTimeoutS + 60) * 1000) {
      const v = await modelView(port, model);
      const ended = (v?.attempts ?? []).find((a) => a.id > before && a.finished_at &&
        ['crashed_while_serving', 'hung_while_serving', 'environment_failure'].includes(a.outcome));
      if (ended) { judged = ended.outcome; break; }
      if (!fs.existsSync(`/proc/${pid}`)) {
        judged = 'unloaded (eviction or idle) before judged';
        await sleep(1000);  // a verdict recorded a moment after the exit is still counted
        const again = (await modelView(port, model))?.attempts?.find((a) => a.id > before && a.finished_at &&
          ['crashed_while_serving', 'hung_while_serving', 'environment_failure'].includes(a.outcome));
        if (again) judged = again.outcome;
        break;
      }
      await sleep(250);
    }
    const event = { kind, model, pid, judged, after_s: +((nowMs() - t0) / 1000).toFixed(1) };
    chaosLog.push(event);
    if (kind === 'SIGSTOP') { try { process.kill(pid, 'SIGCONT'); } catch { /* killed by the watch, as it should be */ } }
    // An operator sets the verdict aside so the soak goes on.
    await request(port, 'PATCH', `/api/models/${model}/config`, { compatibility_status: 'unknown' }, { timeoutMs: 30000 });
  }
}

function seeded(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

async function main() {
  fs.mkdirSync(path.join(dataDir, 'models'), { recursive: true });
  for (const m of MODELS) {
    const out = path.join(dataDir, 'models', `${m}.gguf`);
    const made = spawnSync(bin('modelwarden'), ['make-test-model', out], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`make-test-model: ${made.stderr}`);
  }
  const port = await freePort();
  const config = path.join(tmp, 'config.toml');
  fs.writeFileSync(config, [`port = ${port}`, 'host = "127.0.0.1"', `data_dir = "${dataDir}"`, 'max_loaded_models = 2',
    'keep_alive = "20s"', `health_interval_s = ${healthIntervalS}`, `hang_timeout_s = ${hangTimeoutS}`, 'max_queue = 64', ''].join('\n'));
  const log = fs.openSync(path.join(tmp, 'server.log'), 'a');
  const server = spawn(bin('modelwarden'), ['serve', '--config', config], { stdio: ['ignore', log, log],
    env: { ...process.env, MW_SOAK_MARK: tmp } });
  fs.closeSync(log);
  for (let i = 0; ; ++i) {
    try { if ((await request(port, 'GET', '/api/status', undefined, { timeoutMs: 2000 })).status === 200) break; } catch { /* not yet */ }
    if (i > 300 || server.exitCode !== null) throw new Error(`the server did not start: see ${tmp}/server.log`);
    await sleep(100);
  }
  for (const m of MODELS) {
    const load_config = { n_threads: 1, n_ctx: 1024, ...(m === 'e' ? { embeddings: true, pooling: 'mean' } : {}) };
    const r = await request(port, 'POST', '/api/models', { model_name: m, file_path: `${m}.gguf`, load_config });
    if (r.status !== 201) throw new Error(`register ${m}: ${r.status} ${r.text}`);
  }
  const t0 = nowMs();
  const stopAt = t0 + minutes * 60000;
  const warmupS = Math.min(300, minutes * 20);
  const samples = [];
  const sampler = setInterval(() => {
    samples.push({ t_s: Math.round((nowMs() - t0) / 1000), rss_kb: procRss(server.pid), fds: procFds(server.pid),
      threads: procThreads(server.pid), ...procRssParts(server.pid) });
  }, 5000);
  const chaosLog = [];
  const rnd = seeded(Number(opts.seed ?? 25));
  await Promise.all([...[...Array(clients)].map((_, i) => client(port, stopAt, seeded(1000 + i))),
    chaos(port, stopAt, rnd, chaosLog)]);
  clearInterval(sampler);
  // A load the last requests started may still run when the traffic stops:
  // `testing` is what is left once loads have had their time (a stalled
  // load ends by load_timeout_s), not a snapshot of the moment.
  const settleBy = nowMs() + 180000;
  let testing = [];
  for (;;) {
    testing = [];
    for (const m of MODELS) if ((await modelView(port, m))?.compatibility_status === 'testing') testing.push(m);
    if (testing.length === 0 || nowMs() > settleBy) break;
    await sleep(500);
  }
  const settledAfterS = Math.round((nowMs() - stopAt) / 1000);
  server.kill('SIGTERM');
  await new Promise((r) => { if (server.exitCode !== null) r(); else server.once('exit', r); });
  await sleep(2000);
  const orphans = marked(server.pid);
  for (const pid of orphans) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  report({ samples, warmupS, chaosLog, testing, settledAfterS, orphans });
}

function report({ samples, warmupS, chaosLog, testing, settledAfterS, orphans }) {
  const at = (s) => samples.find((x) => x.t_s >= s) ?? samples[samples.length - 1];
  const w = at(warmupS);
  const end = samples[samples.length - 1];
  const growth = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && a > 0 ? +((100 * (b - a)) / a).toFixed(1) : NaN);
  const stops = chaosLog.filter((e) => e.kind === 'SIGSTOP' && !e.skipped);
  const judgedStops = stops.filter((e) => e.judged === 'hung_while_serving' || e.judged === 'environment_failure');
  const result = {
    minutes, clients, chaos_every_s: chaosEveryS, hang_timeout_s: hangTimeoutS, health_interval_s: healthIntervalS,
    load: os.loadavg().map((x) => +x.toFixed(2)), cpus: os.cpus().length,
    requests: Object.fromEntries([...counts.entries()].sort()),
    requests_total: [...counts.values()].reduce((a, b) => a + b, 0),
    lost: [...counts.entries()].filter(([k]) => k.includes('LOST')).reduce((a, [, n]) => a + n, 0),
    chaos: chaosLog,
    sigstops: stops.length, sigstops_judged_hung: judgedStops.length,
    slowest_hang_judgement_s: Math.max(0, ...judgedStops.map((e) => e.after_s)),
    sigkills: chaosLog.filter((e) => e.kind === 'SIGKILL' && !e.skipped).length,
    models_left_testing: testing, testing_checked_s_after_traffic: settledAfterS, orphans: orphans.length,
    rss_kb: { after_warmup: w?.rss_kb, end: end?.rss_kb, growth_pct: growth(w?.rss_kb, end?.rss_kb), warmup_s: warmupS },
    rss_parts_kb: Object.fromEntries(['anon_kb', 'file_kb', 'shmem_kb'].map((k) =>
      [k, { after_warmup: w?.[k], end: end?.[k], growth_pct: growth(w?.[k], end?.[k]) }])),
    fds: { after_warmup: w?.fds, end: end?.fds, growth_pct: growth(w?.fds, end?.fds) },
    threads: { after_warmup: w?.threads, end: end?.threads,
      max: Math.max(...samples.map((x) => x.threads).filter(Number.isFinite)) },
    samples,
  };
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(result, null, 2));
  const { samples: _, chaos: __, ...summary } = result;
  console.log(JSON.stringify(summary, null, 2));
  console.log('chaos events:');
  for (const e of chaosLog) console.log(`  ${JSON.stringify(e)}`);
  if (!opts['keep-tmp']) fs.rmSync(tmp, { recursive: true, force: true });
  else console.log(`kept ${tmp}`);
}

main().catch((e) => {
  console.error(`soak: ${e.message} (files in ${tmp})`);
  process.exit(1);
});
