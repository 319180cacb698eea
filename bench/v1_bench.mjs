#!/usr/bin/env node
// /v1 side by side (issue 10, Performance): the same engine asked directly
// and through modelwarden's /v1 (gate + reverse proxy), interleaved, one
// request at a time, then 4 concurrent streams. Prints figures, never
// asserts them, exit code 0.
//
//   node bench/v1_bench.mjs --build-dir DIR [--runs N] [--llama-server PATH --model GGUF]
//
// Engine: llama.cpp's llama-server (`--llama-server`, with `--model`, a GGUF;
// `scripts/build-llama-server` builds one) run as a `command` model with
// {port}, so both columns use the same llama.cpp build and settings; without
// it, mw-openai-engine (tests/fixtures), which isolates what the proxy costs.
// Timings: process.hrtime (monotonic); TTFT = request sent -> first content byte.
import { spawn } from 'node:child_process';
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
const runs = Number(opts.runs ?? 20);
const llamaServer = typeof opts['llama-server'] === 'string' ? opts['llama-server'] : '';
const modelFile = typeof opts.model === 'string' ? path.resolve(opts.model) : '';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-v1-bench-'));
const children = [];
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };

function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
}

// One streamed request: TTFT (sent -> first event with content), and decode
// tokens/s from the first to the last content event (one token per event).
function post(port, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const t0 = nowMs();
    let first = NaN;
    let last = NaN;
    let pieces = 0;
    let error = '';
    let buffer = '';
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        const now = nowMs() - t0;
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
          let j;
          try { j = JSON.parse(event.slice(6)); } catch { continue; }
          if (j.error) { error = j.error.message || 'error'; continue; }
          const c = j.choices && j.choices[0];
          const text = c && ((c.delta && c.delta.content) || c.text);
          if (!text) continue;
          if (Number.isNaN(first)) first = now;
          last = now;
          ++pieces;
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, ttft: first, total: nowMs() - t0, pieces,
        tps: pieces > 1 ? (pieces - 1) / ((last - first) / 1000) : NaN, error, text: buffer }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function waitHttp(port, urlPath, timeoutMs = 120000) {
  const t0 = nowMs();
  while (nowMs() - t0 < timeoutMs) {
    const ok = await new Promise((resolve) => {
      const r = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      r.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing answered 200 on :${port}${urlPath}`);
}

function start(cmd, args, logName) {
  const log = fs.openSync(path.join(tmp, logName), 'w');
  const p = spawn(cmd, args, { stdio: ['ignore', log, log] });
  children.push(p);
  return p;
}

function engineArgv(portArg, parallel) {
  if (llamaServer) {
    return [llamaServer, '-m', modelFile, '--port', portArg, '--host', '127.0.0.1', '-np', String(parallel),
      '-c', String(2048 * parallel), '--no-webui'];
  }
  return [path.join(buildDir, 'bin', 'mw-openai-engine'), '--port', portArg];
}

// Tokens the request generates, and the prompt that asks for them.
const N_TOKENS = 64;
function chatBody(model) {
  // The fixture paces its tokens like a small model on a CPU (5 ms each).
  const content = llamaServer ? "Write a long story about a lighthouse." : `TOKENS=${N_TOKENS} DELAY_MS=5`;
  return { model, messages: [{ role: 'user', content }], max_tokens: N_TOKENS, stream: true, temperature: 0, seed: 1,
    ignore_eos: true };
}

async function main() {
  if (llamaServer && !modelFile) throw new Error('--llama-server needs --model GGUF');
  const rows = [];
  for (const parallel of [1, 4]) {
    // The engine, directly.
    const directPort = await freePort();
    const [dcmd, ...dargs] = engineArgv(String(directPort), parallel);
    start(dcmd, dargs, `direct-${parallel}.log`);
    await waitHttp(directPort, '/health');
    // modelwarden with the same engine as a command model.
    const mwPort = await freePort();
    const dataDir = path.join(tmp, `data-${parallel}`);
    fs.mkdirSync(dataDir, { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'config.toml'), `keep_alive = "-1"\nmax_queue = 64\n`);
    start(path.join(buildDir, 'bin', 'modelwarden'), ['serve', '--port', String(mwPort), '--data-dir', dataDir,
      '--config', path.join(dataDir, 'config.toml')], `modelwarden-${parallel}.log`);
    await waitHttp(mwPort, '/api/status');
    const reg = await new Promise((resolve, reject) => {
      const body = JSON.stringify({ model_name: 'm', engine: 'command',
        load_config: { argv: engineArgv('{port}', parallel), health_path: '/health', n_parallel: parallel, load_timeout_s: 600 } });
      const r = http.request({ host: '127.0.0.1', port: mwPort, path: '/api/models', method: 'POST', agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => { res.resume(); resolve(res.statusCode); });
      r.on('error', reject);
      r.end(body);
    });
    if (reg !== 201) throw new Error(`register answered ${reg}`);
    const tLoad = nowMs();
    const warm = await post(mwPort, '/v1/chat/completions', chatBody('m'));
    const firstMs = nowMs() - tLoad;
    if (warm.status !== 200) throw new Error(`modelwarden /v1 answered ${warm.status}: ${warm.text.slice(0, 300)}`);
    await post(directPort, '/v1/chat/completions', chatBody('m'));
    if (parallel === 1) {
      const ttft = { direct: [], mw: [] };
      const errors = { direct: 0, mw: 0 };
      const tps = { direct: [], mw: [] };
      for (let i = 0; i < runs; ++i) {
        for (const [key, port] of (i % 2 ? [['mw', mwPort], ['direct', directPort]] : [['direct', directPort], ['mw', mwPort]])) {
          const r = await post(port, '/v1/chat/completions', chatBody('m'));
          if (r.error) errors[key] += 1;
          ttft[key].push(r.ttft);
          tps[key].push(r.tps);
        }
      }
      const d = median(ttft.direct), m = median(ttft.mw);
      rows.push(['time to first token (median)', `${d.toFixed(2)} ms`, `${m.toFixed(2)} ms`, `+${(m - d).toFixed(2)} ms`, '<= direct + 5 ms']);
      const dt = median(tps.direct), mt = median(tps.mw);
      rows.push(['single-stream decode tokens/s (median)', dt.toFixed(0), mt.toFixed(0), `${(mt / dt).toFixed(3)}x`, '>= 0.97x']);
      rows.push(['first /v1 request (on-demand load + answer)', '', `${firstMs.toFixed(0)} ms`, '', '']);
      rows.push(['streams that ended with an engine error', String(errors.direct), String(errors.mw), '', '0']);
    } else {
      const agg = { direct: [], mw: [] };
      for (let i = 0; i < Math.max(3, Math.floor(runs / 4)); ++i) {
        for (const [key, port] of (i % 2 ? [['mw', mwPort], ['direct', directPort]] : [['direct', directPort], ['mw', mwPort]])) {
          const t0 = nowMs();
          const rs = await Promise.all([0, 1, 2, 3].map(() => post(port, '/v1/chat/completions', chatBody('m'))));
          if (rs.some((r) => r.status !== 200)) throw new Error(`${key}: a concurrent request failed`);
          agg[key].push(rs.reduce((n, r) => n + r.pieces, 0) / ((nowMs() - t0) / 1000));
        }
      }
      const d = median(agg.direct), m = median(agg.mw);
      rows.push(['4 concurrent streams, n_parallel 4: aggregate tokens/s', d.toFixed(0), m.toFixed(0), `${(m / d).toFixed(3)}x`, '>= 0.95x']);
    }
    for (const c of children.splice(0)) c.kill('SIGTERM');
    await sleep(500);
  }
  const engine = llamaServer ? `llama-server ${path.basename(modelFile)}` : 'mw-openai-engine (fixture: proxy cost only)';
  console.log(`\n/v1 side by side — engine: ${engine}; ${runs} interleaved runs; ${os.cpus().length} CPU(s), load avg ${os.loadavg()[0].toFixed(2)}`);
  const head = ['benchmark', 'direct', 'modelwarden /v1', 'ratio', 'goal'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  for (const r of all) console.log(r.map((c, i) => String(c).padEnd(w[i])).join('  '));
}

main().catch((e) => console.log(`/v1 side by side: n/a (${e.message})`)).finally(() => {
  for (const c of children) c.kill('SIGTERM');
  if (!opts['keep-tmp']) setTimeout(() => fs.rmSync(tmp, { recursive: true, force: true }), 300);
});
