//! Segment-everything parity with Meta's `SAM2AutomaticMaskGenerator`, on the fixtures of
//! `tools/reference/make_amg_fixtures.py` (`tests/fixtures/<model>/amg/`).
//!
//! The pure stages run on the reference's own decoder outputs (the recorded pre-filter
//! tensors): grids, crop boxes, stability scores, filters, boxes, NMS and COCO RLE must then
//! reproduce the reference's records exactly. The generator, running the model itself, must
//! give the same masks in the same order (IoU >= 0.99 each) with scores within 1e-3.

mod common;

use common::{Fixture, fixture_dir};
use sam2_webgpu::predictor::ImageRef;
use sam2_webgpu::predictor::amg::{CropBox, build_all_layer_point_grids, calculate_stability_score, generate_crop_boxes, scale_grid};
use sam2_webgpu::error::Error;
use sam2_webgpu::predictor::automatic::{AmgOptions, AmgProgress, AmgRecord, AutomaticMaskGenerator, OutputMode, Segmentation};
use sam2_webgpu::predictor::rle::Rle;
use sam2_webgpu::weights::Checkpoint;
use serde_json::Value;

/// `(model, cases.json, expected.safetensors if any)` of every model with an `amg/` folder.
fn amg_fixtures() -> Vec<(String, Value, Option<Checkpoint>)> {
    let mut out = Vec::new();
    for model in ["sam2.1_hiera_reduced", "sam2_hiera_reduced"] {
        let dir = fixture_dir(model).join("amg");
        let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).expect("amg/cases.json")).expect("parses");
        let tensors = dir.join("expected.safetensors");
        let expected = tensors.exists().then(|| Checkpoint::from_path(tensors).expect("amg/expected.safetensors"));
        out.push((model.to_string(), cases, expected));
    }
    out
}

/// Meta's generator arguments (by name, as recorded) as [`AmgOptions`].
fn options(p: &Value) -> AmgOptions {
    let f = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("param {k}"));
    let u = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("param {k}")) as usize;
    assert!(p["point_grids"].is_null());
    AmgOptions {
        points_per_side: p["points_per_side"].as_u64().map(|v| v as usize),
        points_per_batch: u("points_per_batch"),
        pred_iou_thresh: f("pred_iou_thresh"),
        stability_score_thresh: f("stability_score_thresh"),
        stability_score_offset: f("stability_score_offset"),
        mask_threshold: f("mask_threshold"),
        box_nms_thresh: f("box_nms_thresh"),
        crop_n_layers: u("crop_n_layers"),
        crop_nms_thresh: f("crop_nms_thresh"),
        crop_overlap_ratio: f("crop_overlap_ratio"),
        crop_n_points_downscale_factor: u("crop_n_points_downscale_factor"),
        point_grids: None,
        min_mask_region_area: f("min_mask_region_area") as f32,
        output_mode: match p["output_mode"].as_str() {
            Some("coco_rle") => OutputMode::CocoRle,
            Some("uncompressed_rle") => OutputMode::UncompressedRle,
            _ => OutputMode::BinaryMask,
        },
        use_m2m: p["use_m2m"].as_bool().expect("use_m2m"),
        multimask_output: p["multimask_output"].as_bool().expect("multimask_output"),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn crop_boxes(v: &Value) -> Vec<CropBox> {
    v.as_array().unwrap().iter().map(|b| { let f = floats(b); [f[0], f[1], f[2], f[3]].map(|x| x as usize) }).collect()
}

/// Asserts our records equal the reference's (same order): masks, scores, boxes, points.
pub fn assert_same_records(what: &str, ours: &[AmgRecord], theirs: &Value) {
    let theirs = theirs.as_array().expect("records");
    assert_eq!(ours.len(), theirs.len(), "{what}: number of records");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let Segmentation::CocoRle { size, counts } = &a.segmentation else { panic!("coco_rle output") };
        let want_size = floats(&b["segmentation"]["size"]);
        assert_eq!([size[0] as f64, size[1] as f64], [want_size[0], want_size[1]], "{what}[{i}] size");
        assert_eq!(counts, b["segmentation"]["counts"].as_str().unwrap(), "{what}[{i}] counts");
        assert_eq!(a.area, b["area"].as_u64().unwrap(), "{what}[{i}] area");
        assert_eq!(a.bbox.to_vec(), floats(&b["bbox"]), "{what}[{i}] bbox");
        assert_eq!(a.crop_box.to_vec(), floats(&b["crop_box"]), "{what}[{i}] crop_box");
        assert_eq!(a.predicted_iou, b["predicted_iou"].as_f64().unwrap() as f32, "{what}[{i}] predicted_iou");
        let point = floats(&b["point_coords"][0]);
        assert_eq!(a.point_coords, [point[0] as f32, point[1] as f32], "{what}[{i}] point");
        let ds = (f64::from(a.stability_score) - b["stability_score"].as_f64().unwrap()).abs();
        assert!(ds <= 1e-6, "{what}[{i}] stability differs by {ds}");
    }
}

