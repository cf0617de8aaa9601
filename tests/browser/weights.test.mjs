// Weight delivery (www/weights.js) in headless Chromium: streaming download with progress, the
// content-addressed Cache API store (verified on read), checksums, errors and local files.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openTestPage, ROOT } from './harness.mjs';

const FILE = '/tests/fixtures/sam2_hiera_reduced/model.pt';
let page, close, url, requests, size, sha;

before(async () => {
  const bytes = await readFile(join(ROOT, FILE));
  size = bytes.length;
  sha = createHash('sha256').update(bytes).digest('hex');
  ({ page, close, url, requests } = await openTestPage('weights.html'));
});

after(async () => {
  await close?.();
});

beforeEach(async () => {
  await page.evaluate(() => window.W.weightCache.clear());
  requests.length = 0;
});

const downloads = (path = FILE) => requests.filter((p) => p === path).length;
const fetchSummary = (options) => page.evaluate((o) => window.fetchSummary(o), options);
const of = (progress, stage) => progress.filter((p) => p.stage === stage);

/** Progress of one stage rises monotonically to `total` with a final fraction of 1. */
function assertProgress(events, total) {
  assert.ok(events.length > 0, 'no progress reported');
  for (let i = 1; i < events.length; i++) assert.ok(events[i].loaded >= events[i - 1].loaded, 'progress went backwards');
  const last = events.at(-1);
  assert.equal(last.loaded, total);
  assert.equal(last.fraction, 1);
  for (const p of events) assert.equal(p.total, total);
}

test('the first fetch downloads once with progress, the second comes from the cache', async () => {
  const first = await fetchSummary({ url: `${url}${FILE}` });
  assert.equal(first.error, undefined);
  assert.equal(downloads(), 1);
  assert.equal(first.fromCache, false);
  assert.equal(first.length, size);
  assert.equal(first.sha256, sha);
  assert.equal(first.digest, sha);
  assertProgress(of(first.progress, 'download'), size);
  assert.equal(of(first.progress, 'verify').at(-1).fraction, 1);

  const second = await fetchSummary({ url: `${url}${FILE}` });
  assert.equal(second.fromCache, true);
  assert.equal(downloads(), 1, 'the cached read went to the server');
  assert.equal(second.length, size);
  assert.equal(second.digest, sha);
  assert.equal(second.sha256, sha);
  assert.equal(of(second.progress, 'download').length, 0);
  assertProgress(of(second.progress, 'cache'), size);
  assert.equal(of(second.progress, 'verify').at(-1).fraction, 1);

  // Relative URLs resolve against the page, to the same cache entry.
  const relative = await fetchSummary({ url: FILE });
  assert.equal(relative.fromCache, true);
  assert.equal(downloads(), 1);
});

test('weightCache lists, deletes and clears entries', async () => {
  const full = `${url}${FILE}`;
  await fetchSummary({ url: full });
  const list = await page.evaluate(() => window.W.weightCache.list());
  assert.equal(list.length, 1);
  assert.deepEqual({ ...list[0], storedAt: 0 }, { url: full, sha256: sha, bytes: size, storedAt: 0 });
  assert.ok(Math.abs(list[0].storedAt - Date.now()) < 60_000);

  assert.equal(await page.evaluate((u) => window.W.weightCache.delete(u), full), true);
  assert.deepEqual(await page.evaluate(() => window.W.weightCache.list()), []);
  assert.deepEqual(await page.evaluate(() => window.cacheKeys()), [], 'content left behind');
  assert.equal(await page.evaluate((u) => window.W.weightCache.delete(u), full), false);

  await fetchSummary({ url: full });
  assert.equal(downloads(), 2);
  assert.equal(await page.evaluate((s) => window.W.weightCache.delete(s), sha), true);
  assert.deepEqual(await page.evaluate(() => window.cacheKeys()), []);

  await fetchSummary({ url: full });
  assert.equal(await page.evaluate(() => window.W.weightCache.clear()), 1);
  assert.deepEqual(await page.evaluate(() => window.W.weightCache.list()), []);
  assert.equal((await fetchSummary({ url: full })).fromCache, false);
});

test('corrupted cached content is detected, dropped and downloaded again', async () => {
  await fetchSummary({ url: `${url}${FILE}` });
  assert.equal(await page.evaluate((s) => window.corrupt(s), sha), true);
  const r = await fetchSummary({ url: `${url}${FILE}` });
  assert.equal(r.error, undefined);
  assert.equal(downloads(), 2, 'the corrupt entry was not replaced by a download');
  assert.equal(r.fromCache, false);
  assert.equal(r.length, size);
  assert.equal(r.digest, sha);
  const again = await fetchSummary({ url: `${url}${FILE}` });
  assert.equal(again.fromCache, true);
  assert.equal(again.digest, sha);
  assert.equal(downloads(), 2);
});

