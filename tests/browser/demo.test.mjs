// The demo page served by `./build.sh serve`: load a fixture checkpoint with its YAML, open an
// image, click, and get a mask — in headless Chromium on WebGPU, with no request leaving the origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { serve, launch, ROOT } from './harness.mjs';

test('demo page segments a clicked point', { timeout: 300_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const foreign = [];
    page.on('request', (r) => { if (!r.url().startsWith(server.url) && !r.url().startsWith('blob:')) foreign.push(r.url()); });
    await page.goto(`${server.url}/www/index.html`);
    const fx = join(ROOT, 'tests/fixtures/sam2.1_hiera_reduced');
    await page.setInputFiles('#ckpt', [join(fx, 'model.pt'), join(fx, 'config.yaml')]);
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Loaded'), null, { timeout: 120_000 });
    await page.setInputFiles('#image', join(fx, 'image_a.png'));
    // set_image compiles the encoder's shaders on first use: tens of seconds on SwiftShader.
    await page.waitForFunction(() => document.querySelector('#status').textContent.includes('Click'), null, { timeout: 120_000 });
    const box = await page.locator('#canvas').boundingBox();
    await page.mouse.click(box.x + box.width * 0.47, box.y + box.height * 0.45);
    await page.waitForFunction(() => /mask\(s\)|Error/.test(document.querySelector('#status').textContent), null, { timeout: 120_000 });
    const text = await page.textContent('#status');
    assert.match(text, /1 point\(s\): 1 mask\(s\), scores/);
    const covered = await page.evaluate(() => {
      const o = document.querySelector('#overlay');
      const d = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) n += d[i] > 0 ? 1 : 0;
      return n;
    });
    assert.ok(covered > 0, 'the overlay shows a mask');
    const shots = join(ROOT, 'target-test-artifacts');
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'demo.png') });
    assert.deepEqual(foreign, [], 'no request leaves the origin');
  } finally {
    await browser.close();
    await server.close();
  }
});
