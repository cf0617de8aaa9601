//! The video path of `SAM2Base` (`sam2/modeling/sam2_base.py`): memory conditioning, the SAM
//! heads with object pointers and occlusion, mask-as-output, memory encoding, and the tensors of
//! the memory bank. Stateless: which memories a frame sees is decided by
//! `crate::predictor::video`, which owns all per-video state.

use super::common::{Activation, Conv2d, Linear, Mlp};
use super::memory_attention::MemoryAttention;
use super::memory_encoder::{EncodedMemory, MemoryEncoder};
use super::params::{ParamSource, host_tensor, tensor};
use super::position_encoding::sine_1d;
use super::sam2::Sam2;
use crate::config::Sam2Config;
use crate::error::{Error, Result};
use crate::model::prompt_encoder::label;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor};

/// Mask logit written where the object is predicted absent (`NO_OBJ_SCORE`).
pub const NO_OBJ_SCORE: f32 = -1024.0;

/// `obj_ptr_proj`: a linear layer or a 3-layer MLP (`use_mlp_for_obj_ptr_proj`).
#[derive(Debug, Clone)]
enum ObjPtrProj {
    Linear(Linear),
    Mlp(Mlp),
}

/// Weights only the video path uses.
#[derive(Debug, Clone)]
pub struct VideoModules {
    pub memory_attention: MemoryAttention,
    pub memory_encoder: MemoryEncoder,
    /// `maskmem_tpos_enc` `[num_maskmem, 1, 1, mem]` as `[num_maskmem, mem]`.
    maskmem_tpos_enc: Tensor<2>,
    /// `no_mem_pos_enc` as `[1, 1, C]`.
    no_mem_pos_enc: Tensor<3>,
    /// `no_obj_ptr` `[1, C]` (with object scores and pointers).
    no_obj_ptr: Option<Tensor<2>>,
    /// `None` is the identity (no object pointers in the encoder).
    obj_ptr_proj: Option<ObjPtrProj>,
    /// `obj_ptr_tpos_proj` (C → mem), SAM 2.1.
    obj_ptr_tpos_proj: Option<Linear>,
    /// `mask_downsample`: 4×4 stride-4 conv, 1 → 1 channel.
    mask_downsample: Option<Conv2d>,
    /// `no_obj_embed_spatial` `[1, mem]`, SAM 2.1.
    no_obj_embed_spatial: Option<Tensor<2>>,
}

impl VideoModules {
    /// Loads the video-only keys of `SAM2Base`.
    pub fn load(src: &mut dyn ParamSource, cfg: &Sam2Config) -> Result<Self> {
        let v = &cfg.video;
        let t = &v.tracking;
        let (c, mem) = (cfg.hidden_dim(), v.memory_encoder.out_dim);
        let side = cfg.embed_size();
        let obj_ptr_proj = match (t.use_obj_ptrs_in_encoder, t.use_mlp_for_obj_ptr_proj) {
            (false, _) => None,
            (true, false) => Some(ObjPtrProj::Linear(Linear::load(src, "obj_ptr_proj", c, c)?)),
            (true, true) => Some(ObjPtrProj::Mlp(Mlp::load(src, "obj_ptr_proj", &[c, c, c, c], Activation::Relu, false)?)),
        };
        Ok(Self {
            memory_attention: MemoryAttention::load(src, "memory_attention", &v.memory_attention, side)?,
            memory_encoder: MemoryEncoder::load(src, "memory_encoder", &v.memory_encoder, v.downsampler_layers(), side)?,
            maskmem_tpos_enc: tensor(src, "maskmem_tpos_enc", [t.num_maskmem, 1, 1, mem])?.reshape([t.num_maskmem, mem]),
            no_mem_pos_enc: tensor(src, "no_mem_pos_enc", [1, 1, c])?,
            no_obj_ptr: match cfg.pred_obj_scores && t.use_obj_ptrs_in_encoder {
                true => Some(tensor(src, "no_obj_ptr", [1, c])?),
                false => None,
            },
            obj_ptr_proj,
            obj_ptr_tpos_proj: match t.proj_tpos_enc_in_obj_ptrs {
                true => Some(Linear::load(src, "obj_ptr_tpos_proj", c, mem)?),
                false => None,
            },
            mask_downsample: match t.use_obj_ptrs_in_encoder {
                true => Some(Conv2d::load(src, "mask_downsample", [1, 1], 4, 4, 0, 1)?),
                false => None,
            },
            no_obj_embed_spatial: match t.no_obj_embed_spatial {
                true => Some(tensor(src, "no_obj_embed_spatial", [1, mem])?),
                false => None,
            },
        })
    }
}