#[test]
fn crop_boxes_and_grids_match_the_reference() {
    for (model, doc, _) in amg_fixtures() {
        let (w, h) = (doc["image"]["width"].as_u64().unwrap() as usize, doc["image"]["height"].as_u64().unwrap() as usize);
        for case in doc["cases"].as_array().unwrap() {
            let name = format!("{model}/{}", case["name"].as_str().unwrap());
            let opts = options(&case["params"]);
            let (boxes, layers) = generate_crop_boxes(w, h, opts.crop_n_layers, opts.crop_overlap_ratio);
            assert_eq!(boxes, crop_boxes(&case["crop_boxes"]), "{name}: crop boxes");
            let want_layers: Vec<usize> = floats(&case["layer_idxs"]).iter().map(|&v| v as usize).collect();
            assert_eq!(layers, want_layers, "{name}: layers");
            let Some(batches) = case["batches"].as_array() else { continue };
            let grids = build_all_layer_point_grids(opts.points_per_side.unwrap(), opts.crop_n_layers, opts.crop_n_points_downscale_factor);
            for (c, crop) in boxes.iter().enumerate() {
                let want: Vec<[f32; 2]> = batches.iter().filter(|b| b["crop"].as_u64() == Some(c as u64))
                    .flat_map(|b| b["points"].as_array().unwrap().iter().map(|p| { let p = floats(p); [p[0] as f32, p[1] as f32] }).collect::<Vec<_>>())
                    .collect();
                let ours = scale_grid(&grids[layers[c]], crop[2] - crop[0], crop[3] - crop[1]);
                assert_eq!(ours, want, "{name}: grid points of crop {c}");
                for b in batches.iter().filter(|b| b["crop"].as_u64() == Some(c as u64)) {
                    assert!(b["points"].as_array().unwrap().len() <= opts.points_per_batch, "{name}: batch size");
                }
            }
        }
    }
}

