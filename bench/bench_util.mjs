// Small helpers shared by the node benchmarks.
import net from 'node:net';

// --key value / --flag arguments into an object.
export function parseArgs(argv) {
  const opts = {};
  for (let i = 2; i < argv.length; ++i) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2);
    opts[key] = i + 1 < argv.length && !argv[i + 1].startsWith('--') ? argv[++i] : true;
  }
  return opts;
}

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;  // monotonic
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// A port free now on 127.0.0.1.
export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
