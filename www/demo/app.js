// Shared state of the demo page: the loaded model, which image its embedding holds, the active
// tab, the status line, a small event bus between the modules, and DOM helpers.

/** `document.querySelector`. */
export const $ = (selector, root = document) => root.querySelector(selector);

/** Milliseconds as text: "840 ms", "12.3 s". */
export const fmtMs = (ms) => (ms == null || Number.isNaN(ms) ? '–' : ms < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/** Whether a file is an image (by its type, or its extension when the type is missing). */
export const isImage = (f) => f.type.startsWith('image/') || /\.(png|jpe?g|webp|gif|bmp|avif)$/i.test(f.name);

/** A file name without its folder and extension. */
export const baseName = (name) => String(name).split(/[\\/]/).pop().replace(/\.[^.]*$/, '');

/** Whether a key event belongs to a text field (shortcuts stay off there). */
export const typing = (e) => e.target instanceof HTMLElement && (e.target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) && !['range', 'checkbox', 'radio', 'button', 'file'].includes(e.target.type);

/** Saves a Blob as a file: an object URL clicked through an `<a download>`. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Sets a `<progress>`: a fraction in [0, 1], or undefined for "busy, size unknown". */
export function setProgress(bar, fraction) {
  if (fraction === undefined) bar.removeAttribute('value');
  else bar.value = Math.max(0, Math.min(1, fraction));
}

let encodeChain = Promise.resolve();

export const app = {
  /** The loaded `Sam2`, or null. */
  sam: null,
  /** Bumped on each model load; results of an older model are dropped. */
  modelGen: 0,
  /** The token of the image whose embedding the model holds (null: none or unknown). */
  encoded: null,
  /** 'image' | 'everything' | 'video' | 'labels' */
  tab: 'image',
  bus: new EventTarget(),

  on(type, fn) { this.bus.addEventListener(type, (e) => fn(e.detail)); },
  emit(type, detail) { this.bus.dispatchEvent(new CustomEvent(type, { detail })); },

  /** The status line under the stage; kind 'info' | 'busy' | 'ok' | 'error'. */
  status(text, kind = 'info') {
    const s = $('#status');
    s.textContent = text;
    s.dataset.kind = kind;
  },

  /** The model, or an error telling the user to load one. */
  model() {
    if (!this.sam) throw new Error('load a model first (preset, file or URL at the top of the page)');
    return this.sam;
  },

  setModel(sam) {
    this.sam = sam;
    this.modelGen += 1;
    this.encoded = null;
    this.emit('model', sam);
  },

  /**
   * Makes the image `token` the model's current image, encoding `pixels()` unless it already is;
   * encodes run one after another, so a predict awaiting this one sees its own image.
   * Resolves to `setImage`'s `{encodeMs, …}`, or null when nothing had to be done.
   */
  encode(token, pixels) {
    const sam = this.model();
    const job = encodeChain.then(async () => {
      if (this.encoded === token && this.sam === sam) return null;
      this.encoded = null;
      const r = await sam.setImage(await pixels());
      this.encoded = token;
      return r;
    });
    encodeChain = job.catch(() => {});
    return job;
  },

  /** Runs an action of the UI: errors go to the status line instead of the console only. */
  async guard(fn) {
    try {
      return await fn();
    } catch (e) {
      console.error(e);
      this.status(`Error: ${e?.message ?? e}`, 'error');
      return undefined;
    }
  },
};
