//! Which official SAM 2 / SAM 2.1 model a checkpoint holds, from tensor names and shapes alone.

use std::collections::BTreeSet;
use std::fmt;

use super::Checkpoint;
use crate::config::{ModelSize, Sam2Version};
use crate::error::{Error, Result};

const PATCH_EMBED: &str = "image_encoder.trunk.patch_embed.proj.weight";
const BLOCKS: &str = "image_encoder.trunk.blocks.";
/// The only keys SAM 2.1 has and SAM 2.0 lacks.
use super::keymap::SAM2_1_ONLY_KEYS as V2_1_KEYS;

// The version and size enums are the crate's config types; their names are Meta's checkpoint
// naming, so their `Display` lives here with the rest of the checkpoint knowledge.

impl fmt::Display for Sam2Version {
    /// `sam2` or `sam2.1`, as in Meta's checkpoint names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sam2Version::V2_0 => "sam2",
            Sam2Version::V2_1 => "sam2.1",
        })
    }
}

impl fmt::Display for ModelSize {
    /// `tiny`, `small`, `base_plus`, `large` (as in Meta's checkpoint names) or `custom`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelSize::Tiny => "tiny",
            ModelSize::Small => "small",
            ModelSize::BasePlus => "base_plus",
            ModelSize::Large => "large",
            ModelSize::Custom => "custom",
        })
    }
}

/// The official size with this Hiera embed dim and blocks per stage, else `Custom`.
pub fn official_size(embed_dim: usize, stages: &[usize]) -> ModelSize {
    match (embed_dim, stages) {
        (96, [1, 2, 7, 2]) => ModelSize::Tiny,
        (96, [1, 2, 11, 2]) => ModelSize::Small,
        (112, [2, 3, 16, 3]) => ModelSize::BasePlus,
        (144, [2, 6, 36, 4]) => ModelSize::Large,
        _ => ModelSize::Custom,
    }
}

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// SAM 2.0 or 2.1.
    pub version: Sam2Version,
    /// Official size, or `Custom`.
    pub size: ModelSize,
    /// Hiera embed dim (channels after the patch embedding).
    pub embed_dim: usize,
    /// Number of Hiera blocks.
    pub num_blocks: usize,
    /// Blocks per Hiera stage (a stage starts at every block that changes the channel count).
    pub stages: Vec<usize>,
    /// Input image size: the safetensors metadata `image_size` if present, else 1024 for the
    /// official sizes (all of Meta's checkpoints), else `None`.
    pub image_size_hint: Option<usize>,
}

impl Detected {
    /// Meta's checkpoint name, e.g. `sam2.1_hiera_tiny` or `sam2_hiera_base_plus`
    /// (`..._hiera_custom` for a non-official trunk).
    pub fn model_name(&self) -> String {
        format!("{}_hiera_{}", self.version, self.size)
    }
}

/// Detects which official model `ckpt` holds (see [`detect_from_shapes`]).
pub fn detect(ckpt: &Checkpoint) -> Result<Detected> {
    let shapes = ckpt.names().filter_map(|n| ckpt.info(n).map(|i| (n, i.shape.as_slice())));
    let mut d = detect_from_shapes(shapes)?;
    if let Some(size) = ckpt.metadata().get("image_size").and_then(|s| s.trim().parse().ok()) {
        d.image_size_hint = Some(size);
    }
    Ok(d)
}

