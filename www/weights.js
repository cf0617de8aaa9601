// Checkpoint delivery for the browser package: Meta's presets, streaming download with progress,
// and a content-addressed Cache API store that is verified (SHA-256) on every read.
// Works on a page and in a module Worker; no dependencies.

const CACHE_NAME = 'sam2-webgpu-weights-v1';
const KEY_ROOT = 'https://sam2-webgpu.invalid';
const contentKey = (sha) => `${KEY_ROOT}/sha256/${sha}`;
const indexKey = (url) => `${KEY_ROOT}/url/${encodeURIComponent(url)}`;
const INDEX_PREFIX = `${KEY_ROOT}/url/`;
const META = 'https://dl.fbaipublicfiles.com/segment_anything_2';

/** @typedef {{ url: string, version: '2' | '2.1', size: 'tiny' | 'small' | 'base_plus' | 'large', bytes?: number }} Preset */
/** @typedef {{ stage: 'download' | 'cache' | 'verify' | 'read', loaded: number, total: number | undefined, fraction: number | undefined }} Progress */
/** @typedef {{ url: string, sha256: string, bytes: number, storedAt: number }} CacheEntry */

/// Meta's eight official checkpoints, by name.
/** @type {Readonly<Record<string, Preset>>} */
export const PRESETS = Object.freeze(Object.fromEntries(
  [['2.1', '092824'], ['2', '072824']].flatMap(([version, date]) =>
    /** @type {const} */ (['tiny', 'small', 'base_plus', 'large']).map((size) => {
      const name = `sam${version}_hiera_${size}`;
      return [name, Object.freeze({ url: `${META}/${date}/${name}.pt`, version, size })];
    })),
));

/// Resolves a preset name or a URL (relative ones against `base`) to `{ url, preset? }`.
/** @param {string} nameOrUrl @param {string | URL} [base] @returns {{ url: string, preset?: string }} */
export function resolveModel(nameOrUrl, base = globalThis.location?.href) {
  const s = String(nameOrUrl ?? '').trim();
  if (Object.hasOwn(PRESETS, s)) return { url: PRESETS[s].url, preset: s };
  if (!/[/:\\]/.test(s) && !/\.(pt|pth|ckpt|bin|safetensors)$/i.test(s)) {
    throw new Error(`Unknown model "${s}": expected a URL or one of the presets ${Object.keys(PRESETS).join(', ')}`);
  }
  try {
    return { url: new URL(s, base).href };
  } catch {
    throw new Error(`Cannot resolve the model URL "${s}"${base ? ` against ${base}` : ' (no base URL)'}`);
  }
}

/**
 * Reads a stream into one buffer, reporting progress after each chunk. With a known total the
 * buffer is allocated once; otherwise (or if the stream runs past it) it grows geometrically.
 * @param {ReadableStream<Uint8Array>} stream @param {number | undefined} total @param {Progress['stage']} stage
 * @param {((p: Progress) => void) | undefined} onProgress @param {AbortSignal | undefined} signal
 * @param {(n: number, e: any) => Error} interrupted
 */
