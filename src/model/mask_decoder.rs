//! Mask decoder (`sam2/modeling/sam/mask_decoder.py`): two-way transformer over the image
//! embedding and prompt tokens, upscaling with high-resolution features, hypernetwork masks,
//! IoU head, object-score head, multimask and dynamic multimask selection.

use super::common::{Activation, Conv2d, ConvTranspose2x2, LayerNorm, Linear, Mlp};
use super::params::{ParamSource, join, tensor};
use super::transformer::TwoWayTransformer;
use crate::config::Sam2Config;
use crate::error::Result;
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;

/// Multimask outputs; one more token gives the single-mask output.
const NUM_MULTIMASK: usize = 3;
const NUM_MASK_TOKENS: usize = NUM_MULTIMASK + 1;

/// Object-score head: a linear layer or a 3-layer MLP (`pred_obj_scores_mlp`).
#[derive(Debug, Clone)]
enum ObjScoreHead {
    Linear(Linear),
    Mlp(Mlp),
}

/// What the decoder returns for a batch of `B` prompts.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Low-resolution mask logits `[B, M, S/4, S/4]` (M = 3 with multimask, else 1).
    pub masks: Tensor<4>,
    /// Predicted IoU per mask `[B, M]`.
    pub iou_pred: Tensor<2>,
    /// Output mask tokens used for object pointers `[B, M', C]`.
    pub sam_tokens: Tensor<3>,
    /// Object-presence logits `[B, 1]` (10 when the model has no object-score head).
    pub object_score_logits: Tensor<2>,
}

/// `MaskDecoder` of SAM 2 (also owns `conv_s0`/`conv_s1`, which project the high-resolution
/// backbone levels in `forward_image`).
#[derive(Debug, Clone)]
pub struct MaskDecoder {
    dim: usize,
    transformer: TwoWayTransformer,
    /// `[obj_score_token,] iou_token, mask_tokens` stacked: `[T, C]`.
    output_tokens: Tensor<2>,
    pred_obj_scores: bool,
    upscale_conv1: ConvTranspose2x2,
    upscale_norm: LayerNorm,
    upscale_conv2: ConvTranspose2x2,
    /// `conv_s0` (C → C/8) and `conv_s1` (C → C/4).
    high_res_convs: Option<(Conv2d, Conv2d)>,
    hypernetworks: Vec<Mlp>,
    iou_head: Mlp,
    obj_score_head: Option<ObjScoreHead>,
    use_multimask_token_for_obj_ptr: bool,
    dynamic_multimask: Option<(f32, f32)>,
}

