//! The video half of the model configuration: memory attention, memory encoder and the tracking
//! flags of `SAM2Base` / `SAM2VideoPredictor`.
//!
//! All eight official configs share these values (only the 2.1 object-pointer flags differ from
//! 2.0); reduced test configs change the sizes. Defaults are Meta's constructor defaults, except
//! where `build_sam2_video_predictor` overrides them (`binarize_mask_from_pts_for_mem_enc`,
//! `fill_hole_area`), which are the values every user of Meta's video predictor gets.

use super::{bad, f64_or, opt, path, usize_or, Sam2Version};
use crate::error::{Error, Result};
use serde_yaml::Value;

/// One `RoPEAttention` of a memory-attention layer.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeAttentionConfig {
    pub num_heads: usize,
    pub downsample_rate: usize,
    pub rope_theta: f64,
    /// Repeat the query's rotation over the keys (cross-attention to several memory frames).
    pub rope_k_repeat: bool,
    /// Channels of keys and values (`kv_in_dim`; the memory dim for cross-attention).
    pub kv_in_dim: usize,
}

/// `MemoryAttention` with its `MemoryAttentionLayer`s.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryAttentionConfig {
    pub d_model: usize,
    pub num_layers: usize,
    pub dim_feedforward: usize,
    /// `true` for ReLU (all official configs), `false` for GELU.
    pub relu: bool,
    pub pos_enc_at_input: bool,
    pub pos_enc_at_attn: bool,
    pub pos_enc_at_cross_attn_keys: bool,
    pub pos_enc_at_cross_attn_queries: bool,
    pub self_attention: RopeAttentionConfig,
    pub cross_attention: RopeAttentionConfig,
}

/// `MemoryEncoder`: mask downsampler, CXBlock fuser, output projection, sine position encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEncoderConfig {
    /// Channels of the pixel features it reads (the model's hidden dim).
    pub in_dim: usize,
    /// Memory channels (`mem_dim`); a projection is applied when it differs from `in_dim`.
    pub out_dim: usize,
    pub downsampler_kernel: usize,
    pub downsampler_stride: usize,
    pub downsampler_padding: usize,
    pub downsampler_total_stride: usize,
    /// Output channels of the mask downsampler (`embed_dim`, equal to `in_dim`).
    pub downsampler_embed_dim: usize,
    pub fuser_num_layers: usize,
    pub fuser_kernel: usize,
    pub fuser_padding: usize,
    /// CXBlocks carry a `gamma` layer scale when its init value is positive.
    pub fuser_layer_scale: bool,
    pub fuser_dwconv: bool,
    pub fuser_input_projection: bool,
    pub pos_num_feats: usize,
    pub pos_temperature: f64,
    pub pos_normalize: bool,
    pub pos_scale: Option<f64>,
}

/// Tracking flags of `SAM2Base` and `SAM2VideoPredictor`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingConfig {
    /// Memory frames attended to: the conditioning frames plus `num_maskmem - 1` recent ones.
    pub num_maskmem: usize,
    pub sigmoid_scale_for_mem_enc: f32,
    pub sigmoid_bias_for_mem_enc: f32,
    pub binarize_mask_from_pts_for_mem_enc: bool,
    pub use_mask_input_as_output_without_sam: bool,
    /// `None` for no limit (`-1`).
    pub max_cond_frames_in_attn: Option<usize>,
    pub multimask_output_in_sam: bool,
    pub multimask_min_pt_num: usize,
    pub multimask_max_pt_num: usize,
    pub multimask_output_for_tracking: bool,
    pub memory_temporal_stride_for_eval: usize,
    pub non_overlap_masks_for_mem_enc: bool,
    pub use_obj_ptrs_in_encoder: bool,
    pub max_obj_ptrs_in_encoder: usize,
    pub add_tpos_enc_to_obj_ptrs: bool,
    pub proj_tpos_enc_in_obj_ptrs: bool,
    pub use_signed_tpos_enc_to_obj_ptrs: bool,
    pub only_obj_ptrs_in_the_past_for_eval: bool,
    pub fixed_no_obj_ptr: bool,
    pub soft_no_obj_ptr: bool,
    pub use_mlp_for_obj_ptr_proj: bool,
    pub no_obj_embed_spatial: bool,
    /// Holes in the low-res masks up to this area are filled (`SAM2VideoPredictor`, 8).
    pub fill_hole_area: usize,
    pub non_overlap_masks: bool,
    pub clear_non_cond_mem_around_input: bool,
    pub add_all_frames_to_correct_as_cond: bool,
}

