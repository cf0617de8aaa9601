// The demo page (www/index.html) in headless Chromium on WebGPU (SwiftShader), used as a person
// would: a fixture model preloaded by query parameters, an image opened with the file input,
// hover and clicks (the overlay must equal, pixel for pixel, the mask the API returns for the
// same prompt), segment-everything, the three label exports and a dataset run parsed back in
// Node, a video tracked with two objects (the page's masks against the API's), a narrow window,
// and no request leaving the origin. Screenshots go to target-test-artifacts/demo-*.png.
//
// SwiftShader is slow (the first encode and decode compile shaders for tens of seconds), so one
// page and one model serve the image, everything and labels tests; the video test loads the
// video fixture's model through the page's file input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { launch, ROOT, serve } from './harness.mjs';

const IMAGE_FX = 'tests/fixtures/sam2.1_hiera_reduced';
const VIDEO_FX = 'tests/fixtures/sam2_hiera_reduced';
const SHOTS = join(ROOT, 'target-test-artifacts');
const TEST = { timeout: 600_000 };
const WAIT = { timeout: 400_000, polling: 250 };
const FRAMES = 5;

let server, browser, page;
const foreign = [];

const state = (view) => page.evaluate((v) => window.demo[v].state(), view);
const shot = (name, options = {}) => page.screenshot({ path: join(SHOTS, name), ...options });

/** Where a fraction (fx, fy) of the image stage is on the screen. */
async function at(selector, fx, fy) {
  const b = await page.locator(selector).boundingBox();
  return [b.x + b.width * fx, b.y + b.height * fy];
}

/** Clicks a button and resolves to the download it starts: { name, bytes }. */
async function downloadOf(selector) {
  const [d] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click(selector)]);
  return { name: d.suggestedFilename(), bytes: readFileSync(await d.path()) };
}

/** In the page: the #overlay canvas against the API's best mask for `prompt`. */
function overlayVsApi(prompt) {
  return page.evaluate(async ({ points, labels }) => {
    const p = await window.demo.sam.predict({ points, labels, multimask: true });
    const m = p.masks[p.bestIndex];
    const c = document.querySelector('#overlay');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let differ = 0, shown = 0, set = 0;
    for (let i = 0; i < m.data.length; i++) {
      const a = d[4 * i + 3] > 0 ? 1 : 0;
      differ += a !== m.data[i] ? 1 : 0;
      shown += a;
      set += m.data[i];
    }
    return { differ, shown, set, canvas: [c.width, c.height], mask: [m.width, m.height] };
  }, prompt);
}

/** The stored entries of a zip (parsed from its central directory): [{ name, data }]. */
function unzip(buf) {
  let end = buf.length - 22;
  while (end >= 0 && buf.readUInt32LE(end) !== 0x06054b50) end -= 1;
  assert.ok(end >= 0, 'no end of central directory');
  const count = buf.readUInt16LE(end + 10);
  let p = buf.readUInt32LE(end + 16);
  const out = [];
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(p), 0x02014b50, 'central directory record');
    const [method, crc, size, nameLen, extraLen, commentLen, offset] = [buf.readUInt16LE(p + 10), buf.readUInt32LE(p + 16), buf.readUInt32LE(p + 24), buf.readUInt16LE(p + 28), buf.readUInt16LE(p + 30), buf.readUInt16LE(p + 32), buf.readUInt32LE(p + 42)];
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    assert.equal(method, 0, `${name} is stored`);
    assert.equal(buf.readUInt32LE(offset), 0x04034b50, `${name}: local header`);
    const start = offset + 30 + buf.readUInt16LE(offset + 26) + buf.readUInt16LE(offset + 28);
    const data = buf.subarray(start, start + size);
    assert.equal(crc32(data), crc, `${name}: CRC-32`);
    out.push({ name, data });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** Asserts YOLO-seg lines: `class x y x y …` (≥ 3 points), coordinates within [0, 1]. */
function assertYolo(text, classId) {
  const lines = text.split('\n').filter(Boolean);
  for (const line of lines) {
    const [c, ...xy] = line.split(' ');
    assert.equal(c, String(classId), line);
    assert.ok(xy.length >= 6 && xy.length % 2 === 0, `a polygon: ${line}`);
    for (const v of xy.map(Number)) assert.ok(v >= 0 && v <= 1, `normalised: ${v}`);
  }
  return lines;
}

