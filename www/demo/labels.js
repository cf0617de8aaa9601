// The Labels view: the current image's objects as a PNG mask image, COCO JSON or YOLO-seg lines;
// and a dataset mode that auto-annotates a folder of images (boxes from YOLO box labels, or
// segment-everything) and downloads the YOLO-seg labels as a zip. All of it stays in the tab.
import { toPixels } from '../sam2.js';
import { $, app, baseName, download, fmtMs, isImage, setProgress } from './app.js';
import { paintMasks } from './draw.js';
import { everythingOptions } from './everything.js';
import { currentImage, exportObjects } from './image.js';
import { zip } from './zip.js';

const ds = { images: [], labels: new Map(), outputs: null, zip: null, running: false, stop: false, ms: null };
let exports = 0;

const classId = () => Math.max(0, Math.floor(Number($('#class-id').value) || 0));
const className = () => $('#class-name').value.trim() || 'object';

function current() {
  const img = currentImage();
  if (!img) throw new Error('open an image in the Image tab first');
  const objects = exportObjects();
  if (!objects.length) throw new Error('no objects yet: click one in the Image tab (N keeps it), or add all from Everything');
  return { img, objects };
}

/** The objects as one PNG: each object's pixels in its colour, black elsewhere. */
export async function exportPng() {
  const { img, objects } = current();
  const c = new OffscreenCanvas(img.width, img.height);
  c.getContext('2d').putImageData(paintMasks(null, img.width, img.height, objects, { alpha: 255, background: [0, 0, 0, 255] }), 0, 0);
  download(await c.convertToBlob({ type: 'image/png' }), `${baseName(img.name)}_masks.png`);
  done(`PNG with ${objects.length} object(s)`);
}

/** COCO JSON (compressed RLE segmentations, boxes, areas) for the current image. */
export async function exportCoco() {
  const { img, objects } = current();
  const json = await app.model().toCocoJson([{ fileName: img.name, width: img.width, height: img.height, objects: objects.map((o) => ({ mask: o.mask, score: o.score, categoryId: 1 })) }], [{ id: 1, name: className() }]);
  download(new Blob([json], { type: 'application/json' }), `${baseName(img.name)}.json`);
  done(`COCO JSON with ${objects.length} annotation(s)`);
}

/** YOLO-seg: one line per object, `class x1 y1 x2 y2 …` normalised. */
export async function exportYolo() {
  const { img, objects } = current();
  const lines = [];
  for (const o of objects) {
    const line = await app.model().maskToYolo(o.mask, classId());
    if (line) lines.push(line);
  }
  download(new Blob([lines.map((l) => `${l}\n`).join('')], { type: 'text/plain' }), `${baseName(img.name)}.txt`);
  done(`YOLO-seg with ${lines.length} line(s)`);
}

function done(what) {
  exports += 1;
  app.status(`Saved ${what}. Nothing was uploaded.`, 'ok');
}

/** YOLO label lines as pixel boxes: `class cx cy w h` (or a polygon, whose bounds are taken). */
export function parseYoloBoxes(text, w, h) {
  const out = [];
  for (const line of text.split(/\r?\n/)) {
    const v = line.trim().split(/\s+/).map(Number);
    if (v.length < 5 || v.some(Number.isNaN)) continue;
    let [x0, y0, x1, y1] = [0, 0, 0, 0];
    if (v.length === 5) {
      const [, cx, cy, bw, bh] = v;
      [x0, y0, x1, y1] = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2];
    } else {
      const xs = v.slice(1).filter((_, i) => i % 2 === 0), ys = v.slice(1).filter((_, i) => i % 2 === 1);
      [x0, y0, x1, y1] = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    }
    const cl = (t, max) => Math.max(0, Math.min(max, t * max));
    out.push({ cls: v[0], box: [cl(x0, w), cl(y0, h), cl(x1, w), cl(y1, h)] });
  }
  return out;
}

