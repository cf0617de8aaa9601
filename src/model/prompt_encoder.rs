//! Prompt encoder (`sam2/modeling/sam/prompt_encoder.py`): points and boxes to sparse
//! embeddings, mask logits to dense embeddings.

use super::common::{Conv2d, LayerNorm};
use super::params::{ParamSource, host_tensor, join};
use super::position_encoding::{random_fourier, random_fourier_grid};
use crate::error::{Error, Result};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

/// Hidden channels of the mask-downscaling stack (hard-coded in `SAM2Base`).
const MASK_IN_CHANS: usize = 16;

/// Point labels understood by the prompt encoder.
pub mod label {
    /// Padding: no point (`not_a_point_embed`).
    pub const PAD: i32 = -1;
    /// Negative click: background.
    pub const NEGATIVE: i32 = 0;
    /// Positive click: foreground.
    pub const POSITIVE: i32 = 1;
    /// Top-left box corner.
    pub const BOX_TOP_LEFT: i32 = 2;
    /// Bottom-right box corner.
    pub const BOX_BOTTOM_RIGHT: i32 = 3;
}

/// `PromptEncoder` with embed dim `d` for an `S×S` input and an `h×h` image embedding (`h = S/16`).
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    embed_dim: usize,
    input_size: usize,
    embed_size: usize,
    /// `pe_layer.positional_encoding_gaussian_matrix` `[2, d/2]`, kept on the host.
    gaussian: Vec<f32>,
    /// `point_embeddings.{0..3}.weight`, each `[d]`, on the host.
    point_embeddings: [Vec<f32>; 4],
    /// `not_a_point_embed.weight` `[d]`, on the host.
    not_a_point: Vec<f32>,
    /// `no_mask_embed.weight` as `[1, d, 1, 1]`.
    no_mask_embed: Tensor<4>,
    /// `mask_downscaling.{0,1,3,4,6}`.
    mask_conv1: Conv2d,
    mask_norm1: LayerNorm,
    mask_conv2: Conv2d,
    mask_norm2: LayerNorm,
    mask_conv3: Conv2d,
    /// `get_dense_pe()`: `[1, d, h, h]`.
    dense_pe: Tensor<4>,
}

impl PromptEncoder {
    /// Loads `{path}.*` (`sam_prompt_encoder`).
    pub fn load(src: &mut dyn ParamSource, path: &str, embed_dim: usize, input_size: usize) -> Result<Self> {
        let d = embed_dim;
        let embed_size = input_size / 16;
        let feats = d / 2;
        let gaussian = src.take(&join(path, "pe_layer.positional_encoding_gaussian_matrix"), &[2, feats])?;
        let mut point = |i: usize| src.take(&join(path, &format!("point_embeddings.{i}.weight")), &[1, d]);
        let point_embeddings = [point(0)?, point(1)?, point(2)?, point(3)?];
        let not_a_point = src.take(&join(path, "not_a_point_embed.weight"), &[1, d])?;
        let no_mask = src.take(&join(path, "no_mask_embed.weight"), &[1, d])?;
        let device = src.device().clone();
        let m = |i: usize| join(path, &format!("mask_downscaling.{i}"));
        let c = MASK_IN_CHANS;
        Ok(Self {
            embed_dim,
            input_size,
            embed_size,
            dense_pe: host_tensor(random_fourier_grid(embed_size, embed_size, &gaussian, feats), [1, d, embed_size, embed_size], &device)?,
            gaussian,
            point_embeddings,
            not_a_point,
            no_mask_embed: host_tensor(no_mask, [1, d, 1, 1], &device)?,
            mask_conv1: Conv2d::load(src, &m(0), [1, c / 4], 2, 2, 0, 1)?,
            mask_norm1: LayerNorm::load(src, &m(1), c / 4, 1e-6)?,
            mask_conv2: Conv2d::load(src, &m(3), [c / 4, c], 2, 2, 0, 1)?,
            mask_norm2: LayerNorm::load(src, &m(4), c, 1e-6)?,
            mask_conv3: Conv2d::load(src, &m(6), [c, d], 1, 1, 0, 1)?,
        })
    }

    /// The dense positional encoding of the image embedding grid: `[1, d, h, h]`.
    pub fn dense_pe(&self) -> Tensor<4> {
        self.dense_pe.clone()
    }

    /// Side of the mask input the encoder expects (`4 · S/16`).
    pub fn mask_input_size(&self) -> usize {
        4 * self.embed_size
    }

    /// Sparse embeddings of `batch` prompts of `n` points each, plus one padding point per prompt
    /// (the image predictor always pads, as Meta's does).
    ///
    /// `coords`: `[batch·n]` points in input-image pixels (`S×S` frame); `labels`: `[batch·n]`.
    /// Returns `[batch, n + 1, d]`.
    pub fn embed_points(&self, coords: &[[f32; 2]], labels: &[i32], batch: usize, device: &Device) -> Result<Tensor<3>> {
        if coords.len() != labels.len() || batch == 0 || coords.len() % batch != 0 {
            return Err(Error::Input(format!("{} points, {} labels for {batch} prompts", coords.len(), labels.len())));
        }
        let n = coords.len() / batch;
        let d = self.embed_dim;
        let size = self.input_size as f32;
        let mut out = Vec::with_capacity(batch * (n + 1) * d);
        for b in 0..batch {
            let padded = coords[b * n..(b + 1) * n].iter().copied().chain([[0.0, 0.0]]);
            let point_labels = labels[b * n..(b + 1) * n].iter().copied().chain([label::PAD]);
            for (p, l) in padded.zip(point_labels) {
                let normed = [(p[0] + 0.5) / size, (p[1] + 0.5) / size];
                let pe = random_fourier(&[normed], &self.gaussian, d / 2);
                match l {
                    label::PAD => out.extend_from_slice(&self.not_a_point),
                    0..=3 => out.extend(pe.iter().zip(&self.point_embeddings[l as usize]).map(|(a, b)| a + b)),
                    _ => return Err(Error::Input(format!("point label {l} is not one of -1, 0, 1, 2, 3"))),
                }
            }
        }
        host_tensor(out, [batch, n + 1, d], device)
    }

    /// Dense embeddings: from mask logits `[B, 1, 4h, 4h]` when given, else `no_mask_embed`
    /// broadcast to `[batch, d, h, h]`.
    pub fn embed_dense(&self, mask: Option<Tensor<4>>, batch: usize) -> Tensor<4> {
        match mask {
            Some(m) => {
                let x = gelu(self.mask_norm1.forward_channels(self.mask_conv1.forward(m)));
                let x = gelu(self.mask_norm2.forward_channels(self.mask_conv2.forward(x)));
                self.mask_conv3.forward(x)
            }
            None => {
                let h = self.embed_size;
                self.no_mask_embed.clone().expand([batch, self.embed_dim, h, h])
            }
        }
    }
}
