#!/usr/bin/env node
// Fit before load (issue 12, Performance): the memory estimate's error per
// make-test-model shape (estimate vs the worker's memory_used, llama.cpp's own
// buffer sizes), and the time from request to the 507 refusal of a load that
// cannot fit (no process started). Prints figures, never asserts them, exit 0.
//
//   node bench/fit_bench.mjs --build-dir DIR [--runs N]
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, median, nowMs, parseArgs, sleep } from './bench_util.mjs';

const opts = parseArgs(process.argv);
const buildDir = path.resolve(opts['build-dir'] ?? 'build');
const runs = Number(opts.runs ?? 50);
const bin = (name) => path.join(buildDir, 'bin', name);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-fit-bench-'));

// One HTTP call; the status and the parsed JSON body (null if none).
function call(port, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? '' : JSON.stringify(body);
    const headers = data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {};
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => { let json = null; try { json = JSON.parse(text); } catch { /* not JSON */ } resolve({ status: res.statusCode, json }); });
    });
    req.on('error', reject);
    req.end(data);
  });
}

// Shapes of make-test-model and the load_config each is loaded with.
const shapes = [
  { name: 'tiny-f16', args: [], config: { n_ctx: 512 } },
  { name: 'wide-f16', args: ['--layers', '4', '--embd', '512'], config: { n_ctx: 2048 } },
  { name: 'deep-q8', args: ['--layers', '32', '--embd', '256', '--ctx', '8192'],
    config: { n_ctx: 8192, cache_type_k: 'q8_0', cache_type_v: 'q8_0', flash_attn: 'on' } },
  { name: 'long-q4', args: ['--layers', '8', '--embd', '256', '--ctx', '32768'],
    config: { n_ctx: 32768, cache_type_k: 'q4_0', cache_type_v: 'q4_0', flash_attn: 'on' } },
  { name: 'noflash-f16', args: ['--layers', '4', '--embd', '128'], config: { n_ctx: 2048, flash_attn: 'off' } },
  { name: 'noflash-long', args: ['--layers', '2', '--embd', '128', '--ctx', '8192'], config: { n_ctx: 8192, flash_attn: 'off' } },
];

let server = null;
async function main() {
  const models = path.join(tmp, 'data', 'models');
  fs.mkdirSync(models, { recursive: true });
  const make = (file, args) => execFileSync(bin('modelwarden'), ['make-test-model', path.join(models, file), ...args], { stdio: 'ignore' });
  for (const s of shapes) make(`${s.name}.gguf`, s.args);
  make('deep128.gguf', ['--layers', '128']);
  const port = await freePort();
  server = spawn(bin('modelwarden'), ['serve', '--port', String(port), '--data-dir', path.join(tmp, 'data')],
    { stdio: ['ignore', 'ignore', fs.openSync(path.join(tmp, 'server.log'), 'w')] });
  for (let i = 0; i < 200; ++i) {
    try { if ((await call(port, 'GET', '/api/status')).status === 200) break; } catch { /* not yet */ }
    await sleep(50);
  }
  console.log('estimate vs memory_used (llama.cpp buffer sizes), per shape:');
  console.log('shape         estimate MiB  memory_used MiB  error');
  for (const s of shapes) {
    await call(port, 'POST', '/api/models', { model_name: s.name, file_path: `${s.name}.gguf`, load_config: s.config });
    const load = await call(port, 'POST', '/api/orchestrate/load', { model_name: s.name });
    const fit = (await call(port, 'GET', `/api/models/${s.name}`)).json?.fit;
    if (load.status !== 200 || !fit || typeof fit.memory_used !== 'number') {
      console.log(`${s.name.padEnd(13)} n/a (load ${load.status})`);
    } else {
      const mib = (b) => (b / 1048576).toFixed(1);
      const err = (100 * (fit.estimate_bytes - fit.memory_used)) / fit.memory_used;
      console.log(`${s.name.padEnd(13)} ${mib(fit.estimate_bytes).padStart(12)}  ${mib(fit.memory_used).padStart(15)}  ${err >= 0 ? '+' : ''}${err.toFixed(1)} %`);
    }
    await call(port, 'POST', '/api/orchestrate/unload', { model_name: s.name });
  }
  // The refusal: a 512 GiB KV cache, answered 507 before any process starts.
  await call(port, 'POST', '/api/models', { model_name: 'deep128', file_path: 'deep128.gguf', load_config: { n_ctx: 16777216 } });
  await call(port, 'POST', '/api/orchestrate/load', { model_name: 'deep128' });  // warms the shape cache
  const times = [];
  let other = 0;
  for (let i = 0; i < runs; ++i) {
    const t0 = nowMs();
    const r = await call(port, 'POST', '/api/orchestrate/load', { model_name: 'deep128' });
    times.push(nowMs() - t0);
    if (r.status !== 507) ++other;
  }
  const attempts = (await call(port, 'GET', '/api/models/deep128')).json?.attempts?.length ?? NaN;
  console.log(`request -> 507 insufficient_memory: median ${median(times).toFixed(2)} ms, min ${Math.min(...times).toFixed(2)} ms,` +
    ` max ${Math.max(...times).toFixed(2)} ms over ${runs} (goal < 5 ms); answers other than 507: ${other}; attempt rows: ${attempts}`);
}

main().catch((e) => console.log(`[fit_bench] could not run: ${e.message}`)).finally(() => {
  if (server) server.kill('SIGTERM');
  setTimeout(() => fs.rmSync(tmp, { recursive: true, force: true }), 500);
});