/// Everything the video path needs beyond the image path.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    pub memory_attention: MemoryAttentionConfig,
    pub memory_encoder: MemoryEncoderConfig,
    pub tracking: TrackingConfig,
}

impl VideoConfig {
    /// The values every official config uses (`d_model` 256, memory dim 64, 4 layers).
    pub fn official(version: Sam2Version) -> Self {
        let v21 = version == Sam2Version::V2_1;
        let rope = |kv_in_dim, rope_k_repeat| RopeAttentionConfig { num_heads: 1, downsample_rate: 1, rope_theta: 10000.0, rope_k_repeat, kv_in_dim };
        Self {
            memory_attention: MemoryAttentionConfig {
                d_model: 256,
                num_layers: 4,
                dim_feedforward: 2048,
                relu: true,
                pos_enc_at_input: true,
                pos_enc_at_attn: false,
                pos_enc_at_cross_attn_keys: true,
                pos_enc_at_cross_attn_queries: false,
                self_attention: rope(256, false),
                cross_attention: rope(64, true),
            },
            memory_encoder: MemoryEncoderConfig {
                in_dim: 256,
                out_dim: 64,
                downsampler_kernel: 3,
                downsampler_stride: 2,
                downsampler_padding: 1,
                downsampler_total_stride: 16,
                downsampler_embed_dim: 256,
                fuser_num_layers: 2,
                fuser_kernel: 7,
                fuser_padding: 3,
                fuser_layer_scale: true,
                fuser_dwconv: true,
                fuser_input_projection: false,
                pos_num_feats: 64,
                pos_temperature: 10000.0,
                pos_normalize: true,
                pos_scale: None,
            },
            tracking: TrackingConfig {
                num_maskmem: 7,
                sigmoid_scale_for_mem_enc: 20.0,
                sigmoid_bias_for_mem_enc: -10.0,
                binarize_mask_from_pts_for_mem_enc: true,
                use_mask_input_as_output_without_sam: true,
                max_cond_frames_in_attn: None,
                multimask_output_in_sam: true,
                multimask_min_pt_num: 0,
                multimask_max_pt_num: 1,
                multimask_output_for_tracking: true,
                memory_temporal_stride_for_eval: 1,
                non_overlap_masks_for_mem_enc: false,
                use_obj_ptrs_in_encoder: true,
                max_obj_ptrs_in_encoder: 16,
                add_tpos_enc_to_obj_ptrs: v21,
                proj_tpos_enc_in_obj_ptrs: v21,
                use_signed_tpos_enc_to_obj_ptrs: v21,
                only_obj_ptrs_in_the_past_for_eval: true,
                fixed_no_obj_ptr: true,
                soft_no_obj_ptr: false,
                use_mlp_for_obj_ptr_proj: true,
                no_obj_embed_spatial: v21,
                fill_hole_area: 8,
                non_overlap_masks: false,
                clear_non_cond_mem_around_input: false,
                add_all_frames_to_correct_as_cond: false,
            },
        }
    }

