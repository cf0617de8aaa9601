//! The `sam2` command line on the reduced fixtures: `info`, `convert`, `predict` and `track`
//! (compared with the reference) and clear errors on bad input.

mod common;

use common::{Fixture, max_abs_diff};
use sam2_webgpu::npy::{read_npy_f32, write_npy_f32};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = "sam2.1_hiera_reduced";

fn sam2(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sam2")).args(args).output().expect("sam2 runs")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sam2-cli-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    read_npy_f32(&std::fs::read(path).unwrap()).unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "sam2 failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `predict` for a fixture case and compares its three arrays with the reference.
fn predict_case(fx: &Fixture, weights: &Path, case: &str, extra: &[&str], tol: f32) {
    let spec = fx.cases["cases"].as_array().unwrap().iter().find(|c| c["name"] == case).unwrap();
    let image = fx.dir.join(format!("image_{}.png", spec["image"].as_str().unwrap()));
    let out = out_dir(case);
    let mut args: Vec<String> = vec!["predict".into(), "--weights".into(), weights.display().to_string()];
    args.extend(["--config".into(), fx.dir.join("config.yaml").display().to_string(), "--device".into(), "cpu".into()]);
    args.extend(["--image".into(), image.display().to_string(), "--out".into(), out.display().to_string()]);
    for (p, l) in spec["point_coords"].as_array().into_iter().flatten().zip(spec["point_labels"].as_array().into_iter().flatten()) {
        args.extend(["--point".into(), format!("{},{},{}", p[0], p[1], l)]);
    }
    for b in spec["box"].as_array().into_iter().flatten() {
        args.extend(["--box".into(), format!("{},{},{},{}", b[0], b[1], b[2], b[3])]);
    }
    if spec["multimask_output"].as_bool().unwrap() {
        args.push("--multimask".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    stdout(&sam2(&args.iter().map(String::as_str).collect::<Vec<_>>()));

    let (shape, low) = fx.expect(&format!("{case}/low_res_masks"));
    let (_, scores) = fx.expect(&format!("{case}/iou_predictions"));
    // One object: the CLI drops the batch axis, as Meta's `predict` does.
    let lead = if shape[0] == 1 { vec![shape[1]] } else { vec![shape[0], shape[1]] };
    let got_low = npy(&out.join("low_res_logits.npy"));
    let got_scores = npy(&out.join("scores.npy"));
    let (mshape, masks) = npy(&out.join("masks.npy"));
    assert_eq!(got_low.0, [lead.as_slice(), &shape[2..]].concat());
    assert!(max_abs_diff(case, (&got_low.0, &got_low.1), (&got_low.0, &low)) <= tol, "{case}: low-res logits");
    assert!(max_abs_diff(case, (&got_scores.0, &got_scores.1), (&got_scores.0, &scores)) <= tol, "{case}: scores");
    assert_eq!(&mshape[..lead.len()], lead.as_slice());
    assert!(masks.iter().all(|v| *v == 0.0 || *v == 1.0));
    assert!(out.join("mask.png").exists());
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn predict_matches_the_reference() {
    let fx = Fixture::open(FIXTURE);
    let weights = fx.dir.join("model.pt");
    for case in ["box_point", "pos_neg_points", "boxes3", "point_multimask"] {
        predict_case(&fx, &weights, case, &[], 1e-4);
    }
    // Round 2: the previous round's best low-res logits as --mask-input.
    let spec = fx.cases["cases"].as_array().unwrap().iter().find(|c| c["name"] == "refine_round2").unwrap();
    let prev = spec["mask_input"].as_str().unwrap();
    let index = spec["mask_input_index"].as_u64().unwrap() as usize;
    let (shape, low) = fx.expect(&format!("{prev}/low_res_masks"));
    let plane = shape[2] * shape[3];
    let mask_file = out_dir("mask-input").join("prev.npy");
    std::fs::write(&mask_file, write_npy_f32(&[1, shape[2], shape[3]], &low[index * plane..(index + 1) * plane]).unwrap()).unwrap();
    predict_case(&fx, &weights, "refine_round2", &["--mask-input", mask_file.to_str().unwrap()], 1e-4);
}

#[test]
fn info_and_convert_round_trip() {
    let fx = Fixture::open(FIXTURE);
    let text = stdout(&sam2(&["info", fx.dir.join("model.pt").to_str().unwrap()]));
    // The reference counts the prompt encoder's [2, d/2] random-Fourier buffer with the parameters.
    let params = fx.cases["n_params"].as_u64().unwrap() as usize - fx.config.hidden_dim();
    assert!(text.contains("sam2.1") && text.contains(&format!("parameters:  {params} ")), "{text}");
    let dir = out_dir("convert");
    let pt = fx.dir.join("model.pt");
    for (flag, tol) in [(None, 1e-4), (Some("--f16"), 0.05)] {
        let st = dir.join(format!("model{}.safetensors", flag.unwrap_or("")));
        let mut args = vec!["convert", pt.to_str().unwrap(), st.to_str().unwrap()];
        args.extend(flag);
        stdout(&sam2(&args));
        // The f32 file reproduces the reference; f16 weights move logits of magnitude ~8 by ~0.01.
        predict_case(&fx, &st, "box", &[], tol);
    }
    let f32_len = std::fs::metadata(dir.join("model.safetensors")).unwrap().len();
    let f16_len = std::fs::metadata(dir.join("model--f16.safetensors")).unwrap().len();
    assert!(f16_len * 10 < f32_len * 6, "f16 file {f16_len} B is not about half of {f32_len} B");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let fx = Fixture::open(FIXTURE);
    let ckpt = fx.dir.join("model.pt");
    let image = fx.dir.join("image_a.png");
    let dir = out_dir("errors");
    let truncated = dir.join("truncated.pt");
    std::fs::write(&truncated, &std::fs::read(&ckpt).unwrap()[..1000]).unwrap();
    let (c, i, o, t) = (ckpt.to_str().unwrap(), image.to_str().unwrap(), dir.to_str().unwrap(), truncated.to_str().unwrap());
    let yaml = fx.dir.join("config.yaml");
    let y = yaml.to_str().unwrap();
    let frames = fx.dir.join("video/frames");
    let f = frames.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["info", "/nonexistent.pt"], "i/o"),
        (vec!["info", t], "checkpoint"),
        (vec!["info", i], "checkpoint"),
        (vec!["predict", "--weights", c, "--config", y, "--image", i, "--point", "nan,3,1", "--out", o, "--device", "cpu"], "non-finite"),
        (vec!["predict", "--weights", c, "--config", y, "--image", i, "--point", "-4,3,1", "--out", o, "--device", "cpu"], "outside"),
        (vec!["predict", "--weights", c, "--config", y, "--image", i, "--box", "50,50,10,80", "--out", o, "--device", "cpu"], "x1 < x0"),
        (vec!["predict", "--weights", c, "--config", y, "--image", i, "--point", "3,3", "--out", o, "--device", "cpu"], "3 comma-separated"),
        (vec!["predict", "--weights", c, "--config", y, "--image", c, "--point", "3,3,1", "--out", o, "--device", "cpu"], "invalid input"),
        (vec!["predict", "--weights", c, "--image", i, "--point", "3,3,1", "--out", o, "--device", "cpu"], "YAML"),
        (vec!["predict", "--weights", c, "--config", y, "--image", i, "--out", o, "--device", "tpu"], "unknown device"),
        (vec!["frobnicate"], "unknown or missing command"),
        (vec!["track", "--weights", c, "--config", y, "--frames", f, "--prompt", "10:1:point:3,3,1", "--out", o, "--device", "cpu"], "out of range"),
        (vec!["track", "--weights", c, "--config", y, "--frames", f, "--prompt", "0:1:circle:3,3", "--out", o, "--device", "cpu"], "prompt"),
        (vec!["track", "--weights", c, "--config", y, "--frames", f, "--prompt", "0:1:point:3,300,1", "--out", o, "--device", "cpu"], "outside"),
        (vec!["track", "--weights", c, "--config", y, "--frames", o, "--prompt", "0:1:point:3,3,1", "--out", o, "--device", "cpu"], "no PNG or JPEG"),
        (vec!["track", "--weights", c, "--config", y, "--frames", f, "--out", o, "--device", "cpu"], "--prompt"),
    ];
    for (args, needle) in cases {
        let out = sam2(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} should mention {needle:?}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// `sam2 track` on the reference's `two_objects` scenario (SAM 2.0 reduced fixture: both objects
/// tracked as visible, object 1 occluded on its prompted frame): low-res logits of every frame and object, object scores, and the
/// video-resolution PNG masks of the frames whose logits the reference stored.
#[test]
fn track_matches_the_reference() {
    let fx = Fixture::open("sam2_hiera_reduced");
    let video = fx.dir.join("video");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(video.join("scenarios.json")).unwrap()).unwrap();
    let expected = sam2_webgpu::weights::Checkpoint::from_path(video.join("expected.safetensors")).unwrap();
    let out = out_dir("track");
    let (ckpt, yaml) = (fx.dir.join("model.pt"), fx.dir.join("config.yaml"));
    let (frames, o) = (video.join("frames"), out.display().to_string());
    let log = stdout(&sam2(&[
        "track", "--weights", ckpt.to_str().unwrap(), "--config", yaml.to_str().unwrap(), "--device", "cpu",
        "--frames", frames.to_str().unwrap(), "--no-fill-holes", "--save-logits", "--out", &o,
        "--prompt", "0:1:point:20,38,1", "--prompt", "0:2:box:70,70,98,98", "--prompt", "0:1:point:45,62,0",
    ]));
    assert!(log.contains("wrote 10 frames x 2 objects"), "{log}");

    let scenario = meta["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "two_objects").unwrap();
    let ops = scenario["ops"].as_array().unwrap();
    // What the reference last computed for each (frame, object) is what the CLI reports.
    let mut latest = std::collections::BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        for call in op["calls"].as_array().unwrap().iter().filter(|c| c["kind"] == "frame") {
            latest.insert((call["frame"].as_u64().unwrap(), call["obj"].as_u64().unwrap()), (i, call.clone()));
        }
    }
    assert_eq!(latest.len(), 20, "every frame of both objects");
    let scores: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("scores.json")).unwrap()).unwrap();
    let mut worst = 0.0f32;
    for ((frame, obj), (op, call)) in &latest {
        let key = format!("two_objects/{op:02}/f{frame:03}/o{obj}/pred_masks");
        let (got_shape, got) = npy(&out.join(format!("{frame:05}_{obj}.npy")));
        if call["pred_masks_all_no_obj"].as_bool() == Some(true) {
            assert!(got.iter().all(|&v| v == -1024.0), "{key}: the reference has no object there");
        } else {
            let (shape, want) = expected.tensor_f32(&key).unwrap();
            assert_eq!(got_shape, shape[2..]);
            worst = worst.max(max_abs_diff(&key, (&got_shape, &got), (&got_shape, &want)));
        }
        let score = scores["frames"][*frame as usize]["scores"][obj.to_string()].as_f64().unwrap();
        assert!((score - call["object_score"].as_f64().unwrap()).abs() < 2e-3, "{key}: object score {score}");
    }
    assert!(worst < 2e-3, "low-res logits differ by {worst}");
    // Video-resolution masks: the reference's logits thresholded at 0 (pixels within 1e-2 of the
    // threshold may go either way).
    let propagate = ops.iter().find(|op| op["op"] == "propagate_in_video").unwrap();
    for rec in propagate["result"]["video_res_masks"].as_array().unwrap() {
        let frame = rec["frame_idx"].as_u64().unwrap();
        let (shape, logits) = expected.tensor_f32(rec["key"].as_str().unwrap()).unwrap();
        let (h, w) = (shape[2], shape[3]);
        for (i, obj) in [1, 2].iter().enumerate() {
            let png = image::open(out.join(format!("{frame:05}_{obj}.png"))).unwrap().to_luma8();
            assert_eq!((png.width() as usize, png.height() as usize), (w, h));
            let plane = &logits[i * h * w..(i + 1) * h * w];
            let wrong = png.as_raw().iter().zip(plane).filter(|(p, l)| (**p == 255) != (**l > 0.0) && l.abs() > 1e-2).count();
            assert_eq!(wrong, 0, "frame {frame} object {obj}: {wrong} mask pixels differ");
            assert!(png.as_raw().iter().all(|p| *p == 0 || *p == 255));
        }
    }
    std::fs::remove_dir_all(out).ok();
}
