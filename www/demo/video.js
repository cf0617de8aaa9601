// The Video view: frames from a video file (sampled by seeking a <video>) or image files; clicks
// on any frame prompt the current object; tracking forward/backward with progress and Stop;
// scrubbing the results; corrections re-propagate. Live camera tracking is in live.js.
import { $, app, fmtMs, setProgress } from './app.js';
import { colorOf, css, drawMarks, drawPixels, fit, paintMasks, toImage } from './draw.js';
import { decodeImages, decodeVideo } from './frames.js';
import { isLive, liveClick, liveSize, startLive, stopLive } from './live.js';

const st = {
  frames: [], width: 0, height: 0, name: '', session: null, sessionPromise: null, sessionModel: null,
  objects: [], active: null, nextId: 1, prompts: new Map(), calls: [], results: new Map(),
  current: 0, tracking: null, busy: 0, lastRun: null, playing: 0,
};

const stage = () => $('#video-stage');
const maxFrames = () => Math.max(1, Number($('#max-frames').value) || 100);

/** Image files as the frames of a video (in name order, as many as "max frames" allows). */
export async function openFrameFiles(files) {
  const frames = await decodeImages(files, maxFrames(), loadProgress);
  await setFrames(frames, `${frames.length} images`);
}

/** A video file, sampled at the chosen rate. */
export async function openVideoFile(file) {
  const fps = Math.max(0.1, Number($('#sample-fps').value) || 10);
  await setFrames(await decodeVideo(file, fps, maxFrames(), loadProgress), file.name);
}

function loadProgress(done, total) {
  setProgress($('#video-progress'), done / total);
  $('#video-progress-label').textContent = `decoding frame ${done} / ${total}`;
}

async function setFrames(frames, name) {
  await stopLive();
  stopTracking();
  if (st.playing) togglePlay();
  st.session?.dispose().catch(() => {});
  Object.assign(st, { frames, name, width: frames[0].width, height: frames[0].height, session: null, sessionPromise: null, current: 0, objects: [], nextId: 1, calls: [], lastRun: null });
  st.prompts.clear();
  st.results.clear();
  newObject();
  const range = $('#frame-range');
  range.max = String(frames.length - 1);
  range.value = '0';
  range.disabled = frames.length < 2;
  stage().classList.remove('empty');
  refitVideo();
  $('#video-progress-label').textContent = `${frames.length} frames of ${st.width}×${st.height}`;
  app.status(`${name}: ${frames.length} frames. Click an object on any frame, then Track.`, 'ok');
  if (app.sam) await ensureSession();
}

/** The offline session of the current frames with the current model (created once). */
function ensureSession() {
  const sam = app.model();
  if (!st.frames.length) throw new Error('open a video or image frames first');
  if (st.sessionModel !== sam || !st.sessionPromise) {
    if (!sam.info.video) throw new Error('this checkpoint was loaded without video modules');
    const frames = st.frames;
    st.sessionModel = sam;
    st.sessionPromise = sam.createVideoSession({ frames }).then((s) => {
      if (st.frames !== frames || st.sessionModel !== sam) { s.dispose(); throw new Error('the video changed'); }
      st.session = s;
      return s;
    });
    st.sessionPromise.catch(() => { st.sessionPromise = null; });
  }
  return st.sessionPromise;
}

function store(r) {
  st.results.set(r.frame, r.objects.map((o) => ({ id: o.id, mask: o.mask, score: o.score })));
}

function drawFrame() {
  if (isLive() || !st.frames.length) return;
  drawPixels($('#video-canvas'), st.frames[st.current]);
  const objs = st.results.get(st.current) ?? [];
  paintMasks($('#video-overlay'), st.width, st.height, objs.map((o) => ({ mask: o.mask, color: colorOf(o.id - 1) })), { alpha: 150 });
  const here = [...st.prompts.values()].filter((p) => p.frame === st.current);
  drawMarks($('#video-marks'), st.width, st.height, { points: here.flatMap((p) => p.points), labels: here.flatMap((p) => p.labels) });
  $('#frame-label').textContent = `frame ${st.current + 1} / ${st.frames.length}${st.results.has(st.current) ? '' : ' · not tracked'}`;
  $('#frame-range').value = String(st.current);
}

