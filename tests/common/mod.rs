//! Shared test helpers: fixture loading and tensor comparison.
#![allow(dead_code)]

use sam2_webgpu::{ModelSize, Sam2Config, Sam2Version};
use sam2_webgpu::model::Sam2;
use sam2_webgpu::weights::{Checkpoint, load_sam2, load_sam2_video};
use burn::tensor::{Device, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `tests/fixtures/<name>`.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The reduced-model fixtures written by `tools/reference/make_fixtures.py`.
pub fn model_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir(""))
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("cases.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no model fixtures under tests/fixtures: run tools/reference/make_fixtures.py");
    names
}

/// One fixture model: its checkpoint loaded, config, cases and expected tensors.
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub config: Sam2Config,
    pub cases: Value,
    pub expected: Checkpoint,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let dir = fixture_dir(name);
        let yaml = std::fs::read_to_string(dir.join("config.yaml")).expect("config.yaml");
        let config = Sam2Config::from_yaml(&yaml).expect("fixture config parses");
        let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).expect("cases.json")).expect("cases.json parses");
        let expected = Checkpoint::from_path(dir.join("expected.safetensors")).expect("expected.safetensors");
        Self { name: name.to_string(), dir, config, cases, expected }
    }

    /// The model loaded from the fixture's `model.pt` through the same loader users use.
    pub fn model(&self, device: &Device) -> Sam2 {
        let ckpt = Checkpoint::from_path(self.dir.join("model.pt")).expect("model.pt reads");
        load_sam2(&ckpt, &self.config, device).expect("model.pt loads strictly")
    }

    /// The whole model (video modules included) from the fixture's `model.pt`, with the tensors
    /// of `video/model_overrides.safetensors` replaced where the video fixtures have that file
    /// (`make_video_fixtures.py` changes the object-score head there so that objects go from
    /// visible to occluded and back).
    pub fn video_model(&self, device: &Device) -> Sam2 {
        let ckpt = Checkpoint::from_path(self.dir.join("model.pt")).expect("model.pt reads");
        let overrides = self.dir.join("video/model_overrides.safetensors");
        let ckpt = if overrides.exists() { with_overrides(&ckpt, &Checkpoint::from_path(overrides).expect("overrides read")) } else { ckpt };
        load_sam2_video(&ckpt, &self.config, device).expect("model.pt loads strictly with its video modules")
    }

    /// An expected tensor, if the fixture has it.
    pub fn get(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        self.expected.info(name)?;
        Some(self.expected.tensor_f32(name).expect("expected tensor reads"))
    }

    /// An expected tensor the fixture must have.
    pub fn expect(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        self.get(name).unwrap_or_else(|| panic!("{}: fixture lacks {name}", self.name))
    }

    /// RGB pixels of image `id` from its PNG.
    pub fn image(&self, id: &str) -> (usize, usize, Vec<u8>) {
        let img = image::open(self.dir.join(format!("image_{id}.png"))).expect("fixture image").to_rgb8();
        (img.width() as usize, img.height() as usize, img.into_raw())
    }
}

/// Reads a tensor back to the host.
pub fn host<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let data = t.into_data().try_into_vec_as::<f32>().expect("f32 data");
    (shape, data)
}

/// Max |a - b|, asserting equal shapes.
pub fn max_abs_diff(what: &str, (sa, a): (&[usize], &[f32]), (sb, b): (&[usize], &[f32])) -> f32 {
    assert_eq!(sa, sb, "{what}: shape differs");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Asserts `actual` matches `expected` within `tol`, returns the max abs diff.
pub fn assert_close(what: &str, actual: (&[usize], &[f32]), expected: (&[usize], &[f32]), tol: f32) -> f32 {
    let d = max_abs_diff(what, actual, expected);
    assert!(d.is_finite() && d <= tol, "{what}: max abs diff {d:e} exceeds {tol:e}");
    d
}

/// The devices parity runs on: `cpu` (flex) or `wgpu`.
pub fn device(kind: &str) -> Device {
    sam2_webgpu::native::device_from_name(Some(if kind == "wgpu" { "gpu" } else { "cpu" }))
        .unwrap_or_else(|e| panic!("device {kind}: {e}"))
}

/// The eight official models: Meta's file stem (`sam2.1_hiera_b+`), version and size.
pub fn official_models() -> Vec<(String, Sam2Version, ModelSize)> {
    let sizes = [("t", ModelSize::Tiny), ("s", ModelSize::Small), ("b+", ModelSize::BasePlus), ("l", ModelSize::Large)];
    [("sam2", Sam2Version::V2_0), ("sam2.1", Sam2Version::V2_1)]
        .into_iter()
        .flat_map(|(prefix, version)| sizes.map(|(suffix, size)| (format!("{prefix}_hiera_{suffix}"), version, size)))
        .collect()
}

/// `base` with the tensors of `overrides` in place of its own (same names and shapes), as a
/// float32 safetensors checkpoint.
pub fn with_overrides(base: &Checkpoint, overrides: &Checkpoint) -> Checkpoint {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = base
        .names()
        .map(|name| {
            let (shape, values) = base.tensor_f32(name).expect("base tensor reads");
            let values = match overrides.info(name) {
                Some(_) => {
                    let (s, v) = overrides.tensor_f32(name).expect("override reads");
                    assert_eq!(s, shape, "override {name} keeps the shape");
                    v
                }
                None => values,
            };
            (name.to_string(), shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    assert!(overrides.names().all(|n| base.info(n).is_some()), "every override names a tensor of the checkpoint");
    let views = tensors.iter().map(|(n, s, b)| (n.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()));
    let bytes = safetensors::serialize(views, None).expect("serialises");
    Checkpoint::from_bytes(bytes).expect("reads back")
}
