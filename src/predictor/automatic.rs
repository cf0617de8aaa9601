//! The automatic mask generator ("segment everything", Meta's `SAM2AutomaticMaskGenerator`):
//! its parameters, the generator over the [`ImagePredictor`], and the host-side stages that turn
//! decoded masks into records (filtering, boxes, crop-edge test, NMS within and across crops,
//! output encoding).

use super::amg::{CropBox, build_all_layer_point_grids, calculate_stability_score, generate_crop_boxes, is_box_near_crop_edge, mask_to_box, nms, scale_grid, uncrop_box, uncrop_mask, uncrop_point};
use super::components::fill_holes_and_sprinkles;
use super::image::ImagePredictor;
use super::postprocess::{LOW_RES_CLAMP, upsample_bilinear};
use super::rle::Rle;
use super::transforms::ImageRef;
use crate::error::{Error, Result};
use crate::model::Sam2;

/// How [`AmgRecord::segmentation`] holds each mask (Meta's `output_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Row-major `[H, W]` booleans (`"binary_mask"`, Meta's default; large for big images).
    #[default]
    BinaryMask,
    /// [`Rle`] counts (`"uncompressed_rle"`).
    UncompressedRle,
    /// pycocotools' compressed string (`"coco_rle"`).
    CocoRle,
}

/// Parameters of the generator, with Meta's names and defaults (`Default`).
#[derive(Debug, Clone, PartialEq)]
pub struct AmgOptions {
    /// Points per side of the grid of layer 0 (32); `None` when `point_grids` is given.
    pub points_per_side: Option<usize>,
    /// Prompts decoded together (64). Only speed depends on it: larger batches keep a GPU busy.
    pub points_per_batch: usize,
    /// Keep masks whose predicted IoU is `> pred_iou_thresh` (0.8; `<= 0` keeps all).
    pub pred_iou_thresh: f64,
    /// Keep masks whose stability score is `>= stability_score_thresh` (0.95; `<= 0` keeps all).
    pub stability_score_thresh: f64,
    /// Shift of the cut-off for the stability score (1.0).
    pub stability_score_offset: f64,
    /// Logit above which a pixel is in the mask (0.0).
    pub mask_threshold: f64,
    /// Box IoU above which NMS drops a duplicate within one crop (0.7).
    pub box_nms_thresh: f64,
    /// Crop layers run after the whole image (0); layer `i` has `2^i × 2^i` crops.
    pub crop_n_layers: usize,
    /// Box IoU above which NMS drops a duplicate across crops (0.7; smaller crops win).
    pub crop_nms_thresh: f64,
    /// Overlap of the layer-1 crops as a fraction of the shorter image side (512/1500).
    pub crop_overlap_ratio: f64,
    /// Points per side shrink by this factor per crop layer (1).
    pub crop_n_points_downscale_factor: usize,
    /// Explicit grids in `[0, 1]²`, one per crop layer (instead of `points_per_side`).
    pub point_grids: Option<Vec<Vec<[f64; 2]>>>,
    /// If > 0, holes and specks of at most this many low-res pixels are filled / removed
    /// before upsampling (Meta passes it to its image predictor as hole and sprinkle area).
    pub min_mask_region_area: f32,
    /// Form of the returned masks.
    pub output_mode: OutputMode,
    /// Refine every mask once more with its own low-res logits as mask input (false).
    pub use_m2m: bool,
    /// Three masks per point (true) or one.
    pub multimask_output: bool,
}

impl Default for AmgOptions {
    fn default() -> Self {
        Self {
            points_per_side: Some(32),
            points_per_batch: 64,
            pred_iou_thresh: 0.8,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            mask_threshold: 0.0,
            box_nms_thresh: 0.7,
            crop_n_layers: 0,
            crop_nms_thresh: 0.7,
            crop_overlap_ratio: 512.0 / 1500.0,
            crop_n_points_downscale_factor: 1,
            point_grids: None,
            min_mask_region_area: 0.0,
            output_mode: OutputMode::BinaryMask,
            use_m2m: false,
            multimask_output: true,
        }
    }
}

