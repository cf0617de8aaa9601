// Drawing helpers shared by the views: object colours, mask layers on canvases, fitting a stage
// to the window, pointer → image coordinates, and the SVG layer with points and boxes.
import { maskToImageData } from '../sam2.js';

const SVG = 'http://www.w3.org/2000/svg';

/** An HSL colour (h in degrees, s and l in [0, 1]) as [r, g, b] bytes. */
function hsl(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** The colour of object `i` (0, 1, …): hues a golden angle apart, so neighbours differ. */
export function colorOf(i) {
  return hsl((i * 137.508 + 200) % 360, 0.78, i % 2 ? 0.6 : 0.52);
}

/** `[r, g, b]` as a CSS colour. */
export const css = ([r, g, b], a = 1) => `rgba(${r}, ${g}, ${b}, ${a})`;

/** Sizes a canvas to `w × h` pixels, cleared. */
export function resize(canvas, w, h) {
  if (canvas.width !== w || canvas.height !== h) Object.assign(canvas, { width: w, height: h });
  else canvas.getContext('2d').clearRect(0, 0, w, h);
}

/** Draws one mask on a canvas of its size: `rgb` with `alpha` where it is set (its outline opaque), transparent elsewhere. */
export function drawMask(canvas, mask, rgb = [30, 144, 255], alpha = 150) {
  paintMasks(canvas, mask.width, mask.height, [{ mask, color: rgb }], { alpha });
}

/**
 * Paints several masks `[{mask, color}]` into one layer of `w × h` (later ones on top), with
 * `alpha` inside and opaque outlines (set pixels next to an unset one); `background` (RGBA)
 * fills the rest. Returns the ImageData (also drawn on `canvas` if given).
 */
export function paintMasks(canvas, w, h, items, { alpha = 140, background = [0, 0, 0, 0] } = {}) {
  const out = new ImageData(w, h);
  const px = new Uint32Array(out.data.buffer);
  const pack = (r, g, b, a) => new Uint32Array(new Uint8Array([r, g, b, a]).buffer)[0];
  px.fill(pack(...background));
  for (const { mask, color } of items) {
    if (mask.width !== w || mask.height !== h) continue;
    const inside = pack(color[0], color[1], color[2], alpha);
    const edge = pack(color[0], color[1], color[2], 255);
    const d = mask.data;
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i++) {
        if (!d[i]) continue;
        const outline = (x > 0 && !d[i - 1]) || (x < w - 1 && !d[i + 1]) || (y > 0 && !d[i - w]) || (y < h - 1 && !d[i + w]);
        px[i] = outline ? edge : inside;
      }
    }
  }
  if (canvas) {
    resize(canvas, w, h);
    canvas.getContext('2d').putImageData(out, 0, 0);
  }
  return out;
}

/** Number of set pixels of a mask. */
export function area(mask) {
  let n = 0;
  for (let i = 0; i < mask.data.length; i++) n += mask.data[i] ? 1 : 0;
  return n;
}

/**
 * Scales a stage (a positioned box whose layers fill it) to show a `w × h` picture as large as
 * fits its container's width and most of the window's height, keeping the aspect ratio.
 */
export function fit(stage, w, h) {
  if (!w || !h) return;
  const maxW = stage.parentElement.clientWidth || w;
  const maxH = Math.max(240, Math.min(window.innerHeight - 290, 1000));
  const s = Math.min(maxW / w, maxH / h);
  stage.style.width = `${Math.max(1, Math.floor(w * s))}px`;
  stage.style.height = `${Math.max(1, Math.floor(h * s))}px`;
}

/** A pointer event's position in the `w × h` picture shown by `stage`, to 0.1 px and clamped. */
export function toImage(e, stage, w, h) {
  const r = stage.getBoundingClientRect();
  const c = (v, max) => Math.round(Math.max(0, Math.min(max, v)) * 10) / 10;
  return [c(((e.clientX - r.left) * w) / r.width, w), c(((e.clientY - r.top) * h) / r.height, h)];
}

/**
 * Redraws the SVG layer over a `w × h` picture: `points` `[[x, y], …]` with `labels` (1 green,
 * 0 red), an optional `box` `[x0, y0, x1, y1]`, and `color` for the box outline.
 */
export function drawMarks(svg, w, h, { points = [], labels = [], box = null, color = [255, 255, 255], dashed = false } = {}) {
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.replaceChildren();
  const scale = w / (svg.getBoundingClientRect().width || w);
  const add = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    svg.append(node);
    return node;
  };
  if (box) {
    const [x0, y0, x1, y1] = box;
    add('rect', { x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0), fill: 'none', stroke: css(color), 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', ...(dashed && { 'stroke-dasharray': '6 4' }) });
  }
  points.forEach(([x, y], i) => {
    const positive = labels[i] !== 0;
    add('circle', { cx: x, cy: y, r: 6 * scale, fill: positive ? '#16a34a' : '#dc2626', stroke: '#fff', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' });
    add('path', { d: positive ? `M${x - 3 * scale} ${y}H${x + 3 * scale}M${x} ${y - 3 * scale}V${y + 3 * scale}` : `M${x - 3 * scale} ${y}H${x + 3 * scale}`, stroke: '#fff', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' });
  });
}

/** Draws `image` (a canvas) scaled into the thumbnail `canvas`, with `mask` over it in `rgb`. */
export function thumbnail(canvas, image, mask, rgb) {
  const w = 120;
  const h = Math.max(1, Math.round((w * image.height) / image.width));
  resize(canvas, w, Math.min(h, 120));
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  if (!mask) return;
  const layer = new OffscreenCanvas(mask.width, mask.height);
  layer.getContext('2d').putImageData(maskToImageData(mask, { color: [...rgb, 170] }), 0, 0);
  ctx.drawImage(layer, 0, 0, canvas.width, canvas.height);
}

/** Puts RGBA pixels `{data, width, height}` on a canvas of their size. */
export function drawPixels(canvas, px) {
  resize(canvas, px.width, px.height);
  const data = px.data instanceof Uint8ClampedArray ? px.data : new Uint8ClampedArray(px.data.buffer, px.data.byteOffset, px.data.byteLength);
  canvas.getContext('2d').putImageData(new ImageData(data, px.width, px.height), 0, 0);
}
