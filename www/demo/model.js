// The model bar: a preset (downloaded from Meta), a dropped or chosen checkpoint file (Meta's .pt
// or a converted .safetensors, with an optional Hydra .yaml), or a URL; progress; the backend
// badge and model facts; the browser cache of downloads. Query parameters preload a model:
// ?model=<url or preset>&config=<url of a yaml>&backend=auto|webgpu|cpu
import { Sam2 } from '../sam2.js';
import { $, app, setProgress, fmtMs } from './app.js';

// Approximate download sizes of Meta's checkpoints, for the preset list.
const PRESET_MB = { tiny: 156, small: 184, base_plus: 324, large: 898 };
const SIZE_NAMES = { tiny: 'tiny', small: 'small', base_plus: 'base+', large: 'large', custom: 'custom size' };
const STAGES = { download: 'Downloading', cache: 'Reading from the browser cache', verify: 'Verifying (SHA-256)', read: 'Reading the file', upload: 'Uploading to the device' };
const CHECKPOINT = /\.(pt|pth|ckpt|bin|safetensors)$/i;
const YAML = /\.ya?ml$/i;

let loading = null;
/** The AbortController of the load in progress. */
let current = null;

/** Loads a model with `options` (as `Sam2.load` takes them) once an earlier load is done. */
function load(options, label) {
  const previous = loading;
  const job = (async () => {
    await previous?.catch(() => {});
    return loadNow(options, label);
  })();
  loading = job;
  job.finally(() => { if (loading === job) loading = null; }).catch(() => {});
  return job;
}

async function loadNow(options, label) {
  const bar = $('#model-progress');
  const stage = $('#model-stage');
  for (const b of document.querySelectorAll('.model-load')) b.disabled = true;
  $('#model-progress-row').hidden = false;
  setProgress(bar, 0);
  const t0 = performance.now();
  app.status(`Loading ${label}…`, 'busy');
  const ac = new AbortController();
  current = ac;
  try {
    const sam = await Sam2.load({
      ...options,
      signal: ac.signal,
      backend: $('#backend-select').value,
      onProgress: ({ stage: s, loaded, total, fraction }) => {
        // The upload compiles the model on the device: its length is unknown until done.
        setProgress(bar, s === 'upload' && fraction === 0 ? undefined : fraction);
        const mb = (n) => (n / 1e6).toFixed(1);
        stage.textContent = `${STAGES[s] ?? s}${s === 'upload' ? '' : ` ${mb(loaded)}${total ? ` / ${mb(total)}` : ''} MB`}`;
      },
    });
    const old = app.sam;
    app.setModel(sam);
    old?.dispose();
    setProgress(bar, 1);
    $('#model-progress-row').hidden = true;
    showInfo(sam.info, `${label}, loaded in ${fmtMs(performance.now() - t0)}`);
    app.status(`Model loaded: ${label}. Open an image or a video.`, 'ok');
    refreshCache();
    return sam;
  } catch (e) {
    setProgress(bar, 0);
    if (e?.name === 'AbortError') {
      $('#model-progress-row').hidden = true;
      app.status(`Loading ${label} cancelled${app.sam ? '; the previous model stays loaded' : ''}.`, 'info');
      return app.sam;
    }
    stage.textContent = 'Failed';
    throw e;
  } finally {
    current = null;
    for (const b of document.querySelectorAll('.model-load')) b.disabled = false;
  }
}

function showInfo(info, label) {
  const badge = $('#backend-badge');
  // The reason for a CPU fallback can be a long driver message: its first clause on the badge,
  // all of it in the tooltip.
  const reason = info.fallbackReason ?? '';
  badge.textContent = info.backend === 'webgpu' ? 'WebGPU' : `CPU${reason ? ` (${reason.split(':')[0].trim()})` : ''}`;
  badge.dataset.backend = info.backend;
  badge.title = [info.adapter && `adapter: ${info.adapter}`, reason && `WebGPU is not used: ${reason}`].filter(Boolean).join('\n');
  const params = info.parameters >= 1e6 ? `${(info.parameters / 1e6).toFixed(1)} M` : `${(info.parameters / 1e3).toFixed(0)} k`;
  $('#model-info').textContent = `${info.version === 'sam2.1' ? 'SAM 2.1' : 'SAM 2'} ${SIZE_NAMES[info.size] ?? info.size} · ${params} parameters · ${(info.checkpointBytes / 1e6).toFixed(1)} MB · ${info.imageSize} px input${info.video ? ' · video' : ' · images only'} — ${label}`;
}

