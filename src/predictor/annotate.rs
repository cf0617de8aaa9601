//! Auto-annotation (like Ultralytics' `auto_annotate`): boxes from any detector, or from YOLO
//! box label files, become YOLO segmentation labels: each box is segmented with the image
//! predictor; an image without boxes is segmented whole by the automatic mask generator and
//! every mask is labelled class 0.
//!
//! Pure Rust over the predictors (no file system: callers read images and label files and pass
//! them in, so it runs in the browser too). Bad input (a bad label line, a class id out of range,
//! an image that cannot be read) is recorded for its image and the run goes on.

use super::automatic::{AmgOptions, AutomaticMaskGenerator, OutputMode};
use super::image::ImagePredictor;
use super::labels::yolo::{SegmentStrategy, YoloLabel, parse_yolo_line, yolo_line, yolo_polygon};
use super::postprocess::upsample_bilinear;
use super::transforms::{ImageRef, validate_box};
use crate::error::{Error, Result};
use crate::model::Sam2;

/// One detected object: a box `[x0, y0, x1, y1]` in image pixels, its class id and, from a
/// detector, its confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class id (the YOLO label's first number).
    pub class: usize,
    /// Box corners in pixels.
    pub bbox: [f32; 4],
    /// The detector's confidence; `None` (e.g. a ground-truth label) passes every `conf`.
    pub confidence: Option<f32>,
}

/// Which detections are segmented and how masks become YOLO lines (Ultralytics' defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotateOptions {
    /// Keep detections with confidence `> conf` (0.25, as Ultralytics' NMS compares).
    pub conf: f32,
    /// Keep only these class ids (`None`: all).
    pub classes: Option<Vec<usize>>,
    /// At most this many detections per image, the most confident first (300).
    pub max_det: usize,
    /// Class ids must be below this (e.g. the dataset's number of names); `None`: no limit.
    pub num_classes: Option<usize>,
    /// Boxes decoded together in one decoder call (64; a GPU is idle between small batches,
    /// and memory grows with the batch).
    pub boxes_per_batch: usize,
    /// How a mask with several parts becomes the one polygon of its line.
    pub strategy: SegmentStrategy,
    /// Polygon simplification in pixels (0: the exact pixel outline).
    pub tolerance: f64,
    /// The generator for images without boxes (its `output_mode` is ignored).
    pub everything: AmgOptions,
}

impl Default for AnnotateOptions {
    fn default() -> Self {
        Self {
            conf: 0.25,
            classes: None,
            max_det: 300,
            num_classes: None,
            boxes_per_batch: 64,
            strategy: SegmentStrategy::All,
            tolerance: 0.0,
            everything: AmgOptions::default(),
        }
    }
}

impl AnnotateOptions {
    /// The detections to segment, most confident first (detections without a confidence count
    /// as the most confident; ties keep their order): class ids in range and in `classes`,
    /// confidence `> conf`, valid boxes, at most `max_det`. A class id out of range or a bad
    /// box is an error (named by its index); the other filters drop silently.
    pub fn filter(&self, detections: &[Detection], width: usize, height: usize) -> (Vec<Detection>, Vec<Error>) {
        let mut errors = Vec::new();
        let mut kept: Vec<&Detection> = Vec::new();
        for (i, d) in detections.iter().enumerate() {
            let here = |e: Error| at(&format!("detection {i}"), e);
            if let Some(n) = self.num_classes
                && d.class >= n
            {
                errors.push(here(Error::Input(format!("class id {} is out of range (0..{n})", d.class))));
            } else if let Err(e) = validate_box(&[d.bbox], width, height) {
                errors.push(here(e));
            } else if d.confidence.is_none_or(|c| c > self.conf) && self.classes.as_ref().is_none_or(|cs| cs.contains(&d.class)) {
                kept.push(d);
            }
        }
        let key = |d: &Detection| d.confidence.unwrap_or(f32::INFINITY);
        kept.sort_by(|a, b| key(b).total_cmp(&key(a)));
        (kept.into_iter().take(self.max_det).cloned().collect(), errors)
    }

