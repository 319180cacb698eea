// A Hugging Face–compatible hub of the test suite's own (SPEC §17): no
// internet, node built-ins only, starts in well under a second.
//
//   node fake_hub.mjs CONFIG.json
// CONFIG: {"repos": {"org/name": {"commit": "...", "gated": false, "token": "",
//                                 "files": {"path/in/repo.gguf": "/abs/path/on/disk"}}}}
// Prints "hub PORT cdn PORT" on stdout once both listen, then serves:
//   GET  /api/models/ORG/NAME/tree/main[?recursive=true]  the file list (size, lfs.oid = sha256)
//   HEAD|GET /ORG/NAME/resolve/main/FILE   302 to the CDN host, with X-Repo-Commit,
//                                          X-Linked-Etag, X-Linked-Size (like the real hub)
//   GET  (cdn) /blob/ORG/NAME/FILE         the bytes, Content-Length, Range -> 206
//   POST /_control/faults   {"FILE": {"drop": N, "status429": N, "status500": true|N,
//                            "corrupt": true, "slow_ms": MS, "chunk": BYTES}}  (replaces all)
//   GET  /_control/stats    {"cdn_gets": {"FILE": n}, "resolve_gets": {"FILE": n}}
// Faults: drop: the CDN sends half the body and destroys the socket (N
// times); status429: the resolve answers 429 Retry-After: 1 (N times);
// status500: 500 (true: always); corrupt: one byte of the body flipped;
// slow_ms: the body in `chunk` bytes (default 64 KiB) every slow_ms.
// Gated repositories answer 401 unless "Authorization: Bearer TOKEN".
import { createHash } from 'node:crypto';
import { readFileSync, statSync, createReadStream } from 'node:fs';
import http from 'node:http';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let faults = {};
const stats = { cdn_gets: {}, resolve_gets: {} };
const shaCache = new Map();

function sha256Of(path) {
  if (!shaCache.has(path)) shaCache.set(path, createHash('sha256').update(readFileSync(path)).digest('hex'));
  return shaCache.get(path);
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function authorized(repo, req) {
  return !repo.gated || req.headers.authorization === `Bearer ${repo.token}`;
}

let cdnPort = 0;

const hub = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  let m;
  if (url.pathname === '/_control/faults' && req.method === 'POST') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      faults = JSON.parse(body || '{}');
      json(res, 200, { ok: true });
    });
    return;
  }
  if (url.pathname === '/_control/stats') return json(res, 200, stats);
  if ((m = url.pathname.match(/^\/api\/models\/([^/]+)\/([^/]+)\/tree\/main\/?$/))) {
    const name = `${m[1]}/${m[2]}`;
    const repo = config.repos[name];
    if (!repo) return json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (!authorized(repo, req)) return json(res, 401, { error: 'Access to this repository is restricted' });
    const list = Object.entries(repo.files).map(([path, disk]) => {
      const size = statSync(disk).size;
      return { type: 'file', oid: '0'.repeat(40), path, size, lfs: { oid: sha256Of(disk), size, pointerSize: 134 } };
    });
    return json(res, 200, list, { 'X-Repo-Commit': repo.commit });
  }
  if ((m = url.pathname.match(/^\/([^/]+)\/([^/]+)\/resolve\/main\/(.+)$/))) {
    const name = `${m[1]}/${m[2]}`;
    const file = decodeURIComponent(m[3]);
    const repo = config.repos[name];
    if (!repo) return json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (!authorized(repo, req)) return json(res, 401, { error: 'Access to this repository is restricted' });
    const disk = repo.files[file];
    if (!disk) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
    if (req.method === 'GET') stats.resolve_gets[file] = (stats.resolve_gets[file] || 0) + 1;
    const f = faults[file] || {};
    if (f.status500 === true || f.status500 > 0) {
      if (f.status500 !== true) f.status500--;
      return json(res, 500, { error: 'Internal Error' });
    }
    if (f.status429 > 0) {
      f.status429--;
      return json(res, 429, { error: 'Too Many Requests' }, { 'Retry-After': '1' });
    }
    const size = statSync(disk).size;
    res.writeHead(302, {
      Location: `http://127.0.0.1:${cdnPort}/blob/${name}/${encodeURIComponent(file)}`,
      'X-Repo-Commit': repo.commit,
      'X-Linked-Etag': `"${sha256Of(disk)}"`,
      'X-Linked-Size': String(size),
      ETag: '"0000"',
      'Content-Length': '0',
    });
    return res.end();
  }
  json(res, 404, { error: 'not found' });
});

const cdn = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const m = url.pathname.match(/^\/blob\/([^/]+)\/([^/]+)\/(.+)$/);
  const repo = m && config.repos[`${m[1]}/${m[2]}`];
  const file = m && decodeURIComponent(m[3]);
  const disk = repo && repo.files[file];
  if (!disk) return json(res, 404, { error: 'no such blob' });
  if (req.headers.authorization) return json(res, 400, { error: 'the CDN must not get the token' });
  stats.cdn_gets[file] = (stats.cdn_gets[file] || 0) + 1;
  const size = statSync(disk).size;
  let start = 0;
  const range = req.headers.range && req.headers.range.match(/^bytes=(\d+)-$/);
  if (range) start = Number(range[1]);
  if (start >= size && size > 0) {
    res.writeHead(416, { 'Content-Range': `bytes */${size}` });
    return res.end();
  }
  const f = faults[file] || {};
  const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size - start) };
  if (range) headers['Content-Range'] = `bytes ${start}-${size - 1}/${size}`;
  res.writeHead(range ? 206 : 200, headers);
  if (!f.corrupt && !(f.drop > 0) && !(f.slow_ms > 0)) {
    if (size > start) return createReadStream(disk, { start, highWaterMark: 1 << 20 }).pipe(res);
    return res.end();
  }
  let body = readFileSync(disk).subarray(start);
  if (f.corrupt) {
    body = Buffer.from(body);
    body[body.length >> 1] ^= 0xff;
  }
  if (f.drop > 0) {
    f.drop--;
    res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket.destroy(), 50));
    return;
  }
  if (f.slow_ms > 0) {
    const chunk = f.chunk || 65536;
    let at = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (at >= body.length) return res.end();
      res.write(body.subarray(at, at + chunk));
      at += chunk;
      setTimeout(tick, f.slow_ms);
    };
    return tick();
  }
  res.end(body);
});

hub.listen(0, '127.0.0.1', () => {
  cdn.listen(0, '127.0.0.1', () => {
    cdnPort = cdn.address().port;
    process.stdout.write(`hub ${hub.address().port} cdn ${cdnPort}\n`);
  });
});
process.on('SIGTERM', () => process.exit(0));