/** Loads from chosen or dropped files: one checkpoint and an optional YAML config. */
export async function loadFiles(files) {
  files = [...files];
  const yaml = files.find((f) => YAML.test(f.name));
  const file = files.find((f) => CHECKPOINT.test(f.name)) ?? files.find((f) => f !== yaml);
  if (!file) throw new Error('choose a checkpoint (.pt or .safetensors), optionally with its .yaml config');
  return load({ file, config: yaml ? await yaml.text() : undefined }, file.name);
}

/** Loads a preset name or a URL (relative to the page), with an optional config YAML URL. */
export async function loadSource(source, configUrl) {
  const config = configUrl ? await fetchText(configUrl) : undefined;
  if (Object.hasOwn(Sam2.presets, source)) return load({ model: source, config }, source);
  return load({ url: source, config }, source.split('/').pop() || source);
}

async function fetchText(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`the config ${url} could not be fetched (HTTP ${r.status})`);
  return r.text();
}

async function refreshCache() {
  const list = $('#cache-list');
  try {
    const entries = await Sam2.cache.list();
    list.replaceChildren(...entries.map((e) => Object.assign(document.createElement('li'), { textContent: `${e.url.split('/').pop()} · ${(e.bytes / 1e6).toFixed(1)} MB` })));
    $('#cache-summary').textContent = entries.length ? `${entries.length} checkpoint(s) cached in this browser` : 'Nothing cached yet';
  } catch {
    $('#cache-summary').textContent = 'The browser cache is not available here';
  }
}

/** Wires the model bar and applies the query parameters. */
export function initModel() {
  const select = $('#preset');
  for (const [name, p] of Object.entries(Sam2.presets)) {
    select.append(new Option(`SAM ${p.version} ${SIZE_NAMES[p.size]} (~${PRESET_MB[p.size]} MB)`, name));
  }
  select.value = 'sam2.1_hiera_tiny';
  $('#load-preset').addEventListener('click', () => app.guard(() => loadSource(select.value, $('#config-url').value.trim())));
  $('#load-url').addEventListener('click', () => app.guard(() => {
    const url = $('#model-url').value.trim();
    if (!url) throw new Error('paste the URL of a checkpoint first');
    return loadSource(url, $('#config-url').value.trim());
  }));
  $('#model-url').addEventListener('keydown', (e) => { if (e.key === 'Enter') $('#load-url').click(); });
  $('#model-file').addEventListener('change', (e) => e.target.files.length && app.guard(() => loadFiles(e.target.files)));
  const drop = $('#model-drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    drop.classList.remove('over');
    app.guard(() => loadFiles(e.dataTransfer.files));
  });
  $('#model-cancel').addEventListener('click', () => current?.abort());
  $('#cache-clear').addEventListener('click', () => app.guard(async () => {
    const n = await Sam2.cache.clear();
    app.status(`Removed ${n} cached checkpoint(s).`, 'ok');
    refreshCache();
  }));
  $('#backend-badge').textContent = navigator.gpu ? 'WebGPU available' : 'no WebGPU: CPU';
  refreshCache();

  const q = new URLSearchParams(location.search);
  if (q.get('backend')) $('#backend-select').value = q.get('backend');
  if (q.get('config')) $('#config-url').value = q.get('config');
  if (q.get('model')) {
    const m = q.get('model');
    if (Object.hasOwn(Sam2.presets, m)) select.value = m;
    else $('#model-url').value = m;
    return app.guard(() => loadSource(m, q.get('config')));
  }
  return Promise.resolve();
}

/** Whether a file looks like a checkpoint or its config (for the page-wide drop). */
export const isModelFile = (f) => CHECKPOINT.test(f.name) || YAML.test(f.name);