/// One frame's backbone outputs as the video path uses them.
#[derive(Debug, Clone)]
pub struct FrameFeatures {
    /// Lowest-resolution level, without `no_mem_embed`: `[1, C, S/16, S/16]`.
    pub pix_feat: Tensor<4>,
    /// Its sine position encoding `[1, C, S/16, S/16]`.
    pub pos: Tensor<4>,
    /// Projected high-resolution levels `[1, C/8, S/4, S/4]`, `[1, C/4, S/8, S/8]`.
    pub high_res: Option<(Tensor<4>, Tensor<4>)>,
}

/// Output of the SAM heads for `B` objects (`_forward_sam_heads` / `_use_mask_as_output`).
#[derive(Debug, Clone)]
pub struct TrackOutput {
    /// Best low-resolution logits `[B, 1, S/4, S/4]`, `NO_OBJ_SCORE` where the object is absent.
    pub low_res_masks: Tensor<4>,
    /// The same upsampled to the model's input size: `[B, 1, S, S]`.
    pub high_res_masks: Tensor<4>,
    /// Object pointers `[B, C]`.
    pub obj_ptr: Tensor<2>,
    /// Object-presence logits `[B, 1]` (positive: visible).
    pub object_score_logits: Tensor<2>,
}

/// The memory a batch of objects attends to (`memory`, `memory_pos` of `MemoryAttention`).
#[derive(Debug, Clone)]
pub struct MemoryTokens {
    /// `[B, M, mem]`: spatial memories, then object-pointer tokens.
    pub memory: Tensor<3>,
    /// `[B, M, mem]`.
    pub pos: Tensor<3>,
    pub num_obj_ptr_tokens: usize,
}

/// Points for the SAM heads: `n` points per object in input (`S×S`) pixels.
#[derive(Debug, Clone, Copy)]
pub struct PointInputs<'a> {
    pub coords: &'a [[f32; 2]],
    pub labels: &'a [i32],
}

fn bilinear(x: Tensor<4>, size: usize) -> Tensor<4> {
    let mut options = InterpolateOptions::new(InterpolateMode::Bilinear);
    options.align_corners = false;
    options.output_size = Some([size, size]);
    interpolate(x, options)
}

/// `[B, C, h, w]` → `[B, h·w, C]`.
fn tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2)
}

impl Sam2 {
    /// The video modules, or an error for a model loaded for images only.
    pub fn video(&self) -> Result<&VideoModules> {
        self.video.as_ref().ok_or_else(|| Error::State("the model was loaded without its video modules".into()))
    }

    /// `forward_image` + `_prepare_backbone_features` for one normalised frame `[1, 3, S, S]`.
    pub fn frame_features(&self, image: Tensor<4>) -> FrameFeatures {
        let mut levels = self.image_encoder.forward(image);
        let lowest = levels.len() - 1;
        let pix_feat = levels.pop().expect("config validation keeps at least one level");
        let high_res = if self.config.use_high_res_features_in_sam {
            let level1 = levels.pop().expect("three levels with high-res features");
            let level0 = levels.pop().expect("three levels with high-res features");
            Some(self.sam_mask_decoder.project_high_res(level0, level1))
        } else {
            None
        };
        FrameFeatures { pix_feat, pos: self.image_encoder.neck.pos(lowest, 1), high_res }
    }

    /// Low-resolution logits `[B, 1, S/4, S/4]` upsampled to the input size `[B, 1, S, S]`
    /// (bilinear, `align_corners=False`).
    pub fn upsample_to_input(&self, low_res: Tensor<4>) -> Tensor<4> {
        bilinear(low_res, self.config.image_size)
    }

