//! [`Sam2Model`]: loading, model facts, and the image predictor (set an image, predict).

use super::{busy, js_err, set, webgpu_device};
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
    /// Loads Meta's `.pt` or a safetensors checkpoint from bytes. `config_yaml` (Meta's Hydra
    /// YAML) is needed only for non-official sizes; otherwise the preset is detected. The video
    /// modules are loaded too when the checkpoint has them.
    pub async fn load(bytes: Vec<u8>, config_yaml: Option<String>) -> Result<Sam2Model, JsError> {
        console_error_panic_hook::set_once();
        let ckpt = Checkpoint::from_bytes(bytes).map_err(js_err)?;
        let config = match config_yaml {
            Some(yaml) => Sam2Config::from_yaml(&yaml).map_err(js_err)?,
            None => config_for(&ckpt).map_err(js_err)?,
        };
        let device = webgpu_device().await?;
        let video = ckpt.names().any(is_video_only);
        let model = if video { load_sam2_video(&ckpt, &config, &device) } else { load_sam2(&ckpt, &config, &device) }.map_err(js_err)?;
        let info = format!(
            "{{\"version\":\"{}\",\"size\":\"{}\",\"imageSize\":{},\"parameters\":{},\"video\":{video},\"backend\":\"webgpu\"}}",
            config.version,
            config.size,
            config.image_size,
            parameter_count(&ckpt)
        );
        Ok(Sam2Model { predictor: Rc::new(RefCell::new(ImagePredictor::new(model))), pixels: Rc::new(RefCell::new(None)), info })
    }

    /// Model facts as a JSON string.
    pub fn info(&self) -> String {
        self.info.clone()
    }

    /// Computes the image embedding of RGBA pixels (`width·height·4` bytes).
    #[wasm_bindgen(js_name = setImage)]
    pub fn set_image(&self, rgba: &[u8], width: usize, height: usize) -> Result<(), JsError> {
        let image = ImageRef::new(width, height, 4, rgba).map_err(js_err)?;
        let mut pixels = self.pixels.try_borrow_mut().map_err(|_| busy())?;
        self.predictor.try_borrow_mut().map_err(|_| busy())?.set_image(&image).map_err(js_err)?;
        *pixels = Some(Pixels { rgba: rgba.to_vec(), width, height });
        Ok(())
    }

    /// Predicts masks for one object: `points` `[x0, y0, x1, y1, ...]` in image pixels with one
    /// label each, an optional box `[x0, y0, x1, y1]`, optional low-res mask logits.
    /// Resolves to `{numMasks, width, height, masks: Uint8Array, scores: Float32Array,
    /// lowResLogits: Float32Array, objectScoreLogit}`.
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
        let bbox = match bbox {
            Some(b) => Some(<[f32; 4]>::try_from(b.as_slice()).map_err(|_| JsError::new("a box needs 4 numbers"))?),
            None => None,
        };
        let prompt = Prompt { points: points.chunks_exact(2).map(|p| [p[0], p[1]]).collect(), labels, bbox, mask_input };
        let predictor = Rc::clone(&self.predictor);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let guard = predictor.try_borrow().map_err(|_| busy())?;
            let options = PredictOptions { multimask_output, return_logits: false };
            let mut out = guard.predict_async(&[prompt], options).await.map_err(js_err)?;
            let p: Prediction = out.pop().ok_or_else(|| JsError::new("no prediction"))?;
            let obj = Object::new();
            set(&obj, "numMasks", p.num_masks as u32)?;
            set(&obj, "width", p.width as u32)?;
            set(&obj, "height", p.height as u32)?;
            set(&obj, "masks", Uint8Array::from(p.masks.as_slice()))?;
            set(&obj, "scores", Float32Array::from(p.scores.as_slice()))?;
            set(&obj, "lowResLogits", Float32Array::from(p.low_res_logits.as_slice()))?;
            set(&obj, "objectScoreLogit", p.object_score_logit)?;
            Ok(obj.into())
        }))
    }
}