test('an expected sha256 rejects a mismatch, caches nothing, and finds content under another URL', async () => {
  const wrong = '0'.repeat(64);
  const r = await fetchSummary({ url: `${url}${FILE}`, sha256: wrong });
  assert.match(r.error, /checksum mismatch/);
  assert.ok(r.error.includes(wrong) && r.error.includes(sha), r.error);
  assert.deepEqual(await page.evaluate(() => window.cacheKeys()), []);

  const ok = await fetchSummary({ url: `${url}${FILE}`, sha256: sha.toUpperCase() });
  assert.equal(ok.error, undefined);
  assert.equal(ok.digest, sha);
  assert.equal(downloads(), 2);
  // Same content, another (unreachable) URL: served from the cache by its hash.
  const elsewhere = await fetchSummary({ url: `${url}/tests/fixtures/nowhere.pt`, sha256: sha });
  assert.equal(elsewhere.fromCache, true);
  assert.equal(elsewhere.digest, sha);
  assert.equal(downloads('/tests/fixtures/nowhere.pt'), 0);
});

test('cache: false always downloads and stores nothing', async () => {
  await fetchSummary({ url: `${url}${FILE}`, cache: false });
  const r = await fetchSummary({ url: `${url}${FILE}`, cache: false });
  assert.equal(r.fromCache, false);
  assert.equal(r.digest, sha);
  assert.equal(downloads(), 2);
  assert.deepEqual(await page.evaluate(() => window.cacheKeys()), []);
});

test('without Content-Length progress has no total; a truncated body rejects', async () => {
  const chunked = await fetchSummary({ url: `${url}${FILE}?chunked` });
  assert.equal(chunked.error, undefined);
  assert.equal(chunked.digest, sha);
  assert.equal(chunked.length, size);
  const events = of(chunked.progress, 'download');
  assert.ok(events.length > 0);
  assert.ok(events.every((p) => p.total === undefined && p.fraction === undefined));
  assert.equal(events.at(-1).loaded, size);

  const cut = await fetchSummary({ url: `${url}${FILE}?truncate=100000` });
  assert.match(cut.error, /cut off after \d+ of 2269811 bytes/);
  assert.deepEqual((await page.evaluate(() => window.cacheKeys())).filter((k) => k.includes('truncate')), []);
});

test('errors: HTTP status, abort, unknown presets; presets resolve to Meta URLs', async () => {
  const missing = await fetchSummary({ url: `${url}/tests/fixtures/missing.pt` });
  assert.match(missing.error, /404/);
  assert.ok(missing.error.includes('/tests/fixtures/missing.pt'), missing.error);

  const aborted = await page.evaluate(async (u) => {
    const c = new AbortController();
    c.abort();
    try { await (await import('/www/weights.js')).fetchWeights({ url: u, signal: c.signal }); return 'resolved'; } catch (e) { return e.name; }
  }, `${url}${FILE}`);
  assert.equal(aborted, 'AbortError');

  const unknown = await page.evaluate(() => window.tryResolve('sam2.1_hiera_tinny'));
  assert.match(unknown.error, /sam2\.1_hiera_tiny/);
  assert.match(unknown.error, /sam2_hiera_large/);
  assert.deepEqual(await page.evaluate(() => window.tryResolve('sam2.1_hiera_tiny')),
    { url: 'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt', preset: 'sam2.1_hiera_tiny' });
  assert.deepEqual(await page.evaluate(() => window.tryResolve('sam2_hiera_base_plus')),
    { url: 'https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_base_plus.pt', preset: 'sam2_hiera_base_plus' });
  assert.deepEqual(await page.evaluate(() => window.tryResolve('./x.pt')), { url: `${url}/tests/browser/x.pt` });
  assert.equal(Object.keys(await page.evaluate(() => window.W.PRESETS)).length, 8);
});

test('readWeights of a Blob reports progress and returns the same bytes', async () => {
  const r = await page.evaluate((u) => window.readBlob(u), FILE);
  assert.equal(r.length, size);
  assert.equal(r.sha256, sha);
  assert.equal(r.digest, sha);
  assertProgress(of(r.progress, 'read'), size);
  assert.deepEqual(await page.evaluate(() => window.cacheKeys()), []);
});
