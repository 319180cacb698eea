#!/usr/bin/env node
// Pull throughput (issue 24, Performance): `modelwarden pull`'s download
// (libcurl, sha256 computed while the bytes arrive, into the Hugging Face
// cache) vs `curl -L -o FILE` of the same URL, both from the suite's local hub
// (tests/hub/fake_hub.mjs: a 302 to a second host serving the bytes). Time
// from POST /api/models/pull to the pull's finished_at (the tree listing, the
// sha256 check, the rename and the registration included) vs curl's whole run. Interleaved
// runs, medians. Prints figures, never asserts them, exit 0.
//
//   node bench/pull_bench.mjs --build-dir DIR [--runs N] [--mib SIZE]
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, median, nowMs, parseArgs, sleep } from './bench_util.mjs';

const opts = parseArgs(process.argv);
const buildDir = path.resolve(opts['build-dir'] ?? 'build');
const runs = Number(opts.runs ?? 5);
const mib = Number(opts.mib ?? 512);
const here = path.dirname(new URL(import.meta.url).pathname);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-pull-bench-'));

async function main() {
  // The file: 1 MiB of random bytes repeated (what is hashed and written is the same work).
  const file = path.join(tmp, 'big.gguf');
  const chunk = crypto.randomBytes(1 << 20);
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < mib; ++i) fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  const config = path.join(tmp, 'hub.json');
  fs.writeFileSync(config, JSON.stringify({ repos: { 'bench/big': { commit: 'b'.repeat(40), files: { 'big.gguf': file } } } }));
  const hub = spawn(process.execPath, [path.join(here, '..', 'tests', 'hub', 'fake_hub.mjs'), config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const hubUrl = await new Promise((resolve) => hub.stdout.once('data', (c) => resolve(`http://127.0.0.1:${c.toString().split(' ')[1]}`)));

  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir);
  fs.writeFileSync(path.join(tmp, 'config.toml'), `hf_endpoint = ${JSON.stringify(hubUrl)}\n`);
  const port = await freePort();
  const server = spawn(path.join(buildDir, 'bin', 'modelwarden'),
    ['serve', '--port', String(port), '--data-dir', dataDir, '--config', path.join(tmp, 'config.toml')], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 900; ++i) {
    try { if ((await fetch(`${base}/api/status`)).ok) break; } catch { /* not yet */ }
    await sleep(100);
  }
  const cache = path.join(dataDir, 'models', 'models--bench--big');
  const curlOut = path.join(tmp, 'curl.out');
  const curlS = [];
  const pullS = [];
  for (let r = 0; r < runs; ++r) {
    const t = nowMs();
    execFileSync('curl', ['-sSL', '-o', curlOut, `${hubUrl}/bench/big/resolve/main/big.gguf`]);
    curlS.push((nowMs() - t) / 1000);
    fs.rmSync(curlOut, { force: true });

    fs.rmSync(cache, { recursive: true, force: true });
    // From just before the POST (the tree listing included) to the server's
    // finished_at (same wall clock): the polling below does not add to it.
    const t0 = Date.now();
    const started = await (await fetch(`${base}/api/models/pull`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ hf_path: 'bench/big', model_name: `big-${r}` }),
    })).json();
    const id = started.pull.id;
    for (;;) {
      const { pulls } = await (await fetch(`${base}/api/pulls`)).json();
      const p = pulls.find((x) => x.id === id);
      if (p.state === 'done') {
        pullS.push((Date.parse(p.finished_at) - t0) / 1000);
        break;
      }
      if (p.state === 'failed' || p.state === 'cancelled') throw new Error(`pull ${p.state}: ${p.error}`);
      await sleep(50);
    }
  }
  server.kill('SIGTERM');
  hub.kill('SIGTERM');
  const c = median(curlS);
  const p = median(pullS);
  const rate = (s) => `${(mib / s).toFixed(0)} MiB/s`;
  console.log(`pull throughput, ${mib} MiB from the local hub (302 to a second host), median of ${runs}:`);
  console.log(`  curl -L -o FILE            ${c.toFixed(3)} s  ${rate(c)}`);
  console.log(`  modelwarden pull (sha256)  ${p.toFixed(3)} s  ${rate(p)}   ratio ${(c / p).toFixed(2)}x of curl's throughput (goal >= 0.9x)`);
  console.log(`  runs: curl ${curlS.map((x) => x.toFixed(3)).join(' ')} | pull ${pullS.map((x) => x.toFixed(3)).join(' ')}`);
}

main().catch((e) => console.log(`pull throughput: could not run: ${e.message}`))
  .finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