describe('demo page', () => {
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    server = await serve();
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(`${server.url}/`) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
    });
    page.on('console', (m) => console.log(`[page] ${m.text()}`));
    page.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
    await page.goto(`${server.url}/www/index.html?model=/${IMAGE_FX}/model.pt&config=/${IMAGE_FX}/config.yaml`);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('image: the hover and click overlays equal the API masks', TEST, async () => {
    await page.waitForFunction(() => window.demo?.sam, null, WAIT);
    assert.equal(await page.textContent('#backend-badge'), 'WebGPU');
    assert.match(await page.textContent('#model-info'), /SAM 2\.1 .*parameters/);
    await page.setInputFiles('#image-file', join(ROOT, IMAGE_FX, 'image_a.png'));
    await page.waitForFunction(() => window.demo.image.state().encoded, null, WAIT);
    assert.match(await page.textContent('#encode-ms'), /\d/);

    // Hover over the disc: the live mask follows the mouse.
    await page.mouse.move(...(await at('#image-stage', 0.33, 0.36)));
    await page.waitForFunction(() => { const s = window.demo.image.state(); return s.hover && !s.hoverBusy; }, null, WAIT);
    const hover = (await state('image')).hover;
    assert.ok(Math.abs(hover.x - 0.33 * 317) < 1.5 && Math.abs(hover.y - 0.36 * 269) < 1.5, `hover at ${JSON.stringify(hover)}`);
    const h = await overlayVsApi({ points: [[hover.x, hover.y]], labels: [1] });
    assert.deepEqual(h.canvas, h.mask);
    assert.ok(h.set > 0, 'the hover mask is not empty');
    assert.equal(h.differ, 0, `${h.differ} overlay pixels differ from the API's hover mask`);

    // A positive click on the square, a negative right-click on the noise patch.
    await page.mouse.click(...(await at('#image-stage', 0.74, 0.27)));
    await page.mouse.click(...(await at('#image-stage', 0.87, 0.52)), { button: 'right' });
    await page.waitForFunction(() => { const s = window.demo.image.state(); return s.points.length === 2 && s.shownGen === s.promptGen && s.busy === 0; }, null, WAIT);
    const s = await state('image');
    assert.deepEqual(s.labels, [1, 0]);
    assert.equal(s.scores.length, 3);
    const c = await overlayVsApi({ points: s.points, labels: s.labels });
    assert.deepEqual(c.canvas, c.mask);
    assert.equal(c.differ, 0, `${c.differ} overlay pixels differ from the API's mask for the two clicks`);
    const candidates = await page.locator('#candidates button:not([hidden]) span').allTextContents();
    assert.equal(candidates.length, 3);
    assert.ok(candidates.every((t) => /^\d: \d\.\d{3}/.test(t)), candidates.join(' | '));
    assert.match(await page.textContent('#decode-ms'), /\d/);
    await shot('demo-image.png');

    // N keeps it as an object (exported by the labels test).
    await page.keyboard.press('n');
    assert.equal((await state('image')).objects.length, 1);
  });

  test('everything: the count and the coloured masks equal generateMasks', TEST, async () => {
    await page.click('#tab-everything');
    await page.selectOption('#grid', '4');
    await page.fill('#iou-thresh', '0');
    await page.fill('#stability-thresh', '0');
    await page.click('#run-everything');
    await page.waitForFunction(() => { const s = window.demo.everything.state(); return s.runs === 1 && !s.running; }, null, WAIT);
    const s = await state('everything');
    assert.deepEqual(s.options, { pointsPerSide: 4, predIouThresh: 0, stabilityScoreThresh: 0 });
    const api = await page.evaluate(async (options) => {
      const masks = await window.demo.sam.generateMasks(options);
      const c = document.querySelector('#auto-layer');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let differ = 0;
      for (let i = 0; i < c.width * c.height; i++) differ += (d[4 * i + 3] > 0) !== masks.some((m) => m.mask.data[i] === 1) ? 1 : 0;
      return { count: masks.length, differ };
    }, s.options);
    console.log(`everything: ${s.count} masks in ${Math.round(s.ms)} ms`);
    assert.equal(s.count, api.count);
    assert.match(s.readout, new RegExp(`^${api.count} masks? in `));
    assert.equal(api.differ, 0, `${api.differ} pixels of the coloured layer differ from the union of the masks`);
    await shot('demo-everything.png');
    if (api.count > 0) {
      await page.click('#add-everything');
      assert.equal((await state('image')).objects.length, 1 + api.count);
    }
  });

  test('labels: PNG, COCO JSON, YOLO-seg and a dataset zip parse back', TEST, async () => {
    await page.click('#tab-labels');
    const objects = (await state('image')).objects;
    assert.match(await page.textContent('#labels-summary'), new RegExp(`^${objects.length} object\\(s\\) on image_a.png`));

    const png = await downloadOf('#export-png');
    assert.equal(png.name, 'image_a_masks.png');
    assert.deepEqual([...png.bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.equal(png.bytes.toString('latin1', 12, 16), 'IHDR');
    assert.deepEqual([png.bytes.readUInt32BE(16), png.bytes.readUInt32BE(20)], [317, 269]);

    const coco = await downloadOf('#export-coco');
    assert.equal(coco.name, 'image_a.json');
    const json = JSON.parse(coco.bytes.toString('utf8'));
    assert.deepEqual(json.images, [{ id: 1, file_name: 'image_a.png', width: 317, height: 269 }]);
    assert.equal(json.categories[0].name, 'object');
    assert.equal(json.annotations.length, objects.length);
    json.annotations.forEach((a, i) => {
      assert.equal(a.area, objects[i].area, `annotation ${i + 1}: area`);
      assert.equal(a.bbox.length, 4);
      assert.deepEqual(a.segmentation.size, [269, 317]);
      assert.equal(typeof a.segmentation.counts, 'string');
    });

    await page.fill('#class-id', '3');
    const yolo = await downloadOf('#export-yolo');
    assert.equal(yolo.name, 'image_a.txt');
    const lines = assertYolo(yolo.bytes.toString('utf8'), 3);
    assert.equal(lines.length, objects.filter((o) => o.area > 0).length);

    // Dataset mode: a folder with two images, one of them with a YOLO box label (class 2).
    const dir = mkdtempSync(join(tmpdir(), 'sam2-dataset-'));
    try {
      copyFileSync(join(ROOT, IMAGE_FX, 'image_a.png'), join(dir, 'image_a.png'));
      copyFileSync(join(ROOT, IMAGE_FX, 'image_b.png'), join(dir, 'image_b.png'));
      writeFileSync(join(dir, 'image_a.txt'), '2 0.338 0.357 0.36 0.42\n');
      await page.setInputFiles('#dataset-dir', dir);
      assert.equal(await page.textContent('#dataset-summary'), '2 image(s), 1 with YOLO box labels');
      await page.click('#dataset-run');
      await page.waitForFunction(() => window.demo.labels.state().dataset.ready, null, WAIT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const zip = await downloadOf('#dataset-download');
    assert.equal(zip.name, 'labels.zip');
    const entries = unzip(zip.bytes);
    assert.deepEqual(entries.map((e) => e.name), ['labels/image_a.txt', 'labels/image_b.txt']);
    const a = assertYolo(entries[0].data.toString('utf8'), 2);
    assertYolo(entries[1].data.toString('utf8'), 0);
    assert.ok(a.length <= 1, 'one box, at most one mask');
    console.log(`dataset: ${(await page.locator('#dataset-log li').allTextContents()).join('; ')}`);
    await shot('demo-labels.png');
  });

  test('video: two objects tracked through the frames equal the API', TEST, async () => {
    await page.waitForFunction(() => window.demo?.sam, null, WAIT);
    // On the Video tab first: the image is then not encoded again with the new model.
    await page.click('#tab-video');
    const gen = await page.evaluate(() => window.demo.app.modelGen);
    await page.setInputFiles('#model-file', [join(ROOT, VIDEO_FX, 'model.pt'), join(ROOT, VIDEO_FX, 'config.yaml')]);
    await page.waitForFunction((g) => window.demo.app.modelGen > g, gen, WAIT);
    assert.match(await page.textContent('#model-info'), /^SAM 2 .*video/);
    // Five of the ten fixture frames (the "max. frames" control), to keep the test short.
    await page.fill('#max-frames', String(FRAMES));
    const frames = Array.from({ length: 10 }, (_, i) => join(ROOT, VIDEO_FX, 'video/frames', `${String(i).padStart(5, '0')}.png`));
    await page.setInputFiles('#frames-file', frames);
    await page.waitForFunction((n) => { const s = window.demo.video.state(); return s.frames === n && s.sessionReady; }, FRAMES, WAIT);

    // Object 1: the red disc; N; object 2: the blue square — both on frame 0.
    await page.mouse.click(...(await at('#video-stage', 20 / 160, 38 / 120)));
    await page.keyboard.press('n');
    await page.mouse.click(...(await at('#video-stage', 147 / 160, 84 / 120)));
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.calls.length === 2 && s.busy === 0; }, null, WAIT);
    const calls = (await state('video')).calls;
    assert.deepEqual(calls.map((c) => [c.op, c.frame, c.id, c.labels]), [['addPoints', 0, 1, [1]], ['addPoints', 0, 2, [1]]]);
    for (const [c, [x, y]] of [[calls[0], [20, 38]], [calls[1], [147, 84]]]) {
      assert.ok(Math.abs(c.points[0][0] - x) < 1 && Math.abs(c.points[0][1] - y) < 1, JSON.stringify(c.points));
    }

    await page.click('#track-forward');
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.lastRun && !s.tracking; }, null, WAIT);
    const v = await state('video');
    assert.deepEqual({ frames: v.lastRun.frames, cancelled: v.lastRun.cancelled }, { frames: FRAMES, cancelled: false });
    assert.deepEqual(v.tracked, [...Array(FRAMES).keys()]);
    console.log(`video: ${FRAMES} frames tracked in ${Math.round(v.lastRun.ms)} ms`);

    // The same frames and clicks through the API, in the page.
    const cmp = await page.evaluate(async () => {
      const { sam, video } = window.demo;
      const session = await sam.createVideoSession({ frames: video.frames() });
      const ours = new Map();
      for (const c of video.state().calls) {
        if (c.op === 'addPoints') await session.addPoints(c.frame, c.id, c.points, c.labels);
        if (c.op === 'propagate') await session.propagate({ reverse: c.reverse, start: c.start, onFrame: (r) => ours.set(r.frame, r.objects) });
      }
      await session.dispose();
      const out = { frames: 0, objects: 0, differ: 0, missing: 0, set: 0 };
      for (const [frame, objects] of ours) {
        out.frames += 1;
        const page = video.masks(frame);
        for (const o of objects) {
          const p = page.find((q) => q.id === o.id);
          if (!p) { out.missing += 1; continue; }
          out.objects += 1;
          for (let i = 0; i < o.mask.data.length; i++) {
            out.differ += o.mask.data[i] !== p.mask.data[i] ? 1 : 0;
            out.set += o.mask.data[i];
          }
        }
      }
      return out;
    });
    assert.deepEqual({ frames: cmp.frames, objects: cmp.objects, missing: cmp.missing }, { frames: FRAMES, objects: 2 * FRAMES, missing: 0 });
    assert.ok(cmp.set > 0, 'the tracked masks are not all empty');
    assert.equal(cmp.differ, 0, `${cmp.differ} mask pixels differ from the API's`);

    // Scrub to the last frame: its masks are drawn.
    await page.focus('#frame-range');
    await page.keyboard.press('End');
    assert.equal(await page.textContent('#frame-label'), `frame ${FRAMES} / ${FRAMES}`);
    const drawn = await page.evaluate(() => {
      const c = document.querySelector('#video-overlay');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const masks = window.demo.video.masks(window.demo.video.state().current);
      let differ = 0;
      for (let i = 0; i < c.width * c.height; i++) differ += (d[4 * i + 3] > 0) !== masks.some((m) => m.mask.data[i] === 1) ? 1 : 0;
      return differ;
    });
    assert.equal(drawn, 0, 'the last frame shows its stored masks');
    await shot('demo-video.png');
  });

  test('a narrow window does not scroll sideways, and no request left the origin', TEST, async () => {
    await page.click('#tab-image');
    await page.setViewportSize({ width: 400, height: 800 });
    await page.waitForTimeout(300);
    const widths = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    await shot('demo-narrow.png', { fullPage: true });
    assert.ok(widths[0] <= 400, `the page is ${widths[0]} px wide at 400 px`);
    assert.deepEqual(foreign, [], 'no request leaves the origin');
    assert.ok(server.requests.includes(`/${IMAGE_FX}/model.pt`), 'the model came from the local server');
  });
});
