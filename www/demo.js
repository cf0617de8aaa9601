// Minimal demo over the wasm API: load a checkpoint, set an image, click to segment.
import init, { Sam2Model } from './pkg/sam2_webgpu.js';

const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };
const canvas = $('canvas');
const overlay = $('overlay');
let model = null;
let image = null;
let points = [];

async function loadModel(files) {
  const yaml = files.find((f) => /\.ya?ml$/i.test(f.name));
  const file = files.find((f) => f !== yaml);
  if (!file) throw new Error('choose a .pt or .safetensors checkpoint');
  status(`Loading ${file.name} (${(file.size / 1e6).toFixed(1)} MB)…`);
  const t0 = performance.now();
  await init();
  model?.free();
  model = await Sam2Model.load(new Uint8Array(await file.arrayBuffer()), yaml ? await yaml.text() : undefined);
  const info = JSON.parse(model.info());
  status(`Loaded ${info.version} ${info.size} (${info.parameters.toLocaleString()} parameters) on ${info.backend} in ${((performance.now() - t0) / 1000).toFixed(1)} s. Choose an image.`);
  $('image').disabled = false;
}

async function setImage(file) {
  const bitmap = await createImageBitmap(file);
  canvas.width = overlay.width = bitmap.width;
  canvas.height = overlay.height = bitmap.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  image = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  const t0 = performance.now();
  await model.setImage(image.data, image.width, image.height);
  points = [];
  overlay.getContext('2d').clearRect(0, 0, overlay.width, overlay.height);
  status(`Image ${image.width}×${image.height} queued for encoding (${(performance.now() - t0).toFixed(0)} ms). Click on it.`);
  $('clear').disabled = false;
}

function draw(result) {
  const ctx = overlay.getContext('2d');
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (result) {
    let best = 0;
    for (let i = 1; i < result.numMasks; i++) if (result.scores[i] > result.scores[best]) best = i;
    const n = result.width * result.height;
    const pixels = new ImageData(result.width, result.height);
    for (let i = 0; i < n; i++) {
      if (result.masks[best * n + i]) pixels.data.set([30, 144, 255, 140], 4 * i);
    }
    ctx.putImageData(pixels, 0, 0);
  }
  for (const p of points) {
    ctx.fillStyle = p.label ? '#2ecc40' : '#ff4136';
    ctx.beginPath();
    ctx.arc(p.x, p.y, Math.max(4, overlay.width / 150), 0, 2 * Math.PI);
    ctx.fill();
  }
}

async function predict() {
  if (!points.length) { draw(null); return; }
  const t0 = performance.now();
  const result = await model.predict(
    new Float32Array(points.flatMap((p) => [p.x, p.y])),
    new Int32Array(points.map((p) => p.label)),
    undefined, undefined, $('multimask').checked,
  );
  draw(result);
  status(`${points.length} point(s): ${result.numMasks} mask(s), scores ${Array.from(result.scores, (s) => s.toFixed(3)).join(', ')} — ${(performance.now() - t0).toFixed(0)} ms`);
}

function click(event, label) {
  if (!model || !image) return;
  event.preventDefault();
  const r = canvas.getBoundingClientRect();
  points.push({ x: (event.clientX - r.left) * canvas.width / r.width, y: (event.clientY - r.top) * canvas.height / r.height, label });
  predict().catch((e) => status(`Error: ${e.message ?? e}`));
}

$('ckpt').addEventListener('change', (e) => e.target.files.length && loadModel([...e.target.files]).catch((err) => status(`Error: ${err.message ?? err}`)));
$('image').addEventListener('change', (e) => e.target.files[0] && setImage(e.target.files[0]).catch((err) => status(`Error: ${err.message ?? err}`)));
canvas.addEventListener('click', (e) => click(e, e.altKey ? 0 : 1));
canvas.addEventListener('contextmenu', (e) => click(e, 0));
$('clear').addEventListener('click', () => { points = []; draw(null); status('Points cleared.'); });
$('multimask').addEventListener('change', () => predict().catch((e) => status(`Error: ${e.message ?? e}`)));