    /// Detections from the text of a YOLO box label file (`class cx cy w h [confidence]` per
    /// line, normalised) for a `width × height` image, and an error naming the line (1-based)
    /// for each bad one: unparsable, a polygon instead of a box, a class id `>= num_classes`.
    /// Blank lines are skipped.
    pub fn boxes_from_yolo(&self, text: &str, width: usize, height: usize) -> (Vec<Detection>, Vec<Error>) {
        let (w, h) = (width as f64, height as f64);
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        for (i, text_line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let here = |e: Error| at(&format!("line {}", i + 1), e);
            match parse_yolo_line(text_line) {
                Ok(YoloLabel::Box { class, xywh: [cx, cy, bw, bh], confidence }) => {
                    if let Some(n) = self.num_classes.filter(|&n| class >= n) {
                        errors.push(here(Error::Input(format!("class id {class} is out of range (0..{n})"))));
                        continue;
                    }
                    let bbox = [(cx - bw / 2.0) * w, (cy - bh / 2.0) * h, (cx + bw / 2.0) * w, (cy + bh / 2.0) * h].map(|v| v as f32);
                    out.push(Detection { class, bbox, confidence: confidence.map(|c| c as f32) });
                }
                Ok(YoloLabel::Segment { .. }) => errors.push(here(Error::Input("a polygon, not a box (class cx cy w h [confidence])".into()))),
                Err(e) => errors.push(here(e)),
            }
        }
        (out, errors)
    }

    fn validate(&self) -> Result<()> {
        if !self.conf.is_finite() || !self.tolerance.is_finite() || self.tolerance < 0.0 || self.boxes_per_batch == 0 {
            return Err(Error::Input("conf must be finite, tolerance finite and >= 0, boxes_per_batch > 0".into()));
        }
        self.everything.layer_grids().map(|_| ())
    }
}

/// One image to annotate, as the caller read it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotateInput {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
    /// The boxes to segment; `None`: segment everything (class 0).
    pub detections: Option<Vec<Detection>>,
    /// Problems found while reading it (e.g. bad label lines), reported with the image.
    pub errors: Vec<Error>,
}

/// What became of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageReport {
    /// The caller's name for it (e.g. the file name).
    pub name: String,
    /// Its YOLO segmentation lines (`class x1 y1 x2 y2 …`), or `None` when it could not be
    /// processed at all. Empty masks give no line.
    pub lines: Option<Vec<String>>,
    /// Its problems: reading errors, dropped detections, or what stopped it.
    pub errors: Vec<Error>,
}

/// Every image's report, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnnotateReport {
    /// One report per input name.
    pub images: Vec<ImageReport>,
}

impl AnnotateReport {
    /// Images that got labels (possibly none).
    pub fn processed(&self) -> usize {
        self.images.iter().filter(|r| r.lines.is_some()).count()
    }
}

/// Auto-annotation over one model: the image predictor for boxes, the automatic mask generator
/// for images without boxes.
#[derive(Debug, Clone)]
pub struct Annotator {
    predictor: ImagePredictor,
    generator: AutomaticMaskGenerator,
    options: AnnotateOptions,
}

impl Annotator {
    /// An annotator for `model`; errors on invalid options.
    pub fn new(model: Sam2, options: AnnotateOptions) -> Result<Self> {
        options.validate()?;
        let everything = AmgOptions { output_mode: OutputMode::UncompressedRle, ..options.everything.clone() };
        Ok(Self { predictor: ImagePredictor::new(model.clone()), generator: AutomaticMaskGenerator::new(model, everything)?, options })
    }

    /// The options.
    pub fn options(&self) -> &AnnotateOptions {
        &self.options
    }

    /// Labels every image (natively; see [`Self::run_async`]). Errors only if the device
    /// cannot be waited on; problems with images are in their reports.
    #[cfg(not(target_family = "wasm"))]
    pub fn run(&mut self, names: &[String], load: impl FnMut(&str) -> Result<AnnotateInput> + Send, progress: impl FnMut(usize, usize, &ImageReport) + Send) -> Result<AnnotateReport> {
        super::image::block_on(async { Ok(self.run_async(names, load, progress).await) })
    }