#[test]
fn prefilter_tensors_reproduce_the_reference_records() {
    let mut checked = 0;
    for (model, doc, expected) in amg_fixtures() {
        let (w, h) = (doc["image"]["width"].as_u64().unwrap() as usize, doc["image"]["height"].as_u64().unwrap() as usize);
        let low = doc["image_size"].as_u64().unwrap() as usize / 4;
        for case in doc["cases"].as_array().unwrap() {
            let Some(batches) = case["batches"].as_array() else { continue };
            let name = format!("{model}/{}", case["name"].as_str().unwrap());
            let expected = expected.as_ref().expect("pre-filter tensors");
            let opts = options(&case["params"]);
            let boxes = crop_boxes(&case["crop_boxes"]);
            let mut all = Vec::new();
            for (c, &crop) in boxes.iter().enumerate() {
                let mut in_crop = Vec::new();
                for (k, b) in batches.iter().enumerate().filter(|(_, b)| b["crop"].as_u64() == Some(c as u64)) {
                    let tensor = |key: &str| expected.tensor_f32(&format!("{}/batch{k}/{key}", case["name"].as_str().unwrap())).expect("batch tensor");
                    let ((_, iou), (_, stability), (_, low_res)) = (tensor("iou_preds"), tensor("stability_score"), tensor("low_res_masks"));
                    let points: Vec<[f32; 2]> = b["points"].as_array().unwrap().iter().map(|p| { let p = floats(p); [p[0] as f32, p[1] as f32] }).collect();
                    let per_point = b["masks_per_point"].as_u64().unwrap() as usize;
                    let kept: Vec<usize> = floats(&b["kept"]).iter().map(|&v| v as usize).collect();
                    assert_eq!(iou.len(), points.len() * per_point, "{name} batch {k}: entries");
                    let ours_kept: Vec<usize> = (0..iou.len()).filter(|&e| opts.passes_iou(iou[e])).collect();
                    assert_eq!(ours_kept, kept, "{name} batch {k}: IoU filter");
                    for (slot, &e) in kept.iter().enumerate() {
                        let logits = &low_res[slot * low * low..(slot + 1) * low * low];
                        let plane = opts.crop_logits(logits, low, crop).unwrap();
                        let ours = calculate_stability_score(&plane, opts.mask_threshold, opts.stability_score_offset);
                        assert!((ours - stability[e]).abs() <= 1e-6, "{name} batch {k} entry {e}: stability {ours} vs {}", stability[e]);
                        if let Some(r) = opts.process_mask(logits, low, iou[e], points[e / per_point], crop, (w, h)).unwrap() {
                            in_crop.push(r);
                        }
                    }
                }
                all.extend(opts.nms_within_crop(in_crop).unwrap());
            }
            let records = opts.to_records(opts.nms_across_crops(all, boxes.len()).unwrap()).unwrap();
            assert_same_records(&name, &records, &case["records"]);
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} cases with pre-filter tensors");
}

#[test]
fn reference_records_decode_to_consistent_masks() {
    for (model, doc, _) in amg_fixtures() {
        for case in doc["cases"].as_array().unwrap() {
            for (i, r) in case["records"].as_array().unwrap().iter().enumerate() {
                let size = floats(&r["segmentation"]["size"]);
                let rle = Rle::from_coco_string(r["segmentation"]["counts"].as_str().unwrap(), size[0] as usize, size[1] as usize).unwrap();
                assert_eq!(rle.area(), r["area"].as_u64().unwrap(), "{model}/{}[{i}] area", case["name"]);
                // Meta's box is the inclusive one: pycocotools' w/h minus 1.
                let [x, y, bw, bh] = rle.bbox();
                assert_eq!(vec![x, y, bw - 1.0, bh - 1.0], floats(&r["bbox"]), "{model}/{}[{i}] bbox", case["name"]);
            }
        }
    }
}

/// Same masks in the same order (IoU >= 0.99), scores within 1e-3, boxes within a pixel.
fn assert_close_records(what: &str, ours: &[AmgRecord], theirs: &Value) -> usize {
    let theirs = theirs.as_array().expect("records");
    assert_eq!(ours.len(), theirs.len(), "{what}: number of records");
    let mut exact = 0;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let Segmentation::CocoRle { size, counts } = &a.segmentation else { panic!("coco_rle output") };
        let want = b["segmentation"]["counts"].as_str().unwrap();
        exact += usize::from(counts == want);
        let ours = Rle::from_coco_string(counts, size[0], size[1]).unwrap().to_mask().unwrap();
        let theirs = Rle::from_coco_string(want, size[0], size[1]).unwrap().to_mask().unwrap();
        let inter = ours.iter().zip(&theirs).filter(|(x, y)| **x && **y).count() as f64;
        let union = ours.iter().zip(&theirs).filter(|(x, y)| **x || **y).count() as f64;
        assert!(union == 0.0 || inter / union >= 0.99, "{what}[{i}]: mask IoU {}", inter / union);
        for (key, v) in [("predicted_iou", a.predicted_iou), ("stability_score", a.stability_score)] {
            let d = (f64::from(v) - b[key].as_f64().unwrap()).abs();
            assert!(d <= 1e-3, "{what}[{i}]: {key} differs by {d}");
        }
        let point = floats(&b["point_coords"][0]);
        assert_eq!(a.point_coords, [point[0] as f32, point[1] as f32], "{what}[{i}] point");
        assert_eq!(a.crop_box.to_vec(), floats(&b["crop_box"]), "{what}[{i}] crop_box");
        let bbox = floats(&b["bbox"]);
        assert!(a.bbox.iter().zip(&bbox).all(|(x, y)| (x - y).abs() <= 1.0), "{what}[{i}] bbox {:?} vs {bbox:?}", a.bbox);
    }
    exact
}

