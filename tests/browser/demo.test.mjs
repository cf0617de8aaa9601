// The demo page (www/index.html) in headless Chromium on WebGPU (SwiftShader), used as a person
// would: a fixture model preloaded by query parameters, an image opened with the file input,
// hover and clicks (the overlay must equal, pixel for pixel, the mask the API returns for the
// same prompt), segment-everything, the three label exports and a dataset run parsed back in
// Node, a video tracked with two objects (the page's masks against the API's), a narrow window,
// and no request leaving the origin. Screenshots go to target-test-artifacts/demo-*.png.
//
// SwiftShader is slow (the first encode and decode compile shaders for tens of seconds), so one
// page and one model serve the image, everything and labels tests; the video test loads the
// video fixture's model through the page's file input. A second page runs in a Chromium without
// WebGPU (the CPU fallback, fast) with Chromium's fake camera: camera snapshot, paste, stopping
// segment-everything, a WebM video file recorded in the page, live camera tracking, and
// cancelling a model download.
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
let foreign = [];
/** The WebM recorded by the CPU page's video test (base64), dropped again by the drop test. */
let recorded = null;

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

/** In the page: the #overlay canvas against the API's mask for `prompt` (its best one, or `index`). */
function overlayVsApi(prompt, index) {
  return page.evaluate(async ({ points, labels, box, index }) => {
    const p = await window.demo.sam.predict({ points, labels, box: box ?? undefined, multimask: true });
    const m = p.masks[index ?? p.bestIndex];
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
  }, { ...prompt, index });
}

/** Waits until the image view has shown the result of its latest prompts. */
const imageIdle = (points) => page.waitForFunction((n) => { const s = window.demo.image.state(); return s.points.length === n && s.shownGen === s.promptGen && s.busy === 0; }, points, WAIT);

/** Collects the requests of `page` that leave `server`'s origin into `foreign`. */
function watch(p, origin) {
  p.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
  });
  p.on('console', (m) => console.log(`[page] ${m.text()}`));
  p.on('pageerror', (e) => console.log(`[page error] ${e.message}`));
}

/**
 * Replays the video view's calls through the API on its frames, in the page: how many frames and
 * objects came back, how many of the page's masks are missing, and how many pixels differ.
 */
