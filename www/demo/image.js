// The Image view: live segmentation under the mouse, clicked points (left positive, right or
// Alt negative), dragged boxes, the three candidate masks, undo/clear, and the kept objects.
import { toPixels } from '../sam2.js';
import { $, app, fmtMs } from './app.js';
import { area, colorOf, css, drawMarks, drawMask, drawPixels, fit, paintMasks, resize, thumbnail, toImage } from './draw.js';

const HOVER_RGB = [30, 144, 255];
const DRAG_PX = 6;

const st = {
  name: null, width: 0, height: 0, pixels: null, token: null,
  prompts: { points: [], labels: [], box: null },
  undo: [], result: null, pick: 0,
  promptGen: 0, shownGen: 0, busy: 0,
  hover: { pending: null, busy: false, frame: 0, left: false, last: null, moves: 0, decodes: 0 },
  objects: [], nextId: 1, down: null, drag: null,
};

const stage = () => $('#image-stage');
const hasPrompts = () => st.prompts.points.length > 0 || st.prompts.box !== null;
const copyPrompts = (p) => ({ points: p.points.map((q) => [...q]), labels: [...p.labels], box: p.box && [...p.box] });
const activeColor = () => colorOf(st.nextId - 1);

/** Opens an image (File, Blob, canvas, video, ImageData…): shows it and encodes it. */
export async function openImage(input, name = 'image') {
  const px = await toPixels(input);
  Object.assign(st, { name, width: px.width, height: px.height, pixels: px, token: { name }, result: null, objects: [], undo: [], nextId: 1 });
  st.prompts = { points: [], labels: [], box: null };
  st.hover.last = null;
  st.shownGen = ++st.promptGen;
  drawPixels($('#image-canvas'), px);
  for (const c of ['#objects-layer', '#overlay', '#auto-layer']) resize($(c), px.width, px.height);
  stage().classList.remove('empty');
  $('#image-name').textContent = `${name} · ${px.width}×${px.height}`;
  refit();
  showResult();
  renderObjects();
  app.emit('image', { name, width: px.width, height: px.height });
  if (app.sam) await encode();
  else app.status('Image opened: load a model to segment it.');
}

/** Encodes the current image if the model does not hold it; resolves once it does. */
export async function encode() {
  if (!st.pixels) throw new Error('open an image first (file, drop, paste or camera)');
  const pending = app.encoded !== st.token;
  if (pending) app.status(`Encoding ${st.name} (${st.width}×${st.height})…`, 'busy');
  const r = await app.encode(st.token, () => st.pixels);
  if (r) $('#encode-ms').textContent = fmtMs(r.encodeMs);
  if (pending) app.status('Ready: hover to preview, click to select (right-click or Alt-click: exclude), drag for a box.', 'ok');
}

async function predict(prompts) {
  await encode();
  const r = await app.sam.predict({ points: prompts.points, labels: prompts.labels, box: prompts.box ?? undefined, multimask: true });
  $('#decode-ms').textContent = fmtMs(r.decodeMs);
  return r;
}

/** Decodes the current prompts (dropping results overtaken by newer prompts) and shows them. */
async function runPrompt() {
  const gen = ++st.promptGen;
  drawPrompts();
  if (!hasPrompts()) {
    st.result = null;
    st.shownGen = gen;
    showResult();
    return;
  }
  st.busy += 1;
  try {
    const r = await predict(copyPrompts(st.prompts));
    if (gen !== st.promptGen) return;
    st.result = r;
    st.pick = r.bestIndex;
    showResult();
    const n = st.prompts.points.length;
    const what = [n && `${n} point${n === 1 ? '' : 's'}`, st.prompts.box && 'box'].filter(Boolean).join(' + ');
    app.status(`${what}: mask ${st.pick + 1} of ${r.masks.length} shown, score ${r.scores[st.pick].toFixed(3)} — 1/2/3 picks another, N keeps it as an object.`, 'ok');
  } finally {
    st.busy -= 1;
    if (gen === st.promptGen) st.shownGen = gen;
  }
}

/** The mouse moved (no button down): decode the mask under it, only the latest position pending. */
function hoverAt(xy) {
  st.hover.left = false;
  if (!$('#live-hover').checked || !app.sam || !st.pixels || hasPrompts()) return;
  st.hover.moves += 1;
  st.hover.pending = xy;
  if (!st.hover.frame) st.hover.frame = requestAnimationFrame(() => { st.hover.frame = 0; pumpHover(); });
}

