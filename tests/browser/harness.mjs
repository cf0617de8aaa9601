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

/**
 * Serves `root` (default: the repository) on 127.0.0.1 at a free port; resolves to { url, requests, close }, where `requests`
 * lists the path of every request received, in order. Files are sent with a Content-Length, except
 * with the query `?chunked` (no length); `?truncate=N` announces the full length, sends N bytes
 * and drops the connection; `?stall` sends the first KiB and then nothing (a download that hangs).
 */
export function serve(root = ROOT) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const u = new URL(req.url, 'http://x');
    requests.push(u.pathname);
    const path = normalize(join(root, decodeURIComponent(u.pathname)));
    if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
    let body;
    try {
      body = await readFile(path);
    } catch {
      res.writeHead(404).end();
      return;
    }
    const headers = { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' };
    if (!u.searchParams.has('chunked')) headers['content-length'] = body.length;
    if (u.searchParams.has('stall')) {
      res.writeHead(200, headers);
      res.write(body.subarray(0, 1024));
      return;
    }
    const truncate = u.searchParams.get('truncate');
    if (truncate === null) { res.writeHead(200, headers).end(body); return; }
    res.writeHead(200, headers);
    res.write(body.subarray(0, Number(truncate)), () => setTimeout(() => res.destroy(), 50));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
  })));
}

/**
 * Launches Debian's Chromium headless (never a downloaded browser) with WebGPU enabled, or
 * without it (`webgpu: false`); `camera: true` gives it Chromium's fake camera (a test pattern),
 * allowed without asking.
 */
export function launch({ webgpu = true, camera = false } = {}) {
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader');
  if (camera) args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args, headless: true });
}

/**
 * Serves ROOT, launches Chromium and opens `tests/browser/<html>` with its console forwarded,
 * waiting until the page sets `window.ready`; resolves to { page, close, url, requests } (the
 * server's base URL and the paths it has been asked for). `webgpu: false` launches Chromium
 * without WebGPU.
 */
export async function openTestPage(html, { webgpu = true } = {}) {
  const server = await serve();
  const browser = await launch({ webgpu });
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
  await page.goto(`${server.url}/tests/browser/${html}`);
  await page.waitForFunction(() => window.ready === true);
  return { page, url: server.url, requests: server.requests, close: async () => { await browser.close(); await server.close(); } };
}
