//! Memory attention (`sam2/modeling/memory_attention.py` and `RoPEAttention` of
//! `sam2/modeling/sam/transformer.py`): the current frame's features self-attend and then
//! cross-attend to the memory bank, with rotary position encodings on both.

use super::common::{Activation, LayerNorm, Linear, MAX_BUFFER_ELEMS, Mlp, attention};
use super::params::{ParamSource, host_tensor, join};
use super::position_encoding::axial_rope;
use super::transformer::Attention;
use crate::config::{MemoryAttentionConfig, RopeAttentionConfig};
use crate::error::Result;
use burn::tensor::Tensor;

/// `RoPEAttention`: attention whose queries and (spatial) keys are rotated by their 2-D position.
#[derive(Debug, Clone)]
pub struct RopeAttention {
    attn: Attention,
    /// Cosines repeated per pair, `[N, head_dim]` (N = tokens of the square feature map).
    cos: Tensor<2>,
    /// Sines with the sign of the pair's rotation (`-sin` on even, `+sin` on odd lanes), `[N, head_dim]`.
    sin: Tensor<2>,
    rope_k_repeat: bool,
}

impl RopeAttention {
    /// Loads `{path}.{q,k,v,out}_proj` for a query map of `side × side` tokens.
    pub fn load(src: &mut dyn ParamSource, path: &str, dim: usize, cfg: &RopeAttentionConfig, side: usize) -> Result<Self> {
        let attn = Attention::load(src, path, dim, cfg.num_heads, cfg.downsample_rate, cfg.kv_in_dim)?;
        let head_dim = dim / cfg.downsample_rate / cfg.num_heads;
        let (cos, sin) = axial_rope(head_dim, side, side, cfg.rope_theta);
        let n = side * side;
        let cos: Vec<f32> = cos.iter().flat_map(|&c| [c, c]).collect();
        let sin: Vec<f32> = sin.iter().flat_map(|&s| [-s, s]).collect();
        let device = src.device();
        Ok(Self { attn, cos: host_tensor(cos, [n, head_dim], device)?, sin: host_tensor(sin, [n, head_dim], device)?, rope_k_repeat: cfg.rope_k_repeat })
    }

    /// Rotates `[B, H, r·N, d]` (the `N`-token rotation repeated `r` times along the sequence).
    fn rotate(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, len, d] = x.dims();
        let n = self.cos.dims()[0];
        let r = len / n;
        let x: Tensor<5> = x.reshape([b, h, r, n, d]);
        // (x0, x1) → (x1, x0) within each pair.
        let swapped: Tensor<5> = x.clone().reshape([b * h * r * n, d / 2, 2]).flip([2]).reshape([b, h, r, n, d]);
        let cos = self.cos.clone().reshape([1, 1, 1, n, d]).expand([b, h, r, n, d]);
        let sin = self.sin.clone().reshape([1, 1, 1, n, d]).expand([b, h, r, n, d]);
        (x * cos + swapped * sin).reshape([b, h, len, d])
    }

    /// `q`: `[B, N, dim]`; `k`, `v`: `[B, Nk, kv_in_dim]` whose last `num_k_exclude_rope` tokens
    /// (object pointers) are not rotated → `[B, N, dim]`.
    pub fn forward(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, num_k_exclude_rope: usize) -> Tensor<3> {
        let [q, k, v] = self.attn.project(q, k, v);
        let q = self.rotate(q);
        let [b, h, nk, d] = k.dims();
        let n_rope = nk - num_k_exclude_rope.min(nk);
        let nq = q.dims()[2];
        assert!(n_rope == nq || (self.rope_k_repeat && n_rope % nq == 0), "RoPE keys ({n_rope}) must repeat the {nq} query positions");
        let k = if num_k_exclude_rope == 0 {
            self.rotate(k)
        } else if n_rope == 0 {
            k
        } else {
            let rotated = self.rotate(k.clone().slice([0..b, 0..h, 0..n_rope, 0..d]));
            Tensor::cat(vec![rotated, k.slice([0..b, 0..h, n_rope..nk, 0..d])], 2)
        };
        self.attn.recombine_heads(attention(q, k, v))
    }
}

/// `MemoryAttentionLayer`: self-attention, cross-attention to the memory, feed-forward; pre-norm.
#[derive(Debug, Clone)]
struct MemoryAttentionLayer {
    self_attn: RopeAttention,
    cross_attn_image: RopeAttention,
    /// `linear1` → activation → `linear2`.
    ffn: Mlp,
    norm1: LayerNorm,
    norm2: LayerNorm,
    norm3: LayerNorm,
}

