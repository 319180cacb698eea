// The fleet benchmarks of issue 14 (SPEC §14), run by bench/serve_bench.mjs:
// the same figure on the SQLite file and on a PostgreSQL registry, side by
// side, printed, never asserted.
//   benchStartupPg: startup with 100 000 models, 1 000 in testing, on PostgreSQL
//     (the SQLite row is serve_bench's own `startup`).
//   benchFleet: the registry calls alone (bench/registry_bench: durable
//     commits per load, ListModels and GetModel), one whole load request
//     through the same command engine, and GET /api/models (and /{name})
//     with 1 000 models under wrk: one SQLite server, one PostgreSQL node,
//     three PostgreSQL nodes sharing the registry. GET /api/models is served
//     from each server's cached body after the first request (no registry
//     call), so it measures the HTTP layer and the CPU the nodes share.
//   benchRoute (SPEC §21, any node answers): a streamed /v1 request's time to
//     first token asked of the node that has the model loaded (C) and of a
//     node that passes it there (A), taking turns, one request at a time
//     (loopback, two PostgreSQL nodes, the mw-openai-engine fixture).
// PostgreSQL is a private cluster (tests/pg/pg-cluster: initdb + pg_ctl in a
// temp dir, unix socket only, fsync ON here so commits are as durable as
// SQLite's), started at the first need and stopped by stopPgCluster() (the
// driver calls it at the end, on failure too). Where it cannot start, the
// PostgreSQL figures say "n/a (reason)" and the rest still runs.
// `h` is the driver's kit: startServer, stopProcess, expectOk, row, bin,
// tmpRoot, runs, quick, wrkSeconds, makeRegistry, loggedCleanup, markedLines, results.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { median, nowMs, sleep } from './bench_util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const clusterScript = path.join(here, '..', 'tests', 'pg', 'pg-cluster');
const fmtMs = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + ' ms' : 'n/a');
const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;
const loadConfig = '{"n_ctx":4096,"flash_attn":"auto","n_gpu_layers":-1}';

// ---- the private cluster ---------------------------------------------------

let cluster = null;  // { dir, url } or { skip: reason }

// Outside the driver's temp dir: that one is 0700 and the cluster may run as
// the `postgres` user (when we are root), which must reach its directory.
function pgCluster() {
  if (cluster) return cluster;
  const dir = path.join(os.tmpdir(), `mw-bench-pg-${process.pid}`);
  const r = spawnSync(clusterScript, ['start', dir], {
    encoding: 'utf8', timeout: 120000, env: { ...process.env, MW_PG_FSYNC: 'on' },
  });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.error || r.status !== 0) {
    cluster = { dir, skip: `PostgreSQL did not start: ${(r.error?.message ?? r.stderr ?? '').trim().slice(-200)}` };
  } else if (last.startsWith('SKIP:')) {
    cluster = { skip: last.slice(5).trim() };
  } else {
    cluster = { dir, url: last };
  }
  return cluster;
}

export function stopPgCluster() {
  if (cluster?.dir) spawnSync(clusterScript, ['stop', cluster.dir], { timeout: 60000 });
  cluster = null;
}

// A schema of its own (a registry URL whose search_path is it), created empty.
function pgSchema(name) {
  const c = pgCluster();
  if (c.skip) return { skip: c.skip };
  psql(c.url, `DROP SCHEMA IF EXISTS ${name} CASCADE; CREATE SCHEMA ${name};`);
  return { url: `${c.url}&options=-csearch_path%3D${name}` };
}

