// Types of sam2-webgpu's JS client (sam2.js) and weight delivery (weights.js).

/** A binary mask: `width·height` bytes, 1 = object, row-major. */
export interface Mask {
  data: Uint8Array;
  width: number;
  height: number;
}

/** RGBA pixels, as ImageData holds them. */
export interface Pixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
}

/** Anything an image or a video frame can be given as (converted on the page's thread). */
export type ImageInput = Pixels | ImageData | ImageBitmap | HTMLCanvasElement | OffscreenCanvas | HTMLImageElement | HTMLVideoElement | VideoFrame | Blob;

export type Point = [x: number, y: number];
export type Box = [x0: number, y0: number, x1: number, y1: number];

export interface Progress {
  /** 'download', 'cache' (read from the browser cache), 'verify' (SHA-256), 'read' (file or bytes), 'upload' (to the device). */
  stage: 'download' | 'cache' | 'verify' | 'read' | 'upload';
  loaded: number;
  total: number | undefined;
  /** `loaded / total`, undefined when the size is unknown. */
  fraction: number | undefined;
}

export type PresetName =
  | 'sam2.1_hiera_tiny' | 'sam2.1_hiera_small' | 'sam2.1_hiera_base_plus' | 'sam2.1_hiera_large'
  | 'sam2_hiera_tiny' | 'sam2_hiera_small' | 'sam2_hiera_base_plus' | 'sam2_hiera_large';

export interface Preset {
  url: string;
  version: '2' | '2.1';
  size: 'tiny' | 'small' | 'base_plus' | 'large';
}

export interface LoadOptions {
  /** A checkpoint URL (Meta's `.pt` or a safetensors file, f32 or f16). */
  url?: string;
  /** A preset name: downloaded from Meta when no `url` is given, and checked against the file. */
  model?: PresetName;
  /** A local checkpoint file. */
  file?: Blob;
  /** Checkpoint bytes; transferred to the worker (the buffer is detached). */
  bytes?: ArrayBuffer | Uint8Array;
  /** Expected SHA-256 (hex) of the content: a mismatch rejects. */
  sha256?: string;
  /** Keep downloads in the browser cache (default true). */
  cache?: boolean;
  /** Meta's Hydra YAML, for checkpoints of non-official sizes. */
  config?: string;
  /** 'auto' (default: WebGPU, else the CPU), 'webgpu' (fail without it) or 'cpu'. */
  backend?: 'auto' | 'webgpu' | 'cpu';
  onProgress?: (progress: Progress) => void;
  /** Stops the download or upload: the load rejects with an AbortError. */
  signal?: AbortSignal;
  /** Where worker.js is, when a bundler moved it. */
  workerUrl?: string | URL;
}

export interface ModelInfo {
  version: 'sam2' | 'sam2.1';
  size: 'tiny' | 'small' | 'base_plus' | 'large' | 'custom';
  imageSize: number;
  parameters: number;
  checkpointBytes: number;
  /** Whether the video modules are loaded. */
  video: boolean;
  backend: 'webgpu' | 'cpu';
  adapter: string;
  /** Why the CPU is used although WebGPU was allowed. */
  fallbackReason: string | null;
}

export interface PredictedMask extends Mask {
  /** Predicted IoU. */
  score: number;
  /** Low-resolution logits `[S/4, S/4]`: pass as `maskInput` to refine. */
  lowResLogits: Float32Array;
}

export interface Prediction {
  /** 3 masks with `multimask`, else 1. */
  masks: PredictedMask[];
  scores: Float32Array;
  /** Index of the mask with the highest score. */
  bestIndex: number;
  /** > 0: the object is present. */
  objectScoreLogit: number;
  decodeMs: number;
}

export interface PredictOptions {
  points?: Point[];
  /** One per point: 1 positive, 0 negative. */
  labels?: number[];
  box?: Box;
  /** A previous mask's `lowResLogits`. */
  maskInput?: Float32Array;
  /** Default true. */
  multimask?: boolean;
}

/** Meta's SAM2AutomaticMaskGenerator arguments, camelCased. */
export interface GenerateOptions {
  pointsPerSide?: number;
  pointsPerBatch?: number;
  predIouThresh?: number;
  stabilityScoreThresh?: number;
  stabilityScoreOffset?: number;
  maskThreshold?: number;
  boxNmsThresh?: number;
  cropNLayers?: number;
  cropNmsThresh?: number;
  cropOverlapRatio?: number;
  cropNPointsDownscaleFactor?: number;
  minMaskRegionArea?: number;
  useM2m?: boolean;
  multimaskOutput?: boolean;
  /** Called after each decoded batch of grid points (batches counted over every crop). */
  onProgress?: (progress: { done: number; total: number; crop: number; crops: number }) => void;
  /** Stops the run at the next batch: it rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface CocoRle {
  /** `[height, width]` */
  size: [number, number];
  counts: string;
}

