//! The image predictor (`SAM2ImagePredictor`): `set_image` computes and caches the image
//! features once; `predict` answers prompts against them (decoder only).

use super::components::fill_holes_and_sprinkles;
use super::postprocess::{LOW_RES_CLAMP, upsample_bilinear};
use super::transforms::{ImageRef, preprocess_image, scale_boxes, scale_points, validate_box, validate_points};
use crate::error::{Error, Result};
use crate::model::prompt_encoder::label;
use crate::model::{ImageFeatures, Sam2};
use burn::tensor::{Tensor, TensorData};

/// Prompts for one object: any mix of points, one box and a mask input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    /// Points `[x, y]` in original-image pixels.
    pub points: Vec<[f32; 2]>,
    /// One label per point: 1 foreground, 0 background (2/3 box corners, -1 padding).
    pub labels: Vec<i32>,
    /// Box `[x0, y0, x1, y1]` in original-image pixels.
    pub bbox: Option<[f32; 4]>,
    /// Previous low-resolution logits `[S/4, S/4]` (e.g. the best mask of an earlier `predict`).
    pub mask_input: Option<Vec<f32>>,
}

/// Options of [`ImagePredictor::predict`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictOptions {
    /// Three masks per object (true) or one (false, with dynamic fallback to the most stable).
    pub multimask_output: bool,
    /// Also return the full-resolution logits.
    pub return_logits: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self { multimask_output: true, return_logits: false }
    }
}

/// The answer for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Number of masks M (3 with multimask output, else 1).
    pub num_masks: usize,
    /// Original image width and height.
    pub width: usize,
    pub height: usize,
    /// Binary masks `[M, H, W]` (1 where the logit is above 0).
    pub masks: Vec<u8>,
    /// Predicted IoU per mask `[M]`.
    pub scores: Vec<f32>,
    /// Low-resolution logits `[M, S/4, S/4]`, clamped to ±32.
    pub low_res_logits: Vec<f32>,
    /// Full-resolution logits `[M, H, W]`, when asked for.
    pub logits: Option<Vec<f32>>,
    /// Object-presence logit (> 0: the object is present).
    pub object_score_logit: f32,
}

/// Low-resolution outputs of [`ImagePredictor::decode_points_async`] and
/// [`ImagePredictor::decode_boxes_async`].
#[derive(Debug, Clone, PartialEq)]
pub struct LowResBatch {
    /// Masks per prompt M (3 with multimask output, else 1).
    pub num_masks: usize,
    /// Unclamped low-resolution logits `[B, M, S/4, S/4]`.
    pub low_res_logits: Vec<f32>,
    /// Predicted IoU `[B, M]`.
    pub iou_predictions: Vec<f32>,
}

/// Features of the current image.
#[derive(Debug, Clone)]
struct ImageState {
    features: ImageFeatures,
    width: usize,
    height: usize,
}

/// `SAM2ImagePredictor` over a loaded [`Sam2`].
#[derive(Debug, Clone)]
pub struct ImagePredictor {
    model: Sam2,
    image: Option<ImageState>,
    /// Fill background holes up to this area (low-resolution pixels) before upsampling; 0 = off.
    pub max_hole_area: f32,
    /// Remove foreground specks up to this area before upsampling; 0 = off.
    pub max_sprinkle_area: f32,
}

/// Reads a tensor back as f32, asynchronously (the only way that works in a browser).
pub(crate) async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data: TensorData = t.into_data_async().await.map_err(|e| Error::State(format!("reading GPU data failed: {e:?}")))?;
    data.try_into_vec_as::<f32>().map_err(|e| Error::State(format!("reading GPU data failed: {e:?}")))
}

/// Blocks on a future natively (burn's own blocking read path).
#[cfg(not(target_family = "wasm"))]
pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    burn::tensor::try_read_sync(f).unwrap_or_else(|| Err(Error::State("could not wait for the device".into())))
}

impl ImagePredictor {
    /// A predictor with Meta's defaults (hole and sprinkle filling off).
    pub fn new(model: Sam2) -> Self {
        Self { model, image: None, max_hole_area: 0.0, max_sprinkle_area: 0.0 }
    }

    /// The model.
    pub fn model(&self) -> &Sam2 {
        &self.model
    }

    /// Cached features of the current image, if one is set.
    pub fn features(&self) -> Option<&ImageFeatures> {
        self.image.as_ref().map(|s| &s.features)
    }