function psql(url, sql) {
  const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url], {
    input: sql, encoding: 'utf8', timeout: 600000, maxBuffer: 64 << 20,
  });
  if (r.error) throw new Error(`psql: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`psql: ${r.stderr.slice(0, 400)}`);
  return r.stdout.trim();
}

// ---- a filled PostgreSQL registry -------------------------------------------

// The verdicts of `count` models in class `cls` (every `testingEvery`-th in
// testing with an open attempt of node `node`, as after a crash; the others
// spread over the four verdicts like serve_bench's makeRegistry), and
// `attemptsPer` closed attempts each.
function verdictsSql({ count, testingEvery, attemptsPer, node, cls }) {
  const name = "'bench-model-' || lpad(i::text, 6, '0')";
  const testing = testingEvery > 0 ? `i % ${testingEvery} = 0` : 'false';
  return `
INSERT INTO model_verdicts (model_name, environment_class, compatibility_status, compatibility_notes,
                            total_loads, total_failures, last_loaded_at, updated_at)
SELECT ${name}, ${lit(cls)},
       CASE WHEN ${testing} THEN 'testing' ELSE (ARRAY['unknown', 'compatible', 'incompatible', 'degraded'])[i % 4 + 1] END,
       CASE WHEN i % 4 = 2 THEN 'Hardware incompatibility detected: CreateContext failed (hipErrorNoDevice)' END,
       i % 7, i % 3, :'now', :'now'
FROM generate_series(0, ${count - 1}) AS i;
INSERT INTO load_attempts (model_name, started_at, status_before, load_config, node_id, environment_class)
SELECT model_name, :'now', 'unknown', ${lit(loadConfig)}, ${lit(node)}, ${lit(cls)} FROM model_verdicts
WHERE environment_class = ${lit(cls)} AND compatibility_status = 'testing';
INSERT INTO load_attempts (model_name, started_at, finished_at, outcome, status_before, status_after, load_config,
                           exit_code, category, summary, duration_ms, node_id, environment_class)
SELECT ${name}, :'now', :'now', CASE j % 2 WHEN 0 THEN 'success' ELSE 'crashed' END, 'unknown', 'compatible',
       ${lit(loadConfig)}, CASE j % 2 WHEN 0 THEN 0 END, 'other', 'bench history entry', 1234, ${lit(node)}, ${lit(cls)}
FROM generate_series(0, ${count - 1}) AS i, generate_series(0, ${attemptsPer - 1}) AS j;`;
}

// Creates the schema with a real server (start + stop: it migrates and
// joins, which gives its node id and environment class), then bulk-inserts
// the models. Returns what a reset needs.
async function makePgRegistry(h, name, spec) {
  const schema = pgSchema(name.replace(/-/g, '_'));
  if (schema.skip) return schema;
  const toml = `registry = "${schema.url}"\n`;
  const dataDir = path.join(h.tmpRoot, name, 'data');
  const s = await h.startServer(name, toml, dataDir);
  await h.stopProcess(s.proc);
  const node = fs.readFileSync(path.join(dataDir, 'node_id'), 'utf8').trim();
  const cls = psql(schema.url, `SELECT environment_class FROM nodes WHERE node_id = ${lit(node)}`);
  const full = { ...spec, node, cls };
  psql(schema.url, `\\set now '${new Date().toISOString()}'
BEGIN;
INSERT INTO models (model_name, hf_path, cache_location, file_path, engine, load_config, created_at, updated_at)
SELECT 'bench-model-' || lpad(i::text, 6, '0'), 'bench-org/model-' || i || '-GGUF', 'primary',
       'model-' || lpad(i::text, 6, '0') || '.gguf', 'llama.cpp', ${lit(loadConfig)}, :'now', :'now'
FROM generate_series(0, ${spec.count - 1}) AS i;
${verdictsSql(full)}
COMMIT;
VACUUM ANALYZE;`);
  return { url: schema.url, toml, dataDir, node, cls, spec: full };
}

// Back to the state makePgRegistry left (what copying the pristine file is
// for SQLite).
function resetPgRegistry(reg) {
  psql(reg.url, `\\set now '${new Date().toISOString()}'
BEGIN;
DELETE FROM load_attempts;
DELETE FROM model_verdicts;
${verdictsSql(reg.spec)}
COMMIT;
VACUUM ANALYZE;`);
}

// ---- startup with 100 000 models on PostgreSQL ------------------------------

export async function benchStartupPg(h) {
  const label = 'startup on PostgreSQL, 100 000 models, 1 000 in testing';
  try {
    const reg = await makePgRegistry(h, 'startup-pg', { count: 100000, testingEvery: 100, attemptsPer: 0 });
    if (reg.skip) return h.row(label, `n/a (${reg.skip})`);
    const reps = Math.max(1, Math.min(h.runs, 3));
    const dirty = [];
    const clean = [];
    let marked = 0;
    for (let i = 0; i < reps; ++i) {
      resetPgRegistry(reg);
      const a = await h.startServer('startup-pg', reg.toml, reg.dataDir);
      await h.stopProcess(a.proc);
      marked = h.markedLines(a);
      dirty.push({ listen: a.tListen - a.t0, logged: h.loggedCleanup(a) });
      const b = await h.startServer('startup-pg', reg.toml, reg.dataDir);
      await h.stopProcess(b.proc);
      clean.push({ listen: b.tListen - b.t0 });
    }
    const empty = pgSchema('startup_pg_empty');
    const emptyToml = `registry = "${empty.url}"\n`;
    const emptyMs = [];
    for (let i = 0; i <= reps; ++i) {  // the first start creates the tables
      const e = await h.startServer('startup-pg-empty', emptyToml);
      await h.stopProcess(e.proc);
      if (i > 0) emptyMs.push(e.tListen - e.t0);
    }
    const logged = dirty.every((d) => d.logged) ? dirty.map((d) => d.logged.ms) : null;
    h.results.startup_pg = { dirty, clean, empty: emptyMs, marked, environment_class: reg.cls };
    h.row(`${label}: exec -> listening, median of ${reps}`,
      `${fmtMs(median(dirty.map((d) => d.listen)))}; same registry once clean ${fmtMs(median(clean.map((d) => d.listen)))}; ` +
      `empty registry ${fmtMs(median(emptyMs))}; ${marked} marked`);
    h.row(`startup cleanup of those 1 000 on PostgreSQL (server's own timer), median of ${reps}`,
      logged ? `${fmtMs(median(logged))} (runs: ${logged.map(fmtMs).join(', ')})` : 'n/a (no "startup cleanup" log line)',
      '-', '-', '< 500 ms', logged ? (median(logged) < 500 ? 'met' : 'missed') : '-');
  } catch (e) {
    h.row(label, `error: ${e.message}`);
  }
}