export function showFrame(i) {
  if (!st.frames.length) return;
  st.current = Math.max(0, Math.min(st.frames.length - 1, i));
  drawFrame();
}

function renderObjects() {
  $('#video-objects').replaceChildren(...st.objects.map((id) => {
    const li = document.createElement('li');
    li.classList.toggle('active', id === st.active);
    li.innerHTML = `<button type="button" class="pick" aria-pressed="${id === st.active}"><span class="swatch" style="background:${css(colorOf(id - 1))}"></span>Object #${id}</button><button type="button" class="small" aria-label="Remove object ${id}">✕</button>`;
    const [select, remove] = li.querySelectorAll('button');
    select.addEventListener('click', () => { st.active = id; renderObjects(); });
    remove.addEventListener('click', () => app.guard(() => removeObject(id)));
    return li;
  }));
}

/** N: the next clicks prompt a new object. */
export function newObject() {
  st.active = st.nextId++;
  st.objects.push(st.active);
  renderObjects();
}

async function removeObject(id) {
  if (st.tracking) throw new Error('stop tracking first');
  st.objects = st.objects.filter((o) => o !== id);
  for (const [k, p] of st.prompts) if (p.id === id) st.prompts.delete(k);
  for (const [f, objs] of st.results) st.results.set(f, objs.filter((o) => o.id !== id));
  if (st.session) {
    st.calls.push({ op: 'removeObject', id });
    (await st.session.removeObject(id).catch(() => [])).forEach(store);
  }
  if (st.active === id) st.active = st.objects.at(-1) ?? null;
  if (st.active === null) newObject();
  renderObjects();
  drawFrame();
}

/** A click on the current frame: a point for the active object (a correction after tracking). */
async function clickAt(xy, label) {
  if (st.tracking) throw new Error('stop tracking first (or wait for it to finish)');
  const frame = st.current, id = st.active;
  const session = await ensureSession();
  const key = `${frame}/${id}`;
  const p = st.prompts.get(key) ?? { frame, id, points: [], labels: [] };
  p.points.push(xy);
  p.labels.push(label);
  st.prompts.set(key, p);
  drawFrame();
  st.busy += 1;
  const t0 = performance.now();
  try {
    st.calls.push({ op: 'addPoints', frame, id, points: p.points.map((q) => [...q]), labels: [...p.labels] });
    store(await session.addPoints(frame, id, p.points, p.labels));
    $('#frame-ms').textContent = fmtMs(performance.now() - t0);
    if (frame === st.current) drawFrame();
    app.status(`Object #${id}: ${p.points.length} point(s) on frame ${frame + 1}. Track to follow it${st.results.size > 1 ? ' again (re-propagate)' : ''}.`, 'ok');
  } finally {
    st.busy -= 1;
  }
}

/** Tracks every object through the video, forward or backward, showing frames as they come. */
export async function track(reverse = false) {
  if (st.tracking) return;
  const session = await ensureSession();
  if (!st.prompts.size) throw new Error('click an object on a frame first');
  const frames = [...st.prompts.values()].map((p) => p.frame);
  const start = $('#track-from-current').checked ? st.current : undefined;
  const from = start ?? (reverse ? Math.max(...frames) : Math.min(...frames));
  const total = reverse ? from + 1 : st.frames.length - from;
  const ac = new AbortController();
  st.tracking = ac;
  toggleTrackingUi(true);
  let done = 0;
  const t0 = performance.now();
  try {
    st.calls.push({ op: 'propagate', reverse, start });
    const res = await session.propagate({
      reverse, start, signal: ac.signal,
      onFrame: (r) => {
        done += 1;
        store(r);
        showFrame(r.frame);
        setProgress($('#video-progress'), done / total);
        $('#video-progress-label').textContent = `tracked ${done} / ${total} frames`;
        if (r.frameMs !== undefined) $('#frame-ms').textContent = fmtMs(r.frameMs);
      },
    });
    st.lastRun = { ...res, reverse, ms: performance.now() - t0 };
    app.status(`${res.cancelled ? 'Stopped after' : 'Tracked'} ${res.frames} frames in ${fmtMs(st.lastRun.ms)} (${fmtMs(st.lastRun.ms / Math.max(1, res.frames))} per frame). Scrub to check; click a frame to correct, then track again.`, 'ok');
  } finally {
    st.tracking = null;
    toggleTrackingUi(false);
  }
}