/// A kept mask on its way to the output (a row of Meta's `MaskData`).
#[derive(Debug, Clone, PartialEq)]
pub struct MaskRecord {
    /// The mask over the whole image.
    pub rle: Rle,
    /// `[x0, y0, x1, y1]` in image pixels, inclusive.
    pub bbox: [usize; 4],
    /// The decoder's IoU prediction.
    pub predicted_iou: f32,
    /// The stability score.
    pub stability_score: f32,
    /// The grid point that prompted it, in image pixels.
    pub point: [f32; 2],
    /// The crop it was found in.
    pub crop_box: CropBox,
}

/// A mask in the requested [`OutputMode`].
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// Row-major `[H, W]`.
    BinaryMask(Vec<bool>),
    /// Uncompressed counts.
    Rle(Rle),
    /// pycocotools' string for an `[h, w]` mask.
    CocoRle { size: [usize; 2], counts: String },
}

impl Segmentation {
    /// The mask as uncompressed RLE, whatever its form (`width × height` is the image size,
    /// which a binary mask does not carry).
    pub fn to_rle(&self, width: usize, height: usize) -> Result<Rle> {
        match self {
            Segmentation::BinaryMask(mask) => Rle::from_mask(mask, width, height),
            Segmentation::Rle(rle) => Ok(rle.clone()),
            Segmentation::CocoRle { size, counts } => Rle::from_coco_string(counts, size[0], size[1]),
        }
    }
}

/// One output mask, as Meta's `generate` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct AmgRecord {
    /// The mask.
    pub segmentation: Segmentation,
    /// Set pixels.
    pub area: u64,
    /// `[x, y, w, h]` with `w = x1 - x0` of the inclusive box (Meta's convention).
    pub bbox: [f64; 4],
    /// The decoder's IoU prediction.
    pub predicted_iou: f32,
    /// The prompt point, in image pixels.
    pub point_coords: [f32; 2],
    /// The stability score.
    pub stability_score: f32,
    /// The crop, `[x, y, w, h]`.
    pub crop_box: [f64; 4],
}

impl AmgOptions {
    /// The point grid of each crop layer, after checking the options: exactly one of
    /// `points_per_side` (> 0, with `crop_n_points_downscale_factor` > 0) and `point_grids`
    /// (one grid per layer, points in `[0, 1]²`), `points_per_batch` > 0, finite thresholds.
    pub fn layer_grids(&self) -> Result<Vec<Vec<[f64; 2]>>> {
        let bad = |m: &str| Err(Error::Input(m.to_string()));
        let grids = match (&self.points_per_side, &self.point_grids) {
            (Some(n), None) if *n > 0 && self.crop_n_points_downscale_factor > 0 => build_all_layer_point_grids(*n, self.crop_n_layers, self.crop_n_points_downscale_factor),
            (None, Some(g)) if g.len() > self.crop_n_layers => g.clone(),
            (None, Some(_)) => return bad("point_grids needs one grid per crop layer (crop_n_layers + 1)"),
            _ => return bad("give exactly one of points_per_side (> 0, with crop_n_points_downscale_factor > 0) and point_grids"),
        };
        if grids.iter().flatten().flatten().any(|v| !(0.0..=1.0).contains(v)) {
            return bad("point grids must lie in [0, 1]");
        }
        let thresholds = [self.pred_iou_thresh, self.stability_score_thresh, self.stability_score_offset, self.mask_threshold, self.box_nms_thresh, self.crop_nms_thresh, self.crop_overlap_ratio];
        if self.points_per_batch == 0 || thresholds.iter().any(|t| !t.is_finite()) || !self.min_mask_region_area.is_finite() {
            return bad("points_per_batch must be > 0 and every threshold finite");
        }
        Ok(grids)
    }

    /// Whether a decoded mask passes the IoU filter (compared in float32, like torch).
    pub fn passes_iou(&self, iou_pred: f32) -> bool {
        self.pred_iou_thresh <= 0.0 || iou_pred > self.pred_iou_thresh as f32
    }

