// The module Worker behind the `Sam2` client (sam2.js): it owns the wasm instance, the model, its
// GPU device and every video session's memory bank, so the page's thread never blocks on them.
//
// Protocol (all messages are plain objects):
//   page -> worker  { id, op, args }          one request; answered exactly once
//                   { cancel: id }            stop a running propagate at the next frame, or
//                                             generateMasks at the next batch (AbortError)
//   worker -> page  { id, ok: true, result }  (buffers of the result are transferred)
//                   { id, ok: false, error: { name, message } }
//                   { id, progress }          load progress, propagate frames, generateMasks batches
//                   { fatal: message }        the wasm instance or its GPU device is gone: every
//                                             pending and later request fails; load again
// Requests run one at a time in arrival order (the model answers one call at a time).

import init, * as wasm from './pkg/sam2_webgpu.js';
import { fetchWeights, readWeights, resolveModel } from './weights.js';

/** @type {import('./pkg/sam2_webgpu.js').Sam2Model | null} */
let model = null;
const sessions = new Map();
let nextSession = 1;
/** Set once the instance cannot be trusted (a trap, a lost device): the reason. */
let fatal = null;
const cancelled = new Set();
let queue = Promise.resolve();

/** The ArrayBuffers of the typed arrays in `value` (nested arrays and objects), to transfer. */
function buffersOf(value, out = new Set(), depth = 0) {
  if (ArrayBuffer.isView(value)) out.add(value.buffer);
  else if (value && typeof value === 'object' && depth < 4) for (const v of Object.values(value)) buffersOf(v, out, depth + 1);
  return [...out];
}

function needModel() {
  if (!model) throw new Error('no model is loaded');
  return model;
}

function needSession(id) {
  const s = sessions.get(id);
  if (!s) throw new Error(`unknown video session ${id} (disposed, or from another model)`);
  return s;
}

/** Pixels sent by the page: `{ data: Uint8Array|Uint8ClampedArray, width, height }`. */
function pixels(image) {
  if (!image || !ArrayBuffer.isView(image.data)) throw new Error('an image needs RGBA pixel data');
  return [new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength), image.width, image.height];
}

