//! The `sam2` command line on the reduced fixtures: `info`, `convert`, `predict`, `track` and
//! `everything` (compared with the reference), `annotate`, and clear errors on bad input.

mod common;

use common::{Fixture, max_abs_diff};
use sam2_webgpu::npy::{read_npy_f32, write_npy_f32};
use sam2_webgpu::predictor::labels::rasterize_rings;
use sam2_webgpu::predictor::labels::yolo::{YoloLabel, parse_yolo_line};
use sam2_webgpu::predictor::rle::Rle;
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
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

/// The generator flags for the parameters of an amg fixture case (Meta's names).
fn generator_flags(params: &serde_json::Value) -> Vec<String> {
    let mut args = Vec::new();
    for key in ["points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "mask_threshold", "box_nms_thresh",
        "crop_n_layers", "crop_nms_thresh", "crop_overlap_ratio", "crop_n_points_downscale_factor", "min_mask_region_area"] {
        args.extend([format!("--{}", key.replace('_', "-")), params[key].to_string()]);
    }
    if params["use_m2m"].as_bool().unwrap() {
        args.push("--use-m2m".into());
    }
    if !params["multimask_output"].as_bool().unwrap() {
        args.push("--no-multimask".into());
    }
    args
}

/// A case of `amg/cases.json`.
fn amg_case(fx: &Fixture, name: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.dir.join("amg/cases.json")).unwrap()).unwrap();
    doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone()
}

/// `sam2 everything` with the thresholds of amg fixture cases: the COCO file holds the
/// reference's records (same compressed RLE strings in the same order, scores, points).
#[test]
fn everything_writes_the_reference_masks_as_coco() {
    let fx = Fixture::open(FIXTURE);
    let image = fx.dir.join("image_a.png");
    for name in ["grid", "m2m"] {
        let case = amg_case(&fx, name);
        let out = out_dir(&format!("everything-{name}"));
        let mut args: Vec<String> = ["everything", "--weights", fx.dir.join("model.pt").to_str().unwrap(), "--config", fx.dir.join("config.yaml").to_str().unwrap()].map(String::from).into();
        args.extend(["--device", "cpu", "--image", image.to_str().unwrap(), "--out", out.to_str().unwrap()].map(String::from));
        args.extend(generator_flags(&case["params"]));
        let log = stdout(&sam2(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        let records = case["records"].as_array().unwrap();
        assert!(!records.is_empty() && log.contains(&format!("{} masks", records.len())), "{name}: {log}");

        let coco: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("annotations.json")).unwrap()).unwrap();
        assert_eq!(coco["images"][0]["file_name"], "image_a.png");
        assert_eq!((coco["images"][0]["width"].as_u64(), coco["images"][0]["height"].as_u64()), (Some(317), Some(269)));
        assert_eq!(coco["categories"].as_array().unwrap().len(), 1);
        let anns = coco["annotations"].as_array().unwrap();
        assert_eq!(anns.len(), records.len(), "{name}: number of masks");
        for (i, (a, r)) in anns.iter().zip(records).enumerate() {
            assert_eq!(a["segmentation"], r["segmentation"], "{name}[{i}]: compressed RLE");
            assert_eq!((a["area"].as_f64(), &a["image_id"], &a["category_id"]), (r["area"].as_f64(), &coco["images"][0]["id"], &coco["categories"][0]["id"]));
            // pycocotools' box counts pixels: Meta's record box + 1 in w and h.
            let (ours, meta) = (a["bbox"].as_array().unwrap(), r["bbox"].as_array().unwrap());
            let want = [meta[0].as_f64().unwrap(), meta[1].as_f64().unwrap(), meta[2].as_f64().unwrap() + 1.0, meta[3].as_f64().unwrap() + 1.0];
            assert_eq!(ours.iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>(), want, "{name}[{i}]: bbox");
            for key in ["predicted_iou", "stability_score"] {
                assert!((a[key].as_f64().unwrap() - r[key].as_f64().unwrap()).abs() <= 1e-3, "{name}[{i}]: {key}");
            }
            assert_eq!(a["point_coords"], r["point_coords"], "{name}[{i}]: point");
        }
        let overlay = image::open(out.join("overlay.png")).unwrap();
        assert_eq!((overlay.width(), overlay.height()), (317, 269));
        std::fs::remove_dir_all(out).ok();
    }
}

