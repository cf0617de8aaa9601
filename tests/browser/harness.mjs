// Shared by the browser tests: a static file server over the repository (loopback only) and a
// headless Debian Chromium with WebGPU through SwiftShader, driven by playwright-core.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = normalize(join(fileURLToPath(import.meta.url), '../../..'));

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.png': 'image/png', '.yaml': 'text/plain', '.css': 'text/css',
};

/** Serves ROOT on 127.0.0.1 at a free port; resolves to { url, close }. */
export function serve() {
  const server = createServer(async (req, res) => {
    const path = normalize(join(ROOT, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    if (!path.startsWith(ROOT)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(r)),
  })));
}

/** Launches Debian's Chromium headless with WebGPU enabled (never a downloaded browser). */
export function launch({ webgpu = true } = {}) {
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args, headless: true });
}

/**
 * Serves ROOT, launches Chromium and opens `tests/browser/<html>` with its console forwarded,
 * waiting until the page sets `window.ready`; resolves to { page, close }.
 */
export async function openTestPage(html) {
  const server = await serve();
  const browser = await launch();
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
  await page.goto(`${server.url}/tests/browser/${html}`);
  await page.waitForFunction(() => window.ready === true);
  return { page, close: async () => { await browser.close(); await server.close(); } };
}