// ---- the registry alone (Google Benchmark, bench/registry_bench) ------------

function benchRegistryCalls(h) {
  const label = 'registry calls, SQLite vs PostgreSQL with fsync on (registry_bench)';
  if (!fs.existsSync(h.bin('registry_bench'))) return h.row(label, 'n/a (registry_bench not built)');
  const r = spawnSync(h.bin('registry_bench'), ['--benchmark_filter=BM_DurableAttemptCommits|BM_ReadModels',
    '--benchmark_format=json'], { encoding: 'utf8', timeout: 300000 });
  let j;
  try { j = JSON.parse(r.stdout); } catch { return h.row(label, `error: registry_bench: ${(r.error?.message ?? r.stderr ?? '').slice(-300)}`); }
  h.results.fleet_registry_calls = j.benchmarks;
  // "NAME/postgresql:P[/detail:D]/iterations:N"
  const one = (name, pg, detail) => {
    const b = j.benchmarks.find((x) => x.name.startsWith(`${name}/postgresql:${pg}/`) &&
      (detail === undefined || x.name.includes(`/detail:${detail}/`)));
    if (!b) return 'n/a (not run)';
    if (b.error_occurred) return `n/a (${b.error_message})`;
    return `${b.real_time.toFixed(3)} ${b.time_unit} (CPU here ${b.cpu_time.toFixed(3)} ${b.time_unit})`;
  };
  const both = (name, detail) => `SQLite ${one(name, 0, detail)} | PostgreSQL ${one(name, 1, detail)}`;
  h.row('registry share of one load: 2 durable commits (BeginAttempt + FinishSuccess), 200 times',
    both('BM_DurableAttemptCommits'));
  h.row('registry share of an uncached GET /api/models: ListModels, 1 000 models, 100 times',
    both('BM_ReadModels', 0));
  h.row('registry share of an uncached GET /api/models/{name}: GetModelDetail (one round trip; a server that hears changes keeps it, see fleet_list), 2 000 times',
    both('BM_ReadModels', 1));
}

// ---- one load request through the same command engine -----------------------