function toggleTrackingUi(on) {
  $('#track-forward').disabled = on;
  $('#track-backward').disabled = on;
  $('#track-stop').disabled = !on;
}

export function stopTracking() { st.tracking?.abort(); }

/** Space: plays the frames (with their masks) at the sampling rate. */
export function togglePlay() {
  if (st.playing) {
    clearInterval(st.playing);
    st.playing = 0;
  } else {
    if (st.frames.length < 2 || st.tracking) return;
    st.playing = setInterval(() => showFrame((st.current + 1) % st.frames.length), 1000 / Math.max(1, Number($('#sample-fps').value) || 10));
  }
  $('#play').textContent = st.playing ? 'Pause' : 'Play';
  $('#play').setAttribute('aria-pressed', String(!!st.playing));
}

export function refitVideo() {
  const live = liveSize();
  if (live) fit(stage(), ...live);
  else if (st.frames.length) { fit(stage(), st.width, st.height); drawFrame(); }
}

/** For the tests: the view's state, its frames and its stored masks. */
export const videoState = () => ({
  frames: st.frames.length, width: st.width, height: st.height, current: st.current, objects: [...st.objects], active: st.active,
  tracking: !!st.tracking, busy: st.busy, sessionReady: !!st.session, tracked: [...st.results.keys()].sort((a, b) => a - b), lastRun: st.lastRun,
  calls: st.calls.map((c) => ({ ...c })), label: $('#frame-label').textContent,
});
export const videoFrames = () => st.frames;
export const videoMasks = (frame) => (st.results.get(frame) ?? []).map((o) => ({ id: o.id, mask: o.mask, score: o.score }));

export function initVideo() {
  const s = stage();
  let down = null;
  s.addEventListener('contextmenu', (e) => e.preventDefault());
  s.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 && e.button !== 2) return;
    e.preventDefault();
    s.focus({ preventScroll: true }); // out of any text field, so that the shortcuts work
    down = e;
  });
  s.addEventListener('pointerup', (e) => {
    if (!down) return;
    const negative = down.button === 2 || down.altKey;
    down = null;
    if (isLive()) { liveClick(e, negative); return; }
    if (!st.frames.length) return;
    app.guard(() => clickAt(toImage(e, s, st.width, st.height), negative ? 0 : 1));
  });
  $('#video-file').addEventListener('change', (e) => e.target.files[0] && app.guard(() => openVideoFile(e.target.files[0])));
  $('#frames-file').addEventListener('change', (e) => e.target.files.length && app.guard(() => openFrameFiles(e.target.files)));
  $('#frame-range').addEventListener('input', (e) => showFrame(Number(e.target.value)));
  $('#prev-frame').addEventListener('click', () => showFrame(st.current - 1));
  $('#next-frame').addEventListener('click', () => showFrame(st.current + 1));
  $('#play').addEventListener('click', togglePlay);
  $('#new-object').addEventListener('click', newObject);
  $('#track-forward').addEventListener('click', () => app.guard(() => track(false)));
  $('#track-backward').addEventListener('click', () => app.guard(() => track(true)));
  $('#track-stop').addEventListener('click', stopTracking);
  $('#video-reset').addEventListener('click', () => app.guard(async () => {
    if (st.tracking) throw new Error('stop tracking first');
    if (st.session) { st.calls.push({ op: 'reset' }); await st.session.reset(); }
    Object.assign(st, { objects: [], nextId: 1 });
    st.prompts.clear();
    st.results.clear();
    newObject();
    drawFrame();
  }));
  $('#live-start').addEventListener('click', () => app.guard(() => startLive(async () => { stopTracking(); if (st.playing) togglePlay(); })));
  $('#live-stop').addEventListener('click', () => app.guard(async () => { await stopLive(); refitVideo(); }));
  app.on('model', () => {
    if (isLive()) app.guard(async () => { await stopLive(); refitVideo(); });
    st.session = null;
    st.sessionPromise = null;
    st.prompts.clear();
    st.results.clear();
    st.calls = [];
    if (st.frames.length) { drawFrame(); app.guard(ensureSession); }
  });
}