impl MaskDecoder {
    /// Loads `{path}.*` (`sam_mask_decoder`).
    pub fn load(src: &mut dyn ParamSource, path: &str, cfg: &Sam2Config) -> Result<Self> {
        let d = cfg.hidden_dim();
        let p = |name: &str| join(path, name);
        let mut tokens = Vec::new();
        if cfg.pred_obj_scores {
            tokens.push(tensor(src, &p("obj_score_token.weight"), [1, d])?);
        }
        tokens.push(tensor(src, &p("iou_token.weight"), [1, d])?);
        tokens.push(tensor(src, &p("mask_tokens.weight"), [NUM_MASK_TOKENS, d])?);
        let high_res_convs = if cfg.use_high_res_features_in_sam {
            Some((
                Conv2d::load(src, &p("conv_s0"), [d, d / 8], 1, 1, 0, 1)?,
                Conv2d::load(src, &p("conv_s1"), [d, d / 4], 1, 1, 0, 1)?,
            ))
        } else {
            None
        };
        let obj_score_head = match (cfg.pred_obj_scores, cfg.pred_obj_scores_mlp) {
            (false, _) => None,
            (true, false) => Some(ObjScoreHead::Linear(Linear::load(src, &p("pred_obj_score_head"), d, 1)?)),
            (true, true) => Some(ObjScoreHead::Mlp(Mlp::load(src, &p("pred_obj_score_head"), &[d, d, d, 1], Activation::Relu, false)?)),
        };
        Ok(Self {
            dim: d,
            transformer: TwoWayTransformer::load(src, &p("transformer"), 2, d, 8, 2048)?,
            output_tokens: Tensor::cat(tokens, 0),
            pred_obj_scores: cfg.pred_obj_scores,
            upscale_conv1: ConvTranspose2x2::load(src, &p("output_upscaling.0"), d, d / 4)?,
            upscale_norm: LayerNorm::load(src, &p("output_upscaling.1"), d / 4, 1e-6)?,
            upscale_conv2: ConvTranspose2x2::load(src, &p("output_upscaling.3"), d / 4, d / 8)?,
            high_res_convs,
            hypernetworks: (0..NUM_MASK_TOKENS)
                .map(|i| Mlp::load(src, &p(&format!("output_hypernetworks_mlps.{i}")), &[d, d, d, d / 8], Activation::Relu, false))
                .collect::<Result<_>>()?,
            iou_head: Mlp::load(src, &p("iou_prediction_head"), &[d, 256, 256, NUM_MASK_TOKENS], Activation::Relu, cfg.iou_prediction_use_sigmoid)?,
            obj_score_head,
            use_multimask_token_for_obj_ptr: cfg.use_multimask_token_for_obj_ptr,
            dynamic_multimask: cfg
                .dynamic_multimask_via_stability
                .then_some((cfg.dynamic_multimask_stability_delta, cfg.dynamic_multimask_stability_thresh)),
        })
    }

    /// Projects backbone levels 0 (`[B, C, S/4, S/4]`) and 1 (`[B, C, S/8, S/8]`) to the decoder's
    /// high-resolution features (`[B, C/8, ..]`, `[B, C/4, ..]`); identity without them.
    pub fn project_high_res(&self, level0: Tensor<4>, level1: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        match &self.high_res_convs {
            Some((s0, s1)) => (s0.forward(level0), s1.forward(level1)),
            None => (level0, level1),
        }
    }

    /// The two-way transformer on the output tokens followed by the prompt tokens:
    /// (`queries` `[B, T + N, C]`, `keys` `[B, h·w, C]`). Arguments as in [`Self::forward`].
    pub fn transformer_outputs(&self, image_embed: Tensor<4>, image_pe: Tensor<4>, sparse: Tensor<3>, dense: Tensor<4>) -> (Tensor<3>, Tensor<3>) {
        let [b, _, _] = sparse.dims();
        let expand = |x: Tensor<4>| expand_batch(x, b);
        let t = self.output_tokens.dims()[0];
        let tokens = Tensor::cat(vec![self.output_tokens.clone().unsqueeze::<3>().expand([b, t, self.dim]), sparse], 1);
        self.transformer.forward(expand(image_embed) + expand(dense), expand(image_pe), tokens)
    }

