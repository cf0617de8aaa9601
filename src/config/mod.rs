//! Model configuration: presets for the eight official checkpoints and a reader for the model
//! section of Meta's Hydra YAML configs (so any size of the architecture can be built).
//!
//! Defaults follow Meta's constructors (`SAM2Base`, `Hiera`, `FpnNeck`, `PositionEmbeddingSine`);
//! values Meta hard-codes outside the YAML (two-way transformer depth 2, 8 heads, MLP 2048, IoU head
//! 256×3, prompt-encoder mask channels 16) are constants of the modules that use them.

pub mod video;

use crate::error::{Error, Result};
use serde_yaml::Value;
pub use video::{MemoryAttentionConfig, MemoryEncoderConfig, RopeAttentionConfig, TrackingConfig, VideoConfig};

/// SAM 2 release: 2.1 adds `no_obj_embed_spatial` and the object-pointer temporal projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sam2Version {
    /// SAM 2 (July 2024).
    V2_0,
    /// SAM 2.1 (September 2024).
    V2_1,
}

/// The four official model sizes, or anything else built from a YAML config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelSize {
    Tiny,
    Small,
    BasePlus,
    Large,
    Custom,
}

/// Hiera trunk (`image_encoder.trunk`).
#[derive(Debug, Clone, PartialEq)]
pub struct HieraConfig {
    /// Channels of the first stage.
    pub embed_dim: usize,
    /// Heads of the first stage; multiplied by `head_mul` at each stage change.
    pub num_heads: usize,
    /// Blocks per stage (4 stages).
    pub stages: Vec<usize>,
    /// Indices of blocks with global (unwindowed) attention.
    pub global_att_blocks: Vec<usize>,
    /// Window size per stage (0 would mean global).
    pub window_spec: Vec<usize>,
    /// Spatial size `[h, w]` of the background positional embedding.
    pub window_pos_embed_bkg_spatial_size: [usize; 2],
    /// Number of stage transitions that pool queries.
    pub q_pool: usize,
    /// Pooling stride at a stage transition.
    pub q_stride: [usize; 2],
    /// Channel multiplier at a stage transition.
    pub dim_mul: f64,
    /// Head multiplier at a stage transition.
    pub head_mul: f64,
}

/// How the FPN neck upsamples top-down features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpnInterp {
    Nearest,
    Bilinear,
}

/// FPN neck (`image_encoder.neck`) with its sine position encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct NeckConfig {
    /// Output channels of every level (the model's hidden dim).
    pub d_model: usize,
    /// Trunk channels from the deepest stage to the shallowest.
    pub backbone_channel_list: Vec<usize>,
    /// Levels that receive top-down features.
    pub fpn_top_down_levels: Vec<usize>,
    pub fpn_interp_model: FpnInterp,
    /// `true` for `fuse_type: avg` (sum halved), `false` for `sum`.
    pub fuse_avg: bool,
    /// `num_pos_feats` of `PositionEmbeddingSine` (total channels of the encoding).
    pub pos_num_feats: usize,
    pub pos_temperature: f64,
    pub pos_normalize: bool,
    /// `None` means 2π.
    pub pos_scale: Option<f64>,
}

/// The model: everything the image path needs plus the flags that pick code paths.
#[derive(Debug, Clone, PartialEq)]
pub struct Sam2Config {
    pub version: Sam2Version,
    pub size: ModelSize,
    pub trunk: HieraConfig,
    pub neck: NeckConfig,
    /// Neck levels dropped from the low-resolution end.
    pub scalp: usize,
    /// Square input resolution S (multiple of 32).
    pub image_size: usize,
    /// Stride of the image embedding (16).
    pub backbone_stride: usize,
    pub use_high_res_features_in_sam: bool,
    pub iou_prediction_use_sigmoid: bool,
    pub pred_obj_scores: bool,
    pub pred_obj_scores_mlp: bool,
    pub use_multimask_token_for_obj_ptr: bool,
    pub directly_add_no_mem_embed: bool,
    /// Falls back to the best multimask output when the single mask is unstable
    /// (`build_sam2(..., apply_postprocessing=True)`, the default).
    pub dynamic_multimask_via_stability: bool,
    pub dynamic_multimask_stability_delta: f32,
    pub dynamic_multimask_stability_thresh: f32,
    /// Memory attention, memory encoder and tracking flags (the video path).
    pub video: VideoConfig,
}