    /// Reads the `memory_attention`, `memory_encoder` and top-level tracking keys of a model
    /// section; keys absent from the file take Meta's constructor defaults.
    pub fn from_yaml(model: &Value) -> Result<Self> {
        let b = |v: &Value, k: &str, d: bool| -> Result<bool> { opt(v, k).map_or(Ok(d), |x| x.as_bool().ok_or_else(|| bad(k, "a boolean"))) };
        let ma = path(model, &["memory_attention"])?;
        let layer = path(ma, &["layer"])?;
        let rope = |v: &Value, kv_default: usize| -> Result<RopeAttentionConfig> {
            let dim = usize_or(v, "embedding_dim", kv_default)?;
            Ok(RopeAttentionConfig {
                num_heads: usize_or(v, "num_heads", 1)?,
                downsample_rate: usize_or(v, "downsample_rate", 1)?,
                rope_theta: f64_or(v, "rope_theta", 10000.0)?,
                rope_k_repeat: b(v, "rope_k_repeat", false)?,
                kv_in_dim: match opt(v, "kv_in_dim") {
                    Some(Value::Null) | None => dim,
                    Some(_) => usize_or(v, "kv_in_dim", dim)?,
                },
            })
        };
        let d_model = usize_or(ma, "d_model", 256)?;
        let relu = match opt(layer, "activation").and_then(Value::as_str).unwrap_or("relu") {
            "relu" => true,
            "gelu" => false,
            other => return Err(Error::Config(format!("unsupported memory-attention activation {other:?}"))),
        };
        let memory_attention = MemoryAttentionConfig {
            d_model,
            num_layers: usize_or(ma, "num_layers", 4)?,
            dim_feedforward: usize_or(layer, "dim_feedforward", 2048)?,
            relu,
            pos_enc_at_input: b(ma, "pos_enc_at_input", true)?,
            pos_enc_at_attn: b(layer, "pos_enc_at_attn", false)?,
            pos_enc_at_cross_attn_keys: b(layer, "pos_enc_at_cross_attn_keys", true)?,
            pos_enc_at_cross_attn_queries: b(layer, "pos_enc_at_cross_attn_queries", false)?,
            self_attention: rope(path(layer, &["self_attention"])?, d_model)?,
            cross_attention: rope(path(layer, &["cross_attention"])?, d_model)?,
        };
        let me = path(model, &["memory_encoder"])?;
        let pos = path(me, &["position_encoding"])?;
        let ds = path(me, &["mask_downsampler"])?;
        let fuser = path(me, &["fuser"])?;
        let cx = path(fuser, &["layer"])?;
        let in_dim = usize_or(me, "in_dim", 256)?;
        let memory_encoder = MemoryEncoderConfig {
            in_dim,
            out_dim: usize_or(me, "out_dim", in_dim)?,
            downsampler_kernel: usize_or(ds, "kernel_size", 4)?,
            downsampler_stride: usize_or(ds, "stride", 4)?,
            downsampler_padding: usize_or(ds, "padding", 0)?,
            downsampler_total_stride: usize_or(ds, "total_stride", 16)?,
            downsampler_embed_dim: usize_or(ds, "embed_dim", 256)?,
            fuser_num_layers: usize_or(fuser, "num_layers", 2)?,
            fuser_kernel: usize_or(cx, "kernel_size", 7)?,
            fuser_padding: usize_or(cx, "padding", 3)?,
            fuser_layer_scale: f64_or(cx, "layer_scale_init_value", 1e-6)? > 0.0,
            fuser_dwconv: b(cx, "use_dwconv", true)?,
            fuser_input_projection: b(fuser, "input_projection", false)?,
            pos_num_feats: usize_or(pos, "num_pos_feats", 64)?,
            pos_temperature: f64_or(pos, "temperature", 10000.0)?,
            pos_normalize: b(pos, "normalize", true)?,
            pos_scale: match opt(pos, "scale") {
                Some(Value::Null) | None => None,
                Some(_) => Some(f64_or(pos, "scale", 0.0)?),
            },
        };
        let max_cond = match opt(model, "max_cond_frames_in_attn") {
            None => None,
            Some(x) => match x.as_i64() {
                Some(-1) => None,
                Some(n) if n >= 0 => Some(n as usize),
                _ => return Err(bad("max_cond_frames_in_attn", "-1 or a non-negative integer")),
            },
        };
        let add_tpos = b(model, "add_tpos_enc_to_obj_ptrs", true)?;
        let tracking = TrackingConfig {
            num_maskmem: usize_or(model, "num_maskmem", 7)?,
            sigmoid_scale_for_mem_enc: f64_or(model, "sigmoid_scale_for_mem_enc", 1.0)? as f32,
            sigmoid_bias_for_mem_enc: f64_or(model, "sigmoid_bias_for_mem_enc", 0.0)? as f32,
            binarize_mask_from_pts_for_mem_enc: b(model, "binarize_mask_from_pts_for_mem_enc", true)?,
            use_mask_input_as_output_without_sam: b(model, "use_mask_input_as_output_without_sam", false)?,
            max_cond_frames_in_attn: max_cond,
            multimask_output_in_sam: b(model, "multimask_output_in_sam", false)?,
            multimask_min_pt_num: usize_or(model, "multimask_min_pt_num", 1)?,
            multimask_max_pt_num: usize_or(model, "multimask_max_pt_num", 1)?,
            multimask_output_for_tracking: b(model, "multimask_output_for_tracking", false)?,
            memory_temporal_stride_for_eval: usize_or(model, "memory_temporal_stride_for_eval", 1)?,
            non_overlap_masks_for_mem_enc: b(model, "non_overlap_masks_for_mem_enc", false)?,
            use_obj_ptrs_in_encoder: b(model, "use_obj_ptrs_in_encoder", false)?,
            max_obj_ptrs_in_encoder: usize_or(model, "max_obj_ptrs_in_encoder", 16)?,
            add_tpos_enc_to_obj_ptrs: add_tpos,
            proj_tpos_enc_in_obj_ptrs: b(model, "proj_tpos_enc_in_obj_ptrs", false)?,
            use_signed_tpos_enc_to_obj_ptrs: b(model, "use_signed_tpos_enc_to_obj_ptrs", false)?,
            only_obj_ptrs_in_the_past_for_eval: b(model, "only_obj_ptrs_in_the_past_for_eval", false)?,
            fixed_no_obj_ptr: b(model, "fixed_no_obj_ptr", false)?,
            soft_no_obj_ptr: b(model, "soft_no_obj_ptr", false)?,
            use_mlp_for_obj_ptr_proj: b(model, "use_mlp_for_obj_ptr_proj", false)?,
            no_obj_embed_spatial: b(model, "no_obj_embed_spatial", false)?,
            fill_hole_area: usize_or(model, "fill_hole_area", 8)?,
            non_overlap_masks: b(model, "non_overlap_masks", false)?,
            clear_non_cond_mem_around_input: b(model, "clear_non_cond_mem_around_input", false)?,
            add_all_frames_to_correct_as_cond: b(model, "add_all_frames_to_correct_as_cond", false)?,
        };
        Ok(Self { memory_attention, memory_encoder, tracking })
    }

