// The wasm build in headless Chromium on WebGPU reproduces the reference within the native
// tolerance (run by ./build.sh test after the wasm package is built into www/pkg).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage } from './harness.mjs';

const TOL = 1e-4;
let page, close;

before(async () => {
  ({ page, close } = await openTestPage('parity.html'));
});

after(async () => {
  await close?.();
});

for (const [fixture, caseName] of [['sam2.1_hiera_reduced', 'point'], ['sam2.1_hiera_reduced', 'box'], ['sam2_hiera_reduced', 'point_multimask']]) {
  test(`${fixture}/${caseName} on WebGPU matches the reference`, { timeout: 300_000 }, async () => {
    const r = await page.evaluate(([f, c]) => window.runParity(f, c), [fixture, caseName]);
    console.log(JSON.stringify(r));
    assert.equal(r.info.backend, 'webgpu');
    assert.ok(r.lowRes <= TOL, `low-res logits differ by ${r.lowRes}`);
    assert.ok(r.scores <= TOL, `scores differ by ${r.scores}`);
    assert.ok(r.objectScore <= TOL, `object score differs by ${r.objectScore}`);
  });
}

test('a corrupt checkpoint rejects with a message', async () => {
  const message = await page.evaluate(() => window.loadGarbage());
  assert.match(message, /checkpoint/i);
});