function collect(files) {
  files = [...files];
  ds.images = files.filter(isImage).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  ds.labels = new Map(files.filter((f) => /\.txt$/i.test(f.name)).map((f) => [baseName(f.name), f]));
  const withLabels = ds.images.filter((f) => ds.labels.has(baseName(f.name))).length;
  $('#dataset-summary').textContent = `${ds.images.length} image(s), ${withLabels} with YOLO box labels`;
  $('#dataset-run').disabled = !ds.images.length;
  $('#dataset-download').disabled = true;
  ds.outputs = ds.zip = null;
}

function logLine(text) {
  const li = document.createElement('li');
  li.textContent = text;
  $('#dataset-log').append(li);
}

/** Auto-annotates every image of the dataset in this tab; then the zip can be downloaded. */
export async function runDataset() {
  const sam = app.model();
  if (!ds.images.length) throw new Error('choose a folder (or files) of images first');
  if (ds.running) return;
  Object.assign(ds, { running: true, stop: false, outputs: [], zip: null });
  $('#dataset-log').replaceChildren();
  $('#dataset-run').disabled = true;
  $('#dataset-stop').disabled = false;
  const options = everythingOptions();
  const t0 = performance.now();
  try {
    for (const [i, file] of ds.images.entries()) {
      if (ds.stop) break;
      app.status(`Annotating ${file.name} (${i + 1} / ${ds.images.length})…`, 'busy');
      const px = await toPixels(file);
      await app.encode({ dataset: file.name }, () => px);
      const label = ds.labels.get(baseName(file.name));
      const lines = [];
      let note;
      if (label) {
        const boxes = parseYoloBoxes(await label.text(), px.width, px.height);
        const preds = boxes.length ? await sam.predictBoxes(boxes.map((b) => b.box)) : [];
        for (const [k, p] of preds.entries()) {
          const line = await sam.maskToYolo(p.masks[p.bestIndex], boxes[k].cls);
          if (line) lines.push(line);
        }
        note = `${boxes.length} box(es) → ${lines.length} mask(s)`;
      } else {
        for (const m of await sam.generateMasks(options)) {
          const line = await sam.maskToYolo(m.mask, 0);
          if (line) lines.push(line);
        }
        note = `everything → ${lines.length} mask(s)`;
      }
      ds.outputs.push({ name: `labels/${baseName(file.name)}.txt`, data: lines.map((l) => `${l}\n`).join('') });
      logLine(`${file.name}: ${note}`);
      setProgress($('#dataset-progress'), (i + 1) / ds.images.length);
    }
    ds.ms = performance.now() - t0;
    ds.zip = zip(ds.outputs);
    $('#dataset-download').disabled = false;
    app.status(`${ds.stop ? 'Stopped:' : 'Done:'} ${ds.outputs.length} label file(s) in ${fmtMs(ds.ms)} — download the zip.`, 'ok');
  } finally {
    ds.running = false;
    $('#dataset-run').disabled = false;
    $('#dataset-stop').disabled = true;
  }
}

export function labelsSummary() {
  const img = currentImage();
  const n = img ? exportObjects().length : 0;
  $('#labels-summary').textContent = img ? `${n} object(s) on ${img.name} (${img.width}×${img.height})` : 'No image open (Image tab).';
}

export const labelsState = () => ({ exports, dataset: { images: ds.images.map((f) => f.name), labels: [...ds.labels.keys()], running: ds.running, outputs: ds.outputs?.map((o) => o.name) ?? null, ready: !!ds.zip } });

export function initLabels() {
  $('#export-png').addEventListener('click', () => app.guard(exportPng));
  $('#export-coco').addEventListener('click', () => app.guard(exportCoco));
  $('#export-yolo').addEventListener('click', () => app.guard(exportYolo));
  $('#dataset-dir').addEventListener('change', (e) => collect(e.target.files));
  $('#dataset-files').addEventListener('change', (e) => collect(e.target.files));
  $('#dataset-run').addEventListener('click', () => app.guard(runDataset));
  $('#dataset-stop').addEventListener('click', () => { ds.stop = true; });
  $('#dataset-download').addEventListener('click', () => ds.zip && download(ds.zip, 'labels.zip'));
  app.on('tabchange', (t) => t === 'labels' && labelsSummary());
}