async function readStream(stream, total, stage, onProgress, signal, interrupted) {
  const reader = stream.getReader();
  let buf = new Uint8Array(total ?? 1 << 20), n = 0;
  try {
    for (;;) {
      signal?.throwIfAborted();
      let r;
      try { r = await reader.read(); } catch (e) { throw signal?.aborted ? signal.reason : interrupted(n, e); }
      if (r.done) break;
      const chunk = r.value;
      if (n + chunk.length > buf.length) {
        const grown = new Uint8Array(Math.max(buf.length * 2, n + chunk.length));
        grown.set(buf.subarray(0, n));
        buf = grown;
      }
      buf.set(chunk, n);
      n += chunk.length;
      onProgress?.({ stage, loaded: n, total, fraction: total ? Math.min(1, n / total) : undefined });
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    throw e;
  }
  if (total !== undefined && n < total) throw interrupted(n, new Error('the stream ended early'));
  if (n === buf.length) return buf;
  const b = /** @type {any} */ (buf.buffer);
  return typeof b.transfer === 'function' ? new Uint8Array(b.transfer(n)) : buf.slice(0, n);
}

/** SHA-256 as lowercase hex, reporting stage 'verify'. @param {Uint8Array} bytes @param {((p: Progress) => void) | undefined} onProgress */
async function sha256Hex(bytes, onProgress) {
  const total = bytes.length;
  onProgress?.({ stage: 'verify', loaded: 0, total, fraction: 0 });
  const digest = globalThis.crypto?.subtle ? new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)) : sha256Js(bytes);
  onProgress?.({ stage: 'verify', loaded: total, total, fraction: 1 });
  return Array.from(digest, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Plain-JS SHA-256 for contexts without crypto.subtle (insecure pages). @param {Uint8Array} data */
function sha256Js(data) {
  const K = new Uint32Array(64), H = new Uint32Array(8), W = new Uint32Array(64);
  const frac = (x) => ((x - Math.floor(x)) * 2 ** 32) >>> 0;
  for (let p = 2, i = 0; i < 64; p++) {
    let prime = true;
    for (let d = 2; d * d <= p; d++) if (p % d === 0) { prime = false; break; }
    if (!prime) continue;
    if (i < 8) H[i] = frac(Math.sqrt(p));
    K[i++] = frac(Math.cbrt(p));
  }
  const len = data.length, padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[len] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(len / 2 ** 29));
  view.setUint32(padded.length - 4, (len * 8) >>> 0);
  const rot = (x, r) => (x >>> r) | (x << (32 - r));
  for (let off = 0; off < padded.length; off += 64) {
    for (let t = 0; t < 64; t++) {
      if (t < 16) { W[t] = view.getUint32(off + 4 * t); continue; }
      const a = W[t - 15], b = W[t - 2];
      W[t] = W[t - 16] + (rot(a, 7) ^ rot(a, 18) ^ (a >>> 3)) + W[t - 7] + (rot(b, 17) ^ rot(b, 19) ^ (b >>> 10));
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let t = 0; t < 64; t++) {
      const t1 = (h + (rot(e, 6) ^ rot(e, 11) ^ rot(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + W[t]) >>> 0;
      const t2 = ((rot(a, 2) ^ rot(a, 13) ^ rot(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    [a, b, c, d, e, f, g, h].forEach((x, i) => { H[i] += x; });
  }
  const out = new Uint8Array(32);
  H.forEach((x, i) => new DataView(out.buffer).setUint32(4 * i, x));
  return out;
}

/** The weights cache, or null when the Cache API is unavailable or refuses to open. */
async function openCache() {
  try { return globalThis.caches ? await caches.open(CACHE_NAME) : null; } catch { return null; }
}

/** @param {Cache} cache @param {string} url @returns {Promise<CacheEntry | null>} */
async function readIndex(cache, url) {
  try { return (await (await cache.match(indexKey(url)))?.json()) ?? null; } catch { return null; }
}

/**
 * Fetches checkpoint bytes with progress, through the cache (verified by SHA-256 on every read).
 * @param {{ url: string, sha256?: string, cache?: boolean, onProgress?: (p: Progress) => void, signal?: AbortSignal }} options
 * @returns {Promise<{ bytes: Uint8Array, sha256: string, fromCache: boolean }>}
 */
export async function fetchWeights({ url, sha256, cache: useCache = true, onProgress, signal }) {
  if (!url) throw new Error('fetchWeights: options.url is required');
  try { url = PRESETS[url]?.url ?? new URL(url, globalThis.location?.href).href; } catch { throw new Error(`fetchWeights: invalid URL "${url}"`); }
  const expected = sha256?.trim().toLowerCase();
  signal?.throwIfAborted();
  const cache = useCache ? await openCache() : null;

  if (cache) {
    const entry = await readIndex(cache, url);
    const sha = expected ?? entry?.sha256;
    const hit = sha ? await cache.match(contentKey(sha)).catch(() => undefined) : undefined;
    if (hit?.body && sha) {
      const size = Number(hit.headers.get('content-length')) || (entry?.sha256 === sha ? entry.bytes : undefined);
      /** @type {Uint8Array | null} */
      let bytes = null;
      try {
        bytes = await readStream(hit.body, size, 'cache', onProgress, signal, (n, e) => new Error(`Reading the cached ${url} failed after ${n} bytes: ${e?.message ?? e}`));
      } catch (e) {
        if (signal?.aborted) throw e;
      }
      if (bytes && (await sha256Hex(bytes, onProgress)) === sha) {
        if (entry?.sha256 !== sha) await storeIndex(cache, url, sha, bytes.length);
        return { bytes, sha256: sha, fromCache: true };
      }
      await Promise.all([cache.delete(contentKey(sha)), cache.delete(indexKey(url))].map((p) => p.catch(() => false)));
    }
  }

  let response;
  try {
    response = await fetch(url, { signal, cache: cache ? 'no-store' : 'default' });
  } catch (e) {
    throw signal?.aborted ? signal.reason : new Error(`Network error while downloading ${url}: ${e?.message ?? e}`);
  }
  if (!response.ok) throw new Error(`Downloading ${url} failed: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`);
  const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const length = Number(response.headers.get('content-length'));
  const total = !encoded && Number.isFinite(length) && length > 0 ? length : undefined;
  const interrupted = (n, e) => new Error(`Download of ${url} was cut off after ${n}${total ? ` of ${total}` : ''} bytes: ${e?.message ?? e}`);
  const bytes = response.body
    ? await readStream(response.body, total, 'download', onProgress, signal, interrupted)
    : new Uint8Array(await response.arrayBuffer());
  const actual = await sha256Hex(bytes, onProgress);
  if (expected && actual !== expected) {
    throw new Error(`Checkpoint ${url}: checksum mismatch (expected sha256 ${expected}, got ${actual})`);
  }
  if (cache) {
    try {
      const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) };
      await cache.put(contentKey(actual), new Response(bytes, { headers }));
      await storeIndex(cache, url, actual, bytes.length);
    } catch {
      await cache.delete(contentKey(actual)).catch(() => false); // best effort (e.g. quota)
    }
  }
  return { bytes, sha256: actual, fromCache: false };
}

/** @param {Cache} cache @param {string} url @param {string} sha256 @param {number} bytes */
async function storeIndex(cache, url, sha256, bytes) {
  const body = JSON.stringify({ url, sha256, bytes, storedAt: Date.now() });
  await cache.put(indexKey(url), new Response(body, { headers: { 'content-type': 'application/json' } })).catch(() => {});
}

/**
 * Reads a Blob/File or ArrayBuffer/TypedArray with progress (stage 'read'), without caching.
 * @param {Blob | ArrayBuffer | ArrayBufferView} source
 * @param {{ onProgress?: (p: Progress) => void, hash?: boolean }} [options]
 * @returns {Promise<{ bytes: Uint8Array, sha256?: string }>}
 */
export async function readWeights(source, { onProgress, hash } = {}) {
  let bytes;
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    bytes = await readStream(source.stream(), source.size, 'read', onProgress, undefined, (n, e) => new Error(`Reading the file failed after ${n} bytes: ${e?.message ?? e}`));
  } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    bytes = ArrayBuffer.isView(source) ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength) : new Uint8Array(source);
    onProgress?.({ stage: 'read', loaded: bytes.length, total: bytes.length, fraction: 1 });
  } else {
    throw new Error('readWeights: expected a Blob, File, ArrayBuffer or typed array');
  }
  return hash ? { bytes, sha256: await sha256Hex(bytes, onProgress) } : { bytes };
}

/// The cached checkpoints: list, delete (by URL or sha256) and clear.
export const weightCache = {
  /** @returns {Promise<CacheEntry[]>} */
  async list() {
    const cache = await openCache();
    if (!cache) return [];
    const keys = (await cache.keys()).filter((r) => r.url.startsWith(INDEX_PREFIX));
    const entries = await Promise.all(keys.map((r) => readIndex(cache, decodeURIComponent(r.url.slice(INDEX_PREFIX.length)))));
    return /** @type {CacheEntry[]} */ (entries.filter(Boolean));
  },
  /** Deletes the entry of a URL or a sha256 (content and index). @param {string} urlOrSha256 @returns {Promise<boolean>} */
  async delete(urlOrSha256) {
    const cache = await openCache();
    if (!cache) return false;
    const all = await weightCache.list();
    const isSha = /^[0-9a-f]{64}$/i.test(urlOrSha256);
    const sha = isSha ? urlOrSha256.toLowerCase() : all.find((e) => e.url === urlOrSha256)?.sha256;
    const urls = isSha ? all.filter((e) => e.sha256 === sha).map((e) => e.url) : [urlOrSha256];
    const removed = await Promise.all([
      ...urls.map((u) => cache.delete(indexKey(u))),
      ...(sha && (isSha || !all.some((e) => e.sha256 === sha && e.url !== urlOrSha256)) ? [cache.delete(contentKey(sha))] : []),
    ]);
    return removed.some(Boolean);
  },
  /** Removes every cached checkpoint. @returns {Promise<number>} the number of entries removed */
  async clear() {
    if (!globalThis.caches) return 0;
    const n = (await weightCache.list()).length;
    await caches.delete(CACHE_NAME).catch(() => false);
    return n;
  },
};
