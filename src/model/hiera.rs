//! Hiera, the hierarchical ViT trunk of SAM 2 (`sam2/modeling/backbones/hieradet.py`).

use super::common::{Activation, Conv2d, LayerNorm, Linear, Mlp, attention, window_partition, window_unpartition};
use super::params::{ParamSource, host_tensor, join};
use super::position_encoding::bicubic_resize;
use crate::config::HieraConfig;
use crate::error::{Error, Result};
use burn::tensor::Tensor;

/// Max-pools `[B, H, W, C]` by `stride` (kernel = stride, floor mode).
fn pool(x: Tensor<4>, [sh, sw]: [usize; 2]) -> Tensor<4> {
    let [b, h, w, c] = x.dims();
    let (oh, ow) = (h / sh, w / sw);
    let x = if oh * sh != h || ow * sw != w { x.slice([0..b, 0..oh * sh, 0..ow * sw, 0..c]) } else { x };
    let x: Tensor<6> = x.reshape([b, oh, sh, ow, sw, c]);
    x.max_dim(4).max_dim(2).reshape([b, oh, ow, c])
}

/// `MultiScaleAttention`: self-attention whose queries may be pooled.
#[derive(Debug, Clone)]
struct MultiScaleAttention {
    /// `qkv` split into its query, key and value projections.
    q: Linear,
    k: Linear,
    v: Linear,
    proj: Linear,
    num_heads: usize,
    dim_out: usize,
    q_stride: Option<[usize; 2]>,
}

impl MultiScaleAttention {
    /// `[B, H, W, dim]` → `[B, H', W', dim_out]` (H' = H / stride when queries are pooled).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, _] = x.dims();
        let head_dim = self.dim_out / self.num_heads;
        let heads = |x: Tensor<4>| -> Tensor<4> { x.reshape([b, h * w, self.num_heads, head_dim]) };
        let (mut q, k, v) = (heads(self.q.forward(x.clone())), heads(self.k.forward(x.clone())), heads(self.v.forward(x)));
        let (mut oh, mut ow) = (h, w);
        if let Some(stride) = self.q_stride {
            let pooled = pool(q.reshape([b, h, w, self.dim_out]), stride);
            [_, oh, ow, _] = pooled.dims();
            q = pooled.reshape([b, oh * ow, self.num_heads, head_dim]);
        }
        let out = attention(q.swap_dims(1, 2), k.swap_dims(1, 2), v.swap_dims(1, 2));
        self.proj.forward(out.swap_dims(1, 2).reshape([b, oh, ow, self.dim_out]))
    }
}

/// `MultiScaleBlock`: (windowed) attention + MLP, with a projected and pooled shortcut at stage changes.
#[derive(Debug, Clone)]
struct MultiScaleBlock {
    norm1: LayerNorm,
    attn: MultiScaleAttention,
    norm2: LayerNorm,
    mlp: Mlp,
    proj: Option<Linear>,
    window_size: usize,
}

impl MultiScaleBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let normed = self.norm1.forward(x.clone());
        let mut shortcut = x;
        if let Some(proj) = &self.proj {
            shortcut = proj.forward(normed.clone());
            if let Some(stride) = self.attn.q_stride {
                shortcut = pool(shortcut, stride);
            }
        }
        let [_, h, w, _] = shortcut.dims();
        let mut x = normed;
        let mut window = self.window_size;
        let mut pad_hw = (0, 0);
        if window > 0 {
            (x, pad_hw) = window_partition(x, window);
        }
        x = self.attn.forward(x);
        if let Some([s, _]) = self.attn.q_stride {
            window /= s;
            pad_hw = (h + (window - h % window) % window, w + (window - w % window) % window);
        }
        if self.window_size > 0 {
            x = window_unpartition(x, window, pad_hw, (h, w));
        }
        let x = shortcut + x;
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// The Hiera trunk: patch embedding, windowed position embedding and the stages of blocks.
#[derive(Debug, Clone)]
pub struct Hiera {
    patch_embed: Conv2d,
    /// Background + window position embedding resized to the patch grid: `[1, S/4, S/4, C]`.
    pos_embed: Tensor<4>,
    blocks: Vec<MultiScaleBlock>,
    /// Index of the last block of each stage.
    stage_ends: Vec<usize>,
}