export interface AutoMask {
  segmentation: CocoRle;
  mask: Mask;
  area: number;
  /** `[x, y, w, h]` */
  bbox: [number, number, number, number];
  predictedIou: number;
  pointCoords: Point[];
  stabilityScore: number;
  cropBox: [number, number, number, number];
}

export interface Polygon {
  /** `[x0, y0, x1, y1, …]` in pixels. */
  exterior: Float64Array;
  holes: Float64Array[];
}

export interface TrackedObject {
  id: number;
  /** At video resolution. */
  mask: Mask;
  /** Object-presence logit (NaN: no output on this frame). */
  score: number;
  lowResLogits: Float32Array;
}

export interface FrameResult {
  frame: number;
  objects: TrackedObject[];
  /** Time since the previous frame of a propagation. */
  frameMs?: number;
}

export declare class VideoSession {
  readonly width: number;
  readonly height: number;
  readonly stream: boolean;
  addFrame(input: ImageInput): Promise<number>;
  setFillHoleArea(area: number): Promise<void>;
  addPoints(frame: number, objId: number, points: Point[], labels: number[], options?: { clearOld?: boolean }): Promise<FrameResult>;
  addBox(frame: number, objId: number, box: Box): Promise<FrameResult>;
  addMask(frame: number, objId: number, mask: Mask): Promise<FrameResult>;
  clearPrompts(frame: number, objId: number): Promise<FrameResult>;
  removeObject(objId: number): Promise<FrameResult[]>;
  reset(): Promise<void>;
  propagate(options?: { start?: number; maxFrames?: number; reverse?: boolean; onFrame?: (result: FrameResult) => void; signal?: AbortSignal }): Promise<{ frames: number; cancelled: boolean }>;
  /** Live stream: the next frame, tracked. */
  track(input: ImageInput): Promise<FrameResult>;
  dispose(): Promise<void>;
}

export interface CocoImageInput {
  fileName?: string;
  width: number;
  height: number;
  objects?: { mask: Mask; categoryId?: number; score?: number }[];
}

export declare class Sam2 {
  static load(options: LoadOptions): Promise<Sam2>;
  static readonly presets: Readonly<Record<PresetName, Preset>>;
  static readonly cache: typeof weightCache;
  readonly info: ModelInfo;
  setImage(input: ImageInput): Promise<{ width: number; height: number; encodeMs: number }>;
  predict(options: PredictOptions): Promise<Prediction>;
  /** One object per box, all decoded in one batch. */
  predictBoxes(boxes: Box[], options?: { multimask?: boolean }): Promise<Prediction[]>;
  generateMasks(options?: GenerateOptions): Promise<AutoMask[]>;
  createVideoSession(options: { width?: number; height?: number; frames?: ImageInput[]; stream?: boolean }): Promise<VideoSession>;
  maskToRle(mask: Mask): Promise<CocoRle>;
  rleToMask(rle: CocoRle): Promise<Mask>;
  maskToPolygons(mask: Mask, options?: { tolerance?: number }): Promise<Polygon[]>;
  maskToYolo(mask: Mask, classId: number, options?: { tolerance?: number; strategy?: 'all' | 'largest' }): Promise<string | undefined>;
  toCocoJson(images: CocoImageInput[], categories?: { id: number; name: string; supercategory?: string }[]): Promise<string>;
  dispose(): Promise<void>;
}

/** Copies any accepted input into fresh RGBA pixels. */
export declare function toPixels(input: ImageInput): Promise<{ data: Uint8Array; width: number; height: number }>;
/** A mask as ImageData, `color` where set (RGBA). */
export declare function maskToImageData(mask: Mask, options?: { color?: [number, number, number, number]; background?: [number, number, number, number] }): ImageData;

export declare const PRESETS: Readonly<Record<PresetName, Preset>>;

export interface CacheEntry {
  url: string;
  sha256: string;
  bytes: number;
  storedAt: number;
}

export declare const weightCache: {
  list(): Promise<CacheEntry[]>;
  delete(urlOrSha256: string): Promise<boolean>;
  clear(): Promise<number>;
};