    /// `_prepare_memory_conditioned_features` for `batch` objects: `pix_feat` plus `no_mem_embed`
    /// on an initial conditioning frame (`memory` `None`), else memory attention → `[B, C, h, w]`.
    pub fn condition_on_memory(&self, frame: &FrameFeatures, batch: usize, memory: Option<MemoryTokens>) -> Result<Tensor<4>> {
        let video = self.video()?;
        let [_, c, h, w] = frame.pix_feat.dims();
        let pix = frame.pix_feat.clone().expand([batch, c, h, w]);
        if self.config.video.tracking.num_maskmem == 0 {
            return Ok(pix);
        }
        let memory = match memory {
            Some(m) => m,
            None if self.config.directly_add_no_mem_embed => return Ok(pix + self.no_mem_embed.clone()),
            None => {
                let mem = self.config.video.memory_encoder.out_dim;
                MemoryTokens {
                    memory: self.no_mem_embed.clone().reshape([1, 1, mem]).expand([batch, 1, mem]),
                    pos: video.no_mem_pos_enc.clone().reshape([1, 1, mem]).expand([batch, 1, mem]),
                    num_obj_ptr_tokens: 0,
                }
            }
        };
        let out = video.memory_attention.forward(tokens(pix), tokens(frame.pos.clone()), memory.memory, memory.pos, memory.num_obj_ptr_tokens);
        Ok(out.swap_dims(1, 2).reshape([batch, c, h, w]))
    }

    /// `_forward_sam_heads` for `B` objects on memory-conditioned features `[B, C, h, w]`.
    ///
    /// `points`: `n` points per object (none: one padding point each); `mask_inputs`: logits
    /// `[B, 1, S/4, S/4]` (e.g. the previous prediction for a correction click).
    pub fn sam_heads(&self, pix_feat: Tensor<4>, high_res: Option<(Tensor<4>, Tensor<4>)>, points: Option<PointInputs>, mask_inputs: Option<Tensor<4>>, multimask_output: bool) -> Result<TrackOutput> {
        let [b, _, _, _] = pix_feat.dims();
        let device = pix_feat.device();
        let pad: (Vec<[f32; 2]>, Vec<i32>) = (vec![[0.0, 0.0]; b], vec![label::PAD; b]);
        let (coords, labels) = match points {
            Some(p) => (p.coords, p.labels),
            None => (&pad.0[..], &pad.1[..]),
        };
        let sparse = self.sam_prompt_encoder.embed_points(coords, labels, b, &device)?;
        let dense = self.sam_prompt_encoder.embed_dense(mask_inputs, b);
        let out = self.sam_mask_decoder.forward(pix_feat, self.sam_prompt_encoder.dense_pe(), sparse, dense, multimask_output, high_res);
        let [_, m, lh, lw] = out.masks.dims();
        let mut masks = out.masks;
        let appearing = out.object_score_logits.clone().greater_elem(0.0);
        if self.config.pred_obj_scores {
            let absent = appearing.clone().bool_not().reshape([b, 1, 1, 1]).expand([b, m, lh, lw]);
            masks = masks.mask_fill(absent, NO_OBJ_SCORE);
        }
        let (low_res_masks, token) = if multimask_output {
            let best: Tensor<2, Int> = out.iou_pred.argmax(1);
            let low = masks.gather(1, best.clone().reshape([b, 1, 1, 1]).expand([b, 1, lh, lw]));
            let [_, t, c] = out.sam_tokens.dims();
            let token = if t > 1 { out.sam_tokens.gather(1, best.reshape([b, 1, 1]).expand([b, 1, c])) } else { out.sam_tokens };
            (low, token)
        } else {
            (masks, out.sam_tokens.narrow(1, 0, 1))
        };
        let [_, _, c] = token.dims();
        let token = token.reshape([b, c]);
        let video = self.video()?;
        let obj_ptr = match &video.obj_ptr_proj {
            Some(ObjPtrProj::Linear(l)) => l.forward(token),
            Some(ObjPtrProj::Mlp(mlp)) => mlp.forward(token),
            None => token,
        };
        let lambda = if self.config.video.tracking.soft_no_obj_ptr { sigmoid(out.object_score_logits.clone()) } else { appearing.float() };
        let obj_ptr = self.mix_no_obj_ptr(obj_ptr, lambda);
        let high_res_masks = bilinear(low_res_masks.clone(), self.config.image_size);
        Ok(TrackOutput { low_res_masks, high_res_masks, obj_ptr, object_score_logits: out.object_score_logits })
    }

