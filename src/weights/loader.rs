//! Building a [`Sam2`] from a [`Checkpoint`]: strict (every key used, every parameter filled,
//! shapes checked) with errors that name the key.

use super::keymap::{BUFFER_KEYS, SAM2_1_ONLY_KEYS, checkpoint_key, is_video_only};
use super::{Checkpoint, detect};
use crate::config::{ModelSize, Sam2Config, Sam2Version};
use crate::error::{Error, Result};
use crate::model::Sam2;
use crate::model::params::ParamSource;
use burn::tensor::Device;
use std::collections::BTreeSet;

/// A [`ParamSource`] over a checkpoint that records which keys were taken.
struct CheckpointSource<'a> {
    ckpt: &'a Checkpoint,
    device: Device,
    taken: BTreeSet<String>,
}

impl ParamSource for CheckpointSource<'_> {
    fn take(&mut self, path: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let key = checkpoint_key(path);
        let info = self
            .ckpt
            .info(key)
            .ok_or_else(|| Error::Weights(format!("missing key `{key}` (expected shape {shape:?})")))?;
        if info.shape != shape {
            return Err(Error::Weights(format!(
                "`{key}` has shape {:?}, the model expects {shape:?} (wrong model size or config?)",
                info.shape
            )));
        }
        if !self.taken.insert(key.to_string()) {
            return Err(Error::Weights(format!("internal: `{key}` loaded twice")));
        }
        Ok(self.ckpt.tensor_f32(key)?.1)
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// Number of learned parameters in a SAM 2 checkpoint (all tensor values minus the
/// [`BUFFER_KEYS`] buffers), as `sum(p.numel() for p in model.parameters())` counts them.
pub fn parameter_count(ckpt: &Checkpoint) -> usize {
    let buffers: usize = BUFFER_KEYS.iter().filter_map(|k| ckpt.info(k)).map(|i| i.shape.iter().product::<usize>()).sum();
    ckpt.num_params() - buffers
}

/// The official configuration matching a checkpoint (version and size detected from its keys).
/// Checkpoints of another size of the architecture need their YAML ([`Sam2Config::from_yaml`]).
pub fn config_for(ckpt: &Checkpoint) -> Result<Sam2Config> {
    let found = detect::detect(ckpt)?;
    if found.size == ModelSize::Custom {
        return Err(Error::Config(format!(
            "checkpoint is a {:?} SAM 2 of a non-official size (embed dim {}, {} blocks): pass its YAML config",
            found.version, found.embed_dim, found.num_blocks
        )));
    }
    Sam2Config::preset(found.version, found.size)
}

/// Builds the image-path model on `device`, checking the checkpoint matches `config` exactly
/// (the video-only keys must be there but are not uploaded).
pub fn load_sam2(ckpt: &Checkpoint, config: &Sam2Config, device: &Device) -> Result<Sam2> {
    load(ckpt, config, device, false)
}

/// Builds the whole model (image and video paths) on `device`; every checkpoint key is used.
pub fn load_sam2_video(ckpt: &Checkpoint, config: &Sam2Config, device: &Device) -> Result<Sam2> {
    load(ckpt, config, device, true)
}

fn load(ckpt: &Checkpoint, config: &Sam2Config, device: &Device, with_video: bool) -> Result<Sam2> {
    let has: Vec<&str> = SAM2_1_ONLY_KEYS.iter().copied().filter(|k| ckpt.info(k).is_some()).collect();
    match config.version {
        Sam2Version::V2_1 if has.len() != SAM2_1_ONLY_KEYS.len() => {
            let missing: Vec<&str> = SAM2_1_ONLY_KEYS.iter().copied().filter(|k| !has.contains(k)).collect();
            return Err(Error::Weights(format!(
                "the config is SAM 2.1 but the checkpoint lacks {} (a SAM 2.0 checkpoint?)",
                missing.join(", ")
            )));
        }
        Sam2Version::V2_0 if !has.is_empty() => {
            return Err(Error::Weights(format!(
                "the config is SAM 2.0 but the checkpoint has the SAM 2.1 keys {}",
                has.join(", ")
            )));
        }
        _ => {}
    }
    let mut src = CheckpointSource { ckpt, device: device.clone(), taken: BTreeSet::new() };
    let model = if with_video { Sam2::load_video(&mut src, config)? } else { Sam2::load(&mut src, config)? };
    let unused: Vec<&str> = ckpt.names().filter(|k| !src.taken.contains(*k) && (with_video || !is_video_only(k))).collect();
    if !unused.is_empty() {
        let shown = unused.iter().take(8).copied().collect::<Vec<_>>().join(", ");
        return Err(Error::Weights(format!(
            "{} checkpoint keys do not belong to this model config: {shown}{}",
            unused.len(),
            if unused.len() > 8 { ", ..." } else { "" }
        )));
    }
    Ok(model)
}