fn generator_parity(kind: &str) {
    let device = common::device(kind);
    let mut report = Vec::new();
    for (model, doc, _) in amg_fixtures() {
        let fx = Fixture::open(&model);
        let sam = fx.model(&device);
        let (w, h, rgb) = fx.image("a");
        let image = ImageRef::new(w, h, 3, &rgb).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            let name = format!("{model}/{} [{kind}]", case["name"].as_str().unwrap());
            let mut generator = AutomaticMaskGenerator::new(sam.clone(), options(&case["params"])).unwrap();
            let mut seen = Vec::new();
            let records = generator.generate_with_progress(&image, |p| { seen.push(p); true }).unwrap();
            assert_progress(&name, generator.options(), (w, h), &seen);
            let exact = assert_close_records(&name, &records, &case["records"]);
            report.push(format!("{name}: {} records, {exact} with identical RLE", records.len()));
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// Progress: one report per batch of grid points, counting up to the total over every crop.
fn assert_progress(what: &str, opts: &AmgOptions, (w, h): (usize, usize), seen: &[AmgProgress]) {
    let (crops, layers) = generate_crop_boxes(w, h, opts.crop_n_layers, opts.crop_overlap_ratio);
    let grids = opts.layer_grids().unwrap();
    let per_crop: Vec<usize> = layers.iter().map(|&l| grids[l].len().div_ceil(opts.points_per_batch)).collect();
    let total: usize = per_crop.iter().sum();
    assert_eq!(seen.len(), total, "{what}: progress reports");
    let crop_of = |i: usize| per_crop.iter().scan(0, |acc, &n| { *acc += n; Some(*acc) }).position(|end| i < end).unwrap();
    for (i, p) in seen.iter().enumerate() {
        assert_eq!(*p, AmgProgress { batches_done: i + 1, batches_total: total, crop: crop_of(i), crops: crops.len() }, "{what}: report {i}");
    }
}

#[test]
fn generator_stops_when_the_progress_callback_says_so() {
    let device = common::device("cpu");
    let fx = Fixture::open("sam2.1_hiera_reduced");
    let (w, h, rgb) = fx.image("a");
    let image = ImageRef::new(w, h, 3, &rgb).unwrap();
    let opts = AmgOptions { points_per_side: Some(4), points_per_batch: 4, ..AmgOptions::default() };
    let mut generator = AutomaticMaskGenerator::new(fx.model(&device), opts).unwrap();
    let mut calls = 0;
    let r = generator.generate_with_progress(&image, |p| { calls += 1; p.batches_done < 2 });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert_eq!(calls, 2, "stopped right after the callback said so");
    // The generator is still usable afterwards.
    assert!(generator.generate(&image).is_ok());
}

#[test]
fn generator_matches_the_reference_records_cpu() {
    generator_parity("cpu");
}

#[test]
fn generator_matches_the_reference_records_wgpu() {
    generator_parity("wgpu");
}
