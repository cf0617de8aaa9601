// The JS client (www/sam2.js) with its module Worker in headless Chromium: parity with the
// reference on WebGPU and on the CPU fallback (Chromium launched without WebGPU), automatic
// masks, video, labels, errors as rejected promises, the weight cache, and device loss.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage } from './harness.mjs';

const TOL = 1e-4;
const VIDEO_TOL = 2e-3;
const CASES = ['point', 'point_multimask', 'box', 'box_point', 'pos_neg_points', 'boxes3', 'refine_round2', 'box_outside', 'b_point_multimask'];

function assertParity(results) {
  for (const [name, r] of Object.entries(results)) {
    console.log(name, JSON.stringify(r));
    assert.ok(r.lowRes <= TOL, `${name}: low-res logits differ by ${r.lowRes}`);
    assert.ok(r.scores <= TOL, `${name}: scores differ by ${r.scores}`);
    assert.ok(r.objectScore <= TOL, `${name}: object score differs by ${r.objectScore}`);
    if (r.maskDiff >= 0) assert.equal(r.maskDiff, 0, `${name}: ${r.maskDiff} mask pixels differ`);
    assert.deepEqual(r.imageData.slice(0, 2), r.maskSize.slice(0, 2));
  }
}

describe('on WebGPU', () => {
  let page, close, requests;
  before(async () => {
    ({ page, close, requests } = await openTestPage('client.html'));
  });
  after(async () => {
    await close?.();
  });

  test('image parity through the worker, then a cached second load', { timeout: 600_000 }, async () => {
    await page.evaluate(() => window.Sam2.cache.clear());
    requests.length = 0;
    const first = await page.evaluate((cases) => window.runParity('sam2.1_hiera_reduced', cases), CASES);
    assert.equal(first.results.point.info.backend, 'webgpu');
    assert.equal(first.results.point.info.version, 'sam2.1');
    assert.equal(first.results.boxes3.numObjects, 3);
    assert.deepEqual(first.stages, ['download', 'verify', 'upload']);
    assert.equal(first.lastDownload.fraction, 1);
    assertParity(first.results);
    const model = '/tests/fixtures/sam2.1_hiera_reduced/model.pt';
    assert.equal(requests.filter((p) => p === model).length, 1);
    // Second load: from the browser cache (verified), no download.
    const second = await page.evaluate(() => window.runParity('sam2_hiera_reduced', ['point_multimask']));
    assertParity(second.results);
    const again = await page.evaluate(() => window.runParity('sam2.1_hiera_reduced', ['point']));
    assert.deepEqual(again.stages, ['cache', 'verify', 'upload']);
    assert.equal(requests.filter((p) => p === model).length, 1, 'the second load downloaded the checkpoint again');
    const listed = await page.evaluate(() => window.Sam2.cache.list());
    assert.equal(listed.length, 2);
  });

  test('automatic masks and video through the worker match the reference', { timeout: 600_000 }, async () => {
    const r = await page.evaluate(() => window.runAmgAndVideo());
    console.log(JSON.stringify({ ...r.video, streamed: r.video.streamed.length }));
    assert.ok(r.amg.expected.length > 0);
    assert.deepEqual(r.amg.ours, r.amg.expected);
    assert.ok(r.amg.masksMatchRle, 'decoded masks do not re-encode to their RLE');
    const v = r.video;
    assert.ok(v.frames >= 10 && v.compared >= 20, `${v.frames} frames, ${v.compared} outputs compared`);
    assert.ok(v.logits <= VIDEO_TOL, `low-res logits differ by ${v.logits}`);
    assert.ok(v.scores <= VIDEO_TOL, `object scores differ by ${v.scores}`);
    // The abort reaches the worker while it tracks the next frame: it stops there.
    assert.ok(v.cancel.seen >= 2 && v.cancel.seen <= 4, `${v.cancel.seen} frames after the abort at 2`);
    assert.equal(v.cancel.frames, v.cancel.seen);
    assert.equal(v.cancel.cancelled, true);
    assert.match(v.afterDispose, /unknown video session/);
  });

  test('label helpers', { timeout: 120_000 }, async () => {
    const r = await page.evaluate(() => window.runLabels());
    assert.deepEqual(r.rle.size, [4, 6]);
    assert.ok(r.roundTrip);
    assert.equal(r.polygons.length, 1);
    assert.equal(r.polygons[0].holes, 0);
    assert.match(r.yolo, /^3( [0-9.]+){6,}$/);
    assert.equal(r.coco.annotations[0].area, 6);
    assert.deepEqual(r.coco.annotations[0].bbox, [1, 1, 3, 2]);
    assert.equal(r.coco.annotations[0].predicted_iou, 0.9);
    assert.match(r.badMask, /mask/);
  });

  test('errors reject with messages and lose nothing', { timeout: 300_000 }, async () => {
    const m = await page.evaluate(() => window.runErrors());
    console.log(JSON.stringify(m));
    assert.match(m.beforeImage, /before set_image/);
    assert.match(m.badPixels, /needs 64 bytes/);
    assert.match(m.notAnImage, /unsupported image/);
    assert.match(m.outside, /outside/);
    assert.match(m.nan, /finite|NaN/i);
    assert.match(m.badBox, /4 numbers/);
    assert.match(m.unknownOption, /unknown option `pointsPerSid`/);
    assert.equal(m.stillWorks, 3);
    assert.match(m.afterDispose, /disposed/);
    assert.match(m.corrupt, /checkpoint/i);
    assert.match(m.missing, /404/);
    assert.match(m.noSource, /needs one of/);
    assert.match(m.unknownPreset, /unknown model/);
    assert.match(m.badBackend, /unknown backend/);
    assert.match(m.frameOutOfRange, /out of range/);
    assert.match(m.unknownObject, /42/);
    assert.match(m.badFrameSize, /4x4|size/);
    assert.match(m.lateFrame, /before its first prompt/);
    assert.match(m.unknownSession, /disposed|unknown video session/);
  });

  test('a lost GPU device rejects calls; a new load recovers', { timeout: 300_000 }, async () => {
    const r = await page.evaluate(() => window.runDeviceLoss());
    console.log(JSON.stringify(r));
    assert.equal(r.destroyed, true);
    assert.match(r.afterLoss, /GPU device was lost|crashed/);
    assert.match(r.later, /GPU device was lost|crashed/);
    assert.equal(r.recovered, 3);
    assert.equal(r.backend, 'webgpu');
  });
});

