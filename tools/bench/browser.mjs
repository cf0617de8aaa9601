#!/usr/bin/env node
// Browser benchmark: this repository's wasm build (www/pkg) against onnxruntime-web running the
// same random-weight SAM 2.1 tiny exported to ONNX (tools/reference/export_onnx.py), in Debian's
// headless Chromium with WebGPU through SwiftShader. See tools/bench/README.md.
//
//   node tools/bench/browser.mjs [--runs N] [--skip-ours] [--ours-backend auto|webgpu|cpu] [--skip-ort] [--ort-eps webgpu,wasm (also: webgpu-jsep)]
//                                [--image PNG] [--weights PT [--config YAML]] [--onnx-dir DIR] [--out JSON]
//                                [--engine-timeout-min 40] [--timeout-min 150]
import { readFile, writeFile, mkdir, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { gzipSync, constants as zc } from 'node:zlib';
import { join, relative, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { serve, launch, ROOT } from '../../tests/browser/harness.mjs';

const ORT_DIST = 'node_modules/onnxruntime-web/dist';
// Which ESM bundle each engine imports, the EP it asks for, and the files that bundle loads.
const ORT_ENGINES = {
  webgpu: { bundle: 'ort.webgpu.min.mjs', ep: 'webgpu', note: 'native WebGPU EP (onnxruntime-web/webgpu)',
    files: ['ort.webgpu.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'] },
  'webgpu-jsep': { bundle: 'ort.min.mjs', ep: 'webgpu', note: 'JSEP WebGPU EP (onnxruntime-web default export)',
    files: ['ort.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'] },
  wasm: { bundle: 'ort.wasm.min.mjs', ep: 'wasm', note: 'CPU EP in wasm, SIMD (onnxruntime-web/wasm)',
    files: ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'] },
};

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'skip-ours': { type: 'boolean', default: false },
    'ours-backend': { type: 'string', default: 'auto' },
    'skip-ort': { type: 'boolean', default: false },
    'ort-eps': { type: 'string', default: 'webgpu,wasm' },
    image: { type: 'string' },
    weights: { type: 'string', default: 'tools/reference/out/full/sam2.1_hiera_tiny.pt' },
    config: { type: 'string' }, // Hydra YAML for ours, only for non-official sizes (a reduced fixture)
    'onnx-dir': { type: 'string', default: 'tools/reference/out/onnx' },
    out: { type: 'string', default: 'target-test-artifacts/bench-browser.json' },
    'engine-timeout-min': { type: 'string', default: '40' },
    'timeout-min': { type: 'string', default: '150' },
  },
});
const runs = Number(opt.runs);
if (!(Number.isInteger(runs) && runs >= 1)) throw new Error('--runs must be an integer >= 1');
const ortEngines = opt['skip-ort'] ? [] : opt['ort-eps'].split(',').filter(Boolean);
for (const e of ortEngines) if (!ORT_ENGINES[e]) throw new Error(`--ort-eps: unknown ${e} (${Object.keys(ORT_ENGINES)})`);
const NUM_THREADS = 1;

const ENGINE_TIMEOUT_MS = Number(opt['engine-timeout-min']) * 60_000;
const watchdog = setTimeout(() => {
  console.error(`timed out after ${opt['timeout-min']} min`);
  process.exit(2);
}, Number(opt['timeout-min']) * 60_000);

const abs = (p) => resolve(ROOT, p);
const url = (p) => '/' + relative(ROOT, abs(p)).split('\\').join('/');

async function findPng(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { const f = await findPng(p); if (f) return f; }
    else if (e.name.endsWith('.png')) return p;
  }
  return null;
}
let image = opt.image;
if (!image) {
  const full = 'tools/reference/out/full/sam2.1_hiera_tiny/image_full.png';
  image = existsSync(abs(full)) ? full : relative(ROOT, await findPng(abs('tests/fixtures')));
}
const encoderOnnx = join(opt['onnx-dir'], 'sam2.1_hiera_tiny.encoder.onnx');
const decoderOnnx = join(opt['onnx-dir'], 'sam2.1_hiera_tiny.decoder.onnx');
for (const [p, needed, hint] of [[image, true, ''], [opt.weights, !opt['skip-ours'], 'make it with tools/reference/make_fixtures.py --full'],
  [encoderOnnx, ortEngines.length > 0, 'make it with tools/reference/export_onnx.py'], [decoderOnnx, ortEngines.length > 0, '']]) {
  if (needed && !existsSync(abs(p))) throw new Error(`${p} missing${hint ? `: ${hint}` : ''}`);
}

