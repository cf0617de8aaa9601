//! Small building blocks shared by every SAM 2 module: linear and convolution layers, layer
//! norms, Meta's `MLP`, memory-bounded scaled dot-product attention and window partitioning.

use super::params::{ParamSource, join, tensor};
use crate::error::Result;
use burn::tensor::activation::{gelu, relu, sigmoid};
use burn::tensor::module::{attention as fused_attention, conv_transpose2d, conv2d, layer_norm, linear};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions, ConvTransposeOptions};
use burn::tensor::Tensor;

/// `nn.Linear`: `y = x Wᵀ + b` over the last axis.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[d_in, d_out]` (the transpose of PyTorch's `[d_out, d_in]`).
    weight: Tensor<2>,
    /// `[d_out]`
    bias: Tensor<1>,
}

impl Linear {
    /// Loads `{path}.weight` `[d_out, d_in]` and `{path}.bias` `[d_out]`.
    pub fn load(src: &mut dyn ParamSource, path: &str, d_in: usize, d_out: usize) -> Result<Self> {
        Ok(Self::load_split(src, path, d_in, d_out, 1)?.remove(0))
    }

    /// Loads one `nn.Linear(d_in, parts·d_out)` as `parts` layers of `d_out` outputs each (e.g. a
    /// fused qkv projection as q, k and v, so no buffer holds all three at once).
    pub fn load_split(src: &mut dyn ParamSource, path: &str, d_in: usize, d_out: usize, parts: usize) -> Result<Vec<Self>> {
        let w = src.take(&join(path, "weight"), &[parts * d_out, d_in])?;
        let b = src.take(&join(path, "bias"), &[parts * d_out])?;
        let device = src.device().clone();
        (0..parts)
            .map(|p| {
                // PyTorch stores [d_out, d_in]; burn's `linear` wants [d_in, d_out].
                let mut wt = vec![0.0f32; d_in * d_out];
                for o in 0..d_out {
                    for i in 0..d_in {
                        wt[i * d_out + o] = w[(p * d_out + o) * d_in + i];
                    }
                }
                Ok(Self {
                    weight: super::params::host_tensor(wt, [d_in, d_out], &device)?,
                    bias: super::params::host_tensor(b[p * d_out..(p + 1) * d_out].to_vec(), [d_out], &device)?,
                })
            })
            .collect()
    }

    /// `[..., d_in]` → `[..., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.clone(), Some(self.bias.clone()))
    }
}

/// `nn.Conv2d` with square kernel, stride and symmetric padding.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[c_out, c_in / groups, k, k]`
    weight: Tensor<4>,
    /// `[c_out]`
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl Conv2d {
    /// Loads `{path}.weight` `[c_out, c_in/groups, k, k]` and `{path}.bias`.
    pub fn load(
        src: &mut dyn ParamSource,
        path: &str,
        [c_in, c_out]: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Result<Self> {
        Ok(Self {
            weight: tensor(src, &join(path, "weight"), [c_out, c_in / groups, kernel, kernel])?,
            bias: tensor(src, &join(path, "bias"), [c_out])?,
            stride,
            padding,
            groups,
        })
    }

    /// `[B, c_in, H, W]` → `[B, c_out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], self.groups);
        conv2d(x, self.weight.clone(), Some(self.bias.clone()), options)
    }
}

/// `nn.ConvTranspose2d(kernel_size=2, stride=2)`: doubles the spatial size.
#[derive(Debug, Clone)]
pub struct ConvTranspose2x2 {
    /// `[c_in, c_out, 2, 2]`
    weight: Tensor<4>,
    /// `[c_out]`
    bias: Tensor<1>,
}

impl ConvTranspose2x2 {
    pub fn load(src: &mut dyn ParamSource, path: &str, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Self {
            weight: tensor(src, &join(path, "weight"), [c_in, c_out, 2, 2])?,
            bias: tensor(src, &join(path, "bias"), [c_out])?,
        })
    }

    /// `[B, c_in, H, W]` → `[B, c_out, 2H, 2W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1);
        conv_transpose2d(x, self.weight.clone(), Some(self.bias.clone()), options)
    }
}

