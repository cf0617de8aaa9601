// sam2-webgpu: Meta's SAM 2 / SAM 2.1 in the browser (Rust + burn, WebGPU, CPU fallback).
//
//   import { Sam2 } from 'sam2-webgpu';
//   const sam = await Sam2.load({ model: 'sam2.1_hiera_tiny', onProgress: (p) => console.log(p) });
//   await sam.setImage(imageBitmapOrImageDataOrCanvas);
//   const { masks, bestIndex } = await sam.predict({ points: [[x, y]], labels: [1] });
//
// The model runs in a module Worker (worker.js); each call is a request answered by id, with
// pixel buffers and masks transferred, not copied. Types: sam2.d.ts.

import { PRESETS, weightCache } from './weights.js';

export { PRESETS, weightCache };

/** Copies `{data, width, height}` RGBA pixels of any accepted input into a fresh buffer. */
export async function toPixels(input) {
  if (input == null) throw new TypeError('no image given');
  if (ArrayBuffer.isView(input.data) && Number.isInteger(input.width) && Number.isInteger(input.height)) {
    if (input.data.length !== input.width * input.height * 4) {
      throw new RangeError(`a ${input.width}x${input.height} RGBA image needs ${input.width * input.height * 4} bytes, got ${input.data.length}`);
    }
    return { data: new Uint8Array(input.data), width: input.width, height: input.height };
  }
  let source = input;
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    source = await createImageBitmap(input, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  }
  const width = source.videoWidth || source.naturalWidth || source.displayWidth || source.width;
  const height = source.videoHeight || source.naturalHeight || source.displayHeight || source.height;
  if (!width || !height) throw new TypeError('unsupported image input (or it has no pixels yet): pass ImageData, ImageBitmap, a canvas, an <img>, a <video>, a VideoFrame or a Blob');
  const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(width, height) : Object.assign(document.createElement('canvas'), { width, height });
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height);
  if (source !== input) source.close?.();
  const { data } = ctx.getImageData(0, 0, width, height);
  return { data: new Uint8Array(data.buffer), width, height };
}

/** A mask as an ImageData: `color` (RGBA) where the mask is set, `background` elsewhere. */
export function maskToImageData(mask, { color = [30, 144, 255, 160], background = [0, 0, 0, 0] } = {}) {
  const out = new ImageData(mask.width, mask.height);
  const px = new Uint32Array(out.data.buffer);
  const pack = ([r, g, b, a]) => new Uint32Array(new Uint8Array([r, g, b, a]).buffer)[0];
  const on = pack(color), off = pack(background);
  for (let i = 0; i < mask.data.length; i++) px[i] = mask.data[i] ? on : off;
  return out;
}

/** A video frame's result as `{frame, objects: [{id, mask, score, lowResLogits}]}`. */
function frameResult(r) {
  const n = r.width * r.height, s = r.lowResSize * r.lowResSize;
  const objects = Array.from(r.objIds, (id, i) => ({
    id,
    mask: { data: r.masks.subarray(i * n, (i + 1) * n), width: r.width, height: r.height },
    score: r.objectScores[i],
    lowResLogits: r.lowResLogits.subarray(i * s, (i + 1) * s),
  }));
  return { frame: r.frame, objects, ...(r.frameMs !== undefined && { frameMs: r.frameMs }) };
}

/** One object's masks out of a batched prediction. */
function objectResult(r, o) {
  const n = r.width * r.height, s = r.lowResLogits.length / (r.numObjects * r.numMasks);
  const masks = [];
  for (let k = 0; k < r.numMasks; k++) {
    const i = o * r.numMasks + k;
    masks.push({ data: r.masks.subarray(i * n, (i + 1) * n), width: r.width, height: r.height, score: r.scores[i], lowResLogits: r.lowResLogits.subarray(i * s, (i + 1) * s) });
  }
  const bestIndex = masks.reduce((b, m, k) => (m.score > masks[b].score ? k : b), 0);
  return { masks, scores: r.scores.slice(o * r.numMasks, (o + 1) * r.numMasks), bestIndex, objectScoreLogit: r.objectScoreLogits[o], decodeMs: r.decodeMs };
}