async function benchLoadRequest(h) {
  const label = 'POST /api/orchestrate/load, command engine (mw-fake-engine, ready at once)';
  const engine = h.bin('mw-fake-engine');
  if (!fs.existsSync(engine)) return h.row(label, 'n/a (mw-fake-engine not built)');
  const servers = [];
  try {
    const model = {
      model_name: 'fake', engine: 'command',
      load_config: { argv: [engine, '--then', 'ready'], ready_pattern: '^ready$' },
    };
    const sqlite = await h.startServer('fleet-load-sqlite', 'allow_api_commands = true\n');
    servers.push(sqlite);
    const schema = pgSchema('fleet_load');
    let pg = null;
    if (!schema.skip) {
      pg = await h.startServer('fleet-load-pg', `allow_api_commands = true\nregistry = "${schema.url}"\n`);
      servers.push(pg);
    }
    for (const s of [sqlite, pg]) if (s) await h.expectOk(s.port, 'POST', '/api/models', model);
    const reps = h.quick ? 5 : 20;
    const ms = { sqlite: [], pg: [] };
    for (let i = 0; i <= reps; ++i) {  // taking turns; repetition 0 warms up
      for (const [key, s] of [['sqlite', sqlite], ['pg', pg]]) {
        if (!s) continue;
        const r = await h.expectOk(s.port, 'POST', '/api/orchestrate/load', { model_name: 'fake' }, [200]);
        await h.expectOk(s.port, 'POST', '/api/orchestrate/unload', { model_name: 'fake' }, [200]);
        if (i > 0) ms[key].push(r.ms);
      }
    }
    h.results.fleet_load = ms;
    const pgText = pg ? `${fmtMs(median(ms.pg))} (min ${fmtMs(Math.min(...ms.pg))})` : `n/a (${schema.skip})`;
    h.row(`${label}: request -> 200, median of ${reps}`,
      `SQLite ${fmtMs(median(ms.sqlite))} (min ${fmtMs(Math.min(...ms.sqlite))}) | PostgreSQL ${pgText}`);
  } catch (e) {
    h.row(label, `error: ${e.message}`);
  } finally {
    for (const s of servers) await h.stopProcess(s.proc);
  }
}

// ---- GET /api/models with 1 000 models, one server vs three nodes -----------

const wrkThreads = 3;
const wrkConns = 18;

// wrk with its threads spread over `ports` (bench/wrk_nodes.lua).
function wrkNodes(h, ports, urlPath, extra = []) {
  const r = spawnSync('wrk', [`-t${wrkThreads}`, `-c${wrkConns}`, `-d${h.wrkSeconds}s`, '--latency',
    '-s', path.join(here, 'wrk_nodes.lua'), `http://127.0.0.1:${ports[0]}${urlPath}`, ...extra], {
    encoding: 'utf8', timeout: (h.wrkSeconds + 60) * 1000,
    env: { ...process.env, MW_WRK_PORTS: ports.join(','), MW_WRK_REPORT: path.join(here, 'wrk_report.lua') },
  });
  if (r.error) throw new Error(`wrk: ${r.error.message}`);
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('MWBENCH '));
  if (!line) throw new Error(`wrk printed no summary: ${(r.stdout + r.stderr).slice(-300)}`);
  return JSON.parse(line.slice('MWBENCH '.length));
}

function fmtWrk(w) {
  const rps = w.requests / (w.duration_us / 1e6);
  const errs = w.errors_status + w.errors_connect + w.errors_read + w.errors_timeout;
  return `${rps.toFixed(0)} req/s, p50 ${fmtMs(w.p50_us / 1000)}, p99 ${fmtMs(w.p99_us / 1000)}${errs ? `, ${errs} errors` : ''}`;
}

async function benchList(h) {
  const label = 'GET /api/models with 1 000 models';
  const servers = [];
  try {
    const { dataDir } = await h.makeRegistry('fleet-list-sqlite', 1000, 0, 5);
    const sqlite = await h.startServer('fleet-list-sqlite', '', dataDir);
    servers.push(sqlite);
    const setups = [['SQLite, 1 server', [sqlite.port]]];
    const reg = await makePgRegistry(h, 'fleet-list-pg-a', { count: 1000, testingEvery: 0, attemptsPer: 5 });
    if (!reg.skip) {
      const nodes = [await h.startServer('fleet-list-pg-a', reg.toml, reg.dataDir)];
      servers.push(nodes[0]);
      for (const n of ['b', 'c']) {
        const s = await h.startServer(`fleet-list-pg-${n}`, reg.toml);
        servers.push(s);
        nodes.push(s);
      }
      setups.push(['PostgreSQL, 1 node', [nodes[0].port]], ['PostgreSQL, 3 nodes', nodes.map((s) => s.port)]);
    }
    for (const s of servers) await h.expectOk(s.port, 'GET', '/api/models', undefined, [200]);
    const out = {};
    for (const [endpoint, urlPath, extra] of [
      ['GET /api/models', '/api/models', []],
      ['GET /api/models/{name}', '/api/models/bench-model-000000', ['/api/models/bench-model-', '1000']],
    ]) {
      const parts = [];
      for (const [name, ports] of setups) {
        const w = wrkNodes(h, ports, urlPath, extra);
        out[`${endpoint} ${name}`] = w;
        parts.push(`${name}: ${fmtWrk(w)}`);
      }
      if (reg.skip) parts.push(`PostgreSQL: n/a (${reg.skip})`);
      h.row(`${endpoint}, 1 000 models, wrk -t${wrkThreads} -c${wrkConns} -d${h.wrkSeconds}s (threads over the nodes)`,
        parts.join(' | '));
    }
    h.results.fleet_list = out;
  } catch (e) {
    h.row(label, `error: ${e.message}`);
  } finally {
    for (const s of servers) await h.stopProcess(s.proc);
  }
}

