//! Bad input gets a clear, typed error and loses nothing: checkpoints, configs, images, prompts.

mod common;

use common::{Fixture, device};
use sam2_webgpu::Error;
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
use sam2_webgpu::weights::{Checkpoint, load_sam2};

const V21: &str = "sam2.1_hiera_reduced";
const V20: &str = "sam2_hiera_reduced";

fn weights_err(e: Error, needle: &str) {
    match e {
        Error::Weights(m) => assert!(m.contains(needle), "message {m:?} should mention {needle:?}"),
        other => panic!("expected a weights error mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn truncated_and_garbage_checkpoints_are_rejected() {
    let bytes = std::fs::read(common::fixture_dir(V21).join("model.pt")).unwrap();
    for cut in [0, 3, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(Checkpoint::from_bytes(bytes[..cut].to_vec()).is_err(), "prefix of {cut} bytes was accepted");
    }
    assert!(matches!(Checkpoint::from_bytes(b"not a checkpoint at all".to_vec()), Err(Error::Weights(_))));
}

#[test]
fn version_mismatch_names_the_missing_keys() {
    let v20 = Fixture::open(V20);
    let v21 = Fixture::open(V21);
    let dev = device("cpu");
    let ckpt20 = Checkpoint::from_path(v20.dir.join("model.pt")).unwrap();
    let mut as21 = v20.config.clone();
    as21.version = sam2_webgpu::Sam2Version::V2_1;
    weights_err(load_sam2(&ckpt20, &as21, &dev).unwrap_err(), "no_obj_embed_spatial");
    let ckpt21 = Checkpoint::from_path(v21.dir.join("model.pt")).unwrap();
    let mut as20 = v21.config.clone();
    as20.version = sam2_webgpu::Sam2Version::V2_0;
    weights_err(load_sam2(&ckpt21, &as20, &dev).unwrap_err(), "obj_ptr_tpos_proj");
}

#[test]
fn wrong_size_config_names_a_key_and_shape() {
    let fx = Fixture::open(V21);
    let ckpt = Checkpoint::from_path(fx.dir.join("model.pt")).unwrap();
    let mut cfg = fx.config.clone();
    cfg.trunk.embed_dim *= 2;
    cfg.neck.backbone_channel_list = (0..4).rev().map(|i| cfg.trunk.embed_dim << i).collect();
    weights_err(load_sam2(&ckpt, &cfg, &device("cpu")).unwrap_err(), "shape");
}

#[test]
fn bad_images_and_prompts_are_input_errors_and_keep_the_predictor_usable() {
    let fx = Fixture::open(V21);
    let dev = device("cpu");
    let mut predictor = ImagePredictor::new(fx.model(&dev));
    let point = |x: f32, y: f32| Prompt { points: vec![[x, y]], labels: vec![1], ..Prompt::default() };
    let opts = PredictOptions::default();

    assert!(matches!(predictor.predict(&[point(1.0, 1.0)], opts), Err(Error::State(_))));
    assert!(matches!(ImageRef::new(0, 0, 3, &[]).map(|i| predictor.set_image(&i)), Err(Error::Input(_))));
    assert!(matches!(ImageRef::new(4, 4, 3, &[0; 10]), Err(Error::Input(_))));

    let (w, h, rgb) = fx.image("a");
    predictor.set_image(&ImageRef::new(w, h, 3, &rgb).unwrap()).unwrap();
    let bad = [
        point(f32::NAN, 3.0),
        point(3.0, f32::INFINITY),
        point(-5.0, 3.0),
        point(3.0, h as f32 + 10.0),
        Prompt { points: vec![[1.0, 1.0]], labels: vec![7], ..Prompt::default() },
        Prompt { points: vec![[1.0, 1.0]], labels: vec![], ..Prompt::default() },
        Prompt { bbox: Some([50.0, 50.0, 10.0, 80.0]), ..Prompt::default() },
        Prompt { bbox: Some([f32::NAN, 0.0, 10.0, 10.0]), ..Prompt::default() },
        Prompt { mask_input: Some(vec![0.0; 3]), ..point(2.0, 2.0) },
        Prompt::default(),
    ];
    for p in bad {
        let r = predictor.predict(&[p.clone()], opts);
        assert!(matches!(r, Err(Error::Input(_))), "{p:?} gave {r:?}");
    }
    // A box partly outside the image is accepted, as the reference accepts it.
    let partly_outside = Prompt { bbox: Some([-40.0, 10.0, 60.0, h as f32 + 30.0]), ..Prompt::default() };
    assert_eq!(predictor.predict(&[partly_outside], opts).unwrap().len(), 1);
    // A rejected image keeps the current one.
    let inconsistent = ImageRef { width: 2, height: 2, channels: 3, data: &[0; 5] };
    assert!(matches!(predictor.set_image(&inconsistent), Err(Error::Input(_))));
    // Still usable after the errors.
    let ok = predictor.predict(&[point(10.0, 10.0)], opts).unwrap();
    assert_eq!(ok[0].masks.len(), 3 * w * h);
}
