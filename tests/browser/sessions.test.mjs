// Automatic masks and video tracking through the wasm build in headless Chromium on WebGPU,
// against the reference fixtures (run by ./build.sh test after the wasm package is built).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage } from './harness.mjs';

const VIDEO_TOL = 2e-3;
let page, close;

before(async () => {
  ({ page, close } = await openTestPage('sessions.html'));
});

after(async () => {
  await close?.();
});

test('automatic masks on WebGPU equal the reference COCO RLE', { timeout: 300_000 }, async () => {
  const r = await page.evaluate(() => window.runAmg('sam2.1_hiera_reduced', 'single_mask'));
  assert.ok(r.expected.length > 0);
  assert.deepEqual(r.ours.map((x) => x.counts), r.expected.map((x) => x.counts));
  assert.deepEqual(r.ours.map((x) => [x.size, x.area, x.bbox]), r.expected.map((x) => [x.size, x.area, x.bbox]));
});

test('video two_objects on WebGPU matches the reference', { timeout: 300_000 }, async () => {
  const d = await page.evaluate(() => window.runVideo('sam2_hiera_reduced', 'two_objects'));
  console.log(JSON.stringify(d));
  assert.ok(d.frames >= 10, `propagation visited ${d.frames} frames`);
  assert.ok(d.compared >= 20, `only ${d.compared} outputs compared`);
  assert.ok(d.logits <= VIDEO_TOL, `low-res logits differ by ${d.logits}`);
  assert.ok(d.scores <= VIDEO_TOL, `object scores differ by ${d.scores}`);
});

test('bad calls reject with messages', { timeout: 120_000 }, async () => {
  const m = await page.evaluate(() => window.runErrors('sam2_hiera_reduced'));
  console.log(JSON.stringify(m));
  assert.match(m.frameOutOfRange, /out of range/);
  assert.match(m.unknownObject, /42/);
  assert.match(m.badFrameSize, /4x4|size/);
  assert.match(m.lateFrame, /before its first prompt/);
  assert.match(m.unknownOption, /unknown option `pointsPerSid`/);
});