// ---- sizes -------------------------------------------------------------------------------------

async function size(p) {
  const buf = await readFile(abs(p));
  return { file: p, raw: buf.length, gzip: gzipSync(buf, { level: zc.Z_BEST_COMPRESSION }).length };
}

/** Custom sections of a wasm binary (name -> bytes): debug info shows a dev build. */
function wasmCustomSections(buf) {
  const sections = {};
  let i = 8;
  const leb = () => { let v = 0, s = 0, b; do { b = buf[i++]; v += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return v; };
  while (i < buf.length) {
    const id = buf[i++];
    const len = leb();
    const end = i + len;
    if (id === 0) {
      const n = leb();
      const name = buf.subarray(i, i + n).toString('utf8');
      sections[name] = (sections[name] ?? 0) + len;
    }
    i = end;
  }
  return sections;
}

async function sizes() {
  const out = {};
  if (existsSync(abs('www/pkg/sam2_webgpu_bg.wasm'))) {
    out.ours = [await size('www/pkg/sam2_webgpu_bg.wasm'), await size('www/pkg/sam2_webgpu.js')];
    out.oursCustomSections = wasmCustomSections(await readFile(abs('www/pkg/sam2_webgpu_bg.wasm')));
  }
  for (const [name, e] of Object.entries(ORT_ENGINES)) {
    out[`ort-${name}`] = await Promise.all(e.files.map((f) => size(`${ORT_DIST}/${f}`)));
  }
  out.models = [];
  for (const p of [opt.weights, encoderOnnx, decoderOnnx]) if (existsSync(abs(p))) out.models.push(await size(p));
  return out;
}

// ---- browser -----------------------------------------------------------------------------------

// Each engine gets its own browser: closing a page does not stop GPU work it already queued, which
// SwiftShader would otherwise go on computing (on the same cores) while the next engine runs.
async function runEngine(server, name, fn, arg) {
  const browser = await launch();
  chromium ??= browser.version();
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  const fetched = new Set();
  page.on('console', (m) => console.log(`[page ${name}] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`[page ${name} error] ${e.message}`));
  page.on('request', (r) => {
    const p = new URL(r.url()).pathname;
    if (p.startsWith(`/${ORT_DIST}/`) || p.startsWith('/www/pkg/')) fetched.add(p.split('/').pop());
  });
  const t0 = Date.now();
  try {
    await page.goto(`${server.url}/tools/bench/browser.html`);
    await page.waitForFunction(() => window.ready === true);
    const run = page.evaluate(([f, a]) => window[f](a), [fn, arg]);
    run.catch(() => {}); // rejects when the page is closed after a timeout
    let timer;
    const timeout = new Promise((res) => { timer = setTimeout(() => res(null), ENGINE_TIMEOUT_MS); });
    let r = await Promise.race([run, timeout]);
    clearTimeout(timer);
    if (r === null) {
      // The page answers between calls and while it awaits the GPU (a synchronous wasm call in
      // progress, ort-wasm without proxy, is waited for).
      r = (await page.evaluate(() => window.partial ?? null)) ?? { engine: name };
      r.incomplete = `gave up after ${opt['engine-timeout-min']} min (--engine-timeout-min): partial result`;
      console.log(`${name}: ${r.incomplete}`);
    }
    r.filesFetched = [...fetched];
    return r;
  } catch (e) {
    console.log(`${name} failed: ${e.message}`);
    return { engine: name, error: String(e.message ?? e).split('\n')[0], filesFetched: [...fetched] };
  } finally {
    console.log(`${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    await browser.close();
  }
}

function logits(r) {
  if (!r?.lowResLogitsB64) return null;
  const b = Buffer.from(r.lowResLogitsB64, 'base64');
  delete r.lowResLogitsB64;
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4).map((v) => Math.min(32, Math.max(-32, v)));
}

// ---- report ------------------------------------------------------------------------------------

const fmt = (ms) => ms == null || Number.isNaN(ms) ? '–' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`;
const kib = (n) => n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
const ratio = (a, b) => a == null || b == null || !b ? '–' : `${(a / b).toFixed(2)}×`;

function firstMask(r) {
  if (r.error) return null;
  const parts = r.engine === 'ours'
    ? [r.initMs, r.loadMs, r.encoder?.coldMs, r.decoder?.coldMs]
    : [r.importMs, r.encoder?.sessionMs, r.decoder?.sessionMs, r.encoder?.firstRunMs, r.decoder?.firstRunMs];
  return parts.some((v) => v == null) ? null : parts.reduce((a, b) => a + b, 0);
}

function report(results, sz) {
  const lines = [];
  const ours = results.find((r) => r.engine === 'ours' && !r.error);
  lines.push(`### Timings (runs: ${runs}; cold = first call, warm = median of the ${runs} after it)`, '');
  lines.push('| engine | backend | init | load / sessions | encoder cold | encoder warm | decoder cold | decoder warm | load → first mask |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    r.encoder ??= {};
    r.decoder ??= {};
    if (r.error) { lines.push(`| ${r.engine} | failed: ${r.error.replace(/\|/g, '\\|')} | | | | | | | |`); continue; }
    if (r.engine === 'ours') {
      lines.push(`| ours (setImage / predict, incl. pre/post)${r.incomplete ? ' **incomplete**' : ''} | ${r.info?.backend ?? '?'} | ${fmt(r.initMs)} | ${fmt(r.loadMs)} | ${fmt(r.encoder.coldMs)} | ${fmt(r.encoder.warmMs)} | ${fmt(r.decoder.coldMs)} | ${fmt(r.decoder.warmMs)} | ${fmt(firstMask(r))} |`);
    } else {
      lines.push(`| ${r.engine} (${r.bundle}, model only)${r.incomplete ? ' **incomplete**' : ''} | ${r.ep}, ${r.numThreads} thread | ${fmt(r.importMs)} | ${fmt(r.encoder.sessionMs)} + ${fmt(r.decoder.sessionMs)} | ${fmt(r.encoder.firstRunMs)} | ${fmt(r.encoder.warmMs)} | ${fmt(r.decoder.firstRunMs)} | ${fmt(r.decoder.warmMs)} | ${fmt(firstMask(r))} |`);
    }
  }
  for (const r of results) if (r.incomplete) lines.push('', `**${r.engine}: ${r.incomplete}.**`);
  lines.push('', 'init: ours `init()` (wasm fetch + compile), ort: `import()` of the bundle (its wasm is compiled in the first session creation). ' +
    'load / sessions: ours `Sam2Model.load` (checkpoint parse + weight upload), ort: `InferenceSession.create` encoder + decoder. ' +
    'Cold for ort = its first `run` after session creation (session creation is in the load column). ' +
    'ours = `setImage` (resize + normalise + encoder) and `predict` (prompt + decoder + mask upsampling to image size + binarisation); ' +
    'ort = model only (preprocessing in JS, not timed). load → first mask: the sum of init, load and the two cold calls.');
  const any = results.find((r) => !r.error) ?? {};
  const a = any.adapter;
  lines.push('', `Chromium ${chromium}; WebGPU adapter: ${a ? [a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || '(no info)' : 'none'}; ` +
    `crossOriginIsolated: ${any.crossOriginIsolated}; ort ${results.find((r) => r.ortVersion)?.ortVersion ?? ''} with env.wasm.numThreads = ${NUM_THREADS} (ours is single-threaded wasm); ` +
    `image ${image} (${any.image?.join('×') ?? '?'}, resized to 1024×1024).` +
    (ours ? ` ours: setImage returned ${ours.setImageReturned}${ours.setImageReturned === 'Promise' ? '' : ' (not awaitable: GPU work it queued may land in the following predict)'}.` : ''));
  const orts = results.filter((r) => r.engine !== 'ours' && !r.error);
  if (ours && orts.length) {
    lines.push('', '### Ratios ours / ort (below 1 = ours faster)', '');
    lines.push('| vs | encoder cold | encoder warm | decoder cold | decoder warm | load → first mask | low-res logits max abs diff (first predict) | mask pixels agreeing |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const r of orts) {
      lines.push(`| ${r.engine} | ${ratio(ours.encoder.coldMs, r.encoder.firstRunMs)} | ${ratio(ours.encoder.warmMs, r.encoder.warmMs)} | ${ratio(ours.decoder.coldMs, r.decoder.firstRunMs)} | ${ratio(ours.decoder.warmMs, r.decoder.warmMs)} | ${ratio(firstMask(ours), firstMask(r))} | ${r.vsOurs ? r.vsOurs.maxAbsDiff.toExponential(2) : '–'} | ${r.vsOurs ? `${(100 * r.vsOurs.signAgreement).toFixed(3)} %` : '–'} |`);
    }
  }
  lines.push('', '### Sizes (gzip -9)', '');
  lines.push('| what | files | raw | gzip |', '|---|---|---|---|');
  const row = (what, list) => lines.push(`| ${what} | ${list.map((f) => f.file.split('/').pop()).join(' + ')} | ${kib(list.reduce((s, f) => s + f.raw, 0))} | ${kib(list.reduce((s, f) => s + f.gzip, 0))} |`);
  if (sz.ours) { for (const f of sz.ours) row('ours', [f]); row('ours total', sz.ours); }
  for (const [name, e] of Object.entries(ORT_ENGINES)) {
    const list = sz[`ort-${name}`];
    for (const f of list) row(`ort ${name}`, [f]);
    row(`ort ${name} total (${e.note})`, list);
  }
  for (const f of sz.models) row('model', [f]);
  if (sz.oursCustomSections) {
    const dbg = Object.entries(sz.oursCustomSections).filter(([n]) => n.startsWith('.debug'));
    const dbgBytes = dbg.reduce((s, [, n]) => s + n, 0);
    lines.push('', `ours' wasm custom sections: ${Object.entries(sz.oursCustomSections).map(([n, b]) => `${n} ${kib(b)}`).join(', ') || 'none'}` +
      (dbgBytes ? ` — ${kib(dbgBytes)} of DWARF debug info: a dev-profile build` : sz.oursCustomSections.name
        ? ' — a name section: not run through wasm-opt -Oz, so not `./build.sh wasm --release` (a dev-profile build)' : ''));
  }
  return lines.join('\n');
}

// ---- main --------------------------------------------------------------------------------------

const server = await serve();
let chromium = null;
const results = [];
const started = new Date().toISOString();
try {
  const common = { runs, imageUrl: url(image) };
  for (const name of ortEngines) {
    const e = ORT_ENGINES[name];
    const r = await runEngine(server, `ort-${name}`, 'benchOrt', {
      ...common, encoderUrl: url(encoderOnnx), decoderUrl: url(decoderOnnx), bundle: e.bundle, ep: e.ep, numThreads: NUM_THREADS,
    });
    r.engine = `ort-${name}`;
    const expected = new Set(e.files.slice(1));
    if (!r.error && ![...expected].every((f) => r.filesFetched.includes(f))) {
      console.log(`note: ort-${name} fetched ${r.filesFetched.join(', ')}, expected ${[...expected].join(', ')}`);
    }
    results.push(r);
  }
  // ours last: on SwiftShader its full-size calls are the slow ones (see --engine-timeout-min)
  if (!opt['skip-ours']) {
    results.unshift(await runEngine(server, 'ours', 'benchOurs', { ...common, weightsUrl: url(opt.weights), configUrl: opt.config ? url(opt.config) : null, backend: opt['ours-backend'] }));
  }
} finally {
  await server.close();
}

const ref = logits(results.find((r) => r.engine === 'ours'));
for (const r of results) {
  const l = logits(r);
  if (r.engine === 'ours' || !ref || !l || l.length !== ref.length) continue;
  let m = 0, agree = 0;
  for (let i = 0; i < l.length; i++) { m = Math.max(m, Math.abs(l[i] - ref[i])); agree += (l[i] > 0) === (ref[i] > 0); }
  r.vsOurs = { maxAbsDiff: m, signAgreement: agree / l.length };
}

const sz = await sizes();
const table = report(results, sz);
console.log('\n' + table);
const out = abs(opt.out);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, JSON.stringify({
  started, runs, numThreads: NUM_THREADS, image, weights: opt.weights, encoderOnnx, decoderOnnx,
  chromium, results, sizes: sz, table,
}, null, 1));
console.log(`\nwrote ${relative(ROOT, out)}`);
clearTimeout(watchdog);
