// Starts the real `modelwarden serve` on a free port with a temporary data
// directory, and talks to it over HTTP. Nothing here is mocked.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const fixturesDir = path.resolve(here, '..', 'fixtures');
export const sourceDir = path.resolve(here, '..', '..', '..');

export function binDir() {
  const dir = process.env.MW_BIN_DIR || path.join(sourceDir, 'build', 'bin');
  const exe = path.join(dir, 'modelwarden');
  if (!fs.existsSync(exe)) {
    throw new Error(`${exe} not found: build first (make build) or set MW_BIN_DIR`);
  }
  return dir;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The shared fixture binary (tests/fixtures, mw-fake-engine) when it is
// built, else null: the shell scripts in fixtures/ stand in for it then, and
// always with MW_WEB_OWN_FIXTURES=1.
function fakeEngine() {
  const fake = path.join(binDir(), 'mw-fake-engine');
  return fs.existsSync(fake) && process.env.MW_WEB_OWN_FIXTURES !== '1' ? fake : null;
}

// A `command` engine load_config whose process prints a CUDA failure and
// dies of SIGABRT.
export function crashingConfig() {
  const fake = fakeEngine();
  if (fake) {
    return {
      argv: [fake, '--print', 'ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected',
        '--print', '<img src=x onerror="window.__xssLog=1"> <b>markup in a log line</b>', '--then', 'abort'],
    };
  }
  return { argv: [path.join(fixturesDir, 'crash.sh'), '{model_name}'] };
}

// A `command` engine load_config that becomes ready after `seconds`.
export function slowReadyConfig(seconds) {
  const fake = fakeEngine();
  if (fake) {
    return {
      argv: [fake, '--print', 'loading weights', '--sleep-ms', String(seconds * 1000),
        '--ready-line', 'server is ready', '--then', 'ready'],
      ready_pattern: 'server is ready',
    };
  }
  return {
    argv: [path.join(fixturesDir, 'slow-ready.sh'), String(seconds)],
    ready_pattern: 'server is ready',
  };
}

// A `command` engine load_config that is ready at once and answers no HTTP on
// its {port}: once loaded, the health watch (SPEC §19) judges it hung.
export function silentConfig() {
  const fake = fakeEngine();
  if (fake) return { argv: [fake, '--print', 'port {port}', '--then', 'ready'], ready_pattern: 'ready' };
  return { argv: [path.join(fixturesDir, 'slow-ready.sh'), '0', '{port}'], ready_pattern: 'server is ready' };
}

// A `command` engine load_config whose process starts and then never becomes
// ready (so the load runs until it is cancelled or load_timeout_s passes).
export function hangingConfig(loadTimeoutS = 600) {
  const fake = fakeEngine();
  if (fake) {
    return {
      argv: [fake, '--print', 'loading weights', '--then', 'hang'],
      ready_pattern: 'never printed', load_timeout_s: loadTimeoutS,
    };
  }
  return { argv: [path.join(fixturesDir, 'hang.sh')], ready_pattern: 'never printed', load_timeout_s: loadTimeoutS };
}

export class Server {
  // options.apiKey: start the server with that api_key (in a configuration
  // file, as a user would); api() and ok() then send it.
  constructor(options = {}) {
    this.output = '';
    this.proc = null;
    this.apiKey = options.apiKey || '';
    this.extraConfig = options.extraConfig || '';  // more [server] keys (TOML lines)
    this.registry = options.registry || '';  // a postgresql:// URL (SPEC §14); default the SQLite file
  }

  authHeaders() {
    return this.apiKey ? { Authorization: `Bearer ${this.apiKey}` } : {};
  }

  async start() {
    const bin = binDir();
    this.bin = bin;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-web-'));
    this.modelsDir = path.join(this.dataDir, 'models');
    fs.mkdirSync(this.modelsDir, { recursive: true });
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    // The engine configs above are argv lists sent through the API, which
    // the server runs only with allow_api_commands (SPEC §9.1); the preset
    // is what the register form offers.
    const configFile = path.join(this.dataDir, 'config.toml');
    let config = '[server]\nallow_api_commands = true\n';
    if (this.apiKey) config += `api_key = ${JSON.stringify(this.apiKey)}\n`;
    config += this.extraConfig;
    if (this.registry) config += `registry = ${JSON.stringify(this.registry)}\n`;
    const fake = fakeEngine();
    const presetArgv = fake ? [fake, '--then', 'ready'] : [path.join(fixturesDir, 'slow-ready.sh'), '0'];
    config += `[engines.fake-ready]\nargv = ${JSON.stringify(presetArgv)}\nready_pattern = "ready"\n`;
    fs.writeFileSync(configFile, config);
    const args = ['serve', '--port', String(this.port), '--data-dir', this.dataDir, '--config', configFile];
    // The key comes from the file only: one in the environment would override it.
    const env = { ...process.env };
    delete env.MODELWARDEN_API_KEY;
    this.proc = spawn(path.join(bin, 'modelwarden'), args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-65536);
    };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));

    const deadline = Date.now() + 30000;
    let lastError = null;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`modelwarden serve exited early:\n${this.output}`);
      }
      try {
        const res = await fetch(`${this.url}/api/status`, { headers: this.authHeaders() });
        if (res.ok) return this;
        lastError = new Error(`GET /api/status answered ${res.status}`);
      } catch (e) {
        lastError = e;
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`modelwarden serve did not answer in 30 s (${lastError && lastError.message}):\n${this.output}`);
  }

  // Writes a small real GGUF model into the `primary` location; returns its
  // file name relative to that location.
  makeTestModel(fileName = 'tiny.gguf') {
    const out = path.join(this.modelsDir, fileName);
    if (!fs.existsSync(out)) {
      execFileSync(path.join(this.bin, 'modelwarden'), ['make-test-model', out],
        { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120000 });
    }
    return fileName;
  }

  // JSON request; resolves {status, body}. Never throws on 4xx/5xx.
  async api(method, urlPath, body) {
    const init = { method, headers: this.authHeaders() };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(this.url + urlPath, init);
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    return { status: res.status, body: json, text };
  }

  // Same as api(), but fails with the server's answer unless it is 2xx.
  async ok(method, urlPath, body) {
    const res = await this.api(method, urlPath, body);
    if (res.status < 200 || res.status > 299) {
      throw new Error(`${method} ${urlPath} -> ${res.status} ${res.text}`);
    }
    return res.body;
  }

  model(name) {
    return this.ok('GET', `/api/models/${encodeURIComponent(name)}`);
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.dataDir && process.env.MW_KEEP_TMP !== '1') {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

export async function startServer(options = {}) {
  return new Server(options).start();
}