    /// `fixed_no_obj_ptr` and `no_obj_ptr`: pointers of absent objects (`lambda` 0) become
    /// `no_obj_ptr`. `lambda`: `[B, 1]`.
    fn mix_no_obj_ptr(&self, obj_ptr: Tensor<2>, lambda: Tensor<2>) -> Tensor<2> {
        let t = &self.config.video.tracking;
        let no_obj_ptr = self.video.as_ref().and_then(|v| v.no_obj_ptr.clone());
        match (self.config.pred_obj_scores, no_obj_ptr) {
            (true, Some(no_obj)) => {
                let [b, c] = obj_ptr.dims();
                let lambda = lambda.expand([b, c]);
                let obj_ptr = if t.fixed_no_obj_ptr { obj_ptr * lambda.clone() } else { obj_ptr };
                obj_ptr + (lambda.neg() + 1.0) * no_obj.expand([b, c])
            }
            _ => obj_ptr,
        }
    }

    /// `_use_mask_as_output`: a binary mask prompt becomes the output (logits ±10) without the
    /// mask decoder; the object pointer still comes from the SAM heads on the raw features.
    ///
    /// `high_res_masks`: the binary masks as logits `20·m − 10`, `[B, 1, S, S]`; `low_res_masks`:
    /// their antialiased 4× downsampling `[B, 1, S/4, S/4]` (computed on the host, like the masks);
    /// `appearing`: whether each mask has any foreground.
    pub fn mask_as_output(&self, frame: &FrameFeatures, high_res_masks: Tensor<4>, low_res_masks: Tensor<4>, appearing: &[bool]) -> Result<TrackOutput> {
        let video = self.video()?;
        let [b, _, _, _] = high_res_masks.dims();
        let device = high_res_masks.device();
        let c = self.config.hidden_dim();
        let lambda: Vec<f32> = appearing.iter().map(|&a| f32::from(u8::from(a))).collect();
        let lambda = host_tensor(lambda, [b, 1], &device)?;
        let obj_ptr = match &video.mask_downsample {
            Some(conv) => {
                // The binary mask is (logits + 10) / 20.
                let mask = (high_res_masks.clone() + 10.0) / 20.0;
                let [_, ch, h, w] = frame.pix_feat.dims();
                let pix = frame.pix_feat.clone().expand([b, ch, h, w]);
                self.sam_heads(pix, frame.high_res.clone(), None, Some(conv.forward(mask)), false)?.obj_ptr
            }
            None => Tensor::zeros([b, c], &device),
        };
        let object_score_logits = lambda.clone() * 20.0 - 10.0;
        let obj_ptr = self.mix_no_obj_ptr(obj_ptr, lambda);
        Ok(TrackOutput { low_res_masks, high_res_masks, obj_ptr, object_score_logits })
    }

    /// `_encode_new_memory` for `B` objects: masks `[B, 1, S, S]` (logits) are binarised (prompted
    /// frames, `binarize_mask_from_pts_for_mem_enc`) or passed through the sigmoid, scaled and
    /// encoded with the frame's raw features; absent objects get `no_obj_embed_spatial`.
    ///
    /// Meta's video predictor calls this one object at a time, so `non_overlap_masks_for_mem_enc`
    /// never has an effect there; it has none here either.
    pub fn encode_memory(&self, frame: &FrameFeatures, high_res_masks: Tensor<4>, object_score_logits: Tensor<2>, is_mask_from_pts: bool) -> Result<EncodedMemory> {
        let video = self.video()?;
        let t = &self.config.video.tracking;
        let mut mask = if t.binarize_mask_from_pts_for_mem_enc && is_mask_from_pts { high_res_masks.greater_elem(0.0).float() } else { sigmoid(high_res_masks) };
        if t.sigmoid_scale_for_mem_enc != 1.0 {
            mask = mask * t.sigmoid_scale_for_mem_enc;
        }
        if t.sigmoid_bias_for_mem_enc != 0.0 {
            mask = mask + t.sigmoid_bias_for_mem_enc;
        }
        let mut encoded = video.memory_encoder.forward(frame.pix_feat.clone(), mask);
        if let Some(no_obj) = &video.no_obj_embed_spatial {
            let [b, mem, h, w] = encoded.features.dims();
            let absent = object_score_logits.lower_equal_elem(0.0).float().reshape([b, 1, 1, 1]);
            encoded.features = encoded.features + absent * no_obj.clone().reshape([1, mem, 1, 1]).expand([b, mem, h, w]);
        }
        Ok(encoded)
    }