/** A SAM 2 model running in a Worker. Create with `Sam2.load`; free with `dispose()`. */
export class Sam2 {
  #worker;
  #pending = new Map();
  #nextId = 1;
  #closed = null;
  /** Model facts: `{version, size, imageSize, parameters, checkpointBytes, video, backend, adapter, fallbackReason}`. */
  info = null;

  /** Meta's official checkpoints by name. */
  static presets = PRESETS;
  /** The browser cache of downloaded checkpoints: `list()`, `delete(urlOrSha256)`, `clear()`. */
  static cache = weightCache;

  constructor(worker) {
    if (!(worker instanceof Worker)) throw new TypeError('use Sam2.load(...) to create a model');
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    worker.onerror = (e) => { e.preventDefault?.(); this.#close(`the model worker failed: ${e.message || 'it could not be started (wrong workerUrl, or a CSP forbids module workers)'}`); };
    worker.onmessageerror = () => this.#close('a message from the model worker could not be read');
  }

  /**
   * Loads a checkpoint (Meta's `.pt` or our safetensors) in a new Worker. Give one of `url`,
   * `model` (a preset name, downloaded from Meta), `file` (a File/Blob) or `bytes` (transferred);
   * `sha256` verifies the content; `cache: false` skips the browser cache; `backend`:
   * 'auto' (default), 'webgpu' or 'cpu'; `onProgress({stage, loaded, total, fraction})`;
   * `signal` (an AbortSignal) stops the download or upload: the load then rejects with an
   * AbortError and its worker is gone.
   */
  static async load(options = {}) {
    const { url, model, file, bytes, sha256, cache, config, backend, onProgress, workerUrl, signal } = options;
    if (!url && !model && !file && !bytes) throw new TypeError('Sam2.load needs one of url, model, file or bytes');
    signal?.throwIfAborted();
    if (model && !url && !Object.hasOwn(PRESETS, model)) throw new Error(`unknown model "${model}": one of ${Object.keys(PRESETS).join(', ')}, or give a url`);
    // Written out literally so that bundlers (Vite, webpack, Rollup) see and bundle the worker.
    const worker = workerUrl ? new Worker(workerUrl, { type: 'module' }) : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    const sam = new Sam2(worker);
    const data = bytes ? (ArrayBuffer.isView(bytes) ? bytes : new Uint8Array(bytes)) : undefined;
    const abort = () => sam.#close('the model load was aborted', 'AbortError');
    signal?.addEventListener('abort', abort, { once: true });
    try {
      // Relative URLs are the page's, not the worker's (which a bundler may have moved).
      const absolute = url ? new URL(url, globalThis.document?.baseURI ?? globalThis.location?.href).href : undefined;
      sam.info = await sam.#call('load', { url: absolute, model, file, bytes: data, sha256, cache, config, backend }, { transfer: data ? [data.buffer] : [], onProgress });
    } catch (e) {
      sam.#close(e.message);
      throw e;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
    const preset = model && PRESETS[model];
    if (preset && (sam.info.version !== `sam${preset.version}` || sam.info.size !== preset.size)) {
      sam.dispose();
      throw new Error(`the checkpoint is ${sam.info.version} ${sam.info.size}, not ${model}`);
    }
    return sam;
  }

  #receive(msg) {
    if (msg.fatal) return this.#close(msg.fatal);
    const p = this.#pending.get(msg.id);
    if (!p) return;
    if ('progress' in msg) return p.onProgress?.(msg.progress);
    this.#pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(Object.assign(new Error(msg.error.message), { name: msg.error.name === 'Error' ? 'Sam2Error' : msg.error.name }));
  }

  #close(reason, name = 'Error') {
    if (this.#closed) return;
    this.#closed = reason;
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(Object.assign(new Error(reason), { name }));
    this.#pending.clear();
  }

  #call(op, args, { transfer = [], onProgress, signal } = {}) {
    if (this.#closed) return Promise.reject(new Error(this.#closed));
    const id = this.#nextId++;
    const cancel = () => this.#worker.postMessage({ cancel: id });
    const call = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, op, args }, transfer);
      signal?.addEventListener('abort', cancel, { once: true });
    });
    if (!signal) return call;
    const done = () => signal.removeEventListener('abort', cancel);
    call.then(done, done);
    return call;
  }

  async #pixels(input) {
    const image = await toPixels(input);
    return [{ image }, { transfer: [image.data.buffer] }];
  }

  /** Encodes an image (any accepted input); resolves to `{width, height, encodeMs}`. */
  async setImage(input) {
    return this.#call('setImage', ...(await this.#pixels(input)));
  }

  /**
   * Masks for one object: `points` `[[x, y], …]` in image pixels with `labels` (1 positive,
   * 0 negative), an optional `box` `[x0, y0, x1, y1]`, `maskInput` (a previous mask's
   * `lowResLogits`, for refinement) and `multimask` (default true: 3 masks, else 1).
   */
  async predict({ points = [], labels = [], box, maskInput, multimask = true } = {}) {
    const args = { points, labels, boxes: box ? [box] : undefined, maskInput: maskInput ? Float32Array.from(maskInput) : undefined, multimask };
    return objectResult(await this.#call('predict', args, { transfer: args.maskInput ? [args.maskInput.buffer] : [] }), 0);
  }

  /** Masks for several objects at once, one per box `[x0, y0, x1, y1]`. */
  async predictBoxes(boxes, { multimask = false } = {}) {
    const r = await this.#call('predict', { boxes, multimask });
    return Array.from({ length: r.numObjects }, (_, o) => objectResult(r, o));
  }

  /**
   * Segments everything in the current image (Meta's automatic mask generator; options
   * camelCased). `onProgress({done, total, crop, crops})` after each batch of grid points;
   * `signal` stops the run at the next batch (it then rejects with an AbortError).
   */
  async generateMasks({ onProgress, signal, ...options } = {}) {
    signal?.throwIfAborted();
    return this.#call('generateMasks', { options, progress: !!onProgress }, { onProgress, signal });
  }

  /** A video: `{width, height}` and optional `frames` now (more with `addFrame`), or `{stream: true}` for live frames. */
  async createVideoSession({ width, height, frames = [], stream = false } = {}) {
    const pixels = await Promise.all(frames.map(toPixels));
    width ??= pixels[0]?.width;
    height ??= pixels[0]?.height;
    const { session } = await this.#call('createVideo', { width, height, stream, frames: pixels }, { transfer: pixels.map((p) => p.data.buffer) });
    return new VideoSession((op, args, opts) => this.#call(op, { session, ...args }, opts), width, height, stream);
  }

  /** COCO compressed RLE `{size: [h, w], counts}` of a mask. */
  maskToRle(mask) { return this.#call('labels', { fn: 'maskToRle', args: [mask.data, mask.width, mask.height] }); }
  /** The mask of COCO compressed RLE. */
  async rleToMask({ size: [height, width], counts }) { return { data: await this.#call('labels', { fn: 'rleToMask', args: [counts, height, width] }), width, height }; }
  /** Outlines `[{exterior, holes}]` (flat `[x0, y0, …]` rings, pixels) of a mask's components. */
  maskToPolygons(mask, { tolerance = 0 } = {}) { return this.#call('labels', { fn: 'maskToPolygons', args: [mask.data, mask.width, mask.height, tolerance] }); }
  /** One YOLO segmentation line, or undefined for an empty mask. */
  maskToYolo(mask, classId, { tolerance = 0, strategy = 'all' } = {}) { return this.#call('labels', { fn: 'maskToYolo', args: [mask.data, mask.width, mask.height, classId, tolerance, strategy] }); }

  /**
   * A COCO JSON string for `images` `[{fileName, width, height, objects: [{mask, categoryId?, score?}]}]`
   * and `categories` `[{id, name}]` (default: one category "object").
   */
  async toCocoJson(images, categories = [{ id: 1, name: 'object', supercategory: '' }]) {
    const annotations = [];
    for (const [i, img] of images.entries()) {
      for (const o of img.objects ?? []) {
        const json = await this.#call('labels', { fn: 'maskToCocoAnnotation', args: [annotations.length + 1, i + 1, o.categoryId ?? categories[0].id, o.mask.data, o.mask.width, o.mask.height, o.score] });
        annotations.push(JSON.parse(json));
      }
    }
    const cocoImages = images.map((img, i) => ({ id: i + 1, file_name: img.fileName ?? `image_${i + 1}.png`, width: img.width, height: img.height }));
    return JSON.stringify({ images: cocoImages, annotations, categories: categories.map((c) => ({ supercategory: '', ...c })) });
  }

  /** Frees the model and its GPU memory and stops the worker; later calls reject. */
  async dispose() {
    if (this.#closed) return;
    try { await this.#call('dispose', {}); } catch { /* the worker is going away anyway */ }
    this.#close('the model was disposed');
  }

  /** Destroys the GPU device as a driver reset would (for testing recovery). */
  _loseDevice() { return this.#call('loseDevice', {}); }
}

/** Objects tracked through a video (offline frames) or a live stream. */
export class VideoSession {
  #call;
  constructor(call, width, height, stream) {
    this.#call = call;
    Object.assign(this, { width, height, stream });
  }

  /** Appends a frame to an offline video (before the first prompt); resolves to its index. */
  async addFrame(input) {
    const image = await toPixels(input);
    return this.#call('addFrame', { image }, { transfer: [image.data.buffer] });
  }

  /** Holes up to this area (low-res pixels) are filled in predicted masks; 0 = off. */
  setFillHoleArea(area) { return this.#call('setFillHoleArea', { area }); }

  /** Points `[[x, y], …]` with labels for object `objId` on `frame`; resolves to the frame's result. */
  async addPoints(frame, objId, points, labels, { clearOld = true } = {}) {
    return frameResult(await this.#call('addPoints', { frame, objId, points, labels, clearOld }));
  }

  /** A box `[x0, y0, x1, y1]` for object `objId` on `frame`. */
  async addBox(frame, objId, box) { return frameResult(await this.#call('addBox', { frame, objId, box })); }

  /** A mask `{data, width, height}` for object `objId` on `frame`. */
  async addMask(frame, objId, mask) { return frameResult(await this.#call('addMask', { frame, objId, mask })); }

  /** Removes object `objId`'s prompts on `frame`. */
  async clearPrompts(frame, objId) { return frameResult(await this.#call('clearPrompts', { frame, objId })); }

  /** Removes an object everywhere. */
  async removeObject(objId) { return (await this.#call('removeObject', { objId })).map(frameResult); }

  /** Forgets every object and result (the frames stay). */
  reset() { return this.#call('resetVideo', {}); }

  /**
   * Tracks every object through the video (`start`, `maxFrames`, `reverse`), calling
   * `onFrame(result)` as each frame is ready; `signal` stops it. Resolves to `{frames, cancelled}`.
   */
  propagate({ start, maxFrames, reverse, onFrame, signal } = {}) {
    const options = Object.fromEntries(Object.entries({ start, maxFrames, reverse }).filter(([, v]) => v !== undefined));
    return this.#call('propagate', { options }, { onProgress: (r) => onFrame?.(frameResult(r)), signal });
  }

  /** Live stream: pushes the next frame and tracks every object on it. */
  async track(input) {
    const image = await toPixels(input);
    return frameResult(await this.#call('trackFrame', { image }, { transfer: [image.data.buffer] }));
  }

  /** Frees the session's memory bank. */
  dispose() { return this.#call('disposeVideo', {}); }
}
