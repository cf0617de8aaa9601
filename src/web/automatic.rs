//! Automatic masks ("segment everything") on the image set with [`Sam2Model::set_image`].

use super::image::Sam2Model;
use super::{busy, go_on, js_err, numbers, opt_bool, opt_count, opt_number, options_object, set};
use crate::predictor::ImageRef;
use crate::predictor::automatic::{AmgOptions, AmgProgress, AmgRecord, AutomaticMaskGenerator, OutputMode, Segmentation};
use js_sys::{Array, Function, Object, Promise};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Meta's `SAM2AutomaticMaskGenerator` arguments, camelCased.
const OPTIONS: [&str; 14] = [
    "pointsPerSide",
    "pointsPerBatch",
    "predIouThresh",
    "stabilityScoreThresh",
    "stabilityScoreOffset",
    "maskThreshold",
    "boxNmsThresh",
    "cropNLayers",
    "cropNmsThresh",
    "cropOverlapRatio",
    "cropNPointsDownscaleFactor",
    "minMaskRegionArea",
    "useM2m",
    "multimaskOutput",
];

/// [`AmgOptions`] from a JS object (absent keys keep Meta's defaults); masks come out as COCO RLE.
fn amg_options(options: &JsValue) -> Result<AmgOptions, JsError> {
    let o = options_object(options, &OPTIONS)?;
    let d = AmgOptions::default();
    Ok(AmgOptions {
        points_per_side: Some(opt_count(&o, "pointsPerSide")?.unwrap_or(d.points_per_side.unwrap_or(32))),
        points_per_batch: opt_count(&o, "pointsPerBatch")?.unwrap_or(d.points_per_batch),
        pred_iou_thresh: opt_number(&o, "predIouThresh")?.unwrap_or(d.pred_iou_thresh),
        stability_score_thresh: opt_number(&o, "stabilityScoreThresh")?.unwrap_or(d.stability_score_thresh),
        stability_score_offset: opt_number(&o, "stabilityScoreOffset")?.unwrap_or(d.stability_score_offset),
        mask_threshold: opt_number(&o, "maskThreshold")?.unwrap_or(d.mask_threshold),
        box_nms_thresh: opt_number(&o, "boxNmsThresh")?.unwrap_or(d.box_nms_thresh),
        crop_n_layers: opt_count(&o, "cropNLayers")?.unwrap_or(d.crop_n_layers),
        crop_nms_thresh: opt_number(&o, "cropNmsThresh")?.unwrap_or(d.crop_nms_thresh),
        crop_overlap_ratio: opt_number(&o, "cropOverlapRatio")?.unwrap_or(d.crop_overlap_ratio),
        crop_n_points_downscale_factor: opt_count(&o, "cropNPointsDownscaleFactor")?.unwrap_or(d.crop_n_points_downscale_factor),
        point_grids: None,
        min_mask_region_area: opt_number(&o, "minMaskRegionArea")?.map_or(d.min_mask_region_area, |x| x as f32),
        output_mode: OutputMode::CocoRle,
        use_m2m: opt_bool(&o, "useM2m")?.unwrap_or(d.use_m2m),
        multimask_output: opt_bool(&o, "multimaskOutput")?.unwrap_or(d.multimask_output),
    })
}

/// One record as Meta's `generate` returns it, camelCased: `{segmentation: {size: [h, w],
/// counts}, area, bbox: [x, y, w, h], predictedIou, pointCoords: [[x, y]], stabilityScore,
/// cropBox: [x, y, w, h]}`.
fn record_object(r: &AmgRecord, width: usize, height: usize) -> Result<Object, JsError> {
    let (size, counts) = match &r.segmentation {
        Segmentation::CocoRle { size, counts } => (*size, counts.clone()),
        other => {
            let rle = other.to_rle(width, height).map_err(js_err)?;
            ([rle.height, rle.width], rle.to_coco_string())
        }
    };
    let seg = Object::new();
    set(&seg, "size", numbers(size.iter().map(|&v| v as f64)))?;
    set(&seg, "counts", counts)?;
    let obj = Object::new();
    set(&obj, "segmentation", seg)?;
    set(&obj, "area", r.area as f64)?;
    set(&obj, "bbox", numbers(r.bbox))?;
    set(&obj, "predictedIou", r.predicted_iou)?;
    let point: Array = std::iter::once(numbers(r.point_coords.map(f64::from))).collect();
    set(&obj, "pointCoords", point)?;
    set(&obj, "stabilityScore", r.stability_score)?;
    set(&obj, "cropBox", numbers(r.crop_box))?;
    Ok(obj)
}

/// `{done, total, crop, crops}` for a progress callback.
fn progress_object(p: AmgProgress) -> Result<JsValue, JsValue> {
    let obj = Object::new();
    for (key, value) in [("done", p.batches_done), ("total", p.batches_total), ("crop", p.crop), ("crops", p.crops)] {
        js_sys::Reflect::set(&obj, &key.into(), &(value as f64).into())?;
    }
    Ok(obj.into())
}

#[wasm_bindgen]
impl Sam2Model {
    /// Masks of everything in the current image (Meta's automatic mask generator; `options` by
    /// camelCase name, defaults as Meta's). Resolves to an array of records (see Meta's
    /// `generate`, keys camelCased, masks as COCO compressed RLE). `on_progress`, when given, is
    /// called after each decoded batch of grid points with `{done, total, crop, crops}` (batches
    /// over all crops; the crop being worked on) and may return a Promise; `false` (or a Promise
    /// of it) stops the run, which then rejects with "cancelled".
    #[wasm_bindgen(js_name = generateMasks)]
    pub fn generate_masks(&self, options: JsValue, on_progress: Option<Function>) -> Result<Promise, JsError> {
        let options = amg_options(&options)?;
        let predictor = Rc::clone(&self.predictor);
        let pixels = Rc::clone(&self.pixels);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let guard = predictor.try_borrow().map_err(|_| busy())?;
            let pixels = pixels.try_borrow().map_err(|_| busy())?;
            let p = pixels.as_ref().ok_or_else(|| JsError::new("no image: call setImage first"))?;
            let mut generator = AutomaticMaskGenerator::new(guard.model().clone(), options).map_err(js_err)?;
            let image = ImageRef::new(p.width, p.height, 4, &p.rgba).map_err(js_err)?;
            let failure = Rc::new(RefCell::new(None));
            let records = match &on_progress {
                None => generator.generate_async(&image).await,
                Some(f) => generator.generate_with_progress_async(&image, |p| go_on(f, progress_object(p), &failure)).await,
            };
            if let Some(e) = failure.take() {
                return Err(e);
            }
            let records = records.map_err(js_err)?;
            let out = Array::new();
            for r in &records {
                let record = record_object(r, p.width, p.height)?;
                out.push(&record);
            }
            Ok(out.into())
        }))
    }
}