    /// Checks the video modules fit the image side (`hidden_dim`) and each other.
    pub fn validate(&self, hidden_dim: usize) -> Result<()> {
        let fail = |m: String| Err(Error::Config(m));
        let (ma, me, t) = (&self.memory_attention, &self.memory_encoder, &self.tracking);
        if ma.d_model != hidden_dim || me.in_dim != hidden_dim || me.downsampler_embed_dim != hidden_dim {
            return fail(format!(
                "memory attention d_model {}, memory encoder in_dim {} and mask downsampler embed_dim {} must equal the hidden dim {hidden_dim}",
                ma.d_model, me.in_dim, me.downsampler_embed_dim
            ));
        }
        let mem = me.out_dim;
        if mem == 0 || hidden_dim % mem != 0 || ma.cross_attention.kv_in_dim != mem || me.pos_num_feats != mem {
            return fail(format!(
                "memory dim {mem} must divide the hidden dim {hidden_dim} and equal the cross-attention kv_in_dim {} and the memory position encoding's num_pos_feats {}",
                ma.cross_attention.kv_in_dim, me.pos_num_feats
            ));
        }
        for (name, a) in [("self", &ma.self_attention), ("cross", &ma.cross_attention)] {
            let inner = hidden_dim / a.downsample_rate.max(1);
            if a.num_heads == 0 || a.downsample_rate == 0 || inner % a.num_heads != 0 || (inner / a.num_heads) % 4 != 0 {
                return fail(format!("{name}-attention: {} heads over {inner} channels need a head dim that is a multiple of 4 (RoPE)", a.num_heads));
            }
        }
        let (k, s) = (me.downsampler_stride, me.downsampler_total_stride);
        if k < 2 || s != 16 || (0..5).all(|n| k.pow(n) != s) {
            return fail(format!("mask downsampler stride {k} must reach a total stride of 16 (the image embedding's)"));
        }
        if t.num_maskmem == 0 || t.memory_temporal_stride_for_eval == 0 || t.max_obj_ptrs_in_encoder == 0 {
            return fail("num_maskmem, memory_temporal_stride_for_eval and max_obj_ptrs_in_encoder must be positive".into());
        }
        if t.max_cond_frames_in_attn.is_some_and(|n| n < 2) {
            return fail("max_cond_frames_in_attn must be -1 or at least 2".into());
        }
        if t.proj_tpos_enc_in_obj_ptrs && !t.add_tpos_enc_to_obj_ptrs {
            return fail("proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs".into());
        }
        if t.fixed_no_obj_ptr && !t.use_obj_ptrs_in_encoder {
            return fail("fixed_no_obj_ptr needs use_obj_ptrs_in_encoder".into());
        }
        Ok(())
    }

    /// Number of mask-downsampler convolutions (`log_stride(total_stride)`).
    pub fn downsampler_layers(&self) -> usize {
        let me = &self.memory_encoder;
        (0..8).find(|&n| me.downsampler_stride.pow(n as u32) == me.downsampler_total_stride).unwrap_or(0)
    }
}
