// The npm package: `npm pack` of www/ installed offline into a fresh Vite project, built with
// Vite, and the built site run in headless Chromium (worker and wasm found by the bundler, a
// fixture model loaded, a prediction equal to the reference's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, serve, ROOT } from './harness.mjs';

const FIXTURE = join(ROOT, 'tests/fixtures/sam2.1_hiera_reduced');
let dir;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sam2-vite-'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One F32 tensor of a safetensors file. */
function f32Tensor(buf, name) {
  const headerLen = Number(buf.readBigUInt64LE(0));
  const t = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'))[name];
  const [a, b] = t.data_offsets;
  const bytes = buf.subarray(8 + headerLen + a, 8 + headerLen + b);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });

test('the packed package installs offline into a Vite project, builds and runs', { timeout: 600_000 }, async () => {
  // Pack exactly what would be published.
  const packed = JSON.parse(run('npm', ['pack', join(ROOT, 'www'), '--json', '--pack-destination', dir], ROOT))[0];
  const files = packed.files.map((f) => f.path).sort();
  console.log(`packed ${packed.filename}: ${packed.size} bytes, unpacked ${packed.unpackedSize}, files ${files.join(' ')}`);
  for (const f of ['package.json', 'sam2.js', 'sam2.d.ts', 'worker.js', 'weights.js', 'pkg/sam2_webgpu.js', 'pkg/sam2_webgpu_bg.wasm']) assert.ok(files.includes(f), `${f} is not in the package`);
  assert.ok(!files.some((f) => /index\.html|demo\.js/.test(f)), 'the demo page leaked into the package');

  // A fresh project: the tarball installed with no network (it has no dependencies), Vite taken
  // from this repository's dev dependencies.
  const app = join(dir, 'app');
  mkdirSync(join(app, 'public'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(dir, packed.filename)], app);
  for (const f of ['model.pt', 'config.yaml', 'image_a.png']) cpSync(join(FIXTURE, f), join(app, 'public', f));
  writeFileSync(join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/main.js"></script>');
  writeFileSync(join(app, 'main.js'), `
    import { Sam2, maskToImageData } from 'sam2-webgpu';
    try {
      const sam = await Sam2.load({ url: 'model.pt', config: await (await fetch('config.yaml')).text() });
      const bitmap = await createImageBitmap(await (await fetch('image_a.png')).blob(), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
      await sam.setImage(bitmap);
      const out = await sam.predict({ points: [[150, 120]], labels: [1], multimask: false });
      window.result = { info: sam.info, lowRes: [...out.masks[0].lowResLogits], score: out.scores[0], pixels: maskToImageData(out.masks[0]).data.length };
    } catch (e) {
      window.result = { error: String(e.message ?? e) };
    }
  `);
  // The package's TypeScript types, checked the way a TypeScript app would use them.
  writeFileSync(join(app, 'check.ts'), `
    import { Sam2, maskToImageData, type Prediction, type FrameResult, type AutoMask, type ModelInfo } from 'sam2-webgpu';
    export async function demo(canvas: HTMLCanvasElement): Promise<number> {
      const ac = new AbortController();
      const sam: Sam2 = await Sam2.load({ model: 'sam2.1_hiera_tiny', signal: ac.signal, onProgress: (p) => console.log(p.stage, p.fraction ?? p.loaded) });
      const info: ModelInfo = sam.info;
      const { encodeMs } = await sam.setImage(canvas);
      const pred: Prediction = await sam.predict({ points: [[1, 2]], labels: [1], multimask: true });
      const refined = await sam.predict({ points: [[1, 2]], labels: [1], maskInput: pred.masks[pred.bestIndex].lowResLogits });
      const img: ImageData = maskToImageData(refined.masks[0], { color: [255, 0, 0, 128] });
      const all: AutoMask[] = await sam.generateMasks({ pointsPerSide: 16, useM2m: true, signal: ac.signal, onProgress: ({ done, total }) => console.log(done / total) });
      const video = await sam.createVideoSession({ frames: [canvas] });
      const r: FrameResult = await video.addPoints(0, 1, [[3, 4]], [1]);
      await video.propagate({ reverse: false, onFrame: (f) => f.objects[0]?.mask.data });
      const yolo: string | undefined = await sam.maskToYolo(all[0].mask, 0, { strategy: 'largest' });
      const cached = await Sam2.cache.list();
      // @ts-expect-error unknown preset names do not type-check
      await Sam2.load({ model: 'sam2.1_hiera_huge' });
      return encodeMs + img.width + r.frame + cached.length + (yolo?.length ?? 0) + info.imageSize;
    }
  `);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler', lib: ['dom', 'esnext'], skipLibCheck: false }, files: ['check.ts'] }));
  run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(app, 'tsconfig.json')], app);
  run(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], app);
  const assets = readdirSync(join(app, 'dist/assets'));
  console.log(`vite output: ${assets.join(' ')}`);
  assert.ok(assets.some((f) => f.endsWith('.wasm')), 'no .wasm in the Vite build');
  assert.ok(assets.some((f) => /worker/.test(f)), 'no worker chunk in the Vite build');

  // Run the built site.
  const server = await serve(join(app, 'dist'));
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`[page] ${m.text()}`));
    page.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 300_000 });
    const r = await page.evaluate(() => window.result);
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.info.backend, 'webgpu');
    // The reference's low-res logits for this prompt (the `point` case of the fixture).
    const expected = f32Tensor(readFileSync(join(FIXTURE, 'expected.safetensors')), 'point/low_res_masks');
    const diff = r.lowRes.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i])), 0);
    assert.ok(diff <= 1e-4, `low-res logits differ by ${diff}`);
  } finally {
    await browser.close();
    await server.close();
  }
});