    /// Labels the images `names` one after the other: `load` reads each (an error there is that
    /// image's report), then [`Self::annotate_async`]. `progress(done, total, report)` is called
    /// after each image. Never stops early: every problem lands in its image's report.
    pub async fn run_async(&mut self, names: &[String], mut load: impl FnMut(&str) -> Result<AnnotateInput>, mut progress: impl FnMut(usize, usize, &ImageReport)) -> AnnotateReport {
        let mut report = AnnotateReport::default();
        for (i, name) in names.iter().enumerate() {
            let (lines, errors) = match load(name) {
                Ok(input) => self.annotate_input(input).await,
                Err(e) => (None, vec![e]),
            };
            let image = ImageReport { name: name.clone(), lines, errors };
            progress(i + 1, names.len(), &image);
            report.images.push(image);
        }
        report
    }

    async fn annotate_input(&mut self, input: AnnotateInput) -> (Option<Vec<String>>, Vec<Error>) {
        let mut errors = input.errors;
        let result = match ImageRef::new(input.width, input.height, 3, &input.rgb) {
            Ok(image) => self.annotate_async(&image, input.detections.as_deref()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((lines, dropped)) => {
                errors.extend(dropped);
                (Some(lines), errors)
            }
            Err(e) => {
                errors.push(e);
                (None, errors)
            }
        }
    }

    /// The YOLO segmentation lines of one image, and the errors of the detections it dropped
    /// (see [`AnnotateOptions::filter`]). With detections, the kept boxes are segmented (one mask
    /// each, `multimask_output = false`, decoded `boxes_per_batch` at a time), most confident
    /// first; without, the automatic mask generator's masks in its order, all class 0.
    pub async fn annotate_async(&mut self, image: &ImageRef<'_>, detections: Option<&[Detection]>) -> Result<(Vec<String>, Vec<Error>)> {
        image.validate()?;
        let (w, h) = (image.width, image.height);
        let opts = &self.options;
        let mut lines = Vec::new();
        let mut line = |class: usize, mask: &[bool]| -> Result<()> {
            if let Some(polygon) = yolo_polygon(mask, w, h, opts.strategy, opts.tolerance)? {
                lines.push(yolo_line(class, &polygon, w, h));
            }
            Ok(())
        };
        let Some(detections) = detections else {
            for record in self.generator.generate_async(image).await? {
                line(0, &record.segmentation.to_rle(w, h)?.to_mask()?)?;
            }
            return Ok((lines, Vec::new()));
        };
        let (kept, errors) = opts.filter(detections, w, h);
        if kept.is_empty() {
            return Ok((lines, errors));
        }
        self.predictor.set_image(image)?;
        let low = self.predictor.model().sam_prompt_encoder.mask_input_size();
        let mut mask = vec![false; w * h];
        for batch in kept.chunks(opts.boxes_per_batch) {
            let boxes: Vec<[f32; 4]> = batch.iter().map(|d| d.bbox).collect();
            let decoded = self.predictor.decode_boxes_async(&boxes, false).await?;
            for (d, plane) in batch.iter().zip(decoded.low_res_logits.chunks_exact(low * low)) {
                upsample_bilinear(plane, (low, low), (h, w), |i, v| mask[i] = v > 0.0);
                line(d.class, &mask)?;
            }
        }
        self.predictor.reset();
        Ok((lines, errors))
    }
}

/// `e` with `place: ` in front of its message (input errors only; others pass unchanged).
fn at(place: &str, e: Error) -> Error {
    match e {
        Error::Input(m) => Error::Input(format!("{place}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: usize, confidence: Option<f32>) -> Detection {
        Detection { class, bbox: [10.0, 10.0, 50.0, 40.0], confidence }
    }

    fn classes_and_confidences(kept: &[Detection]) -> Vec<(usize, Option<f32>)> {
        kept.iter().map(|d| (d.class, d.confidence)).collect()
    }

    #[test]
    fn filters_by_confidence_strictly() {
        let opts = AnnotateOptions::default();
        let dets = [det(0, Some(0.25)), det(1, Some(0.26)), det(2, None), det(3, Some(0.1))];
        let (kept, errors) = opts.filter(&dets, 100, 80);
        assert!(errors.is_empty());
        // 0.25 is not > 0.25; no confidence always passes.
        assert_eq!(classes_and_confidences(&kept), [(2, None), (1, Some(0.26))]);
        let (all, _) = AnnotateOptions { conf: 0.0, ..opts }.filter(&dets, 100, 80);
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn filters_by_class_list_and_reports_classes_out_of_range() {
        let opts = AnnotateOptions { classes: Some(vec![0, 2]), num_classes: Some(3), ..AnnotateOptions::default() };
        let dets = [det(0, Some(0.9)), det(1, Some(0.9)), det(2, Some(0.8)), det(5, Some(0.99)), det(2, Some(0.3))];
        let (kept, errors) = opts.filter(&dets, 100, 80);
        assert_eq!(classes_and_confidences(&kept), [(0, Some(0.9)), (2, Some(0.8)), (2, Some(0.3))]);
        assert_eq!(errors.len(), 1);
        let msg = errors[0].to_string();
        assert!(msg.contains("detection 3") && msg.contains("class id 5 is out of range (0..3)"), "{msg}");
    }

    #[test]
    fn max_det_keeps_the_most_confident_in_order() {
        let opts = AnnotateOptions { max_det: 3, conf: 0.0, ..AnnotateOptions::default() };
        let confs = [0.3, 0.9, 0.5, 0.9, 0.7, 0.1];
        let dets: Vec<Detection> = confs.iter().enumerate().map(|(i, &c)| det(i, Some(c))).collect();
        let (kept, _) = opts.filter(&dets, 100, 80);
        // Ties (classes 1 and 3 at 0.9) keep their input order.
        assert_eq!(classes_and_confidences(&kept), [(1, Some(0.9)), (3, Some(0.9)), (4, Some(0.7))]);
        let (none, _) = AnnotateOptions { max_det: 0, ..opts }.filter(&dets, 100, 80);
        assert!(none.is_empty());
    }

    #[test]
    fn bad_boxes_are_errors_not_panics() {
        let bad = [Detection { class: 0, bbox: [50.0, 10.0, 10.0, 40.0], confidence: None }, Detection { class: 0, bbox: [f32::NAN, 0.0, 1.0, 1.0], confidence: None }];
        let (kept, errors) = AnnotateOptions::default().filter(&bad, 100, 80);
        assert!(kept.is_empty());
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().contains("detection 0") && errors[1].to_string().contains("non-finite"), "{errors:?}");
    }

    #[test]
    fn label_files_give_pixel_boxes_and_name_bad_lines() {
        let opts = AnnotateOptions { num_classes: Some(4), ..AnnotateOptions::default() };
        let text = "1 0.5 0.5 0.2 0.4 0.8\n\nbad line\n7 0.5 0.5 0.1 0.1\n2 0.1 0.1 0.2 0.1 0.2 0.2\n3 0.25 0.5 0.5 1.0\n";
        let (dets, errors) = opts.boxes_from_yolo(text, 200, 100);
        assert_eq!(dets, [
            Detection { class: 1, bbox: [80.0, 30.0, 120.0, 70.0], confidence: Some(0.8) },
            Detection { class: 3, bbox: [0.0, 0.0, 100.0, 100.0], confidence: None },
        ]);
        let msgs: Vec<String> = errors.iter().map(Error::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("line 3:") && msgs[0].contains("class id"), "{msgs:?}");
        assert!(msgs[1].contains("line 4: class id 7 is out of range (0..4)"), "{msgs:?}");
        assert!(msgs[2].contains("line 5: a polygon"), "{msgs:?}");
    }

    #[test]
    fn invalid_options_are_rejected() {
        for bad in [
            AnnotateOptions { conf: f32::NAN, ..AnnotateOptions::default() },
            AnnotateOptions { tolerance: -1.0, ..AnnotateOptions::default() },
            AnnotateOptions { boxes_per_batch: 0, ..AnnotateOptions::default() },
            AnnotateOptions { everything: AmgOptions { points_per_batch: 0, ..AmgOptions::default() }, ..AnnotateOptions::default() },
        ] {
            assert!(matches!(bad.validate(), Err(Error::Input(_))), "{bad:?}");
        }
    }
}