/// `nn.LayerNorm` over the last axis.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[C]`
    weight: Tensor<1>,
    /// `[C]`
    bias: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    pub fn load(src: &mut dyn ParamSource, path: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: tensor(src, &join(path, "weight"), [dim])?,
            bias: tensor(src, &join(path, "bias"), [dim])?,
            eps,
        })
    }

    /// Normalises `[..., C]` over `C` (biased variance, as PyTorch).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.clone(), Some(self.bias.clone()), self.eps)
    }

    /// Normalises `[B, C, H, W]` over `C` (Meta's `LayerNorm2d`).
    pub fn forward_channels(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }
}

/// Activation of an [`Mlp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Gelu,
}

impl Activation {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Gelu => gelu(x),
        }
    }
}

/// Meta's `MLP`: `num_layers` linear layers with an activation between them, optional sigmoid.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    sigmoid_output: bool,
}

impl Mlp {
    /// Loads `{path}.layers.{i}` for `dims = [d_in, hidden.., d_out]`.
    pub fn load(
        src: &mut dyn ParamSource,
        path: &str,
        dims: &[usize],
        activation: Activation,
        sigmoid_output: bool,
    ) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| Linear::load(src, &join(path, &format!("layers.{i}")), d[0], d[1]))
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation, sigmoid_output })
    }

    /// An MLP from layers loaded under other names (e.g. `linear1`/`linear2`, `pwconv1`/`pwconv2`).
    pub fn from_layers(layers: Vec<Linear>, activation: Activation) -> Self {
        Self { layers, activation, sigmoid_output: false }
    }

    /// `[..., d_in]` → `[..., d_out]`. Inputs whose widest hidden activation would exceed
    /// [`MAX_BUFFER_ELEMS`] values are processed in slices along axis 1 (e.g. Hiera-L's first stage
    /// at 1024 px would otherwise need a 151 MB buffer, over WebGPU's default binding limit).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.forward_within(x, MAX_BUFFER_ELEMS)
    }

    fn forward_within<const D: usize>(&self, x: Tensor<D>, budget: usize) -> Tensor<D> {
        let dims = x.dims();
        let widest = self.layers.iter().map(|l| l.weight.dims()[1]).max().unwrap_or(1);
        let rows = dims[..D - 1].iter().product::<usize>();
        if D < 3 || rows * widest <= budget || dims[1] < 2 {
            return self.forward_unchunked(x);
        }
        let per_slice = rows / dims[1];
        let step = (budget / (per_slice * widest)).max(1);
        let parts = (0..dims[1]).step_by(step).map(|s| self.forward_unchunked(x.clone().narrow(1, s, step.min(dims[1] - s)))).collect();
        Tensor::cat(parts, 1)
    }

    fn forward_unchunked<const D: usize>(&self, mut x: Tensor<D>) -> Tensor<D> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.activation.apply(x);
            }
        }
        if self.sigmoid_output { sigmoid(x) } else { x }
    }
}

/// Largest intermediate (attention scores, MLP hidden activations) materialised at once, in f32
/// elements (64 MiB): keeps every buffer well under WebGPU's default 128 MiB storage-binding limit.
pub(crate) const MAX_BUFFER_ELEMS: usize = 16 << 20;

/// Scaled dot-product attention `softmax(q kᵀ / √d) v` that never materialises more than
/// [`MAX_BUFFER_ELEMS`] scores: queries are processed in chunks when the full matrix would be larger.
///
/// `q`: `[B, H, Lq, d]`, `k`: `[B, H, Lk, d]`, `v`: `[B, H, Lk, dv]` → `[B, H, Lq, dv]`.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    attention_within(q, k, v, MAX_BUFFER_ELEMS)
}