    /// The crop-size logits `[y1 - y0, x1 - x0]` of one mask (Meta's `postprocess_masks`):
    /// holes and specks filled on the low-res logits `[low, low]` (unclamped) when
    /// `min_mask_region_area > 0`, then bilinear upsampling.
    pub fn crop_logits(&self, low_res: &[f32], low: usize, crop: CropBox) -> Result<Vec<f32>> {
        if low_res.len() != low * low || low == 0 {
            return Err(Error::Input(format!("low-res logits have {} values, expected {low}x{low}", low_res.len())));
        }
        let [x0, y0, x1, y1] = crop;
        if x0 >= x1 || y0 >= y1 {
            return Err(Error::Input(format!("crop {crop:?} is empty")));
        }
        let mut logits = low_res.to_vec();
        if self.min_mask_region_area > 0.0 {
            // The image predictor's own threshold (0), not `mask_threshold`.
            fill_holes_and_sprinkles(&mut logits, low, low, 0.0, self.min_mask_region_area, self.min_mask_region_area)?;
        }
        let mut plane = vec![0.0f32; (x1 - x0) * (y1 - y0)];
        upsample_bilinear(&logits, (low, low), (y1 - y0, x1 - x0), |i, v| plane[i] = v);
        Ok(plane)
    }

    /// Meta's `_process_batch` for one decoded mask of the crop `crop` of an
    /// `orig_w × orig_h` image: IoU filter, [`Self::crop_logits`], stability filter,
    /// thresholding, box, crop-edge test, uncropping. `point` is in crop pixels. `None` when a
    /// filter drops the mask.
    pub fn process_mask(&self, low_res: &[f32], low: usize, iou_pred: f32, point: [f32; 2], crop: CropBox, (orig_w, orig_h): (usize, usize)) -> Result<Option<MaskRecord>> {
        if !self.passes_iou(iou_pred) {
            return Ok(None);
        }
        if crop[2] > orig_w || crop[3] > orig_h {
            return Err(Error::Input(format!("crop {crop:?} is not inside a {orig_w}x{orig_h} image")));
        }
        let plane = self.crop_logits(low_res, low, crop)?;
        let stability_score = calculate_stability_score(&plane, self.mask_threshold, self.stability_score_offset);
        // NaN (an empty mask at the low cut-off) never passes, as in torch.
        let stable = stability_score >= self.stability_score_thresh as f32;
        if self.stability_score_thresh > 0.0 && !stable {
            return Ok(None);
        }
        let cut = self.mask_threshold as f32;
        let mask: Vec<bool> = plane.iter().map(|&v| v > cut).collect();
        let (cw, ch) = (crop[2] - crop[0], crop[3] - crop[1]);
        let bbox = mask_to_box(&mask, cw, ch)?;
        if is_box_near_crop_edge(bbox, crop, [0, 0, orig_w, orig_h], 20.0) {
            return Ok(None);
        }
        let rle = Rle::from_mask(&uncrop_mask(&mask, crop, orig_w, orig_h)?, orig_w, orig_h)?;
        Ok(Some(MaskRecord { rle, bbox: uncrop_box(bbox, crop), predicted_iou: iou_pred, stability_score, point: uncrop_point(point, crop), crop_box: crop }))
    }

    /// Box NMS within one crop (`_process_crop`): by predicted IoU, `box_nms_thresh`.
    pub fn nms_within_crop(&self, records: Vec<MaskRecord>) -> Result<Vec<MaskRecord>> {
        let scores: Vec<f32> = records.iter().map(|r| r.predicted_iou).collect();
        keep(records, &scores, self.box_nms_thresh)
    }

    /// Box NMS across crops (`_generate_masks`, only with more than one crop): masks from
    /// smaller crops win (score `1 / crop area`, float32), `crop_nms_thresh`.
    pub fn nms_across_crops(&self, records: Vec<MaskRecord>, n_crops: usize) -> Result<Vec<MaskRecord>> {
        if n_crops <= 1 {
            return Ok(records);
        }
        let scores: Vec<f32> = records.iter().map(|r| {
            let [x0, y0, x1, y1] = r.crop_box;
            1.0 / ((x1 - x0) * (y1 - y0)) as f32
        }).collect();
        keep(records, &scores, self.crop_nms_thresh)
    }

    /// The output records in `output_mode` (Meta's `generate` after `_generate_masks`).
    pub fn to_records(&self, records: Vec<MaskRecord>) -> Result<Vec<AmgRecord>> {
        let xywh = |[x0, y0, x1, y1]: [usize; 4]| [x0 as f64, y0 as f64, (x1 - x0) as f64, (y1 - y0) as f64];
        records.into_iter().map(|r| {
            let segmentation = match self.output_mode {
                OutputMode::BinaryMask => Segmentation::BinaryMask(r.rle.to_mask()?),
                OutputMode::UncompressedRle => Segmentation::Rle(r.rle.clone()),
                OutputMode::CocoRle => Segmentation::CocoRle { size: [r.rle.height, r.rle.width], counts: r.rle.to_coco_string() },
            };
            Ok(AmgRecord {
                segmentation,
                area: r.rle.area(),
                bbox: xywh(r.bbox),
                predicted_iou: r.predicted_iou,
                point_coords: r.point,
                stability_score: r.stability_score,
                crop_box: xywh(r.crop_box),
            })
        }).collect()
    }
}

