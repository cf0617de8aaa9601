//! Image encoder: Hiera trunk + FPN neck (`sam2/modeling/backbones/image_encoder.py`).

use super::common::Conv2d;
use super::hiera::Hiera;
use super::params::{ParamSource, host_tensor, join};
use super::position_encoding::sine_pe;
use crate::config::{FpnInterp, NeckConfig, Sam2Config};
use crate::error::Result;
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

/// `FpnNeck`: 1×1 lateral convolutions to `d_model`, top-down fusion on selected levels and a sine
/// position encoding per level.
#[derive(Debug, Clone)]
pub struct FpnNeck {
    /// `convs.{j}.conv`; `convs[j]` takes the trunk level `n - j` (deepest first).
    convs: Vec<Conv2d>,
    /// Position encoding per level (level 0 = highest resolution): `[1, d_model, H_i, W_i]`.
    pos: Vec<Tensor<4>>,
    top_down_levels: Vec<usize>,
    interp: FpnInterp,
    fuse_avg: bool,
}

/// 2× upsampling as `F.interpolate(scale_factor=2)` with nearest or bilinear (align_corners False).
fn upsample2(x: Tensor<4>, mode: FpnInterp) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    match mode {
        FpnInterp::Nearest => {
            let x: Tensor<6> = x.reshape([b, c, h, 1, w, 1]);
            x.expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w])
        }
        FpnInterp::Bilinear => {
            let mut options = InterpolateOptions::new(InterpolateMode::Bilinear);
            options.align_corners = false;
            options.output_size = Some([2 * h, 2 * w]);
            interpolate(x, options)
        }
    }
}

impl FpnNeck {
    /// Loads `{path}.convs.*` for trunk levels whose sides are `level_sizes` (highest resolution first).
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &NeckConfig, level_sizes: &[usize]) -> Result<Self> {
        let convs = cfg
            .backbone_channel_list
            .iter()
            .enumerate()
            .map(|(j, &c)| Conv2d::load(src, &join(path, &format!("convs.{j}.conv")), [c, cfg.d_model], 1, 1, 0, 1))
            .collect::<Result<_>>()?;
        let pos = level_sizes
            .iter()
            .map(|&s| {
                let pe = sine_pe(s, s, cfg.pos_num_feats, cfg.pos_temperature, cfg.pos_normalize, cfg.pos_scale);
                host_tensor(pe, [1, cfg.pos_num_feats, s, s], src.device())
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            convs,
            pos,
            top_down_levels: cfg.fpn_top_down_levels.clone(),
            interp: cfg.fpn_interp_model,
            fuse_avg: cfg.fuse_avg,
        })
    }

    /// Trunk levels (highest resolution first) → fused features `[B, d_model, H_i, W_i]` per level.
    pub fn forward(&self, trunk: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
        let n = self.convs.len() - 1;
        let mut out: Vec<Option<Tensor<4>>> = vec![None; n + 1];
        let mut prev: Option<Tensor<4>> = None;
        for (i, x) in trunk.into_iter().enumerate().rev() {
            let lateral = self.convs[n - i].forward(x);
            let fused = match prev.take() {
                Some(p) if self.top_down_levels.contains(&i) => {
                    let sum = lateral + upsample2(p, self.interp);
                    if self.fuse_avg { sum / 2.0 } else { sum }
                }
                _ => lateral,
            };
            out[i] = Some(fused.clone());
            prev = Some(fused);
        }
        out.into_iter().flatten().collect()
    }

    /// Position encoding of level `i`, repeated over the batch: `[B, d_model, H_i, W_i]`.
    pub fn pos(&self, level: usize, batch: usize) -> Tensor<4> {
        self.pos[level].clone().repeat_dim(0, batch)
    }
}

/// `ImageEncoder`: trunk, neck and `scalp` (dropping the lowest-resolution levels).
#[derive(Debug, Clone)]
pub struct ImageEncoder {
    pub trunk: Hiera,
    pub neck: FpnNeck,
    scalp: usize,
}

impl ImageEncoder {
    /// Loads `image_encoder.trunk.*` and `image_encoder.neck.*`.
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &Sam2Config) -> Result<Self> {
        let trunk = Hiera::load(src, &join(path, "trunk"), &cfg.trunk, cfg.image_size)?;
        let sizes: Vec<usize> = (0..4).map(|i| cfg.image_size / (4 << i)).collect();
        let neck = FpnNeck::load(src, &join(path, "neck"), &cfg.neck, &sizes)?;
        Ok(Self { trunk, neck, scalp: cfg.scalp })
    }

    /// `[B, 3, S, S]` → the neck levels kept after `scalp` (`backbone_fpn`, highest resolution
    /// first), each `[B, d_model, S/4/2^i, S/4/2^i]`.
    pub fn forward(&self, image: Tensor<4>) -> Vec<Tensor<4>> {
        let mut levels = self.neck.forward(self.trunk.forward(image));
        levels.truncate(levels.len() - self.scalp);
        levels
    }
}