    /// Decodes `B` prompts against one image.
    ///
    /// `image_embed`: `[1 or B, C, h, h]`; `image_pe`: `[1, C, h, h]`; `sparse`: `[B, N, C]`;
    /// `dense`: `[1 or B, C, h, h]`; `high_res`: (`[1 or B, C/8, 4h, 4h]`, `[1 or B, C/4, 2h, 2h]`).
    pub fn forward(
        &self,
        image_embed: Tensor<4>,
        image_pe: Tensor<4>,
        sparse: Tensor<3>,
        dense: Tensor<4>,
        multimask_output: bool,
        high_res: Option<(Tensor<4>, Tensor<4>)>,
    ) -> DecoderOutput {
        let [b, _, _] = sparse.dims();
        let [_, c, h, w] = image_embed.dims();
        let expand = |x: Tensor<4>| expand_batch(x, b);
        let (hs, src) = self.transformer_outputs(image_embed, image_pe, sparse, dense);
        let s = usize::from(self.pred_obj_scores);
        let iou_token = hs.clone().narrow(1, s, 1).reshape([b, c]);
        let mask_tokens = hs.clone().narrow(1, s + 1, NUM_MASK_TOKENS);

        let src = src.swap_dims(1, 2).reshape([b, c, h, w]);
        let upscaled = match high_res {
            Some((feat_s0, feat_s1)) => {
                let x = gelu(self.upscale_norm.forward_channels(self.upscale_conv1.forward(src) + expand(feat_s1)));
                gelu(self.upscale_conv2.forward(x) + expand(feat_s0))
            }
            None => gelu(self.upscale_conv2.forward(gelu(self.upscale_norm.forward_channels(self.upscale_conv1.forward(src))))),
        };
        let hyper_in: Vec<Tensor<3>> = self
            .hypernetworks
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(mask_tokens.clone().narrow(1, i, 1)))
            .collect();
        let hyper_in = Tensor::cat(hyper_in, 1);
        let [_, uc, uh, uw] = upscaled.dims();
        let masks = hyper_in.matmul(upscaled.reshape([b, uc, uh * uw])).reshape([b, NUM_MASK_TOKENS, uh, uw]);
        let iou_pred = self.iou_head.forward(iou_token);
        let object_score_logits = match &self.obj_score_head {
            Some(head) => {
                let token = hs.narrow(1, 0, 1).reshape([b, c]);
                match head {
                    ObjScoreHead::Linear(l) => l.forward(token),
                    ObjScoreHead::Mlp(m) => m.forward(token),
                }
            }
            None => Tensor::ones([b, 1], &iou_pred.device()) * 10.0,
        };

        let (masks, iou_pred) = match (multimask_output, self.dynamic_multimask) {
            (true, _) => (masks.narrow(1, 1, NUM_MULTIMASK), iou_pred.narrow(1, 1, NUM_MULTIMASK)),
            (false, Some((delta, thresh))) => dynamic_multimask(masks, iou_pred, delta, thresh),
            (false, None) => (masks.narrow(1, 0, 1), iou_pred.narrow(1, 0, 1)),
        };
        let sam_tokens = if multimask_output && self.use_multimask_token_for_obj_ptr {
            mask_tokens.narrow(1, 1, NUM_MULTIMASK)
        } else {
            mask_tokens.narrow(1, 0, 1)
        };
        DecoderOutput { masks, iou_pred, sam_tokens, object_score_logits }
    }
}

/// Broadcasts `[1 or B, C, H, W]` to `[B, C, H, W]`.
fn expand_batch(x: Tensor<4>, b: usize) -> Tensor<4> {
    let [_, c, h, w] = x.dims();
    x.expand([b, c, h, w])
}

/// Keeps the single-mask output where it is stable (IoU of the masks thresholded at ±delta is at
/// least `thresh`), else the multimask output with the highest predicted IoU.
fn dynamic_multimask(masks: Tensor<4>, iou: Tensor<2>, delta: f32, thresh: f32) -> (Tensor<4>, Tensor<2>) {
    let [b, _, h, w] = masks.dims();
    let multi = masks.clone().narrow(1, 1, NUM_MULTIMASK);
    let multi_iou = iou.clone().narrow(1, 1, NUM_MULTIMASK);
    let best = multi_iou.clone().argmax(1);
    let best_iou = multi_iou.gather(1, best.clone());
    let best_masks = multi.gather(1, best.reshape([b, 1, 1, 1]).expand([b, 1, h, w]));
    let single = masks.narrow(1, 0, 1);
    let single_iou = iou.narrow(1, 0, 1);
    let flat = single.clone().reshape([b, h * w]);
    let area_i = flat.clone().greater_elem(delta).float().sum_dim(1);
    let area_u = flat.greater_elem(-delta).float().sum_dim(1);
    let has_union = area_u.clone().greater_elem(0.0);
    let score = Tensor::ones([b, 1], &area_u.device()).mask_where(has_union, area_i / area_u);
    let stable = score.greater_equal_elem(thresh);
    let masks = best_masks.mask_where(stable.clone().reshape([b, 1, 1, 1]).expand([b, 1, h, w]), single);
    let iou = best_iou.mask_where(stable, single_iou);
    (masks, iou)
}