impl Hiera {
    /// Loads `{path}.*` for a trunk fed `image_size`² images.
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &HieraConfig, image_size: usize) -> Result<Self> {
        let mut dim = cfg.embed_dim;
        let patch_embed = Conv2d::load(src, &join(path, "patch_embed.proj"), [3, dim], 7, 4, 3, 1)?;
        let grid = image_size / 4;
        let pos_embed = Self::load_pos_embed(src, path, cfg, grid)?;

        let stage_ends: Vec<usize> = cfg.stages.iter().scan(0, |acc, n| { *acc += n; Some(*acc - 1) }).collect();
        let q_pool_blocks: Vec<usize> = stage_ends[..stage_ends.len() - 1].iter().map(|e| e + 1).take(cfg.q_pool).collect();
        let mut heads = cfg.num_heads;
        let mut stage = 0;
        let mut blocks = Vec::new();
        for i in 0..cfg.stages.iter().sum() {
            let mut dim_out = dim;
            // The first block of a stage still uses the previous stage's window size.
            let mut window_size = cfg.window_spec[stage];
            if cfg.global_att_blocks.contains(&i) {
                window_size = 0;
            }
            if i > 0 && stage_ends.contains(&(i - 1)) {
                dim_out = (dim as f64 * cfg.dim_mul) as usize;
                heads = (heads as f64 * cfg.head_mul) as usize;
                stage += 1;
            }
            if heads == 0 || dim_out % heads != 0 {
                return Err(Error::Config(format!("block {i}: {dim_out} channels do not split into {heads} heads")));
            }
            let q_stride = q_pool_blocks.contains(&i).then_some(cfg.q_stride);
            if let (Some([s, _]), true) = (q_stride, window_size > 0) {
                if window_size % s != 0 {
                    return Err(Error::Config(format!("block {i}: window {window_size} not divisible by q_stride {s}")));
                }
            }
            let p = join(path, &format!("blocks.{i}"));
            let [q, k, v]: [Linear; 3] = Linear::load_split(src, &join(&p, "attn.qkv"), dim, dim_out, 3)?
                .try_into()
                .map_err(|_| Error::Config("internal: qkv split".into()))?;
            blocks.push(MultiScaleBlock {
                norm1: LayerNorm::load(src, &join(&p, "norm1"), dim, 1e-6)?,
                attn: MultiScaleAttention {
                    q,
                    k,
                    v,
                    proj: Linear::load(src, &join(&p, "attn.proj"), dim_out, dim_out)?,
                    num_heads: heads,
                    dim_out,
                    q_stride,
                },
                norm2: LayerNorm::load(src, &join(&p, "norm2"), dim_out, 1e-6)?,
                mlp: Mlp::load(src, &join(&p, "mlp"), &[dim_out, 4 * dim_out, dim_out], Activation::Gelu, false)?,
                proj: if dim != dim_out { Some(Linear::load(src, &join(&p, "proj"), dim, dim_out)?) } else { None },
                window_size,
            });
            dim = dim_out;
        }
        Ok(Self { patch_embed, pos_embed, blocks, stage_ends })
    }

    /// `pos_embed` bicubic-resized to the patch grid plus `pos_embed_window` tiled over it.
    fn load_pos_embed(src: &mut dyn ParamSource, path: &str, cfg: &HieraConfig, grid: usize) -> Result<Tensor<4>> {
        let c = cfg.embed_dim;
        let [bh, bw] = cfg.window_pos_embed_bkg_spatial_size;
        let win = cfg.window_spec[0];
        if win == 0 || grid % win != 0 {
            return Err(Error::Config(format!("patch grid {grid} is not a multiple of the first window size {win}")));
        }
        let bkg = src.take(&join(path, "pos_embed"), &[1, c, bh, bw])?;
        let window = src.take(&join(path, "pos_embed_window"), &[1, c, win, win])?;
        let resized = bicubic_resize(&bkg, c, (bh, bw), (grid, grid));
        let mut hwc = vec![0.0f32; grid * grid * c];
        for ch in 0..c {
            for y in 0..grid {
                for x in 0..grid {
                    let v = resized[(ch * grid + y) * grid + x] + window[(ch * win + y % win) * win + x % win];
                    hwc[(y * grid + x) * c + ch] = v;
                }
            }
        }
        host_tensor(hwc, [1, grid, grid, c], src.device())
    }

    /// `[B, 3, S, S]` → one `[B, C_i, S/4/2^i, S/4/2^i]` feature map per stage (highest resolution first).
    pub fn forward(&self, image: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = self.patch_embed.forward(image).permute([0, 2, 3, 1]);
        x = x + self.pos_embed.clone();
        let mut outputs = Vec::with_capacity(self.stage_ends.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if self.stage_ends.contains(&i) {
                outputs.push(x.clone().permute([0, 3, 1, 2]));
            }
        }
        outputs
    }
}
