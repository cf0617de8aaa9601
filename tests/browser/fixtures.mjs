// Page-side helpers shared by the browser test pages: fixture tensors and decoded images.

/** Reads every F32 tensor of a safetensors file into { name: { shape, data } }. */
export function readSafetensors(buf) {
  const view = new DataView(buf);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, headerLen)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const [a, b] = t.data_offsets;
    out[name] = { shape: t.shape, data: new Float32Array(buf.slice(8 + headerLen + a, 8 + headerLen + b)) };
  }
  return out;
}

/** The RGBA pixels of an image URL, without colour conversion ({ data, width, height }). */
export async function rgba(url) {
  const blob = await (await fetch(url)).blob();
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
}

/** Largest absolute difference of two equal-length arrays. */
export const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
