// Debian's Chromium driven by playwright-core (no browser download).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const screenshotDir = path.resolve(here, '..', 'screenshots');

// The flags keep Chromium off the network (this machine's network is
// closed, and a test must not depend on it). Playwright gives every launch a
// fresh, empty user-data-dir of its own and removes it on close.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// extraArgs: more Chromium flags (the attack tests map a hostile name to
// 127.0.0.1 with --host-resolver-rules, as DNS rebinding would).
export function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.MW_CHROMIUM || '/usr/bin/chromium',
    args: [...ARGS, ...extraArgs],
    headless: true,
  });
}

// Opens the page in a fresh context. Records page errors, native dialogs
// (the page never uses them, so any is a failure, e.g. an injected alert)
// and the API requests it sends.
export async function openPage(browser, url, options = {}) {
  const context = await browser.newContext({
    viewport: options.viewport || { width: 1280, height: 900 },
    colorScheme: options.colorScheme || 'light',
  });
  const page = await context.newPage();
  const record = { errors: [], dialogs: [], requests: [] };
  page.on('pageerror', (e) => record.errors.push(e.message));
  page.on('dialog', (d) => { record.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/') && r.method() !== 'GET') {
      record.requests.push({ method: r.method(), path: u.pathname, body: r.postData() });
    }
  });
  await page.goto(url);
  await page.locator('#models').waitFor({ state: 'attached' });
  return { context, page, record };
}

export function requestsTo(record, pathName) {
  return record.requests.filter((r) => r.path === pathName);
}

export async function screenshot(page, name, fullPage = true) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, name), fullPage });
}

export const card = (page, name) => page.locator(`.card[data-model="${name}"]`);