const ops = {
  async load({ url, model: name, file, bytes, sha256, cache, config, backend }, progress) {
    await init();
    let data;
    if (bytes || file) data = await readWeights(bytes ?? file, { onProgress: progress, hash: !!sha256 });
    else {
      const resolved = resolveModel(url ?? name);
      data = await fetchWeights({ url: resolved.url, sha256, cache: cache ?? true, onProgress: progress });
    }
    if (sha256 && data.sha256 && data.sha256 !== String(sha256).toLowerCase()) {
      throw new Error(`checksum mismatch (expected sha256 ${sha256}, got ${data.sha256})`);
    }
    progress({ stage: 'upload', loaded: 0, total: data.bytes.length, fraction: 0 });
    const loaded = await wasm.Sam2Model.load(data.bytes, config ?? undefined, backend ?? 'auto');
    data = null; // the checkpoint now lives on the device; let the JS copy go
    model?.free();
    model = loaded;
    progress({ stage: 'upload', loaded: 1, total: 1, fraction: 1 });
    return JSON.parse(model.info());
  },

  async setImage({ image }) {
    const m = needModel();
    const t0 = performance.now();
    await m.setImage(...pixels(image));
    return { width: image.width, height: image.height, encodeMs: performance.now() - t0 };
  },

  async predict({ points, labels, boxes, maskInput, multimask }) {
    const m = needModel();
    const t0 = performance.now();
    const box = boxes?.length ? new Float32Array(boxes.flat()) : undefined;
    const out = await m.predict(new Float32Array((points ?? []).flat()), new Int32Array(labels ?? []), box, maskInput ?? undefined, multimask ?? true);
    out.decodeMs = performance.now() - t0;
    return out;
  },

  async generateMasks({ options, progress: report }, progress, id) {
    const m = needModel();
    let records;
    try {
      records = await m.generateMasks(options ?? undefined, (p) => {
        if (report) progress(p);
        return goOn(id);
      });
    } catch (e) {
      if (cancelled.has(id) && String(e?.message ?? e) === 'cancelled') throw abortError('segment-everything was stopped');
      throw e;
    }
    for (const r of records) {
      const [h, w] = r.segmentation.size;
      r.mask = { data: wasm.rleToMask(r.segmentation.counts, h, w), width: w, height: h };
    }
    return records;
  },

  async createVideo({ width, height, stream, frames }) {
    const m = needModel();
    const s = stream ? wasm.Sam2VideoSession.stream(m, width, height) : new wasm.Sam2VideoSession(m, width, height);
    for (const f of frames ?? []) s.addFrame(...pixels(f));
    const id = nextSession++;
    sessions.set(id, s);
    return { session: id, numFrames: s.numFrames };
  },

  async addFrame({ session, image }) { return needSession(session).addFrame(...pixels(image)); },
  async setFillHoleArea({ session, area }) { needSession(session).fillHoleArea = area; },
  async addPoints({ session, frame, objId, points, labels, clearOld }) {
    return needSession(session).addPoints(frame, objId, new Float32Array(points.flat()), new Int32Array(labels), clearOld ?? true);
  },
  async addBox({ session, frame, objId, box }) { return needSession(session).addBox(frame, objId, new Float32Array(box)); },
  async addMask({ session, frame, objId, mask }) {
    return needSession(session).addMask(frame, objId, mask.data, mask.width, mask.height);
  },
  async clearPrompts({ session, frame, objId }) { return needSession(session).clearPrompts(frame, objId); },
  async removeObject({ session, objId }) { return needSession(session).removeObject(objId); },
  async resetVideo({ session }) { needSession(session).reset(); },
  async trackFrame({ session, image }) { return needSession(session).trackFrame(...pixels(image)); },
  async propagate({ session, options }, progress, id) {
    let last = performance.now();
    const visited = await needSession(session).propagate(options ?? undefined, (frame) => {
      const now = performance.now();
      frame.frameMs = now - last;
      last = now;
      progress(frame, buffersOf(frame));
      return goOn(id);
    });
    return { frames: visited, cancelled: cancelled.has(id) };
  },
  async disposeVideo({ session }) {
    needSession(session).free();
    sessions.delete(session);
  },

  async labels({ fn, args }) {
    await init();
    const f = { maskToRle: wasm.maskToRle, rleToMask: wasm.rleToMask, maskToPolygons: wasm.maskToPolygons, maskToYolo: wasm.maskToYolo, maskToCocoAnnotation: wasm.maskToCocoAnnotation }[fn];
    if (!f) throw new Error(`unknown label function ${fn}`);
    return f(...args);
  },

  async dispose() {
    for (const s of sessions.values()) s.free();
    sessions.clear();
    model?.free();
    model = null;
  },

  /** Destroys the WebGPU device (what a driver reset does), to test the recovery path. */
  async loseDevice() {
    return wasm._destroyWebgpuDevice();
  },
};

/**
 * Whether request `id` goes on after a batch or a frame: resolved after a macrotask, so that a
 * `{cancel}` message sent meanwhile is taken even when the model computes without awaiting
 * anything (the CPU backend). A message to itself, not a timer: timers of a hidden tab's
 * workers may be throttled to one a second.
 */
function goOn(id) {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve(!cancelled.has(id));
    };
    port2.postMessage(null);
  });
}

/** The error of an operation stopped by its AbortSignal (named as `fetch` names it). */
function abortError(message) {
  return Object.assign(new Error(message), { name: 'AbortError' });
}

/** Whether an error leaves the instance unusable: a wasm trap, or a lost GPU device. */
function isFatal(e) {
  return e instanceof WebAssembly.RuntimeError || /GPU device was lost/.test(String(e?.message ?? e));
}

async function handle({ id, op, args }) {
  try {
    if (fatal) throw new Error(fatal);
    if (!Object.hasOwn(ops, op)) throw new Error(`unknown operation ${op}`);
    const progress = (p, transfer = []) => postMessage({ id, progress: p }, transfer);
    const result = await ops[op](args ?? {}, progress, id);
    postMessage({ id, ok: true, result }, buffersOf(result));
  } catch (e) {
    if (!fatal && isFatal(e)) {
      fatal = e instanceof WebAssembly.RuntimeError ? `the model crashed (wasm trap: ${e.message}); load the model again` : String(e.message);
      postMessage({ fatal });
    }
    postMessage({ id, ok: false, error: { name: e?.name ?? 'Error', message: String(e?.message ?? e) } });
  } finally {
    cancelled.delete(id);
  }
}

self.onmessage = ({ data }) => {
  if (data && 'cancel' in data) {
    cancelled.add(data.cancel);
    return;
  }
  queue = queue.then(() => handle(data));
};
