// The demo page's entry: tabs, keyboard shortcuts, query parameters, and `window.demo` (the
// model and each view's state, for the tests and the console).
import { Sam2, maskToImageData, toPixels } from '../sam2.js';
import { $, app, typing } from './app.js';
import { everythingState, initEverything, runEverything } from './everything.js';
import { clear, encode, exportObjects, imageState, initImage, keepObject, openImage, pick, refit, undo } from './image.js';
import { initLabels, labelsState } from './labels.js';
import { initLive, liveResult, liveState } from './live.js';
import { initModel } from './model.js';
import { initSources } from './sources.js';
import { initVideo, newObject, refitVideo, showFrame, stopTracking, togglePlay, track, videoFrames, videoMasks, videoState } from './video.js';

const TABS = ['image', 'everything', 'video', 'labels'];

/** Shows a view: its panel, its stage (image or video) and its layers. */
export function setTab(name) {
  if (!TABS.includes(name)) return;
  app.tab = name;
  for (const t of TABS) {
    const on = t === name;
    document.body.classList.toggle(`tab-${t}`, on);
    $(`#tab-${t}`).setAttribute('aria-selected', String(on));
    $(`#tab-${t}`).tabIndex = on ? 0 : -1;
    $(`#panel-${t}`).hidden = !on;
  }
  $('#image-stage-wrap').hidden = name === 'video';
  $('#video-stage-wrap').hidden = name !== 'video';
  if (name === 'video') refitVideo();
  else refit();
  app.emit('tabchange', name);
}

function initTabs() {
  for (const t of TABS) $(`#tab-${t}`).addEventListener('click', () => setTab(t));
  // Arrow keys move between tabs (the ARIA tabs pattern).
  $('#tabs').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    e.preventDefault();
    e.stopPropagation();
    const i = (TABS.indexOf(app.tab) + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length;
    setTab(TABS[i]);
    $(`#tab-${TABS[i]}`).focus();
  });
  app.on('tab', setTab);
}

function onKey(e) {
  if (typing(e) || e.defaultPrevented) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const onImage = app.tab === 'image' || app.tab === 'everything' || app.tab === 'labels';
  const run = (fn) => { e.preventDefault(); app.guard(fn); };
  if ((e.ctrlKey || e.metaKey) && key === 'z' && !e.shiftKey) { if (onImage) run(undo); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.type === 'range' && key.startsWith('Arrow')) return; // the slider moves itself
  switch (key) {
    case 'Escape':
      app.emit('escape');
      if (app.tab === 'video') { stopTracking(); return; }
      return run(clear);
    case '1': case '2': case '3':
      if (onImage) run(() => pick(Number(key) - 1));
      return;
    case 'n':
      return run(app.tab === 'video' ? newObject : keepObject);
    case 'e':
      setTab('everything');
      return run(runEverything);
    case 'h':
      $('#live-hover').checked = !$('#live-hover').checked;
      return undefined;
    default:
  }
  if (app.tab !== 'video') return;
  const v = videoState();
  if (key === ' ') { if (!/^(BUTTON|SUMMARY)$/.test(e.target.tagName) && !['checkbox', 'radio', 'file'].includes(e.target.type)) run(togglePlay); }
  else if (key === 'ArrowLeft') run(() => showFrame(v.current - 1));
  else if (key === 'ArrowRight') run(() => showFrame(v.current + 1));
  else if (key === 'Home') run(() => showFrame(0));
  else if (key === 'End') run(() => showFrame(v.frames - 1));
  else if (key === 'f') run(() => track(false));
  else if (key === 'b') run(() => track(true));
}

async function boot() {
  initTabs();
  initImage();
  initSources();
  initEverything();
  initLive();
  initVideo();
  initLabels();
  document.addEventListener('keydown', onKey);
  let resizing = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => (app.tab === 'video' ? refitVideo() : refit()));
  });
  const q = new URLSearchParams(location.search);
  setTab(TABS.includes(q.get('tab')) ? q.get('tab') : 'image');
  window.demo = {
    get sam() { return app.sam; },
    app, Sam2, maskToImageData, toPixels, setTab,
    image: { state: imageState, open: openImage, encode, exportObjects },
    everything: { state: everythingState, run: runEverything },
    video: { state: videoState, frames: videoFrames, masks: videoMasks },
    live: { state: liveState, result: liveResult },
    labels: { state: labelsState },
  };
  app.status(q.get('model') ? 'Loading the model…' : 'Pick a model at the top (or drop a checkpoint), then open an image or a video.');
  const model = initModel();
  if (q.get('image')) {
    const url = q.get('image');
    await app.guard(async () => {
      const r = await fetch(url);
      if (!r.ok) throw new Error(`the image ${url} could not be fetched (HTTP ${r.status})`);
      await model;
      await openImage(await r.blob(), url.split('/').pop());
    });
  }
}

boot();