/// `MemoryAttention`: a stack of [`MemoryAttentionLayer`]s and a final `LayerNorm`.
#[derive(Debug, Clone)]
pub struct MemoryAttention {
    layers: Vec<MemoryAttentionLayer>,
    norm: LayerNorm,
    cfg: MemoryAttentionConfig,
}

impl MemoryAttention {
    /// Loads `{path}.*` (`memory_attention`) for a current-frame map of `side × side` tokens.
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &MemoryAttentionConfig, side: usize) -> Result<Self> {
        let d = cfg.d_model;
        let act = if cfg.relu { Activation::Relu } else { Activation::Gelu };
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let p = join(path, &format!("layers.{i}"));
                Ok(MemoryAttentionLayer {
                    self_attn: RopeAttention::load(src, &join(&p, "self_attn"), d, &cfg.self_attention, side)?,
                    cross_attn_image: RopeAttention::load(src, &join(&p, "cross_attn_image"), d, &cfg.cross_attention, side)?,
                    ffn: Mlp::from_layers(
                        vec![Linear::load(src, &join(&p, "linear1"), d, cfg.dim_feedforward)?, Linear::load(src, &join(&p, "linear2"), cfg.dim_feedforward, d)?],
                        act,
                    ),
                    norm1: LayerNorm::load(src, &join(&p, "norm1"), d, 1e-5)?,
                    norm2: LayerNorm::load(src, &join(&p, "norm2"), d, 1e-5)?,
                    norm3: LayerNorm::load(src, &join(&p, "norm3"), d, 1e-5)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, norm: LayerNorm::load(src, &join(path, "norm"), d, 1e-5)?, cfg: cfg.clone() })
    }

    /// Conditions the current frame on the memory.
    ///
    /// `curr`: `[B, N, C]` pixel features; `curr_pos`: `[1 or B, N, C]`; `memory`: `[B, M, mem]`
    /// (spatial memories first, then `num_obj_ptr_tokens` object-pointer tokens); `memory_pos`:
    /// `[1 or B, M, mem]` → `[B, N, C]`. Batches whose cross-attention keys would exceed the
    /// buffer budget are processed in slices of objects.
    pub fn forward(&self, curr: Tensor<3>, curr_pos: Tensor<3>, memory: Tensor<3>, memory_pos: Tensor<3>, num_obj_ptr_tokens: usize) -> Tensor<3> {
        let [b, n, c] = curr.dims();
        let [_, m, mem] = memory.dims();
        let per_object = m * c.max(mem);
        let step = (MAX_BUFFER_ELEMS / per_object.max(1)).max(1);
        let curr_pos = curr_pos.expand([b, n, c]);
        let memory_pos = memory_pos.expand([b, m, mem]);
        if step >= b {
            return self.forward_batch(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens);
        }
        let parts = (0..b)
            .step_by(step)
            .map(|s| {
                let len = step.min(b - s);
                self.forward_batch(curr.clone().narrow(0, s, len), curr_pos.clone().narrow(0, s, len), memory.clone().narrow(0, s, len), memory_pos.clone().narrow(0, s, len), num_obj_ptr_tokens)
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    fn forward_batch(&self, curr: Tensor<3>, curr_pos: Tensor<3>, memory: Tensor<3>, memory_pos: Tensor<3>, num_obj_ptr_tokens: usize) -> Tensor<3> {
        let cfg = &self.cfg;
        let mut x = if cfg.pos_enc_at_input { curr + curr_pos.clone() * 0.1 } else { curr };
        let keys = if cfg.pos_enc_at_cross_attn_keys { memory.clone() + memory_pos } else { memory.clone() };
        for layer in &self.layers {
            let t = layer.norm1.forward(x.clone());
            let qk = if cfg.pos_enc_at_attn { t.clone() + curr_pos.clone() } else { t.clone() };
            x = x + layer.self_attn.forward(qk.clone(), qk, t, 0);
            let t = layer.norm2.forward(x.clone());
            let q = if cfg.pos_enc_at_cross_attn_queries { t + curr_pos.clone() } else { t };
            x = x + layer.cross_attn_image.forward(q, keys.clone(), memory.clone(), num_obj_ptr_tokens);
            x = x.clone() + layer.ffn.forward(layer.norm3.forward(x));
        }
        self.norm.forward(x)
    }

}