impl Sam2Config {
    /// The official configuration of `version` × `size` (`Custom` is rejected).
    pub fn preset(version: Sam2Version, size: ModelSize) -> Result<Self> {
        let (embed_dim, num_heads, stages, global, window_spec, bkg): (_, _, Vec<usize>, Vec<usize>, Vec<usize>, _) =
            match size {
                ModelSize::Tiny => (96, 1, vec![1, 2, 7, 2], vec![5, 7, 9], vec![8, 4, 14, 7], [7, 7]),
                ModelSize::Small => (96, 1, vec![1, 2, 11, 2], vec![7, 10, 13], vec![8, 4, 14, 7], [7, 7]),
                ModelSize::BasePlus => (112, 2, vec![2, 3, 16, 3], vec![12, 16, 20], vec![8, 4, 14, 7], [14, 14]),
                ModelSize::Large => (144, 2, vec![2, 6, 36, 4], vec![23, 33, 43], vec![8, 4, 16, 8], [7, 7]),
                ModelSize::Custom => {
                    return Err(Error::Config("no preset for a custom size: pass its YAML config".into()));
                }
            };
        let channels = (0..4).rev().map(|i| embed_dim << i).collect();
        Ok(Self {
            version,
            size,
            trunk: HieraConfig {
                embed_dim,
                num_heads,
                stages,
                global_att_blocks: global,
                window_spec,
                window_pos_embed_bkg_spatial_size: bkg,
                q_pool: 3,
                q_stride: [2, 2],
                dim_mul: 2.0,
                head_mul: 2.0,
            },
            neck: NeckConfig {
                d_model: 256,
                backbone_channel_list: channels,
                fpn_top_down_levels: vec![2, 3],
                fpn_interp_model: FpnInterp::Nearest,
                fuse_avg: false,
                pos_num_feats: 256,
                pos_temperature: 10000.0,
                pos_normalize: true,
                pos_scale: None,
            },
            scalp: 1,
            image_size: 1024,
            backbone_stride: 16,
            use_high_res_features_in_sam: true,
            iou_prediction_use_sigmoid: true,
            pred_obj_scores: true,
            pred_obj_scores_mlp: true,
            use_multimask_token_for_obj_ptr: true,
            directly_add_no_mem_embed: true,
            dynamic_multimask_via_stability: true,
            dynamic_multimask_stability_delta: 0.05,
            dynamic_multimask_stability_thresh: 0.98,
            video: VideoConfig::official(version),
        })
    }

    /// Hidden dim of the SAM heads (the neck's `d_model`).
    pub fn hidden_dim(&self) -> usize {
        self.neck.d_model
    }

    /// Side of the image embedding, `S / 16`.
    pub fn embed_size(&self) -> usize {
        self.image_size / self.backbone_stride
    }

    /// Side of the low-resolution mask logits, `S / 4`.
    pub fn low_res_size(&self) -> usize {
        4 * self.embed_size()
    }