/// How far a segment-everything run has got: batches of grid points decoded so far out of all
/// (over every crop), and the crop being worked on (`0..crops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmgProgress {
    /// Batches of grid points decoded so far.
    pub batches_done: usize,
    /// Batches in the whole run (every crop).
    pub batches_total: usize,
    /// The crop being worked on.
    pub crop: usize,
    /// Crops in the run (1 without crop layers).
    pub crops: usize,
}

/// Meta's `SAM2AutomaticMaskGenerator` over an [`ImagePredictor`]: per crop, the image features
/// once, then the grid points decoded `points_per_batch` at a time.
#[derive(Debug, Clone)]
pub struct AutomaticMaskGenerator {
    predictor: ImagePredictor,
    options: AmgOptions,
    grids: Vec<Vec<[f64; 2]>>,
}

impl AutomaticMaskGenerator {
    /// A generator for `model` (see [`AmgOptions::layer_grids`] for what is checked).
    pub fn new(model: Sam2, options: AmgOptions) -> Result<Self> {
        let grids = options.layer_grids()?;
        Ok(Self { predictor: ImagePredictor::new(model), options, grids })
    }

    /// The parameters.
    pub fn options(&self) -> &AmgOptions {
        &self.options
    }

    /// Masks of everything in an RGB(A) image (natively; see [`Self::generate_async`]).
    #[cfg(not(target_family = "wasm"))]
    pub fn generate(&mut self, image: &ImageRef) -> Result<Vec<AmgRecord>> {
        super::image::block_on(self.generate_async(image))
    }

    /// [`Self::generate_with_progress_async`], natively.
    #[cfg(not(target_family = "wasm"))]
    pub fn generate_with_progress(&mut self, image: &ImageRef, mut on_progress: impl FnMut(AmgProgress) -> bool + Send) -> Result<Vec<AmgRecord>> {
        super::image::block_on(self.generate_with_progress_async(image, |p| std::future::ready(on_progress(p))))
    }

    /// Masks of everything in an RGB(A) image, in Meta's order (crops in order, each by
    /// predicted IoU after NMS; then NMS across crops when there are several).
    pub async fn generate_async(&mut self, image: &ImageRef<'_>) -> Result<Vec<AmgRecord>> {
        self.generate_with_progress_async(image, |_| std::future::ready(true)).await
    }

    /// [`Self::generate_async`], awaiting `on_progress` after each decoded batch of grid points;
    /// when it resolves to `false` the run stops there with [`Error::Cancelled`]. (Awaiting lets
    /// a caller on a browser's event loop take messages, such as a cancellation, in between.)
    pub async fn generate_with_progress_async<F, Fut>(&mut self, image: &ImageRef<'_>, mut on_progress: F) -> Result<Vec<AmgRecord>>
    where
        F: FnMut(AmgProgress) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        image.validate()?;
        let opts = &self.options;
        let (w, h) = (image.width, image.height);
        let (crops, layers) = generate_crop_boxes(w, h, opts.crop_n_layers, opts.crop_overlap_ratio);
        let low = self.predictor.model().sam_prompt_encoder.mask_input_size();
        let mut progress = AmgProgress {
            batches_done: 0,
            batches_total: layers.iter().map(|&l| self.grids[l].len().div_ceil(opts.points_per_batch)).sum(),
            crop: 0,
            crops: crops.len(),
        };
        let mut records = Vec::new();
        for (k, (&crop, &layer)) in crops.iter().zip(&layers).enumerate() {
            progress.crop = k;
            let [x0, y0, x1, y1] = crop;
            let c = image.channels;
            let pixels: Vec<u8> = (y0..y1).flat_map(|y| &image.data[(y * w + x0) * c..(y * w + x1) * c]).copied().collect();
            self.predictor.set_image(&ImageRef::new(x1 - x0, y1 - y0, c, &pixels)?)?;
            let mut in_crop = Vec::new();
            for points in scale_grid(&self.grids[layer], x1 - x0, y1 - y0).chunks(opts.points_per_batch) {
                let first = self.predictor.decode_points_async(points, None, opts.multimask_output).await?;
                let m = first.num_masks;
                let (logits, ious) = if opts.use_m2m {
                    self.refine(points, m, &first.low_res_logits, low).await?
                } else {
                    (first.low_res_logits, first.iou_predictions)
                };
                for (e, (plane, &iou)) in logits.chunks_exact(low * low).zip(&ious).enumerate() {
                    if let Some(r) = opts.process_mask(plane, low, iou, points[e / m], crop, (w, h))? {
                        in_crop.push(r);
                    }
                }
                progress.batches_done += 1;
                if !on_progress(progress).await {
                    self.predictor.reset();
                    return Err(Error::Cancelled);
                }
            }
            records.extend(opts.nms_within_crop(in_crop)?);
        }
        self.predictor.reset();
        self.options.to_records(self.options.nms_across_crops(records, crops.len())?)
    }