/// Detects the model from `(name, shape)` pairs of a state dict.
///
/// The embed dim is dim 0 of `image_encoder.trunk.patch_embed.proj.weight`, the block count
/// the number of distinct `image_encoder.trunk.blocks.<i>.` indices, and SAM 2.1 is told from
/// 2.0 by its three extra keys. Errors if this is not a SAM 2 checkpoint at all.
pub fn detect_from_shapes<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>,
) -> Result<Detected> {
    let not_sam2 = |why: &str| Error::Weights(format!("not a SAM 2 checkpoint: {why}"));
    let (mut embed_dim, mut decoder) = (None, false);
    let (mut blocks, mut stage_starts) = (BTreeSet::new(), BTreeSet::from([0usize]));
    let mut v2_1 = [false; 3];
    for (name, shape) in tensors {
        if name == PATCH_EMBED {
            embed_dim = Some(shape.first().copied().filter(|&c| c > 0));
        }
        decoder |= name.starts_with("sam_mask_decoder.");
        let block = name.strip_prefix(BLOCKS).and_then(|rest| rest.split_once('.'));
        if let Some((Ok(i), tail)) = block.map(|(i, tail)| (i.parse::<usize>(), tail)) {
            blocks.insert(i);
            if tail == "proj.weight" {
                stage_starts.insert(i);
            }
        }
        for (seen, key) in v2_1.iter_mut().zip(V2_1_KEYS) {
            *seen |= name == *key;
        }
    }
    let embed_dim = embed_dim.ok_or_else(|| not_sam2(&format!("no {PATCH_EMBED}")))?;
    let embed_dim = embed_dim.ok_or_else(|| not_sam2(&format!("{PATCH_EMBED} has no channels")))?;
    if !decoder {
        return Err(not_sam2("no sam_mask_decoder.* tensors"));
    }
    let num_blocks = blocks.len();
    if num_blocks == 0 || blocks.last() != Some(&(num_blocks - 1)) {
        return Err(Error::Weights(format!(
            "image encoder blocks are not numbered 0..{num_blocks} (found {blocks:?})"
        )));
    }
    let starts: Vec<usize> = stage_starts.into_iter().collect();
    let stages = starts
        .iter()
        .zip(starts.iter().skip(1).chain([&num_blocks]))
        .map(|(a, b)| b.saturating_sub(*a))
        .collect::<Vec<_>>();
    let version = match v2_1 {
        [true, true, true] => Sam2Version::V2_1,
        [false, false, false] => Sam2Version::V2_0,
        _ => {
            let missing: Vec<_> = V2_1_KEYS.iter().zip(v2_1).filter(|(_, s)| !s).map(|(k, _)| *k).collect();
            return Err(Error::Weights(format!(
                "checkpoint has some SAM 2.1 tensors but lacks {missing:?}"
            )));
        }
    };
    let size = official_size(embed_dim, &stages);
    let image_size_hint = (size != ModelSize::Custom).then_some(1024);
    Ok(Detected { version, size, embed_dim, num_blocks, stages, image_size_hint })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `key [d0,d1,...]` lines.
    fn parse(text: &str) -> Vec<(String, Vec<usize>)> {
        let line = |l: &str| {
            let (name, dims) = l.trim().split_once(' ')?;
            let dims = dims.trim().strip_prefix('[')?.strip_suffix(']')?;
            let shape = dims.split(',').filter(|d| !d.is_empty()).map(|d| d.trim().parse().ok()).collect::<Option<_>>()?;
            Some((name.to_string(), shape))
        };
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| line(l).expect(l)).collect()
    }

    fn run(items: &[(String, Vec<usize>)]) -> Result<Detected> {
        detect(&Checkpoint::from_shapes(items)?)
    }

    /// A synthetic official-looking key list (trunk + decoder + optional 2.1 keys).
    fn synthetic(embed: usize, stages: &[usize], v2_1: bool) -> Vec<(String, Vec<usize>)> {
        let mut out = vec![(PATCH_EMBED.to_string(), vec![embed, 3, 7, 7])];
        let (mut i, mut dim) = (0, embed);
        for (s, &n) in stages.iter().enumerate() {
            for j in 0..n {
                out.push((format!("{BLOCKS}{i}.norm1.weight"), vec![dim]));
                if s > 0 && j == 0 {
                    out.push((format!("{BLOCKS}{i}.proj.weight"), vec![dim * 2, dim]));
                    dim *= 2;
                }
                i += 1;
            }
        }
        out.push(("sam_mask_decoder.iou_token.weight".into(), vec![1, 256]));
        if v2_1 {
            out.extend(V2_1_KEYS.iter().zip([vec![1, 64], vec![64, 256], vec![64]]).map(|(k, s)| (k.to_string(), s)));
        }
        out
    }

    #[test]
    fn synthetic_official_sizes() {
        let cases = [
            (96, &[1, 2, 7, 2][..], ModelSize::Tiny, "tiny"),
            (96, &[1, 2, 11, 2], ModelSize::Small, "small"),
            (112, &[2, 3, 16, 3], ModelSize::BasePlus, "base_plus"),
            (144, &[2, 6, 36, 4], ModelSize::Large, "large"),
            (96, &[2, 2, 6, 2], ModelSize::Custom, "custom"),
        ];
        for (embed, stages, size, name) in cases {
            for v2_1 in [false, true] {
                let d = run(&synthetic(embed, stages, v2_1)).unwrap();
                assert_eq!((d.size, d.embed_dim, d.stages.as_slice()), (size, embed, stages));
                assert_eq!(d.num_blocks, stages.iter().sum::<usize>());
                let prefix = if v2_1 { "sam2.1" } else { "sam2" };
                assert_eq!(d.model_name(), format!("{prefix}_hiera_{name}"));
                assert_eq!(d.image_size_hint, (size != ModelSize::Custom).then_some(1024));
            }
        }
    }

    #[test]
    fn not_sam2_or_inconsistent() {
        let full = synthetic(96, &[1, 2, 7, 2], true);
        let without = |pred: &dyn Fn(&str) -> bool| -> Vec<_> { full.iter().filter(|(n, _)| !pred(n)).cloned().collect() };
        let err = |items: Vec<_>| run(&items).unwrap_err().to_string();
        assert!(err(without(&|n| n == PATCH_EMBED)).contains("not a SAM 2 checkpoint"));
        assert!(err(without(&|n| n.starts_with("sam_mask_decoder"))).contains("sam_mask_decoder"));
        assert!(err(without(&|n| n == "obj_ptr_tpos_proj.bias")).contains("obj_ptr_tpos_proj.bias"));
        assert!(err(without(&|n| n.starts_with("image_encoder.trunk.blocks.3."))).contains("numbered"));
        assert!(run(&[("x".into(), vec![1])]).is_err());
    }

    /// The key lists of Meta's checkpoints (`<name>.txt`), from the repo's fixtures or the
    /// shared reference folder; the test is skipped (with a note) if neither is present.
    #[test]
    fn official_key_lists() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/weights/keys");
        let cases = [
            ("sam2_hiera_t", "sam2_hiera_tiny", 96, 12),
            ("sam2_hiera_s", "sam2_hiera_small", 96, 16),
            ("sam2_hiera_b+", "sam2_hiera_base_plus", 112, 24),
            ("sam2_hiera_l", "sam2_hiera_large", 144, 48),
            ("sam2.1_hiera_t", "sam2.1_hiera_tiny", 96, 12),
            ("sam2.1_hiera_s", "sam2.1_hiera_small", 96, 16),
            ("sam2.1_hiera_b+", "sam2.1_hiera_base_plus", 112, 24),
            ("sam2.1_hiera_l", "sam2.1_hiera_large", 144, 48),
            ("sam2.1_hiera_reduced16", "sam2.1_hiera_custom", 8, 8),
            ("sam2.1_hiera_reduced32", "sam2.1_hiera_custom", 16, 8),
        ];
        for (file, model, embed, blocks) in cases {
            let text = std::fs::read_to_string(format!("{dir}/{file}.txt")).expect(file);
            let d = run(&parse(&text)).unwrap();
            assert_eq!((d.model_name().as_str(), d.embed_dim, d.num_blocks), (model, embed, blocks), "{file}");
            if d.size == ModelSize::Custom {
                assert_eq!((d.stages.as_slice(), d.image_size_hint), (&[1, 2, 3, 2][..], None));
            }
        }
    }
}