async function pumpHover() {
  if (st.hover.busy) return; // the running loop takes the latest position when its request returns
  st.hover.busy = true;
  try {
    while (st.hover.pending) {
      const xy = st.hover.pending;
      st.hover.pending = null;
      const gen = st.promptGen, token = st.token;
      const r = await predict({ points: [xy], labels: [1], box: null });
      st.hover.decodes += 1;
      if (gen !== st.promptGen || token !== st.token || hasPrompts() || st.hover.left) continue;
      drawMask($('#overlay'), r.masks[r.bestIndex], HOVER_RGB, 130);
      st.hover.last = { x: xy[0], y: xy[1], score: r.scores[r.bestIndex] };
      $('#hover-readout').textContent = `(${xy[0].toFixed(0)}, ${xy[1].toFixed(0)}) score ${r.scores[r.bestIndex].toFixed(3)}`;
    }
  } catch (e) {
    app.status(`Error: ${e.message}`, 'error');
  } finally {
    st.hover.busy = false;
  }
}

function showResult() {
  const overlay = $('#overlay');
  const list = $('#candidates');
  if (!st.result) {
    resize(overlay, st.width || 1, st.height || 1);
    list.hidden = true;
    return;
  }
  const rgb = activeColor();
  drawMask(overlay, st.result.masks[st.pick], rgb, 150);
  list.hidden = false;
  list.querySelectorAll('button').forEach((b, i) => {
    const m = st.result.masks[i];
    b.hidden = !m;
    if (!m) return;
    b.setAttribute('aria-pressed', String(i === st.pick));
    thumbnail(b.querySelector('canvas'), $('#image-canvas'), m, rgb);
    b.querySelector('span').textContent = `${i + 1}: ${m.score.toFixed(3)}${i === st.result.bestIndex ? ' ★' : ''}`;
  });
}

function drawPrompts() {
  if (!st.pixels) return;
  drawMarks($('#image-marks'), st.width, st.height, { ...st.prompts, box: st.drag ?? st.prompts.box, dashed: !!st.drag, color: activeColor() });
}

function renderObjects() {
  paintMasks($('#objects-layer'), st.width || 1, st.height || 1, st.objects.map((o) => ({ mask: o.mask, color: o.color })), { alpha: 120 });
  const ul = $('#image-objects');
  ul.replaceChildren(...st.objects.map((o) => {
    const li = document.createElement('li');
    li.innerHTML = `<span class="swatch" style="background:${css(o.color)}"></span><span>#${o.id} · ${o.area.toLocaleString()} px${o.score != null ? ` · ${o.score.toFixed(2)}` : ''}</span><button type="button" class="small" aria-label="Remove object ${o.id}">✕</button>`;
    li.querySelector('button').addEventListener('click', () => { st.objects = st.objects.filter((x) => x !== o); renderObjects(); });
    return li;
  }));
  $('#image-objects-empty').hidden = st.objects.length > 0;
}

const pushUndo = () => st.undo.push(copyPrompts(st.prompts));

/** Changes the prompts (undoably) and decodes them. */
function prompt(change) {
  app.model();
  pushUndo();
  change(st.prompts);
  return runPrompt();
}
export const addPoint = (xy, label) => prompt((p) => { p.points.push(xy); p.labels.push(label); });
export const setBox = (box) => prompt((p) => { p.box = box; });

/** Ctrl+Z: the previous prompt set, or back into the last kept object. */
export function undo() {
  if (st.undo.length) {
    st.prompts = st.undo.pop();
    return runPrompt();
  }
  const o = st.objects.pop();
  if (!o?.prompts) { if (o) st.objects.push(o); return undefined; }
  Object.assign(st, { prompts: o.prompts, result: o.result, pick: o.pick, undo: o.undo, nextId: o.id });
  st.shownGen = ++st.promptGen;
  renderObjects();
  showResult();
  drawPrompts();
  return undefined;
}

/** Esc: forget the current prompts (undoable). */
export function clear() {
  if (hasPrompts()) pushUndo();
  st.prompts = { points: [], labels: [], box: null };
  return runPrompt();
}

/** Every object and prompt goes. */
export function clearAll() {
  st.objects = [];
  st.undo = [];
  renderObjects();
  return clear();
}

/** N: keeps the shown mask as an object and starts the next one. */
export function keepObject() {
  if (!st.result) return;
  const mask = st.result.masks[st.pick];
  st.objects.push({ id: st.nextId, color: activeColor(), mask, area: area(mask), score: mask.score, prompts: copyPrompts(st.prompts), result: st.result, pick: st.pick, undo: st.undo });
  st.nextId += 1;
  Object.assign(st, { result: null, undo: [] });
  st.prompts = { points: [], labels: [], box: null };
  st.shownGen = ++st.promptGen;
  renderObjects();
  showResult();
  drawPrompts();
}