/// Normalised `cx cy w h` of a pixel box on a `w × h` image.
fn yolo_box(b: [f64; 4], w: f64, h: f64) -> String {
    format!("{:.6} {:.6} {:.6} {:.6}", (b[0] + b[2]) / 2.0 / w, (b[1] + b[3]) / 2.0 / h, (b[2] - b[0]) / w, (b[3] - b[1]) / h)
}

/// The polygon of a YOLO segmentation line, rasterised at `w × h`, and its class.
fn rasterised_line(line: &str, w: usize, h: usize) -> (usize, Vec<bool>) {
    let YoloLabel::Segment { class, points } = parse_yolo_line(line).unwrap() else { panic!("not a segment: {line}") };
    let ring: Vec<[f64; 2]> = points.iter().map(|p| [p[0] * w as f64, p[1] * h as f64]).collect();
    (class, rasterize_rings([&ring], w, h))
}

/// Pixels of `mask` outside `outline`, and the IoU of the two.
fn cover_and_iou(outline: &[bool], mask: &[bool]) -> (usize, f64) {
    let outside = mask.iter().zip(outline).filter(|(m, o)| **m && !**o).count();
    let inter = mask.iter().zip(outline).filter(|(m, o)| **m && **o).count() as f64;
    let union = mask.iter().zip(outline).filter(|(m, o)| **m || **o).count() as f64;
    (outside, inter / union)
}