function videoVsApi() {
  return page.evaluate(async () => {
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
}

/**
 * Pixels of the video view's overlay whose colour (alpha > 0) disagrees with the union of the
 * masks it should show: those stored for the current frame (`'offline'`) or the latest live
 * frame's (`'live'`), read in one task of the page so that the live loop cannot draw in between.
 */
function overlayVsMasks(which) {
  return page.evaluate((which) => {
    const c = document.querySelector('#video-overlay');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const { video, live } = window.demo;
    const masks = which === 'live' ? live.result().objects.map((o) => o.mask) : video.masks(video.state().current).map((o) => o.mask);
    let differ = 0;
    for (let i = 0; i < c.width * c.height; i++) differ += (d[4 * i + 3] > 0) !== masks.some((m) => m.data[i] === 1) ? 1 : 0;
    return { differ, set: masks.reduce((a, m) => a + m.data.reduce((x, y) => x + y, 0), 0), size: [c.width, c.height] };
  }, which);
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

/**
 * The dataset mode on a temporary folder holding the fixture `images` and the label files
 * `labels` ({name: text}), chosen through `input` ('#dataset-dir': the folder; '#dataset-files':
 * its files): checks the summary line, runs it, and resolves to the zip it offers ({name, bytes}).
 */
async function runDataset(input, images, labels, summary) {
  const dir = mkdtempSync(join(tmpdir(), 'sam2-dataset-'));
  try {
    for (const name of images) copyFileSync(join(ROOT, IMAGE_FX, name), join(dir, name));
    for (const [name, text] of Object.entries(labels)) writeFileSync(join(dir, name), text);
    await page.setInputFiles(input, input === '#dataset-dir' ? dir : [...images, ...Object.keys(labels)].map((n) => join(dir, n)));
    assert.equal(await page.textContent('#dataset-summary'), summary);
    await page.click('#dataset-run');
    await page.waitForFunction(() => window.demo.labels.state().dataset.ready, null, WAIT);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return downloadOf('#dataset-download');
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
    foreign = [];
    watch(page, server.url);
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

    // Hover across the image to the disc: the live mask follows the mouse, decoding only the
    // latest position when the previous decode returns (fewer decodes than moves).
    await page.mouse.move(...(await at('#image-stage', 0.9, 0.9)));
    await page.mouse.move(...(await at('#image-stage', 0.33, 0.36)), { steps: 12 });
    await page.waitForFunction(() => { const s = window.demo.image.state(); return s.hover && !s.hoverBusy; }, null, WAIT);
    const { hover, hoverMoves, hoverDecodes } = await state('image');
    console.log(`hover: ${hoverMoves} moves, ${hoverDecodes} decodes`);
    assert.ok(hoverMoves >= 12 && hoverDecodes >= 1 && hoverDecodes < hoverMoves, `${hoverDecodes} decodes for ${hoverMoves} moves`);
    assert.ok(Math.abs(hover.x - 0.33 * 317) < 1.5 && Math.abs(hover.y - 0.36 * 269) < 1.5, `hover at ${JSON.stringify(hover)}`);
    const h = await overlayVsApi({ points: [[hover.x, hover.y]], labels: [1] });
    assert.deepEqual(h.canvas, h.mask);
    assert.ok(h.set > 0, 'the hover mask is not empty');
    assert.equal(h.differ, 0, `${h.differ} overlay pixels differ from the API's hover mask`);

    // A positive click on the square, a negative right-click on the noise patch.
    await page.mouse.click(...(await at('#image-stage', 0.74, 0.27)));
    await page.mouse.click(...(await at('#image-stage', 0.87, 0.52)), { button: 'right' });
    await imageIdle(2);
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

    // Another candidate, picked with the mouse: the overlay shows that one.
    const other = (s.bestIndex + 1) % 3;
    await page.click(`#candidates button:nth-child(${other + 1})`);
    assert.equal((await state('image')).pick, other);
    assert.equal(await page.getAttribute(`#candidates button:nth-child(${other + 1})`, 'aria-pressed'), 'true');
    const picked = await overlayVsApi({ points: s.points, labels: s.labels }, other);
    assert.equal(picked.differ, 0, `${picked.differ} overlay pixels differ from the API's candidate ${other + 1}`);

    // Ctrl+Z takes the negative click back: the mask of the first click alone.
    await page.keyboard.press('Control+z');
    await imageIdle(1);
    const u = await state('image');
    assert.deepEqual(u.labels, [1]);
    const undone = await overlayVsApi({ points: u.points, labels: u.labels });
    assert.equal(undone.differ, 0, `${undone.differ} overlay pixels differ after undo`);

    // Esc clears; a drag draws a box, decoded as a box prompt.
    await page.keyboard.press('Escape');
    await imageIdle(0);
    await page.mouse.move(...(await at('#image-stage', 0.6, 0.1)));
    await page.mouse.down();
    await page.mouse.move(...(await at('#image-stage', 0.75, 0.3)), { steps: 4 });
    await page.mouse.move(...(await at('#image-stage', 0.9, 0.45)), { steps: 4 });
    await page.mouse.up();
    await page.waitForFunction(() => { const s = window.demo.image.state(); return s.box && s.shownGen === s.promptGen && s.busy === 0; }, null, WAIT);
    const b = await state('image');
    const want = [0.6 * 317, 0.1 * 269, 0.9 * 317, 0.45 * 269];
    assert.ok(b.box.every((v, i) => Math.abs(v - want[i]) < 1.5), `box ${b.box} for ${want}`);
    assert.deepEqual(b.points, []);
    const boxed = await overlayVsApi({ points: [], labels: [], box: b.box });
    assert.ok(boxed.set > 0, 'the box mask is not empty');
    assert.equal(boxed.differ, 0, `${boxed.differ} overlay pixels differ from the API's box mask`);
    await shot('demo-image-box.png');

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
    // 16 points: one batch (of Meta's default 64), on one crop.
    assert.deepEqual(s.progress, { done: 1, total: 1, crop: 0, crops: 1 });
    assert.equal(await page.getAttribute('#everything-progress', 'value'), '1');
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
    const zip = await runDataset('#dataset-dir', ['image_a.png', 'image_b.png'], { 'image_a.txt': '2 0.338 0.357 0.36 0.42\n' }, '2 image(s), 1 with YOLO box labels');
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
    const cmp = await videoVsApi();
    assert.deepEqual({ frames: cmp.frames, objects: cmp.objects, missing: cmp.missing }, { frames: FRAMES, objects: 2 * FRAMES, missing: 0 });
    assert.ok(cmp.set > 0, 'the tracked masks are not all empty');
    assert.equal(cmp.differ, 0, `${cmp.differ} mask pixels differ from the API's`);

    // Scrub to the last frame: its masks are drawn.
    await page.focus('#frame-range');
    await page.keyboard.press('End');
    assert.equal(await page.textContent('#frame-label'), `frame ${FRAMES} / ${FRAMES}`);
    const drawn = await overlayVsMasks('offline');
    assert.equal(drawn.differ, 0, 'the last frame shows its stored masks');
    await shot('demo-video.png');
  });

  test('a narrow window does not scroll sideways, and no request left the origin', TEST, async () => {
    await page.click('#tab-image');
    // Back on the image: it is encoded again with the video test's model.
    await page.waitForFunction(() => window.demo.image.state().encoded, null, WAIT);
    assert.match(await page.textContent('#status'), /^Ready/);
    await page.setViewportSize({ width: 400, height: 800 });
    await page.waitForTimeout(300);
    const widths = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    await shot('demo-narrow.png', { fullPage: true });
    assert.ok(widths[0] <= 400, `the page is ${widths[0]} px wide at 400 px`);
    assert.deepEqual(foreign, [], 'no request leaves the origin');
    assert.ok(server.requests.includes(`/${IMAGE_FX}/model.pt`), 'the model came from the local server');
  });
});

describe('demo page without WebGPU, with a camera', () => {
  before(async () => {
    server = await serve();
    browser = await launch({ webgpu: false, camera: true });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    foreign = [];
    watch(page, server.url);
    await page.goto(`${server.url}/www/index.html?model=/${VIDEO_FX}/model.pt&config=/${VIDEO_FX}/config.yaml`);
    await page.waitForFunction(() => window.demo?.sam, null, WAIT);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('the CPU fallback is shown; camera snapshot, paste, and stopping segment-everything', TEST, async () => {
    assert.match(await page.textContent('#backend-badge'), /^CPU \([^:]+\)$/);
    assert.match(await page.getAttribute('#backend-badge', 'title'), /WebGPU is not used: .+/);
    // The camera: a first press shows it, a second takes the picture as the image.
    await page.click('#camera-snap');
    await page.waitForFunction(() => document.querySelector('#camera-snap').textContent === 'Take snapshot', null, WAIT);
    assert.equal(await page.isVisible('#camera-preview'), true);
    await page.click('#camera-snap');
    await page.waitForFunction(() => { const s = window.demo.image.state(); return /^camera-/.test(s.name) && s.encoded; }, null, WAIT);
    const cam = await state('image');
    assert.ok(cam.width >= 320 && cam.height >= 240, `camera picture ${cam.width}×${cam.height}`);
    assert.equal(await page.isVisible('#camera-preview'), false, 'the camera is off after the snapshot');
    await page.mouse.click(...(await at('#image-stage', 0.5, 0.5)));
    await imageIdle(1);
    const c = await overlayVsApi({ points: (await state('image')).points, labels: [1] });
    assert.deepEqual(c.canvas, c.mask);
    assert.equal(c.differ, 0, `${c.differ} overlay pixels differ from the API's mask on the camera picture`);
    await shot('demo-cpu-camera.png');
    // Keys: 2 shows the second candidate; H turns live hover off and on.
    await page.keyboard.press('2');
    assert.equal((await state('image')).pick, 1);
    const second = await overlayVsApi({ points: (await state('image')).points, labels: [1] }, 1);
    assert.equal(second.differ, 0, `${second.differ} overlay pixels differ from the API's second candidate`);
    await page.keyboard.press('h');
    assert.equal(await page.isChecked('#live-hover'), false);
    await page.keyboard.press('h');
    assert.equal(await page.isChecked('#live-hover'), true);

    // Paste (Ctrl+V) of an image file: it becomes the image.
    await page.evaluate(async (url) => {
      const blob = await (await fetch(url)).blob();
      const data = new DataTransfer();
      data.items.add(new File([blob], 'clipboard.png', { type: 'image/png' }));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, `/${IMAGE_FX}/image_b.png`);
    await page.waitForFunction(() => { const s = window.demo.image.state(); return s.name === 'pasted.png' && s.encoded; }, null, WAIT);
    assert.deepEqual([(await state('image')).width, (await state('image')).height], [97, 131]);

    // Segment everything on a 32 × 32 grid (16 batches), stopped after the first batch.
    await page.click('#tab-everything');
    await page.selectOption('#grid', '32');
    await page.click('#run-everything');
    await page.waitForFunction(() => window.demo.everything.state().progress?.done >= 1, null, WAIT);
    await page.click('#stop-everything');
    await page.waitForFunction(() => !window.demo.everything.state().running, null, WAIT);
    const stopped = await state('everything');
    assert.deepEqual({ stopped: stopped.stopped, runs: stopped.runs, readout: stopped.readout }, { stopped: 1, runs: 0, readout: 'stopped' });
    assert.equal(stopped.progress.total, 16);
    assert.ok(stopped.progress.done < 16, `stopped after ${stopped.progress.done} of 16 batches`);
    // The model answers as before: a full run on a 4 × 4 grid, started with the E key.
    await page.selectOption('#grid', '4');
    await page.focus('#tab-everything');
    await page.keyboard.press('e');
    await page.waitForFunction(() => window.demo.everything.state().runs === 1, null, WAIT);
    assert.deepEqual((await state('everything')).progress, { done: 1, total: 1, crop: 0, crops: 1 });
  });

  test('a WebM video file is decoded into frames, tracked, corrected and tracked backward like the API', TEST, async () => {
    await page.click('#tab-video');
    // A WebM (VP8) of the ten fixture frames, recorded in the page with MediaRecorder at 10 fps.
    const urls = Array.from({ length: 10 }, (_, i) => `/${VIDEO_FX}/video/frames/${String(i).padStart(5, '0')}.png`);
    const webm = await page.evaluate(async (urls) => {
      const images = await Promise.all(urls.map(async (u) => createImageBitmap(await (await fetch(u)).blob())));
      const canvas = Object.assign(document.createElement('canvas'), { width: images[0].width, height: images[0].height });
      const ctx = canvas.getContext('2d');
      ctx.drawImage(images[0], 0, 0);
      const stream = canvas.captureStream(0);
      const recorder = new MediaRecorder(stream, { mimeType: 'video/webm;codecs=vp8', videoBitsPerSecond: 4e6 });
      const chunks = [];
      recorder.ondataavailable = (e) => chunks.push(e.data);
      const stopped = new Promise((r) => { recorder.onstop = r; });
      recorder.start();
      for (const image of images) {
        ctx.drawImage(image, 0, 0);
        stream.getVideoTracks()[0].requestFrame();
        await new Promise((r) => setTimeout(r, 100));
      }
      recorder.stop();
      await stopped;
      const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
      let s = '';
      for (const b of bytes) s += String.fromCharCode(b);
      return btoa(s);
    }, urls);
    await page.fill('#sample-fps', '10');
    await page.fill('#max-frames', '4');
    recorded = webm;
    await page.setInputFiles('#video-file', { name: 'clip.webm', mimeType: 'video/webm', buffer: Buffer.from(webm, 'base64') });
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.frames === 4 && s.sessionReady; }, null, WAIT);
    const v0 = await state('video');
    assert.deepEqual([v0.width, v0.height], [160, 120]);
    // The first decoded frame is the first fixture frame (up to VP8's loss).
    const err = await page.evaluate(async (url) => {
      const png = await window.demo.toPixels(await (await fetch(url)).blob());
      const f = window.demo.video.frames()[0];
      let sum = 0, n = 0;
      for (let i = 0; i < png.data.length; i++) if (i % 4 !== 3) { sum += Math.abs(png.data[i] - f.data[i]); n += 1; }
      return sum / n;
    }, urls[0]);
    console.log(`webm: ${webm.length * 0.75 | 0} bytes; frame 0 differs from its PNG by ${err.toFixed(2)} per channel`);
    assert.ok(err < 12, `frame 0 differs from the PNG by ${err} on average`);

    await page.mouse.click(...(await at('#video-stage', 20 / 160, 38 / 120)));
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.calls.length === 1 && s.busy === 0; }, null, WAIT);
    await page.keyboard.press('f');
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.lastRun && !s.tracking; }, null, WAIT);
    assert.deepEqual((await state('video')).tracked, [0, 1, 2, 3]);

    // A correction on frame 3 (a negative click), then tracking backward from there.
    await page.focus('#frame-range');
    await page.keyboard.press('End');
    await page.mouse.click(...(await at('#video-stage', 0.5, 0.5)), { button: 'right' });
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.calls.length === 3 && s.busy === 0; }, null, WAIT);
    await page.check('#track-from-current');
    await page.click('#track-backward');
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.lastRun?.reverse && !s.tracking; }, null, WAIT);
    const back = await state('video');
    assert.deepEqual(back.calls.map((c) => [c.op, c.frame ?? c.start, c.labels ?? c.reverse]), [['addPoints', 0, [1]], ['propagate', undefined, false], ['addPoints', 3, [0]], ['propagate', 3, true]]);
    assert.equal(back.lastRun.frames, 4);
    const cmp = await videoVsApi();
    assert.deepEqual({ frames: cmp.frames, objects: cmp.objects, missing: cmp.missing }, { frames: 4, objects: 4, missing: 0 });
    assert.equal(cmp.differ, 0, `${cmp.differ} mask pixels differ from the API's`);
    const drawn = await overlayVsMasks('offline');
    assert.equal(drawn.differ, 0, 'the frame on screen shows its stored masks');
    await shot('demo-cpu-video-file.png');
    // Play runs through the frames with their masks; a second press pauses.
    const from = (await state('video')).current;
    await page.click('#play');
    assert.equal(await page.textContent('#play'), 'Pause');
    await page.waitForFunction((f) => window.demo.video.state().current !== f, from, WAIT);
    await page.click('#play');
    assert.equal(await page.textContent('#play'), 'Play');
    const paused = (await state('video')).current;
    await page.waitForTimeout(400);
    assert.equal((await state('video')).current, paused, 'paused');
    assert.equal((await overlayVsMasks('offline')).differ, 0, 'the frame played to shows its masks');
  });

  test('live camera tracking: a click adds an object, tracked frame after frame with an FPS readout', TEST, async () => {
    await page.click('#live-start');
    await page.waitForFunction(() => { const s = window.demo.live.state(); return s.running && s.frame >= 1; }, null, WAIT);
    const s0 = await page.evaluate(() => window.demo.live.state());
    assert.ok(s0.width >= 320 && s0.height >= 240, `camera ${s0.width}×${s0.height}`);
    assert.equal(await page.isVisible('#live-panel'), true);
    assert.equal(await page.isVisible('#track-forward'), false, 'the offline controls are hidden in live mode');
    await page.mouse.click(...(await at('#video-stage', 0.5, 0.5)));
    await page.waitForFunction(() => { const s = window.demo.live.state(); return s.prompted.length === 1 && s.frame >= s.prompted[0].frame + 3; }, null, WAIT);
    const s = await page.evaluate(() => window.demo.live.state());
    assert.deepEqual(s.objects, [1]);
    assert.deepEqual(s.last.objects.map((o) => o.id), [1], 'the object is tracked on the latest frame');
    assert.ok(s.fps > 0, `fps ${s.fps}`);
    assert.match(await page.textContent('#fps'), /^\d+\.\d$/);
    const drawn = await overlayVsMasks('live');
    assert.deepEqual(drawn.size, [s.width, s.height]);
    assert.equal(drawn.differ, 0, 'the overlay shows the latest frame\'s masks');
    console.log(`live: ${s.frame + 1} frames of ${s.width}×${s.height} at ${s.fps.toFixed(1)} FPS; object 1 prompted on frame ${s.prompted[0].frame}, ${s.last.objects[0].area} px on frame ${s.last.frame}`);
    await shot('demo-cpu-live.png');
    await page.click('#live-stop');
    await page.waitForFunction(() => { const s = window.demo.live.state(); return !s.running && !s.camera && !s.session; }, null, WAIT);
    assert.equal(await page.textContent('#status'), 'Live tracking stopped.');
    assert.equal(await page.isVisible('#track-forward'), true);
  });

  test('a model download can be cancelled, keeping the loaded model; no request left the origin', TEST, async () => {
    const before = await page.evaluate(() => ({ gen: window.demo.app.modelGen, info: window.demo.sam.info }));
    await page.fill('#model-url', `/${IMAGE_FX}/model.pt?stall`);
    await page.click('#load-url');
    await page.waitForFunction(() => /^Downloading/.test(document.querySelector('#model-stage').textContent), null, WAIT);
    await page.click('#model-cancel');
    await page.waitForFunction(() => /cancelled/.test(document.querySelector('#status').textContent), null, WAIT);
    assert.match(await page.textContent('#status'), /previous model stays loaded/);
    assert.equal(await page.isVisible('#model-progress-row'), false);
    const after = await page.evaluate(() => ({ gen: window.demo.app.modelGen, info: window.demo.sam.info }));
    assert.deepEqual(after, before);
    assert.ok(await page.isEnabled('#load-url'), 'the load buttons work again');
    assert.deepEqual(foreign, [], 'no request leaves the origin');
  });

  test('files dropped on the page: a video, an image, a checkpoint with its YAML; a dataset of chosen files', TEST, async () => {
    /** Drops files (fetched from URLs, or a base64 `data:` URL) on `target`, as a drag from the desktop does. */
    const drop = (target, files) => page.evaluate(async ({ target, files }) => {
      const data = new DataTransfer();
      for (const [url, name, type] of files) data.items.add(new File([await (await fetch(url)).blob()], name, { type }));
      document.querySelector(target).dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, { target, files });
    assert.ok(recorded, 'the video test recorded a WebM');
    await page.click('#tab-labels');
    await drop('#image-stage', [[`data:video/webm;base64,${recorded}`, 'dropped.webm', 'video/webm']]);
    await page.waitForFunction(() => { const s = window.demo.video.state(); return s.frames === 4 && s.sessionReady && s.calls.length === 0; }, null, WAIT);
    assert.equal(await page.getAttribute('#tab-video', 'aria-selected'), 'true', 'a dropped video shows the Video view');
    await drop('#video-stage', [[`/${IMAGE_FX}/image_a.png`, 'dropped.png', 'image/png']]);
    await page.waitForFunction(() => { const s = window.demo.image.state(); return s.name === 'dropped.png' && s.encoded; }, null, WAIT);
    assert.equal(await page.getAttribute('#tab-image', 'aria-selected'), 'true', 'a dropped image shows the Image view');
    const gen = await page.evaluate(() => window.demo.app.modelGen);
    await drop('#model-drop', [[`/${IMAGE_FX}/model.pt`, 'model.pt', ''], [`/${IMAGE_FX}/config.yaml`, 'config.yaml', '']]);
    await page.waitForFunction((g) => window.demo.app.modelGen > g, gen, WAIT);
    assert.match(await page.textContent('#model-info'), /^SAM 2\.1 .* model\.pt, loaded in/);
    // The open image is encoded again with the new model.
    await page.waitForFunction(() => window.demo.image.state().encoded, null, WAIT);

    // Dataset mode from chosen files (not a folder): an image and its YOLO box label.
    await page.click('#tab-labels');
    const zip = await runDataset('#dataset-files', ['image_b.png'], { 'image_b.txt': '1 0.5 0.5 0.6 0.6\n' }, '1 image(s), 1 with YOLO box labels');
    const entries = unzip(zip.bytes);
    assert.deepEqual(entries.map((e) => e.name), ['labels/image_b.txt']);
    assert.ok(assertYolo(entries[0].data.toString('utf8'), 1).length <= 1, 'one box, at most one mask');
    assert.deepEqual(foreign, [], 'no request leaves the origin');
  });
});
