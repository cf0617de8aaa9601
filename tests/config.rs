//! Meta's eight official YAML configs (copied from the reference package by
//! tools/reference/make_fixtures.py) read into exactly the built-in presets; the reduced fixture
//! configs read and validate.

mod common;

use common::{fixture_dir, model_fixtures, official_models};
use sam2_webgpu::{ModelSize, Sam2Config, Sam2Version};

#[test]
fn official_yaml_configs_equal_the_presets() {
    for (stem, version, size) in official_models() {
        let path = fixture_dir("configs").join(format!("{stem}.yaml"));
        let mut parsed = Sam2Config::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // The YAML does not name the size; the preset does.
        assert_eq!(parsed.size, ModelSize::Custom);
        parsed.size = size;
        assert_eq!(parsed, Sam2Config::preset(version, size).unwrap(), "{}", path.display());
    }
}

#[test]
fn reduced_fixture_configs_are_valid() {
    for name in model_fixtures() {
        let yaml = std::fs::read_to_string(fixture_dir(&name).join("config.yaml")).unwrap();
        let config = Sam2Config::from_yaml(&yaml).unwrap();
        assert_eq!(config.version == Sam2Version::V2_1, name.starts_with("sam2.1"), "{name}");
    }
}

#[test]
fn inconsistent_yaml_is_a_config_error() {
    let yaml = std::fs::read_to_string(fixture_dir("configs").join("sam2.1_hiera_t.yaml")).unwrap();
    for (from, to) in [("embed_dim: 96", "embed_dim: 95"), ("image_size: 1024", "image_size: 1000"), ("d_model: 256", "d_model: 250")] {
        assert!(yaml.contains(from), "{from}");
        let err = Sam2Config::from_yaml(&yaml.replacen(from, to, 1)).unwrap_err();
        assert!(matches!(err, sam2_webgpu::Error::Config(_)), "{to}: {err:?}");
    }
}
