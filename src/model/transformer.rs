//! Attention and the two-way transformer of the mask decoder (`sam2/modeling/sam/transformer.py`).

use super::common::{Activation, LayerNorm, Linear, Mlp, attention};
use super::params::{ParamSource, join};
use crate::error::{Error, Result};
use burn::tensor::Tensor;

/// `Attention`: multi-head attention whose projections may shrink the embedding
/// (`internal_dim = embedding_dim / downsample_rate`) and whose keys/values may have another width.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
}

impl Attention {
    /// Loads `{path}.{q,k,v,out}_proj`.
    pub fn load(src: &mut dyn ParamSource, path: &str, dim: usize, num_heads: usize, downsample: usize, kv_in_dim: usize) -> Result<Self> {
        let internal = dim / downsample;
        if num_heads == 0 || internal % num_heads != 0 {
            return Err(Error::Config(format!("{path}: {num_heads} heads do not divide {internal}")));
        }
        Ok(Self {
            q_proj: Linear::load(src, &join(path, "q_proj"), dim, internal)?,
            k_proj: Linear::load(src, &join(path, "k_proj"), kv_in_dim, internal)?,
            v_proj: Linear::load(src, &join(path, "v_proj"), kv_in_dim, internal)?,
            out_proj: Linear::load(src, &join(path, "out_proj"), internal, dim)?,
            num_heads,
        })
    }

    /// `[B, N, C]` → `[B, heads, N, C/heads]`.
    pub fn separate_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, n, c] = x.dims();
        x.reshape([b, n, self.num_heads, c / self.num_heads]).swap_dims(1, 2)
    }

    /// `[B, heads, N, c]` → `[B, N, heads·c]` and the output projection.
    pub fn recombine_heads(&self, x: Tensor<4>) -> Tensor<3> {
        let [b, h, n, c] = x.dims();
        self.out_proj.forward(x.swap_dims(1, 2).reshape([b, n, h * c]))
    }

    /// The projected query, key and value, split into heads.
    pub fn project(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> [Tensor<4>; 3] {
        [
            self.separate_heads(self.q_proj.forward(q)),
            self.separate_heads(self.k_proj.forward(k)),
            self.separate_heads(self.v_proj.forward(v)),
        ]
    }

    /// `q`: `[B, Nq, dim]`, `k`, `v`: `[B, Nk, kv_in_dim]` → `[B, Nq, dim]`.
    pub fn forward(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [q, k, v] = self.project(q, k, v);
        self.recombine_heads(attention(q, k, v))
    }
}

/// `TwoWayAttentionBlock`: token self-attention, token→image, MLP, image→token.
#[derive(Debug, Clone)]
struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    fn forward(&self, queries: Tensor<3>, keys: Tensor<3>, query_pe: &Tensor<3>, key_pe: &Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone() + query_pe.clone();
            queries.clone() + self.self_attn.forward(q.clone(), q, queries)
        };
        let queries = self.norm1.forward(queries);

        let q = queries.clone() + query_pe.clone();
        let k = keys.clone() + key_pe.clone();
        let queries = self.norm2.forward(queries + self.cross_attn_token_to_image.forward(q, k, keys.clone()));

        let queries = self.norm3.forward(queries.clone() + self.mlp.forward(queries));

        let q = queries.clone() + query_pe.clone();
        let k = keys.clone() + key_pe.clone();
        let keys = self.norm4.forward(keys + self.cross_attn_image_to_token.forward(k, q, queries.clone()));
        (queries, keys)
    }
}

/// `TwoWayTransformer` (depth 2, 8 heads, MLP 2048, cross-attention downsample 2 in SAM 2).
#[derive(Debug, Clone)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    /// Loads `{path}.layers.*`, `{path}.final_attn_token_to_image`, `{path}.norm_final_attn`.
    pub fn load(src: &mut dyn ParamSource, path: &str, depth: usize, dim: usize, num_heads: usize, mlp_dim: usize) -> Result<Self> {
        let layers = (0..depth)
            .map(|i| {
                let p = join(path, &format!("layers.{i}"));
                Ok(TwoWayAttentionBlock {
                    self_attn: Attention::load(src, &join(&p, "self_attn"), dim, num_heads, 1, dim)?,
                    norm1: LayerNorm::load(src, &join(&p, "norm1"), dim, 1e-5)?,
                    cross_attn_token_to_image: Attention::load(src, &join(&p, "cross_attn_token_to_image"), dim, num_heads, 2, dim)?,
                    norm2: LayerNorm::load(src, &join(&p, "norm2"), dim, 1e-5)?,
                    mlp: Mlp::load(src, &join(&p, "mlp"), &[dim, mlp_dim, dim], Activation::Relu, false)?,
                    norm3: LayerNorm::load(src, &join(&p, "norm3"), dim, 1e-5)?,
                    norm4: LayerNorm::load(src, &join(&p, "norm4"), dim, 1e-5)?,
                    cross_attn_image_to_token: Attention::load(src, &join(&p, "cross_attn_image_to_token"), dim, num_heads, 2, dim)?,
                    skip_first_layer_pe: i == 0,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            final_attn_token_to_image: Attention::load(src, &join(path, "final_attn_token_to_image"), dim, num_heads, 2, dim)?,
            norm_final_attn: LayerNorm::load(src, &join(path, "norm_final_attn"), dim, 1e-5)?,
        })
    }

    /// `image`: `[B, C, h, w]`, `image_pe`: `[B, C, h, w]`, `tokens`: `[B, N, C]` →
    /// (`queries` `[B, N, C]`, `keys` `[B, h·w, C]`).
    pub fn forward(&self, image: Tensor<4>, image_pe: Tensor<4>, tokens: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let [b, c, h, w] = image.dims();
        let keys = image.reshape([b, c, h * w]).swap_dims(1, 2);
        let key_pe = image_pe.reshape([b, c, h * w]).swap_dims(1, 2);
        let (mut queries, mut keys) = (tokens.clone(), keys);
        for layer in &self.layers {
            (queries, keys) = layer.forward(queries, keys, &tokens, &key_pe);
        }
        let q = queries.clone() + tokens;
        let k = keys.clone() + key_pe;
        let queries = self.norm_final_attn.forward(queries + self.final_attn_token_to_image.forward(q, k, keys.clone()));
        (queries, keys)
    }
}
