//! Memory encoder (`sam2/modeling/memory_encoder.py`): turns a frame's pixel features and its
//! predicted mask into the memory features later frames attend to.

use super::common::{Activation, Conv2d, LayerNorm, Linear, Mlp};
use super::params::{ParamSource, host_tensor, join, tensor};
use super::position_encoding::sine_pe;
use crate::config::MemoryEncoderConfig;
use crate::error::Result;
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;

/// Epsilon of `LayerNorm2d` (mask downsampler and CXBlocks).
const LN2D_EPS: f64 = 1e-6;

/// `MaskDownSampler`: `n` × (strided conv, `LayerNorm2d`, GELU), then a 1×1 conv to `embed_dim`.
/// Channels grow by `stride²` per step (1 → 4 → 16 → 64 → 256 for stride 2).
#[derive(Debug, Clone)]
pub struct MaskDownSampler {
    /// `encoder.{3i}` and `encoder.{3i+1}` (`3i+2` is the GELU).
    layers: Vec<(Conv2d, LayerNorm)>,
    /// `encoder.{3n}`.
    proj: Conv2d,
}

impl MaskDownSampler {
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &MemoryEncoderConfig, num_layers: usize) -> Result<Self> {
        let (k, s, p) = (cfg.downsampler_kernel, cfg.downsampler_stride, cfg.downsampler_padding);
        let mut c_in = 1;
        let mut layers = Vec::with_capacity(num_layers);
        for i in 0..num_layers {
            let c_out = c_in * s * s;
            let conv = Conv2d::load(src, &join(path, &format!("encoder.{}", 3 * i)), [c_in, c_out], k, s, p, 1)?;
            let norm = LayerNorm::load(src, &join(path, &format!("encoder.{}", 3 * i + 1)), c_out, LN2D_EPS)?;
            layers.push((conv, norm));
            c_in = c_out;
        }
        let proj = Conv2d::load(src, &join(path, &format!("encoder.{}", 3 * num_layers)), [c_in, cfg.downsampler_embed_dim], 1, 1, 0, 1)?;
        Ok(Self { layers, proj })
    }

    /// `[B, 1, S, S]` → `[B, embed_dim, S/16, S/16]`.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (conv, norm) in &self.layers {
            x = gelu(norm.forward_channels(conv.forward(x)));
        }
        self.proj.forward(x)
    }
}

/// `CXBlock` (ConvNeXt): depthwise 7×7 conv, `LayerNorm2d`, pointwise MLP (4× wider, GELU),
/// layer scale `gamma`, residual.
#[derive(Debug, Clone)]
struct CxBlock {
    dwconv: Conv2d,
    norm: LayerNorm,
    /// `pwconv1` → GELU → `pwconv2`, sliced over rows when large.
    pw: Mlp,
    /// `[C]`, when `layer_scale_init_value > 0`.
    gamma: Option<Tensor<1>>,
}

impl CxBlock {
    fn load(src: &mut dyn ParamSource, path: &str, dim: usize, cfg: &MemoryEncoderConfig) -> Result<Self> {
        let groups = if cfg.fuser_dwconv { dim } else { 1 };
        Ok(Self {
            dwconv: Conv2d::load(src, &join(path, "dwconv"), [dim, dim], cfg.fuser_kernel, 1, cfg.fuser_padding, groups)?,
            norm: LayerNorm::load(src, &join(path, "norm"), dim, LN2D_EPS)?,
            pw: Mlp::from_layers(
                vec![Linear::load(src, &join(path, "pwconv1"), dim, 4 * dim)?, Linear::load(src, &join(path, "pwconv2"), 4 * dim, dim)?],
                Activation::Gelu,
            ),
            gamma: if cfg.fuser_layer_scale { Some(tensor(src, &join(path, "gamma"), [dim])?) } else { None },
        })
    }

    /// `[B, C, H, W]` → `[B, C, H, W]`.
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = self.norm.forward_channels(self.dwconv.forward(input.clone()));
        let mut x = self.pw.forward(x.permute([0, 2, 3, 1]));
        if let Some(gamma) = &self.gamma {
            x = x * gamma.clone().unsqueeze::<4>();
        }
        input + x.permute([0, 3, 1, 2])
    }
}

/// What the memory encoder returns for a batch of `B` objects on one frame.
#[derive(Debug, Clone)]
pub struct EncodedMemory {
    /// `[B, mem_dim, S/16, S/16]`.
    pub features: Tensor<4>,
    /// Sine position encoding `[1, mem_dim, S/16, S/16]` (the same for every frame and object).
    pub pos: Tensor<4>,
}

/// `MemoryEncoder`: mask downsampler + projected pixel features, CXBlock fuser, output projection.
#[derive(Debug, Clone)]
pub struct MemoryEncoder {
    mask_downsampler: MaskDownSampler,
    pix_feat_proj: Conv2d,
    /// `fuser.proj` when `input_projection`.
    fuser_proj: Option<Conv2d>,
    fuser: Vec<CxBlock>,
    out_proj: Option<Conv2d>,
    /// `[1, mem_dim, S/16, S/16]`.
    pos: Tensor<4>,
}

impl MemoryEncoder {
    /// Loads `{path}.*` (`memory_encoder`) for an image embedding of side `embed_size`.
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &MemoryEncoderConfig, downsampler_layers: usize, embed_size: usize) -> Result<Self> {
        let d = cfg.in_dim;
        let fuser = (0..cfg.fuser_num_layers)
            .map(|i| CxBlock::load(src, &join(path, &format!("fuser.layers.{i}")), d, cfg))
            .collect::<Result<_>>()?;
        let pe = sine_pe(embed_size, embed_size, cfg.pos_num_feats, cfg.pos_temperature, cfg.pos_normalize, cfg.pos_scale);
        Ok(Self {
            mask_downsampler: MaskDownSampler::load(src, &join(path, "mask_downsampler"), cfg, downsampler_layers)?,
            pix_feat_proj: Conv2d::load(src, &join(path, "pix_feat_proj"), [d, d], 1, 1, 0, 1)?,
            fuser_proj: match cfg.fuser_input_projection {
                true => Some(Conv2d::load(src, &join(path, "fuser.proj"), [d, d], 1, 1, 0, 1)?),
                false => None,
            },
            fuser,
            out_proj: match cfg.out_dim != d {
                true => Some(Conv2d::load(src, &join(path, "out_proj"), [d, cfg.out_dim], 1, 1, 0, 1)?),
                false => None,
            },
            pos: host_tensor(pe, [1, cfg.pos_num_feats, embed_size, embed_size], src.device())?,
        })
    }

    /// `pix_feat`: `[1 or B, C, S/16, S/16]`; `masks`: `[B, 1, S, S]`, already passed through the
    /// sigmoid (or binarised) and scaled, as `SAM2Base._encode_new_memory` hands them over.
    pub fn forward(&self, pix_feat: Tensor<4>, masks: Tensor<4>) -> EncodedMemory {
        let masks = self.mask_downsampler.forward(masks);
        let [b, c, h, w] = masks.dims();
        let mut x = self.pix_feat_proj.forward(pix_feat).expand([b, c, h, w]) + masks;
        if let Some(proj) = &self.fuser_proj {
            x = proj.forward(x);
        }
        for block in &self.fuser {
            x = block.forward(x);
        }
        if let Some(proj) = &self.out_proj {
            x = proj.forward(x);
        }
        EncodedMemory { features: x, pos: self.pos.clone() }
    }
}
