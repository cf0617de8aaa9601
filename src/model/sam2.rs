//! The whole SAM 2 model (`sam2/modeling/sam2_base.py`): its modules and the stateless steps the
//! predictors call. It holds weights only; per-image and per-video state live in `crate::predictor`.

use super::image_encoder::ImageEncoder;
use super::mask_decoder::{DecoderOutput, MaskDecoder};
use super::params::{ParamSource, tensor};
use super::prompt_encoder::PromptEncoder;
use super::sam2_video::VideoModules;
use crate::config::Sam2Config;
use crate::error::Result;
use burn::tensor::{Device, Tensor};

/// Image features the SAM heads consume (`SAM2ImagePredictor._features`).
#[derive(Debug, Clone)]
pub struct ImageFeatures {
    /// Lowest-resolution level with `no_mem_embed` added: `[B, C, S/16, S/16]`.
    pub image_embed: Tensor<4>,
    /// Projected high-resolution levels: `[B, C/8, S/4, S/4]` and `[B, C/4, S/8, S/8]`.
    pub high_res: Option<(Tensor<4>, Tensor<4>)>,
}

/// SAM 2 / SAM 2.1: image encoder, prompt encoder and mask decoder (the image path).
#[derive(Debug, Clone)]
pub struct Sam2 {
    pub config: Sam2Config,
    pub image_encoder: ImageEncoder,
    pub sam_prompt_encoder: PromptEncoder,
    pub sam_mask_decoder: MaskDecoder,
    /// `no_mem_embed` as `[1, C, 1, 1]`.
    pub(crate) no_mem_embed: Tensor<4>,
    /// Memory attention, memory encoder and object pointers; `None` for an image-only model.
    pub(crate) video: Option<VideoModules>,
    device: Device,
}

impl Sam2 {
    /// Builds the image-path model from `src`, whose paths are the state-dict keys of Meta's
    /// `SAM2Base` (the video-only keys are not read).
    pub fn load(src: &mut dyn ParamSource, config: &Sam2Config) -> Result<Self> {
        Self::load_with(src, config, false)
    }

    /// Builds the whole model, video modules included.
    pub fn load_video(src: &mut dyn ParamSource, config: &Sam2Config) -> Result<Self> {
        Self::load_with(src, config, true)
    }

    fn load_with(src: &mut dyn ParamSource, config: &Sam2Config, with_video: bool) -> Result<Self> {
        config.validate()?;
        let d = config.hidden_dim();
        let no_mem_embed = tensor(src, "no_mem_embed", [1, 1, d])?.reshape([1, d, 1, 1]);
        Ok(Self {
            image_encoder: ImageEncoder::load(src, "image_encoder", config)?,
            sam_prompt_encoder: PromptEncoder::load(src, "sam_prompt_encoder", d, config.image_size)?,
            sam_mask_decoder: MaskDecoder::load(src, "sam_mask_decoder", config)?,
            no_mem_embed,
            video: if with_video { Some(VideoModules::load(src, config)?) } else { None },
            device: src.device().clone(),
            config: config.clone(),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `forward_image` + `_prepare_backbone_features` + `no_mem_embed`, as `set_image` does.
    ///
    /// `image`: normalised `[B, 3, S, S]`.
    pub fn image_features(&self, image: Tensor<4>) -> ImageFeatures {
        let mut levels = self.image_encoder.forward(image);
        let mut image_embed = levels.pop().expect("config validation keeps at least one level");
        if self.config.directly_add_no_mem_embed {
            image_embed = image_embed + self.no_mem_embed.clone();
        }
        let high_res = if self.config.use_high_res_features_in_sam {
            let level1 = levels.pop().expect("three levels with high-res features");
            let level0 = levels.pop().expect("three levels with high-res features");
            Some(self.sam_mask_decoder.project_high_res(level0, level1))
        } else {
            None
        };
        ImageFeatures { image_embed, high_res }
    }

    /// Runs the mask decoder for `B` prompts on one image's features.
    ///
    /// `sparse`: `[B, N, C]` from the prompt encoder; `dense`: `[1 or B, C, S/16, S/16]`.
    pub fn decode(&self, features: &ImageFeatures, sparse: Tensor<3>, dense: Tensor<4>, multimask_output: bool) -> DecoderOutput {
        self.sam_mask_decoder.forward(
            features.image_embed.clone(),
            self.sam_prompt_encoder.dense_pe(),
            sparse,
            dense,
            multimask_output,
            features.high_res.clone(),
        )
    }
}