    /// `refine_with_m2m`: every mask decoded again from its point and its own clamped low-res
    /// logits (`multimask_output = false`); returns the new logits `[E, low, low]` and IoUs.
    async fn refine(&self, points: &[[f32; 2]], m: usize, first: &[f32], low: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let entry_points: Vec<[f32; 2]> = points.iter().flat_map(|&p| std::iter::repeat_n(p, m)).collect();
        let clamped: Vec<f32> = first.iter().map(|v| v.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)).collect();
        let (mut logits, mut ious) = (Vec::new(), Vec::new());
        let n = self.options.points_per_batch;
        for (k, batch) in entry_points.chunks(n).enumerate() {
            let masks = &clamped[k * n * low * low..][..batch.len() * low * low];
            let out = self.predictor.decode_points_async(batch, Some(masks), false).await?;
            logits.extend(out.low_res_logits);
            ious.extend(out.iou_predictions);
        }
        Ok((logits, ious))
    }
}

/// The records NMS keeps, in its order.
fn keep(records: Vec<MaskRecord>, scores: &[f32], thresh: f64) -> Result<Vec<MaskRecord>> {
    let boxes: Vec<[f32; 4]> = records.iter().map(|r| r.bbox.map(|v| v as f32)).collect();
    let order = nms(&boxes, scores, thresh)?;
    let mut slots: Vec<Option<MaskRecord>> = records.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bbox: [usize; 4], iou: f32, crop_box: CropBox) -> MaskRecord {
        let (w, h) = (40, 30);
        let mut mask = vec![false; w * h];
        for y in bbox[1]..=bbox[3] {
            mask[y * w + bbox[0]..=y * w + bbox[2]].fill(true);
        }
        let rle = Rle::from_mask(&mask, w, h).unwrap();
        MaskRecord { rle, bbox, predicted_iou: iou, stability_score: 0.9, point: [1.0, 2.0], crop_box }
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(AmgOptions::default().layer_grids().unwrap()[0].len(), 1024);
        let opts = AmgOptions { points_per_side: Some(8), crop_n_layers: 2, crop_n_points_downscale_factor: 2, ..AmgOptions::default() };
        assert_eq!(opts.layer_grids().unwrap().iter().map(Vec::len).collect::<Vec<_>>(), [64, 16, 4]);
        for bad in [
            AmgOptions { points_per_side: None, ..AmgOptions::default() },
            AmgOptions { point_grids: Some(vec![vec![[0.5, 0.5]]]), ..AmgOptions::default() },
            AmgOptions { points_per_side: None, point_grids: Some(vec![vec![[0.5, 1.5]]]), ..AmgOptions::default() },
            AmgOptions { points_per_side: None, point_grids: Some(vec![vec![[0.5, 0.5]]]), crop_n_layers: 1, ..AmgOptions::default() },
            AmgOptions { points_per_batch: 0, ..AmgOptions::default() },
            AmgOptions { box_nms_thresh: f64::NAN, ..AmgOptions::default() },
            AmgOptions { points_per_side: Some(0), ..AmgOptions::default() },
        ] {
            assert!(matches!(bad.layer_grids(), Err(Error::Input(_))), "{bad:?}");
        }
    }

    #[test]
    fn masks_touching_inner_crop_edges_are_dropped() {
        let opts = AmgOptions { pred_iou_thresh: 0.5, stability_score_thresh: 0.5, ..AmgOptions::default() };
        let low = 4;
        // A blob in the top-left of a 100x100 crop of a 200x150 image: near the crop's left and
        // top edges, which are image edges for crop [0, 0, 100, 100] but not for [50, 50, ..].
        let mut logits = vec![-20.0f32; low * low];
        logits[0] = 20.0;
        let image = (200, 150);
        let kept = opts.process_mask(&logits, low, 0.9, [2.0, 2.0], [0, 0, 100, 100], image).unwrap().unwrap();
        assert_eq!((kept.bbox[0], kept.bbox[1], kept.point), (0, 0, [2.0, 2.0]));
        assert!(kept.bbox[2] < 40 && kept.stability_score > 0.8, "{kept:?}");
        assert_eq!(kept.rle.area(), kept.rle.to_mask().unwrap().iter().filter(|&&v| v).count() as u64);
        let inner = opts.process_mask(&logits, low, 0.9, [2.0, 2.0], [50, 50, 150, 150], image).unwrap();
        assert!(inner.is_none(), "touches inner crop edges");
        assert!(opts.process_mask(&logits, low, 0.4, [2.0, 2.0], [0, 0, 100, 100], image).unwrap().is_none(), "IoU filter");
        assert!(opts.process_mask(&[-20.0; 16], low, 0.9, [2.0, 2.0], [0, 0, 100, 100], image).unwrap().is_none(), "empty: NaN stability");
        assert!(opts.process_mask(&logits, low, 0.9, [2.0, 2.0], [0, 0, 250, 100], image).is_err());
        assert!(opts.process_mask(&logits[1..], low, 0.9, [2.0, 2.0], [0, 0, 100, 100], image).is_err());
    }

    #[test]
    fn nms_prefers_high_iou_within_and_small_crops_across() {
        let opts = AmgOptions::default();
        let (whole, small) = ([0, 0, 40, 30], [0, 0, 20, 20]);
        let within = opts.nms_within_crop(vec![record([1, 1, 10, 10], 0.8, whole), record([1, 1, 10, 11], 0.9, whole), record([20, 5, 30, 9], 0.85, whole)]).unwrap();
        assert_eq!(within.iter().map(|r| r.predicted_iou).collect::<Vec<_>>(), [0.9, 0.85]);
        // Across crops: the small crop's mask comes first and suppresses its duplicate (IoU 0.9)
        // whatever the predicted IoUs; masks of equal crops keep their order.
        let across = opts.nms_across_crops(vec![record([1, 1, 10, 10], 0.99, whole), record([25, 2, 30, 9], 0.5, whole), record([31, 1, 35, 9], 0.7, whole), record([1, 1, 10, 11], 0.6, small)], 2).unwrap();
        assert_eq!(across.iter().map(|r| r.predicted_iou).collect::<Vec<_>>(), [0.6, 0.5, 0.7]);
        let one = opts.nms_across_crops(vec![record([1, 1, 10, 10], 0.99, whole), record([1, 1, 10, 10], 0.5, whole)], 1).unwrap();
        assert_eq!(one.len(), 2, "no cross-crop NMS with one crop");
    }

    #[test]
    fn output_modes() {
        let r = record([2, 3, 5, 4], 0.9, [0, 10, 40, 30]);
        for (mode, want) in [(OutputMode::BinaryMask, "binary"), (OutputMode::UncompressedRle, "rle"), (OutputMode::CocoRle, "coco")] {
            let out = AmgOptions { output_mode: mode, ..AmgOptions::default() }.to_records(vec![r.clone()]).unwrap().remove(0);
            assert_eq!((out.area, out.bbox, out.crop_box), (8, [2.0, 3.0, 3.0, 1.0], [0.0, 10.0, 40.0, 20.0]));
            assert_eq!(out.segmentation.to_rle(40, 30).unwrap(), r.rle);
            match (&out.segmentation, want) {
                (Segmentation::BinaryMask(m), "binary") => assert_eq!(m.len(), 1200),
                (Segmentation::Rle(rle), "rle") => assert_eq!(rle, &r.rle),
                (Segmentation::CocoRle { size, counts }, "coco") => assert_eq!((size, counts), (&[30, 40], &r.rle.to_coco_string())),
                other => panic!("{other:?}"),
            }
        }
    }
}