/// `sam2 annotate` with YOLO box labels: every kept box becomes a line whose polygon outlines
/// the mask SAM gives for that box (random weights: the masks do not follow the boxes, so the
/// check is against `predict` with the same box); a bad line, a class out of range, a missing
/// label file and an unreadable image are reported per file while the others are written.
#[test]
fn annotate_segments_label_boxes_and_reports_bad_files() {
    let fx = Fixture::open(FIXTURE);
    let dir = out_dir("annotate");
    let (images, labels, out) = (dir.join("images"), dir.join("labels"), dir.join("out"));
    for d in [&images, &labels] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(fx.dir.join("image_a.png"), images.join("a.png")).unwrap();
    std::fs::copy(fx.dir.join("image_b.png"), images.join("b.png")).unwrap();
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    std::fs::copy(fx.dir.join("image_b.png"), images.join("c.png")).unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    let (wa, ha, rgb_a) = fx.image("a");
    let (wb, hb, rgb_b) = fx.image("b");
    let (box_a0, box_a1, box_b) = ([60.0, 50.0, 230.0, 200.0], [150.0, 40.0, 300.0, 250.0], [10.0, 20.0, 80.0, 110.0]);
    let (fa, fb) = ((wa as f64, ha as f64), (wb as f64, hb as f64));
    // a: the less confident box first, a bad line between; b: a class out of range (0..3) and a
    // box below --conf.
    std::fs::write(labels.join("a.txt"), format!("2 {} 0.8\nnot a label\n0 {} 0.9\n", yolo_box(box_a1, fa.0, fa.1), yolo_box(box_a0, fa.0, fa.1))).unwrap();
    std::fs::write(labels.join("b.txt"), format!("7 {} 0.9\n1 {}\n1 {} 0.1\n", yolo_box(box_b, fb.0, fb.1), yolo_box(box_b, fb.0, fb.1), yolo_box(box_a0, 317.0, 269.0))).unwrap();
    let (c, y) = (fx.dir.join("model.pt"), fx.dir.join("config.yaml"));
    let o = sam2(&["annotate", "--weights", c.to_str().unwrap(), "--config", y.to_str().unwrap(), "--device", "cpu", "--images", images.to_str().unwrap(),
        "--labels", labels.to_str().unwrap(), "--num-classes", "3", "--conf", "0.5", "--out", out.to_str().unwrap()]);
    let (log, err) = (stdout(&o), String::from_utf8_lossy(&o.stderr).into_owned());
    for want in ["[1/4] a.png: 2 objects", "[2/4] b.png: 1 objects", "[3/4] broken.png: skipped", "[4/4] c.png: skipped", "labelled 2 of 4 images (4 with errors)"] {
        assert!(log.contains(want), "{want:?} not in {log}");
    }
    for want in ["a.png: invalid input:", "a.txt: line 2: class id", "b.txt: line 1: class id 7 is out of range (0..3)", "broken.png: invalid input", "c.txt: no readable label file"] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    assert!(!out.join("broken.txt").exists() && !out.join("c.txt").exists());

    let predictor_for = |w: usize, h: usize, rgb: &[u8]| {
        let mut p = ImagePredictor::new(fx.model(&common::device("cpu")));
        p.set_image(&ImageRef::new(w, h, 3, rgb).unwrap()).unwrap();
        p
    };
    let expect = |p: &ImagePredictor, b: [f64; 4], w: usize, h: usize| -> Vec<bool> {
        // The box as the label file gives it (6 decimals), back in pixels.
        let line = yolo_box(b, w as f64, h as f64);
        let v: Vec<f64> = line.split(' ').map(|t| t.parse().unwrap()).collect();
        let bbox = [(v[0] - v[2] / 2.0) * w as f64, (v[1] - v[3] / 2.0) * h as f64, (v[0] + v[2] / 2.0) * w as f64, (v[1] + v[3] / 2.0) * h as f64].map(|x| x as f32);
        let pred = p.predict(&[Prompt { bbox: Some(bbox), ..Prompt::default() }], PredictOptions { multimask_output: false, return_logits: false }).unwrap();
        pred[0].masks.iter().map(|&m| m != 0).collect()
    };
    let pa = predictor_for(wa, ha, &rgb_a);
    let pb = predictor_for(wb, hb, &rgb_b);
    let a_txt = std::fs::read_to_string(out.join("a.txt")).unwrap();
    let b_txt = std::fs::read_to_string(out.join("b.txt")).unwrap();
    let a_lines: Vec<&str> = a_txt.lines().collect();
    let b_lines: Vec<&str> = b_txt.lines().collect();
    assert_eq!((a_lines.len(), b_lines.len()), (2, 1));
    // Most confident first.
    for (line, class, mask, (w, h)) in [(a_lines[0], 0, expect(&pa, box_a0, wa, ha), (wa, ha)), (a_lines[1], 2, expect(&pa, box_a1, wa, ha), (wa, ha)), (b_lines[0], 1, expect(&pb, box_b, wb, hb), (wb, hb))] {
        let (got_class, outline) = rasterised_line(line, w, h);
        let (outside, iou) = cover_and_iou(&outline, &mask);
        assert_eq!(got_class, class);
        // The outline encloses the mask (holes are not part of YOLO polygons).
        assert!(outside == 0 && iou >= 0.9, "class {class}: {outside} mask pixels outside the polygon, IoU {iou}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// `sam2 annotate` without labels segments everything and labels every mask class 0; it fails
/// only when no image can be processed.
#[test]
fn annotate_without_labels_segments_everything() {
    let fx = Fixture::open(FIXTURE);
    let dir = out_dir("annotate-everything");
    let (images, out, empty) = (dir.join("images"), dir.join("out"), dir.join("empty"));
    for d in [&images, &empty] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(fx.dir.join("image_a.png"), images.join("a.png")).unwrap();
    let case = amg_case(&fx, "grid");
    let (c, y) = (fx.dir.join("model.pt"), fx.dir.join("config.yaml"));
    let base = ["annotate", "--weights", c.to_str().unwrap(), "--config", y.to_str().unwrap(), "--device", "cpu", "--out", out.to_str().unwrap()];
    let mut args: Vec<String> = base.map(String::from).into();
    args.extend(["--images".to_string(), images.display().to_string()]);
    args.extend(generator_flags(&case["params"]));
    let log = stdout(&sam2(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let records = case["records"].as_array().unwrap();
    assert!(log.contains(&format!("[1/1] a.png: {} objects", records.len())), "{log}");
    let text = std::fs::read_to_string(out.join("a.txt")).unwrap();
    assert_eq!(text.lines().count(), records.len());
    for (line, r) in text.lines().zip(records) {
        let (class, outline) = rasterised_line(line, 317, 269);
        let size = &r["segmentation"]["size"];
        let mask = Rle::from_coco_string(r["segmentation"]["counts"].as_str().unwrap(), size[0].as_u64().unwrap() as usize, size[1].as_u64().unwrap() as usize).unwrap().to_mask().unwrap();
        let (outside, iou) = cover_and_iou(&outline, &mask);
        assert!(class == 0 && outside == 0 && iou >= 0.9, "class {class}, {outside} pixels outside, IoU {iou}");
    }

    // An empty folder, and a folder of unreadable images: errors.
    std::fs::write(images.join("a.png"), b"broken").unwrap();
    for (folder, needle) in [(&empty, "no PNG or JPEG images"), (&images, "no image could be processed")] {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["--images", folder.to_str().unwrap()]);
        let o = sam2(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle) && !err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(dir).ok();
}