    /// Reads the `model:` section of one of Meta's Hydra YAML configs (`sam2.1_hiera_t.yaml`,
    /// reduced test configs, ...). Keys absent from the file take Meta's constructor defaults.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| Error::Config(format!("YAML: {e}")))?;
        let model = root.get("model").unwrap_or(&root);
        let trunk_v = path(model, &["image_encoder", "trunk"])?;
        let neck_v = path(model, &["image_encoder", "neck"])?;
        let pos_v = path(neck_v, &["position_encoding"])?;
        let get_bool = |v: &Value, k: &str, d: bool| -> Result<bool> {
            opt(v, k).map_or(Ok(d), |x| x.as_bool().ok_or_else(|| bad(k, "a boolean")))
        };
        let trunk = HieraConfig {
            embed_dim: usize_or(trunk_v, "embed_dim", 96)?,
            num_heads: usize_or(trunk_v, "num_heads", 1)?,
            stages: usizes_or(trunk_v, "stages", &[2, 3, 16, 3])?,
            global_att_blocks: usizes_or(trunk_v, "global_att_blocks", &[12, 16, 20])?,
            window_spec: usizes_or(trunk_v, "window_spec", &[8, 4, 14, 7])?,
            window_pos_embed_bkg_spatial_size: pair(usizes_or(
                trunk_v,
                "window_pos_embed_bkg_spatial_size",
                &[14, 14],
            )?)?,
            q_pool: usize_or(trunk_v, "q_pool", 3)?,
            q_stride: pair(usizes_or(trunk_v, "q_stride", &[2, 2])?)?,
            dim_mul: f64_or(trunk_v, "dim_mul", 2.0)?,
            head_mul: f64_or(trunk_v, "head_mul", 2.0)?,
        };
        let interp = match opt(neck_v, "fpn_interp_model").and_then(Value::as_str).unwrap_or("bilinear") {
            "nearest" => FpnInterp::Nearest,
            "bilinear" => FpnInterp::Bilinear,
            other => return Err(Error::Config(format!("unsupported fpn_interp_model {other:?}"))),
        };
        let fuse_avg = match opt(neck_v, "fuse_type").and_then(Value::as_str).unwrap_or("sum") {
            "sum" => false,
            "avg" => true,
            other => return Err(Error::Config(format!("unsupported fuse_type {other:?}"))),
        };
        let neck = NeckConfig {
            d_model: usize_req(neck_v, "d_model")?,
            backbone_channel_list: usizes_req(neck_v, "backbone_channel_list")?,
            fpn_top_down_levels: match opt(neck_v, "fpn_top_down_levels") {
                Some(Value::Null) | None => (0..4).collect(),
                Some(_) => usizes_req(neck_v, "fpn_top_down_levels")?,
            },
            fpn_interp_model: interp,
            fuse_avg,
            pos_num_feats: usize_req(pos_v, "num_pos_feats")?,
            pos_temperature: f64_or(pos_v, "temperature", 10000.0)?,
            pos_normalize: get_bool(pos_v, "normalize", true)?,
            pos_scale: match opt(pos_v, "scale") {
                Some(Value::Null) | None => None,
                Some(_) => Some(f64_or(pos_v, "scale", 0.0)?),
            },
        };
        let extra = opt(model, "sam_mask_decoder_extra_args");
        let extra_f = |k: &str, d: f64| extra.map_or(Ok(d), |e| f64_or(e, k, d));
        let version = if get_bool(model, "no_obj_embed_spatial", false)? { Sam2Version::V2_1 } else { Sam2Version::V2_0 };
        let config = Self {
            version,
            size: ModelSize::Custom,
            scalp: usize_or(path(model, &["image_encoder"])?, "scalp", 0)?,
            image_size: usize_or(model, "image_size", 512)?,
            backbone_stride: usize_or(model, "backbone_stride", 16)?,
            use_high_res_features_in_sam: get_bool(model, "use_high_res_features_in_sam", false)?,
            iou_prediction_use_sigmoid: get_bool(model, "iou_prediction_use_sigmoid", false)?,
            pred_obj_scores: get_bool(model, "pred_obj_scores", false)?,
            pred_obj_scores_mlp: get_bool(model, "pred_obj_scores_mlp", false)?,
            use_multimask_token_for_obj_ptr: get_bool(model, "use_multimask_token_for_obj_ptr", false)?,
            directly_add_no_mem_embed: get_bool(model, "directly_add_no_mem_embed", false)?,
            // `build_sam2` turns this on unless `apply_postprocessing=False`.
            dynamic_multimask_via_stability: match extra.and_then(|e| opt(e, "dynamic_multimask_via_stability")) {
                Some(v) => v.as_bool().ok_or_else(|| bad("dynamic_multimask_via_stability", "a boolean"))?,
                None => true,
            },
            dynamic_multimask_stability_delta: extra_f("dynamic_multimask_stability_delta", 0.05)? as f32,
            dynamic_multimask_stability_thresh: extra_f("dynamic_multimask_stability_thresh", 0.98)? as f32,
            video: VideoConfig::from_yaml(model)?,
            trunk,
            neck,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the sizes fit together, so that building the model cannot fail half way.
    pub fn validate(&self) -> Result<()> {
        let t = &self.trunk;
        let fail = |m: String| Err(Error::Config(m));
        if t.stages.len() != 4 || t.window_spec.len() != 4 {
            return fail(format!("Hiera needs 4 stages and 4 window sizes, got {:?} and {:?}", t.stages, t.window_spec));
        }
        if t.stages.contains(&0) || t.embed_dim == 0 || t.num_heads == 0 {
            return fail("Hiera stages, embed_dim and num_heads must be positive".into());
        }
        if t.q_pool > 3 || t.q_stride.contains(&0) {
            return fail(format!("q_pool {} / q_stride {:?} out of range", t.q_pool, t.q_stride));
        }
        if self.image_size == 0 || self.image_size % 32 != 0 || self.backbone_stride != 16 {
            return fail(format!("image_size {} must be a positive multiple of 32 (backbone stride 16)", self.image_size));
        }
        let channels: Vec<usize> = (0..4).rev().map(|i| self.stage_dim(i)).collect();
        if self.neck.backbone_channel_list != channels {
            return fail(format!(
                "neck backbone_channel_list {:?} does not match the trunk's stage channels {:?}",
                self.neck.backbone_channel_list, channels
            ));
        }
        let d = self.neck.d_model;
        if d == 0 || d % 16 != 0 || self.neck.pos_num_feats != d {
            return fail(format!("neck d_model {d} must be a multiple of 16 and equal its position encoding's num_pos_feats"));
        }
        if self.scalp >= 4 || 4 - self.scalp < if self.use_high_res_features_in_sam { 3 } else { 1 } {
            return fail(format!("scalp {} leaves too few feature levels", self.scalp));
        }
        if !self.directly_add_no_mem_embed && self.video.memory_encoder.out_dim != d {
            return fail("without directly_add_no_mem_embed the memory dim must equal the hidden dim".into());
        }
        self.video.validate(d)
    }

    /// Channels of Hiera stage `i` (0-based).
    pub fn stage_dim(&self, stage: usize) -> usize {
        (self.trunk.embed_dim as f64 * self.trunk.dim_mul.powi(stage as i32)) as usize
    }
}

fn bad(key: &str, what: &str) -> Error {
    Error::Config(format!("`{key}` must be {what}"))
}

fn opt<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
}