    /// Computes and caches the features of an RGB(A) image of any size (resized to S×S).
    /// A rejected image leaves the current one in place.
    pub fn set_image(&mut self, image: &ImageRef) -> Result<()> {
        let size = self.model.config.image_size;
        let pixels = preprocess_image(image, size)?;
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), self.model.device());
        let features = self.model.image_features(input);
        self.image = Some(ImageState { features, width: image.width, height: image.height });
        Ok(())
    }

    /// Waits until the device has computed the current image's features (reads one value back
    /// asynchronously), so that callers can time the encoder or know the GPU work is done.
    pub async fn features_ready_async(&self) -> Result<()> {
        let features = self.features().ok_or_else(|| Error::State("no image is set".into()))?;
        read_f32(features.image_embed.clone().slice([0..1, 0..1, 0..1, 0..1])).await.map(|_| ())
    }

    /// Forgets the current image.
    pub fn reset(&mut self) {
        self.image = None;
    }

    /// Answers prompts for any number of objects against the current image (natively; see
    /// [`Self::predict_async`]).
    #[cfg(not(target_family = "wasm"))]
    pub fn predict(&self, prompts: &[Prompt], options: PredictOptions) -> Result<Vec<Prediction>> {
        block_on(self.predict_async(prompts, options))
    }

    /// Answers prompts for any number of objects: one [`Prediction`] per prompt, in order.
    /// Prompts with the same number of tokens are decoded together as one batch.
    pub async fn predict_async(&self, prompts: &[Prompt], options: PredictOptions) -> Result<Vec<Prediction>> {
        let state = self.image.as_ref().ok_or_else(|| Error::State("predict called before set_image".into()))?;
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let low = self.model.sam_prompt_encoder.mask_input_size();
        for (i, p) in prompts.iter().enumerate() {
            self.validate(i, p, state, low)?;
        }
        // Group objects whose prompts batch together (same token count, mask input or not).
        let mut groups: Vec<((usize, bool), Vec<usize>)> = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let key = (p.points.len() + 2 * usize::from(p.bbox.is_some()), p.mask_input.is_some());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        let mut out: Vec<Option<Prediction>> = vec![None; prompts.len()];
        for (_, members) in groups {
            let batch: Vec<&Prompt> = members.iter().map(|&i| &prompts[i]).collect();
            let predictions = self.predict_batch(state, &batch, options).await?;
            for (i, p) in members.into_iter().zip(predictions) {
                out[i] = Some(p);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn validate(&self, i: usize, p: &Prompt, state: &ImageState, low: usize) -> Result<()> {
        let ctx = |e: Error| match e {
            Error::Input(m) => Error::Input(format!("prompt {i}: {m}")),
            other => other,
        };
        validate_points(&p.points, &p.labels, state.width, state.height).map_err(ctx)?;
        if let Some(b) = p.bbox {
            validate_box(&[b], state.width, state.height).map_err(ctx)?;
        }
        if p.points.is_empty() && p.bbox.is_none() && p.mask_input.is_none() {
            return Err(Error::Input(format!("prompt {i} has no points, box or mask input")));
        }
        if let Some(m) = &p.mask_input {
            if m.len() != low * low {
                return Err(Error::Input(format!("prompt {i}: mask input has {} values, expected {low}x{low}", m.len())));
            }
            if m.iter().any(|v| !v.is_finite()) {
                return Err(Error::Input(format!("prompt {i}: mask input has non-finite values")));
            }
        }
        Ok(())
    }

    /// Low-resolution decoder outputs for `B` prompts of one foreground point each (pixels of
    /// the current image), optionally with a mask input `[B, S/4, S/4]` each: what the automatic
    /// mask generator needs (no upsampling, no hole filling, no clamping).
    pub async fn decode_points_async(&self, points: &[[f32; 2]], mask_input: Option<&[f32]>, multimask_output: bool) -> Result<LowResBatch> {
        let state = self.image.as_ref().ok_or_else(|| Error::State("decode called before set_image".into()))?;
        let labels = vec![1; points.len()];
        validate_points(points, &labels, state.width, state.height)?;
        let low = self.model.sam_prompt_encoder.mask_input_size();
        if let Some(m) = mask_input
            && (m.len() != points.len() * low * low || m.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::Input(format!("mask inputs need {} finite values ({} x {low}x{low}), got {}", points.len() * low * low, points.len(), m.len())));
        }
        if points.is_empty() {
            return Ok(LowResBatch { num_masks: if multimask_output { 3 } else { 1 }, low_res_logits: Vec::new(), iou_predictions: Vec::new() });
        }
        let coords = scale_points(points, state.width, state.height, self.model.config.image_size);
        let (num_masks, low_res_logits, iou_predictions, _) = self.decode(state, &coords, &labels, points.len(), mask_input.map(<[f32]>::to_vec), multimask_output).await?;
        Ok(LowResBatch { num_masks, low_res_logits, iou_predictions })
    }

    /// Low-resolution decoder outputs for `B` box prompts `[x0, y0, x1, y1]` (pixels of the
    /// current image) decoded as one batch: what [`Self::predict_async`] computes for boxes
    /// alone, before upsampling (unclamped logits `[B, M, S/4, S/4]`; the auto-annotator
    /// upsamples one mask at a time instead of holding `B` full-size masks).
    pub async fn decode_boxes_async(&self, boxes: &[[f32; 4]], multimask_output: bool) -> Result<LowResBatch> {
        let state = self.image.as_ref().ok_or_else(|| Error::State("decode called before set_image".into()))?;
        validate_box(boxes, state.width, state.height)?;
        if boxes.is_empty() {
            return Ok(LowResBatch { num_masks: if multimask_output { 3 } else { 1 }, low_res_logits: Vec::new(), iou_predictions: Vec::new() });
        }
        let coords: Vec<[f32; 2]> = scale_boxes(boxes, state.width, state.height, self.model.config.image_size).into_iter().flatten().collect();
        let labels = [label::BOX_TOP_LEFT, label::BOX_BOTTOM_RIGHT].repeat(boxes.len());
        let (num_masks, low_res_logits, iou_predictions, _) = self.decode(state, &coords, &labels, boxes.len(), None, multimask_output).await?;
        Ok(LowResBatch { num_masks, low_res_logits, iou_predictions })
    }

    /// Runs the prompt encoder and decoder on `b` prompts of equal length (points already
    /// scaled to S×S); returns M, the unclamped low-res logits `[b, M, S/4, S/4]`, the IoU
    /// predictions `[b, M]` and the object-score logits `[b]`.
    async fn decode(&self, state: &ImageState, coords: &[[f32; 2]], labels: &[i32], b: usize, mask: Option<Vec<f32>>, multimask_output: bool) -> Result<(usize, Vec<f32>, Vec<f32>, Vec<f32>)> {
        let model = &self.model;
        let device = model.device();
        let sparse = model.sam_prompt_encoder.embed_points(coords, labels, b, device)?;
        let low = model.sam_prompt_encoder.mask_input_size();
        let mask = mask.map(|values| Tensor::<4>::from_data(TensorData::new(values, [b, 1, low, low]), device));
        let dense = model.sam_prompt_encoder.embed_dense(mask, b);
        let decoded = model.decode(&state.features, sparse, dense, multimask_output);
        let m = decoded.masks.dims()[1];
        Ok((m, read_f32(decoded.masks).await?, read_f32(decoded.iou_pred).await?, read_f32(decoded.object_score_logits).await?))
    }

    async fn predict_batch(&self, state: &ImageState, batch: &[&Prompt], options: PredictOptions) -> Result<Vec<Prediction>> {
        let size = self.model.config.image_size;
        let (w, h) = (state.width, state.height);
        let b = batch.len();
        let mut coords = Vec::new();
        let mut labels = Vec::new();
        for p in batch {
            if let Some(bbox) = p.bbox {
                let [[x0, y0], [x1, y1]] = scale_boxes(&[bbox], w, h, size)[0];
                coords.extend([[x0, y0], [x1, y1]]);
                labels.extend([label::BOX_TOP_LEFT, label::BOX_BOTTOM_RIGHT]);
            }
            coords.extend(scale_points(&p.points, w, h, size));
            labels.extend(&p.labels);
        }
        let mask = batch[0].mask_input.as_ref().map(|_| batch.iter().flat_map(|p| p.mask_input.iter().flatten().copied()).collect());
        let (m, low_res, scores, object_scores) = self.decode(state, &coords, &labels, b, mask, options.multimask_output).await?;
        let low = self.model.sam_prompt_encoder.mask_input_size();
        let plane = low * low;
        let mut predictions = Vec::with_capacity(b);
        for (obj, obj_low) in low_res.chunks_exact(m * plane).enumerate() {
            let mut filled = obj_low.to_vec();
            fill_holes_and_sprinkles(&mut filled, low, low, 0.0, self.max_hole_area, self.max_sprinkle_area)?;
            let mut masks = vec![0u8; m * w * h];
            let mut logits = options.return_logits.then(|| vec![0.0f32; m * w * h]);
            for (k, mask) in filled.chunks_exact(plane).enumerate() {
                let base = k * w * h;
                upsample_bilinear(mask, (low, low), (h, w), |i, v| {
                    masks[base + i] = u8::from(v > 0.0);
                    if let Some(l) = logits.as_mut() {
                        l[base + i] = v;
                    }
                });
            }
            predictions.push(Prediction {
                num_masks: m,
                width: w,
                height: h,
                masks,
                scores: scores[obj * m..(obj + 1) * m].to_vec(),
                low_res_logits: obj_low.iter().map(|v| v.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)).collect(),
                logits,
                object_score_logit: object_scores[obj],
            });
        }
        Ok(predictions)
    }
}