fn attention_within(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, budget: usize) -> Tensor<4> {
    let [b, h, lq, _] = q.dims();
    let lk = k.dims()[2];
    let per_query = (b * h * lk).max(1);
    let chunk = (budget / per_query).clamp(1, lq.max(1));
    // burn's attention op: a fused (flash) kernel on the CPU backend; on wgpu without autotune
    // it materialises the scores, which the chunking above bounds.
    let attend = |q: Tensor<4>| fused_attention(q, k.clone(), v.clone(), None, None, AttentionModuleOptions::default());
    if chunk >= lq {
        return attend(q);
    }
    let parts = (0..lq).step_by(chunk).map(|s| attend(q.clone().narrow(2, s, chunk.min(lq - s)))).collect();
    Tensor::cat(parts, 2)
}

/// Splits `[B, H, W, C]` into non-overlapping `w×w` windows, zero-padding H and W up to multiples of
/// `w`. Returns `[B·nH·nW, w, w, C]` and the padded size `(Hp, Wp)`.
pub fn window_partition(x: Tensor<4>, w: usize) -> (Tensor<4>, (usize, usize)) {
    let [b, h, wd, c] = x.dims();
    let (pad_h, pad_w) = ((w - h % w) % w, (w - wd % w) % w);
    let x = if pad_h > 0 || pad_w > 0 { x.pad([(0, 0), (0, pad_h), (0, pad_w), (0, 0)], 0.0) } else { x };
    let (hp, wp) = (h + pad_h, wd + pad_w);
    let windows = x
        .reshape([b * hp / w, w, wp / w, w, c])
        .permute([0, 2, 1, 3, 4])
        .reshape([b * (hp / w) * (wp / w), w, w, c]);
    (windows, (hp, wp))
}

/// Inverse of [`window_partition`]: `[B·nH·nW, w, w, C]` → `[B, H, W, C]`, dropping the padding.
pub fn window_unpartition(windows: Tensor<4>, w: usize, (hp, wp): (usize, usize), (h, wd): (usize, usize)) -> Tensor<4> {
    let [n, _, _, c] = windows.dims();
    let b = n / (hp / w * (wp / w));
    let x = windows
        .reshape([b * (hp / w), wp / w, w, w, c])
        .permute([0, 2, 1, 3, 4])
        .reshape([b, hp, wp, c]);
    if hp > h || wp > wd { x.slice([0..b, 0..h, 0..wd, 0..c]) } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::ParamSource;
    use burn::tensor::{Device, TensorData};

    /// Deterministic pseudo-random parameters.
    struct Counter(Device, u32);

    impl ParamSource for Counter {
        fn take(&mut self, _: &str, shape: &[usize]) -> Result<Vec<f32>> {
            let n = shape.iter().product::<usize>();
            Ok((0..n).map(|_| { self.1 = self.1.wrapping_mul(1664525).wrapping_add(1013904223); (self.1 >> 8) as f32 / (1u32 << 24) as f32 - 0.5 }).collect())
        }
        fn device(&self) -> &Device {
            &self.0
        }
    }

    #[test]
    fn chunked_paths_equal_the_direct_computation() {
        let device = Device::flex();
        let mut src = Counter(device.clone(), 7);
        let data = |src: &mut Counter, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(src.take("x", &shape).unwrap(), shape), &device);
        let close = |a: Tensor<4>, b: Tensor<4>| {
            assert_eq!(a.dims(), b.dims());
            let (a, b) = (a.into_data().try_into_vec_as::<f32>().unwrap(), b.into_data().try_into_vec_as::<f32>().unwrap());
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
        };
        let mlp = Mlp::load(&mut src, "mlp", &[4, 8, 3], Activation::Gelu, false).unwrap();
        let x = data(&mut src, [1, 5, 7, 4]);
        // 2 rows of 7 tokens × 8 hidden per slice: 3 slices of axis 1.
        close(mlp.forward_within(x.clone(), 2 * 7 * 8), mlp.forward_within(x, usize::MAX));
        let (q, k, v) = (data(&mut src, [2, 2, 9, 4]), data(&mut src, [2, 2, 11, 4]), data(&mut src, [2, 2, 11, 3]));
        // 4 queries per chunk: 3 chunks, the last one short.
        close(attention_within(q.clone(), k.clone(), v.clone(), 4 * 2 * 2 * 11), attention_within(q, k, v, usize::MAX));
    }
}