// ---- any node answers: the added time to first token of one hop ------------

// One streamed chat request: ms from sending to the first body bytes, and
// the X-Modelwarden-Node of the answer.
function firstTokenMs(port, model) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify({ model, messages: [{ role: 'user', content: 'TOKENS=4' }], stream: true });
    const t0 = nowMs();
    let first = NaN;
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      res.on('data', (chunk) => {
        if (Number.isNaN(first) && chunk.toString().includes('data: {')) first = nowMs() - t0;
      });
      res.on('end', () => resolve({ status: res.statusCode, ms: first, node: res.headers['x-modelwarden-node'] }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

export async function benchRoute(h) {
  const label = 'any node answers: streamed /v1 time to first token, asked of node A (passes it to C) vs of C';
  const engine = h.bin('mw-openai-engine');
  if (!fs.existsSync(engine)) return h.row(label, 'n/a (mw-openai-engine not built)');
  const schema = pgSchema('fleet_route');
  if (schema.skip) return h.row(label, `n/a (${schema.skip})`);
  const servers = [];
  try {
    const toml = `allow_api_commands = true\nregistry = "${schema.url}"\nlease_s = 3\n`;
    const a = await h.startServer('fleet-route-a', toml);
    const c = await h.startServer('fleet-route-c', toml);
    servers.push(a, c);
    await h.expectOk(a.port, 'POST', '/api/models', {
      model_name: 'm', engine: 'command', load_config: { argv: [engine, '--port', '{port}'], health_path: '/health' },
    });
    await h.expectOk(c.port, 'POST', '/api/orchestrate/load', { model_name: 'm' }, [200]);
    const cId = fs.readFileSync(path.join(h.tmpRoot, 'fleet-route-c', 'data', 'node_id'), 'utf8').trim();
    for (let i = 0; i < 100; ++i) {  // C's heartbeat tells A that it has the model
      const r = await h.expectOk(a.port, 'GET', '/api/nodes', undefined, [200]);
      if (JSON.parse(r.text).nodes.some((n) => n.node_id === cId && n.loaded_models.includes('m'))) break;
      await sleep(100);
    }
    const reps = h.quick ? 20 : 100;
    const ms = { direct: [], routed: [] };
    let wrongNode = 0;
    for (let i = 0; i <= reps; ++i) {  // taking turns; repetition 0 warms up
      for (const [key, port] of i % 2 ? [['routed', a.port], ['direct', c.port]] : [['direct', c.port], ['routed', a.port]]) {
        const r = await firstTokenMs(port, 'm');
        if (r.status !== 200 || r.node !== cId) ++wrongNode;
        if (i > 0) ms[key].push(r.ms);
      }
    }
    h.results.fleet_route = { ...ms, wrong_node: wrongNode };
    const d = median(ms.direct);
    const r = median(ms.routed);
    h.row(`${label}, one request at a time, median of ${reps}`,
      `via A ${fmtMs(r)} | C directly ${fmtMs(d)} | added ${(r - d).toFixed(2)} ms` +
        (wrongNode ? ` (${wrongNode} answers not served by C)` : ''),
      '-', '-', '<= 2 ms added', r - d <= 2 ? 'met' : 'missed');
  } catch (e) {
    h.row(label, `error: ${e.message}`);
  } finally {
    for (const s of servers) await h.stopProcess(s.proc);
  }
}

export async function benchFleet(h) {
  benchRegistryCalls(h);
  await benchLoadRequest(h);
  await benchList(h);
  await benchRoute(h);
}