fn path<'a>(v: &'a Value, keys: &[&str]) -> Result<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(*k).ok_or_else(|| Error::Config(format!("missing `{}`", keys.join(".")))))
}

fn usize_or(v: &Value, key: &str, default: usize) -> Result<usize> {
    opt(v, key).map_or(Ok(default), |x| x.as_u64().map(|n| n as usize).ok_or_else(|| bad(key, "a non-negative integer")))
}

fn usize_req(v: &Value, key: &str) -> Result<usize> {
    opt(v, key).ok_or_else(|| Error::Config(format!("missing `{key}`")))?;
    usize_or(v, key, 0)
}

fn f64_or(v: &Value, key: &str, default: f64) -> Result<f64> {
    opt(v, key).map_or(Ok(default), |x| x.as_f64().ok_or_else(|| bad(key, "a number")))
}

fn usizes_or(v: &Value, key: &str, default: &[usize]) -> Result<Vec<usize>> {
    match opt(v, key) {
        None => Ok(default.to_vec()),
        Some(x) => x
            .as_sequence()
            .ok_or_else(|| bad(key, "a list of integers"))?
            .iter()
            .map(|n| n.as_u64().map(|n| n as usize).ok_or_else(|| bad(key, "a list of integers")))
            .collect(),
    }
}

fn usizes_req(v: &Value, key: &str) -> Result<Vec<usize>> {
    opt(v, key).ok_or_else(|| Error::Config(format!("missing `{key}`")))?;
    usizes_or(v, key, &[])
}

fn pair(v: Vec<usize>) -> Result<[usize; 2]> {
    v.try_into().map_err(|v: Vec<usize>| Error::Config(format!("expected two values, got {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for v in [Sam2Version::V2_0, Sam2Version::V2_1] {
            for s in [ModelSize::Tiny, ModelSize::Small, ModelSize::BasePlus, ModelSize::Large] {
                Sam2Config::preset(v, s).unwrap().validate().unwrap();
            }
        }
        assert!(Sam2Config::preset(Sam2Version::V2_1, ModelSize::Custom).is_err());
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(Sam2Config::from_yaml("model: [1, 2").is_err());
        assert!(Sam2Config::from_yaml("model: {}").is_err());
    }
}
