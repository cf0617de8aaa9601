// Video frames for an offline session: image files in name order, or a video file sampled at a
// fixed rate by seeking a <video> element and drawing it to a canvas. Frames are RGBA pixels
// `{data, width, height}`, all of one size, at most MAX_SIDE on their longer side.
import { toPixels } from '../sam2.js';

const MAX_SIDE = 1024;

/** Resolves on `type`, rejects on the element's error (either listener removes the other). */
function once(el, type) {
  return new Promise((resolve, reject) => {
    const ok = () => { el.removeEventListener('error', fail); resolve(); };
    const fail = () => {
      el.removeEventListener(type, ok);
      reject(new Error(`the video cannot be decoded by this browser (${el.error?.message || 'unsupported format'})`));
    };
    el.addEventListener(type, ok, { once: true });
    el.addEventListener('error', fail, { once: true });
  });
}

/** RGBA pixels of a picture `w × h`, scaled down to MAX_SIDE, or to `size` `[w, h]` when given. */
function grab(source, w, h, size) {
  const s = Math.min(1, MAX_SIDE / Math.max(w, h));
  const [tw, th] = size ?? [Math.round(w * s), Math.round(h * s)];
  const c = new OffscreenCanvas(tw, th);
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, tw, th);
  return ctx.getImageData(0, 0, tw, th);
}

/** Image files as frames, in natural name order (frame2 before frame10), at most `max`. */
export async function decodeImages(files, max, onProgress) {
  files = [...files].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true })).slice(0, max);
  const frames = [];
  for (const [i, f] of files.entries()) {
    const bitmap = await createImageBitmap(f, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    // Every frame takes the first one's size.
    const size = frames[0] && [frames[0].width, frames[0].height];
    const resize = (size && (bitmap.width !== size[0] || bitmap.height !== size[1])) || Math.max(bitmap.width, bitmap.height) > MAX_SIDE;
    frames.push(resize ? grab(bitmap, bitmap.width, bitmap.height, size) : await toPixels(bitmap));
    bitmap.close();
    onProgress?.(i + 1, files.length);
  }
  if (!frames.length) throw new Error('no image files chosen');
  return frames;
}

/** A video file sampled at `fps` frames per second, at most `max` frames. */
export async function decodeVideo(file, fps, max, onProgress) {
  const video = Object.assign(document.createElement('video'), { muted: true, preload: 'auto', playsInline: true });
  video.src = URL.createObjectURL(file);
  try {
    await once(video, 'loadeddata');
    if (!Number.isFinite(video.duration)) {
      // Recorded WebM often has no duration in its header: seeking to the end reveals it.
      video.currentTime = 1e9;
      await once(video, 'seeked');
      if (!Number.isFinite(video.duration)) throw new Error('the length of this video is unknown');
    }
    const n = Math.min(max, Math.floor(video.duration * fps) + 1);
    const frames = [];
    for (let i = 0; i < n; i++) {
      video.currentTime = Math.min(i / fps, Math.max(0, video.duration - 0.001));
      await once(video, 'seeked');
      frames.push(grab(video, video.videoWidth, video.videoHeight));
      onProgress?.(i + 1, n);
    }
    return frames;
  } finally {
    URL.revokeObjectURL(video.src);
    video.removeAttribute('src');
    video.load();
  }
}
