// The Everything view: Meta's automatic mask generator over a grid of points, every mask in its
// own colour, with the grid density and the two quality thresholds as controls; a progress bar
// over the batches of grid points and a Stop button.
import { $, app, fmtMs, setProgress } from './app.js';
import { colorOf, css, paintMasks } from './draw.js';
import { addObjects, currentImage, encode } from './image.js';

const st = { masks: null, ms: null, options: null, running: null, runs: 0, token: null, stopped: 0, progress: null };

/** The generator's options from the controls (camelCased SAM2AutomaticMaskGenerator arguments). */
export function everythingOptions() {
  const num = (sel) => Number($(sel).value);
  return { pointsPerSide: num('#grid'), predIouThresh: num('#iou-thresh'), stabilityScoreThresh: num('#stability-thresh') };
}

function draw() {
  const img = currentImage();
  const layer = $('#auto-layer');
  const legend = $('#everything-legend');
  if (!img || !st.masks || st.token !== img.token) {
    if (img) paintMasks(layer, img.width, img.height, []);
    legend.replaceChildren();
    return;
  }
  // Large masks first, so that small ones stay visible on top.
  const items = st.masks.map((m, i) => ({ mask: m.mask, color: colorOf(i), area: m.area, iou: m.predictedIou }));
  paintMasks(layer, img.width, img.height, [...items].sort((a, b) => b.area - a.area), { alpha: 165 });
  legend.replaceChildren(...items.slice(0, 64).map((it, i) => {
    const li = document.createElement('li');
    li.innerHTML = `<span class="swatch" style="background:${css(it.color)}"></span>${i + 1}: ${it.area.toLocaleString()} px · ${it.iou.toFixed(2)}`;
    return li;
  }));
}

/** Segments everything in the current image. */
export async function runEverything() {
  if (st.running) return;
  app.model();
  const img = currentImage();
  if (!img) throw new Error('open an image first (Image tab: file, drop, paste or camera)');
  const ac = new AbortController();
  st.running = ac;
  st.progress = null;
  $('#run-everything').disabled = true;
  $('#stop-everything').disabled = false;
  $('#add-everything').disabled = true;
  const bar = $('#everything-progress');
  setProgress(bar, 0);
  const options = everythingOptions();
  try {
    await encode();
    ac.signal.throwIfAborted();
    app.status(`Segmenting everything on a ${options.pointsPerSide}×${options.pointsPerSide} grid…`, 'busy');
    $('#everything-readout').textContent = 'running…';
    const t0 = performance.now();
    const masks = await app.sam.generateMasks({
      ...options,
      signal: ac.signal,
      onProgress: (p) => {
        st.progress = p;
        setProgress(bar, p.done / p.total);
        $('#everything-readout').textContent = `running… ${p.done} / ${p.total} batches`;
      },
    });
    st.ms = performance.now() - t0;
    Object.assign(st, { masks, options, token: img.token });
    st.runs += 1;
    const n = `${masks.length} mask${masks.length === 1 ? '' : 's'}`;
    $('#everything-readout').textContent = `${n} in ${fmtMs(st.ms)}`;
    app.status(`Segment everything: ${n} in ${fmtMs(st.ms)}${masks.length ? '' : ' — lower the thresholds for more'}.`, 'ok');
    draw();
  } catch (e) {
    if (e?.name === 'AbortError') {
      st.stopped += 1;
      $('#everything-readout').textContent = 'stopped';
      app.status('Segment everything stopped.', 'info');
      return;
    }
    $('#everything-readout').textContent = 'failed';
    throw e;
  } finally {
    st.running = null;
    $('#stop-everything').disabled = true;
    $('#run-everything').disabled = false;
    $('#add-everything').disabled = !st.masks?.length;
  }
}

/** Stops a running segment-everything at its next batch. */
export function stopEverything() { st.running?.abort(); }

/** For the tests: the last run. */
export const everythingState = () => ({ running: !!st.running, runs: st.runs, stopped: st.stopped, progress: st.progress, count: st.masks?.length ?? null, ms: st.ms, options: st.options, readout: $('#everything-readout').textContent });

export function initEverything() {
  $('#run-everything').addEventListener('click', () => app.guard(runEverything));
  $('#stop-everything').addEventListener('click', stopEverything);
  app.on('escape', stopEverything);
  $('#add-everything').addEventListener('click', () => {
    if (!st.masks?.length) return;
    addObjects(st.masks.map((m) => ({ mask: m.mask, score: m.predictedIou })));
    app.status(`${st.masks.length} mask(s) added as objects (Labels tab exports them).`, 'ok');
  });
  app.on('image', () => { st.masks = null; $('#everything-readout').textContent = '–'; $('#add-everything').disabled = true; draw(); });
  app.on('model', () => { st.masks = null; $('#everything-readout').textContent = '–'; draw(); });
}
