//! Checkpoint reading on files written by torch itself (tests/fixtures/weights, made by
//! tools/reference/make_fixtures.py), and every official layout built by every preset.

mod common;

use burn::tensor::Device;
use common::{fixture_dir, official_models};
use sam2_webgpu::model::Sam2;
use sam2_webgpu::model::params::ParamSource;
use sam2_webgpu::weights::keymap::is_video_only;
use sam2_webgpu::weights::{Checkpoint, Format, to_safetensors};
use sam2_webgpu::{Error, Result, Sam2Config};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn torch_saved_files_load_to_the_values_torch_wrote() {
    let dir = fixture_dir("weights");
    let expected = Checkpoint::from_path(dir.join("expected.safetensors")).unwrap();
    let mut checked = 0;
    for name in expected.names() {
        let (file, key) = name.split_once('/').unwrap();
        if file == "legacy.pt" {
            continue;
        }
        let ckpt = Checkpoint::from_path(dir.join(file)).unwrap();
        assert_eq!(ckpt.format(), Format::Pt);
        let (want_shape, want) = expected.tensor_f32(name).unwrap();
        match ckpt.tensor_f32(key) {
            Ok((shape, got)) => {
                assert_eq!((shape, got), (want_shape, want), "{name}");
                checked += 1;
            }
            // Integer tensors are indexed but never read as weights.
            Err(Error::Weights(m)) => assert_eq!(key, "int64", "{name}: {m}"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(checked >= 10, "only {checked} tensors compared");
}

#[test]
fn legacy_format_is_rejected_with_a_clear_message() {
    let err = Checkpoint::from_path(fixture_dir("weights").join("legacy.pt")).unwrap_err().to_string();
    assert!(err.contains("legacy"), "{err}");
}

#[test]
fn safetensors_round_trip_in_f32_and_f16() {
    let ckpt = Checkpoint::from_path(fixture_dir("sam2.1_hiera_reduced").join("model.pt")).unwrap();
    for f16 in [false, true] {
        let bytes = to_safetensors(&ckpt, f16, BTreeMap::from([("model".into(), "test".into())])).unwrap();
        let back = Checkpoint::from_bytes(bytes).unwrap();
        assert_eq!(back.format(), Format::Safetensors);
        assert_eq!(back.names().collect::<Vec<_>>(), ckpt.names().collect::<Vec<_>>());
        for name in ckpt.names() {
            let (s0, a) = ckpt.tensor_f32(name).unwrap();
            let (s1, b) = back.tensor_f32(name).unwrap();
            assert_eq!(s0, s1);
            let tol = if f16 { 1e-3 } else { 0.0 };
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= tol * x.abs().max(1.0), "{name}: {x} vs {y}");
            }
        }
    }
}

/// Serves zeros for the keys of an official key list, recording what the model takes.
struct KeyListSource {
    shapes: BTreeMap<String, Vec<usize>>,
    taken: BTreeSet<String>,
    device: Device,
}

impl ParamSource for KeyListSource {
    fn take(&mut self, path: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let want = self.shapes.get(path).ok_or_else(|| Error::Weights(format!("no key {path}")))?;
        if want != shape {
            return Err(Error::Weights(format!("{path}: list has {want:?}, model asks {shape:?}")));
        }
        assert!(self.taken.insert(path.to_string()), "{path} taken twice");
        Ok(vec![0.0; shape.iter().product()])
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// Every preset builds from exactly the keys and shapes of Meta's official checkpoint.
#[test]
fn presets_consume_exactly_the_official_image_keys() {
    for (stem, version, size) in official_models() {
        let file = fixture_dir("weights").join(format!("keys/{stem}.txt"));
        let text = std::fs::read_to_string(&file).unwrap();
        let shapes: BTreeMap<String, Vec<usize>> = text
            .lines()
            .map(|l| {
                let (k, s) = l.split_once(' ').unwrap();
                let dims = s.trim_matches(|c| c == '[' || c == ']');
                (k.to_string(), dims.split(',').filter(|d| !d.is_empty()).map(|d| d.trim().parse().unwrap()).collect())
            })
            .collect();
        let config = Sam2Config::preset(version, size).unwrap();
        let mut src = KeyListSource { shapes, taken: BTreeSet::new(), device: Device::flex() };
        Sam2::load(&mut src, &config).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let left: Vec<&String> = src.shapes.keys().filter(|k| !src.taken.contains(*k) && !is_video_only(k)).collect();
        assert!(left.is_empty(), "{}: unused keys {left:?}", file.display());
    }
}
