// Live camera tracking: a streaming video session (a bounded memory bank) fed one camera frame
// at a time; a click adds an object on the latest frame; an FPS readout shows the speed.
import { $, app, fmtMs } from './app.js';
import { area, colorOf, css, fit, paintMasks, toImage } from './draw.js';

const lv = { stream: null, session: null, running: false, loop: null, fps: 0, frame: -1, nextId: 1, clicks: [], width: 0, height: 0, objects: [], last: null, prompted: [] };

export const isLive = () => lv.running;
export const hasCamera = () => !!navigator.mediaDevices?.getUserMedia;

function draw(r) {
  paintMasks($('#video-overlay'), lv.width, lv.height, r.objects.map((o) => ({ mask: o.mask, color: colorOf(o.id - 1) })), { alpha: 150 });
}

function renderObjects() {
  $('#live-objects').replaceChildren(...lv.objects.map((id) => {
    const li = document.createElement('li');
    li.innerHTML = `<span class="swatch" style="background:${css(colorOf(id - 1))}"></span>Object #${id}`;
    return li;
  }));
}

async function run() {
  const video = $('#live-video');
  let last = performance.now();
  while (lv.running) {
    let r = await lv.session.track(video);
    lv.frame = r.frame;
    // Clicks made since the previous frame prompt this one, the latest.
    while (lv.clicks.length && lv.running) {
      const c = lv.clicks.shift();
      r = await lv.session.addPoints(r.frame, c.id, [c.xy], [c.label], { clearOld: false });
      lv.prompted.push({ frame: r.frame, id: c.id });
    }
    lv.last = r;
    draw(r);
    const now = performance.now();
    const ms = now - last;
    last = now;
    lv.fps = lv.fps ? lv.fps * 0.8 + (1000 / ms) * 0.2 : 1000 / ms;
    $('#fps').textContent = lv.fps.toFixed(1);
    $('#frame-ms').textContent = fmtMs(ms);
  }
}

/** Starts the camera and tracks every frame until `stopLive`. */
export async function startLive(beforeStart) {
  const sam = app.model();
  if (!sam.info.video) throw new Error('this checkpoint has no video modules');
  if (lv.running) return;
  await beforeStart?.();
  lv.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  const video = $('#live-video');
  video.srcObject = lv.stream;
  await video.play();
  Object.assign(lv, { width: video.videoWidth, height: video.videoHeight, nextId: 1, objects: [], clicks: [], fps: 0, frame: -1, last: null, prompted: [] });
  lv.session = await sam.createVideoSession({ width: lv.width, height: lv.height, stream: true });
  lv.running = true;
  const stage = $('#video-stage');
  stage.classList.remove('empty');
  stage.classList.add('live');
  document.body.classList.add('live-mode');
  video.hidden = false;
  fit(stage, lv.width, lv.height);
  $('#video-marks').replaceChildren();
  $('#live-start').hidden = true;
  $('#live-stop').hidden = false;
  $('#live-panel').hidden = false;
  renderObjects();
  app.status('Live: click an object to track it (each click adds one; right-click refines the last one).', 'ok');
  lv.loop = run().catch((e) => { app.status(`Error: ${e.message}`, 'error'); }).finally(() => { lv.running = false; });
}

/** Stops the camera and frees the streaming session. */
export async function stopLive() {
  if (!lv.stream && !lv.running) return;
  lv.running = false;
  $('#live-stop').disabled = true;
  app.status('Stopping the camera after the frame being tracked…', 'busy');
  await lv.loop;
  lv.stream?.getTracks().forEach((t) => t.stop());
  lv.stream = null;
  const video = $('#live-video');
  video.srcObject = null;
  video.hidden = true;
  $('#video-stage').classList.remove('live');
  document.body.classList.remove('live-mode');
  $('#live-start').hidden = false;
  $('#live-stop').hidden = true;
  $('#live-stop').disabled = false;
  $('#live-panel').hidden = true;
  await lv.session?.dispose().catch(() => {});
  lv.session = null;
  app.status('Live tracking stopped.');
}

/** A click on the live picture: a new object there, or (negative) a correction of the last one. */
export function liveClick(e, negative) {
  if (!lv.running) return;
  const xy = toImage(e, $('#video-stage'), lv.width, lv.height);
  if (negative && lv.objects.length) {
    lv.clicks.push({ id: lv.objects.at(-1), xy, label: 0 });
    return;
  }
  const id = lv.nextId++;
  lv.objects.push(id);
  lv.clicks.push({ id, xy, label: 1 });
  renderObjects();
}

export const liveSize = () => lv.running && [lv.width, lv.height];

/** For the tests: the live run's state and its latest frame's result. */
export const liveState = () => ({
  running: lv.running, camera: !!lv.stream, session: !!lv.session, width: lv.width, height: lv.height, frame: lv.frame, fps: lv.fps,
  objects: [...lv.objects], prompted: lv.prompted.map((p) => ({ ...p })), pendingClicks: lv.clicks.length,
  last: lv.last && { frame: lv.last.frame, objects: lv.last.objects.map((o) => ({ id: o.id, area: area(o.mask) })) },
});
/** The latest live frame's result (its masks), for the tests. */
export const liveResult = () => lv.last;

export function initLive() {
  if (!hasCamera()) $('#live-start').hidden = true;
}