describe('without WebGPU', () => {
  let page, close;
  before(async () => {
    ({ page, close } = await openTestPage('client.html', { webgpu: false }));
  });
  after(async () => {
    await close?.();
  });

  test('the CPU fallback runs the same API and says so', { timeout: 600_000 }, async () => {
    const r = await page.evaluate(() => window.runParity('sam2.1_hiera_reduced', ['point_multimask', 'box', 'b_point_multimask']));
    const info = r.results.box.info;
    console.log(JSON.stringify(info));
    assert.equal(info.backend, 'cpu');
    assert.ok(info.fallbackReason, 'no reason given for the fallback');
    assertParity(r.results);
    const forced = await page.evaluate(() => window.loadMessage('sam2_hiera_reduced', { backend: 'webgpu' }));
    assert.match(forced, /WebGPU is not available/);
  });

  test('loads from a File and from transferred bytes; a wrong sha256 rejects', { timeout: 300_000 }, async () => {
    const r = await page.evaluate(() => window.runLocalLoads());
    console.log(JSON.stringify(r));
    assert.ok(r.file > 0);
    assert.equal(r.bytes, r.file);
    assert.equal(r.detached, true, 'the bytes were copied, not transferred');
    assert.deepEqual(r.stages, ['read', 'upload']);
    assert.equal(r.backend, 'cpu');
    assert.match(r.wrongSha, /checksum mismatch/);
  });

  test('segment-everything reports progress and stops on abort; a load and a propagation stop on abort', { timeout: 300_000 }, async () => {
    const r = await page.evaluate(() => window.runAborts());
    console.log(JSON.stringify({ ...r, progress: r.progress.length }));
    // 4 × 4 grid points in batches of 4: 4 reports, counting up, one crop.
    assert.deepEqual(r.progress, [1, 2, 3, 4].map((done) => ({ done, total: 4, crop: 0, crops: 1 })));
    assert.ok(r.count > 0 && r.samePlain, 'progress changes nothing in the result');
    // The abort (sent at batch 1) reaches the worker during the next batch at the latest.
    assert.ok(r.stopped.length <= 2 && r.stopped[0] === 1, `batches reported: ${r.stopped}`);
    assert.equal(r.aborted.name, 'AbortError');
    assert.equal(r.before, 'AbortError');
    assert.ok(r.sameAfter, 'the model works as before after an aborted run');
    assert.equal(r.load1.name, 'AbortError');
    assert.match(r.load1.message, /aborted/);
    assert.equal(r.load2, 'AbortError');
    assert.equal(r.propagate.cancelled, true);
    assert.ok(r.propagate.seen >= 2 && r.propagate.seen <= 3 && r.propagate.frames > 4, `${r.propagate.seen} of ${r.propagate.frames} frames after an abort at 2`);
  });
});
