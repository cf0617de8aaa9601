//! [`Sam2Model`]: loading, model facts, and the image predictor (set an image, predict).

use super::{busy, js_err, placement, set};
use crate::config::Sam2Config;
use crate::predictor::{ImagePredictor, ImageRef, PredictOptions, Prediction, Prompt};
use crate::weights::keymap::is_video_only;
use crate::weights::{Checkpoint, config_for, load_sam2, load_sam2_video, parameter_count};
use js_sys::{Float32Array, Object, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// RGBA pixels of the image last given to [`Sam2Model::set_image`] (`width·height·4` bytes).
pub(super) struct Pixels {
    pub rgba: Vec<u8>,
    pub width: usize,
    pub height: usize,
}

/// A SAM 2 model on WebGPU: an image predictor, automatic masks, and (when the checkpoint has
/// the video modules) video sessions, all sharing the same weights.
#[wasm_bindgen]
pub struct Sam2Model {
    pub(super) predictor: Rc<RefCell<ImagePredictor>>,
    pub(super) pixels: Rc<RefCell<Option<Pixels>>>,
    info: String,
}

#[wasm_bindgen]
impl Sam2Model {
    /// Loads Meta's `.pt` or a safetensors checkpoint (f32 or f16) from bytes. `config_yaml`
    /// (Meta's Hydra YAML) is needed only for non-official sizes; otherwise the preset is
    /// detected. `backend`: `"auto"` (default: WebGPU, else the CPU), `"webgpu"` or `"cpu"`.
    /// The video modules are loaded too when the checkpoint has them.
    pub async fn load(bytes: Vec<u8>, config_yaml: Option<String>, backend: Option<String>) -> Result<Sam2Model, JsError> {
        console_error_panic_hook::set_once();
        let total_bytes = bytes.len();
        let ckpt = Checkpoint::from_bytes(bytes).map_err(js_err)?;
        let config = match config_yaml {
            Some(yaml) => Sam2Config::from_yaml(&yaml).map_err(js_err)?,
            None => config_for(&ckpt).map_err(js_err)?,
        };
        let place = placement(backend.as_deref()).await?;
        let video = ckpt.names().any(is_video_only);
        let model = if video { load_sam2_video(&ckpt, &config, &place.device) } else { load_sam2(&ckpt, &config, &place.device) }.map_err(js_err)?;
        let info = serde_json::json!({
            "version": config.version.to_string(),
            "size": config.size.to_string(),
            "imageSize": config.image_size,
            "parameters": parameter_count(&ckpt),
            "checkpointBytes": total_bytes,
            "video": video,
            "backend": place.backend,
            "adapter": place.adapter,
            "fallbackReason": place.fallback_reason,
        })
        .to_string();
        Ok(Sam2Model { predictor: Rc::new(RefCell::new(ImagePredictor::new(model))), pixels: Rc::new(RefCell::new(None)), info })
    }

    /// Model facts as a JSON string: `{version, size, imageSize, parameters, checkpointBytes,
    /// video, backend: "webgpu" | "cpu", adapter, fallbackReason}`.
    pub fn info(&self) -> String {
        self.info.clone()
    }

    /// Computes the image embedding of RGBA pixels (`width·height·4` bytes); resolves once the
    /// device has finished (a rejected image keeps the previous one).
    #[wasm_bindgen(js_name = setImage)]
    pub fn set_image(&self, rgba: &[u8], width: usize, height: usize) -> Result<js_sys::Promise, JsError> {
        let image = ImageRef::new(width, height, 4, rgba).map_err(js_err)?;
        {
            let mut pixels = self.pixels.try_borrow_mut().map_err(|_| busy())?;
            self.predictor.try_borrow_mut().map_err(|_| busy())?.set_image(&image).map_err(js_err)?;
            *pixels = Some(Pixels { rgba: rgba.to_vec(), width, height });
        }
        let predictor = Rc::clone(&self.predictor);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let guard = predictor.try_borrow().map_err(|_| busy())?;
            guard.features_ready_async().await.map_err(js_err)?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Predicts masks: one object from `points` `[x0, y0, x1, y1, ...]` (image pixels, one
    /// label each: 1 positive, 0 negative), an optional box `[x0, y0, x1, y1]` and optional
    /// low-res mask logits; or several objects at once from boxes alone (`bbox` holding 4
    /// numbers per object, no points, no mask input). Resolves to `{numObjects, numMasks,
    /// width, height, masks: Uint8Array [objects, masks, height, width], scores: Float32Array
    /// [objects, masks], lowResLogits: Float32Array [objects, masks, S/4, S/4],
    /// objectScoreLogits: Float32Array [objects], objectScoreLogit (the first object's)}`.
    pub fn predict(
        &self,
        points: Vec<f32>,
        labels: Vec<i32>,
        bbox: Option<Vec<f32>>,
        mask_input: Option<Vec<f32>>,
        multimask_output: bool,
    ) -> Result<js_sys::Promise, JsError> {
        if points.len() % 2 != 0 {
            return Err(JsError::new("points must hold x, y pairs"));
        }
        let boxes: Vec<[f32; 4]> = match &bbox {
            Some(b) if b.is_empty() || b.len() % 4 != 0 => return Err(JsError::new(&format!("boxes need 4 numbers each, got {}", b.len()))),
            Some(b) => b.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect(),
            None => Vec::new(),
        };
        let prompts = if boxes.len() > 1 {
            if !points.is_empty() || !labels.is_empty() || mask_input.is_some() {
                return Err(JsError::new("several boxes are several objects: give them without points or mask input (one call per object otherwise)"));
            }
            boxes.into_iter().map(|b| Prompt { points: Vec::new(), labels: Vec::new(), bbox: Some(b), mask_input: None }).collect()
        } else {
            vec![Prompt { points: points.chunks_exact(2).map(|p| [p[0], p[1]]).collect(), labels, bbox: boxes.first().copied(), mask_input }]
        };
        let predictor = Rc::clone(&self.predictor);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let guard = predictor.try_borrow().map_err(|_| busy())?;
            let options = PredictOptions { multimask_output, return_logits: false };
            let out: Vec<Prediction> = guard.predict_async(&prompts, options).await.map_err(js_err)?;
            let first = out.first().ok_or_else(|| JsError::new("no prediction"))?;
            let concat = |f: fn(&Prediction) -> &[f32]| out.iter().flat_map(|p| f(p).iter().copied()).collect::<Vec<f32>>();
            let masks: Vec<u8> = out.iter().flat_map(|p| p.masks.iter().copied()).collect();
            let obj = Object::new();
            set(&obj, "numObjects", out.len() as u32)?;
            set(&obj, "numMasks", first.num_masks as u32)?;
            set(&obj, "width", first.width as u32)?;
            set(&obj, "height", first.height as u32)?;
            set(&obj, "masks", Uint8Array::from(masks.as_slice()))?;
            set(&obj, "scores", Float32Array::from(concat(|p| &p.scores).as_slice()))?;
            set(&obj, "lowResLogits", Float32Array::from(concat(|p| &p.low_res_logits).as_slice()))?;
            let object_scores: Vec<f32> = out.iter().map(|p| p.object_score_logit).collect();
            set(&obj, "objectScoreLogits", Float32Array::from(object_scores.as_slice()))?;
            set(&obj, "objectScoreLogit", first.object_score_logit)?;
            Ok(obj.into())
        }))
    }
}