    /// Memory tokens from stored memories and object pointers, as `_prepare_memory_conditioned_features` assembles them.
    ///
    /// `frames`: per memory frame its features `[B, mem, h, w]` (bf16-rounded as stored) and its
    /// temporal slot `t_pos` (0 for conditioning frames, else `1..num_maskmem`); `maskmem_pos`:
    /// `[1, mem, h, w]`; `ptrs`: per pointer its (signed) temporal distance and `[B, C]`;
    /// `t_diff_max`: the distance that maps to 1 in the pointers' sine encoding.
    pub fn memory_tokens(&self, frames: Vec<(Tensor<4>, usize)>, maskmem_pos: &Tensor<4>, ptrs: Vec<(i64, Tensor<2>)>, t_diff_max: usize) -> Result<MemoryTokens> {
        let video = self.video()?;
        let t = &self.config.video.tracking;
        let (c, mem) = (self.config.hidden_dim(), self.config.video.memory_encoder.out_dim);
        let b = frames.first().map(|(f, _)| f.dims()[0]).or_else(|| ptrs.first().map(|(_, p)| p.dims()[0])).unwrap_or(1);
        let device = maskmem_pos.device();
        let base_pos = tokens(maskmem_pos.clone());
        let mut memory = Vec::new();
        let mut pos = Vec::new();
        for (features, t_pos) in frames {
            let n = base_pos.dims()[1];
            let tpos = video.maskmem_tpos_enc.clone().narrow(0, t.num_maskmem - t_pos - 1, 1).reshape([1, 1, mem]);
            memory.push(tokens(features));
            pos.push((base_pos.clone() + tpos).expand([b, n, mem]));
        }
        let mut num_obj_ptr_tokens = 0;
        if !ptrs.is_empty() {
            let split = c / mem;
            let p = ptrs.len();
            let obj_pos = if t.add_tpos_enc_to_obj_ptrs {
                let dim = if t.proj_tpos_enc_in_obj_ptrs { c } else { mem };
                let rel: Vec<f32> = ptrs.iter().map(|(d, _)| *d as f32 / t_diff_max as f32).collect();
                let enc = host_tensor(sine_1d(&rel, dim), [p, dim], &device)?;
                match &video.obj_ptr_tpos_proj {
                    Some(proj) => proj.forward(enc),
                    None => enc,
                }
            } else {
                Tensor::zeros([p, mem], &device)
            };
            // Each C-wide pointer becomes C/mem tokens of width mem, sharing its position.
            let ptr_tokens: Vec<Tensor<3>> = ptrs.into_iter().map(|(_, ptr)| ptr.reshape([b, split, mem])).collect();
            memory.push(Tensor::cat(ptr_tokens, 1));
            let obj_pos: Tensor<3> = obj_pos.reshape([1, p, 1, mem]).expand([1, p, split, mem]).reshape([1, p * split, mem]);
            pos.push(obj_pos.expand([b, p * split, mem]));
            num_obj_ptr_tokens = p * split;
        }
        if memory.is_empty() {
            return Err(Error::State("internal: a non-initial frame with an empty memory".into()));
        }
        Ok(MemoryTokens { memory: Tensor::cat(memory, 1), pos: Tensor::cat(pos, 1), num_obj_ptr_tokens })
    }
}