/** Adds masks `[{mask, score}]` as objects (from segment-everything). */
export function addObjects(items) {
  for (const { mask, score } of items) {
    st.objects.push({ id: st.nextId, color: colorOf(st.nextId - 1), mask, area: area(mask), score, prompts: null });
    st.nextId += 1;
  }
  renderObjects();
  showResult();
}

/** 1/2/3: shows another candidate mask. */
export function pick(i) {
  if (!st.result?.masks[i]) return;
  st.pick = i;
  showResult();
}

/** The current image's objects to export: the kept ones, then the one being edited. */
export function exportObjects() {
  const out = st.objects.map(({ id, mask, score, color }) => ({ id, mask, score, color }));
  if (st.result) out.push({ id: st.nextId, mask: st.result.masks[st.pick], score: st.result.masks[st.pick].score, color: activeColor() });
  return out;
}

export const currentImage = () => st.pixels && { name: st.name, width: st.width, height: st.height, token: st.token };

/** For the tests and the console: the view's state. */
export function imageState() {
  const r = st.result;
  return {
    name: st.name, width: st.width, height: st.height, encoded: !!st.token && app.encoded === st.token,
    ...copyPrompts(st.prompts), promptGen: st.promptGen, shownGen: st.shownGen, busy: st.busy,
    pick: st.pick, bestIndex: r?.bestIndex ?? null, scores: r ? [...r.scores] : null,
    hover: st.hover.last, hoverBusy: st.hover.busy || !!st.hover.pending || !!st.hover.frame,
    hoverMoves: st.hover.moves, hoverDecodes: st.hover.decodes,
    objects: st.objects.map((o) => ({ id: o.id, area: o.area })),
  };
}

export function refit() {
  if (!st.pixels) return;
  fit(stage(), st.width, st.height);
  drawPrompts();
}

export function initImage() {
  const s = stage();
  s.addEventListener('contextmenu', (e) => e.preventDefault());
  s.addEventListener('pointerdown', (e) => {
    if (!st.pixels || (e.button !== 0 && e.button !== 2)) return;
    e.preventDefault();
    s.focus({ preventScroll: true }); // out of any text field, so that the shortcuts work
    st.hover.pending = null;
    st.down = { xy: toImage(e, s, st.width, st.height), x: e.clientX, y: e.clientY, negative: e.button === 2 || e.altKey };
    s.setPointerCapture(e.pointerId);
  });
  s.addEventListener('pointermove', (e) => {
    if (!st.pixels) return;
    const xy = toImage(e, s, st.width, st.height);
    if (!st.down) { hoverAt(xy); return; }
    if (!st.down.negative && (st.drag || Math.hypot(e.clientX - st.down.x, e.clientY - st.down.y) > DRAG_PX)) {
      st.drag = [...st.down.xy, ...xy];
      drawPrompts();
    }
  });
  s.addEventListener('pointerup', () => {
    const { down, drag } = st;
    if (!down) return;
    st.down = st.drag = null;
    if (!drag) { app.guard(() => addPoint(down.xy, down.negative ? 0 : 1)); return; }
    const [x0, y0, x1, y1] = drag;
    if (Math.abs(x1 - x0) < 2 || Math.abs(y1 - y0) < 2) { drawPrompts(); return; }
    app.guard(() => setBox([Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)]));
  });
  s.addEventListener('pointercancel', () => { st.down = st.drag = null; drawPrompts(); });
  s.addEventListener('pointerleave', () => {
    if (st.down) return;
    st.hover.left = true;
    st.hover.pending = null;
    if (!hasPrompts() && st.pixels) resize($('#overlay'), st.width, st.height);
  });
  $('#candidates').querySelectorAll('button').forEach((b, i) => b.addEventListener('click', () => pick(i)));
  $('#undo').addEventListener('click', () => app.guard(undo));
  $('#clear').addEventListener('click', () => app.guard(clear));
  $('#clear-all').addEventListener('click', () => app.guard(clearAll));
  $('#keep').addEventListener('click', keepObject);
  // A new model encodes the image again, when it is on screen (else once it is shown again).
  const reencode = () => app.guard(async () => { await encode(); if (hasPrompts()) await runPrompt(); });
  app.on('model', () => { if (st.pixels && app.tab !== 'video') reencode(); });
  app.on('tabchange', (t) => { if (st.pixels && app.sam && t !== 'video' && app.encoded !== st.token) reencode(); });
}
