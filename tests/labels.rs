//! Label formats against pycocotools (fixtures of `tools/reference/make_amg_fixtures.py` in
//! `tests/fixtures/labels/`), and polygon / YOLO round trips on the same masks.

mod common;

use common::fixture_dir;
use sam2_webgpu::predictor::labels::coco::CocoAnnotation;
use sam2_webgpu::predictor::labels::yolo::{SegmentStrategy, YoloLabel, parse_yolo_line, yolo_line, yolo_polygon};
use sam2_webgpu::predictor::labels::{mask_to_polygons, rasterize_polygons, rasterize_rings};
use sam2_webgpu::predictor::rle::Rle;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// `(name, h, w, mask, entry)` of every fixture mask; masks not stored are rebuilt from
/// Meta's uncompressed counts.
fn masks() -> Vec<(String, usize, usize, Vec<bool>, Value)> {
    let dir = fixture_dir("labels");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("coco_rle.json")).expect("coco_rle.json")).expect("parses");
    let bytes = std::fs::read(dir.join("masks.safetensors")).expect("masks.safetensors");
    let stored = SafeTensors::deserialize(&bytes).expect("masks.safetensors parses");
    doc["masks"].as_array().unwrap().iter().map(|m| {
        let (h, w) = (m["height"].as_u64().unwrap() as usize, m["width"].as_u64().unwrap() as usize);
        let name = m["name"].as_str().unwrap().to_string();
        let mask = if m["stored"].as_bool().unwrap() {
            let t = stored.tensor(&name).expect("stored mask");
            assert_eq!((t.dtype(), t.shape()), (Dtype::U8, &[h, w][..]), "{name}");
            t.data().iter().map(|&x| x != 0).collect()
        } else {
            let counts = m["uncompressed"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect();
            Rle { height: h, width: w, counts }.to_mask().expect("counts decode")
        };
        (name, h, w, mask, m.clone())
    }).collect()
}

#[test]
fn rle_and_coco_strings_equal_pycocotools() {
    let all = masks();
    assert!(all.len() >= 10);
    for (name, h, w, mask, m) in all {
        let rle = Rle::from_mask(&mask, w, h).unwrap();
        let want: Vec<u32> = m["uncompressed"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect();
        assert_eq!(rle.counts, want, "{name}: uncompressed counts (Meta's mask_to_rle_pytorch)");
        let counts = m["counts"].as_str().unwrap();
        assert_eq!(rle.to_coco_string(), counts, "{name}: compressed string");
        assert_eq!(Rle::from_coco_string(counts, h, w).unwrap(), rle, "{name}: decoded string");
        assert_eq!(rle.to_mask().unwrap(), mask, "{name}: mask back");
        assert_eq!(rle.area(), m["area"].as_u64().unwrap(), "{name}: area");
        let bbox: Vec<f64> = m["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(rle.bbox().to_vec(), bbox, "{name}: toBbox");
        let ann = CocoAnnotation::from_rle(1, 1, 1, &rle);
        assert_eq!((ann.area, ann.bbox.to_vec()), (rle.area() as f64, bbox), "{name}: annotation");
    }
}

#[test]
fn polygons_round_trip_on_the_fixture_masks() {
    for (name, h, w, mask, _) in masks() {
        let polygons = mask_to_polygons(&mask, w, h, 0.0).unwrap();
        assert_eq!(rasterize_polygons(&polygons, w, h), mask, "{name}: exact outline");
        let area: usize = mask.iter().filter(|&&v| v).count();
        // Simplifying by up to `tol` pixels moves the outline by about tol/2 on average: a
        // small loss on large shapes, a larger one on small shapes (IoU ~ 1 - perimeter·tol/2/area).
        for tol in [0.5, 1.0] {
            let simple = mask_to_polygons(&mask, w, h, tol).unwrap();
            let back = rasterize_polygons(&simple, w, h);
            let inter = back.iter().zip(&mask).filter(|(a, b)| **a && **b).count() as f64;
            let union = back.iter().zip(&mask).filter(|(a, b)| **a || **b).count() as f64;
            if area > 0 && (tol <= 0.5 || area >= 1000) {
                assert!(inter / union >= 0.98, "{name}: IoU {} at tolerance {tol}", inter / union);
            }
        }
    }
}

#[test]
fn yolo_lines_parse_back_to_the_outline() {
    for (name, h, w, mask, _) in masks() {
        let Some(polygon) = yolo_polygon(&mask, w, h, SegmentStrategy::All, 0.0).unwrap() else {
            assert!(!mask.contains(&true), "{name}: empty only for empty masks");
            continue;
        };
        let line = yolo_line(4, &polygon, w, h);
        let YoloLabel::Segment { class, points } = parse_yolo_line(&line).unwrap() else { panic!("{name}: segment") };
        assert_eq!(class, 4);
        let pixels: Vec<[f64; 2]> = points.iter().map(|&[x, y]| [x * w as f64, y * h as f64]).collect();
        let back = rasterize_rings([&pixels], w, h);
        // Holes are not representable in YOLO: compare with the mask with holes filled.
        let filled = rasterize_polygons(&mask_to_polygons(&mask, w, h, 0.0).unwrap().into_iter().map(|mut p| { p.holes.clear(); p }).collect::<Vec<_>>(), w, h);
        let differ = back.iter().zip(&filled).filter(|(a, b)| a != b).count();
        assert!(differ * 1000 <= w * h, "{name}: {differ} pixels differ after 6-decimal rounding");
    }
}
