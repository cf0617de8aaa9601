//! Pure helpers of the automatic mask generator, after Meta's `sam2/utils/amg.py`: point grids,
//! crop boxes, stability scores, mask boxes, the crop-edge test, uncropping, box NMS and
//! small-region removal. Run-length encoding lives in [`super::rle`].
//!
//! Masks are row-major `[h, w]` boolean slices; boxes are `[x0, y0, x1, y1]`. Mask boxes
//! ([`mask_to_box`]) use inclusive pixel indices, crop boxes exclusive ends, as in Meta's code.

use super::components::connected_components;
use crate::error::{Error, Result};

/// A crop of the image, `[x0, y0, x1, y1]` in pixels (`x1`, `y1` exclusive).
pub type CropBox = [usize; 4];

/// `n_per_side²` points evenly spaced in `[0, 1]²`, row by row (x varies fastest), at the
/// centres of an `n × n` grid of cells (`build_point_grid`; float64 like numpy's `linspace`).
pub fn build_point_grid(n_per_side: usize) -> Vec<[f64; 2]> {
    let n = n_per_side;
    let offset = 1.0 / (2 * n) as f64;
    let (start, stop) = (offset, 1.0 - offset);
    let step = if n > 1 { (stop - start) / (n - 1) as f64 } else { 0.0 };
    let side: Vec<f64> = (0..n).map(|i| if n > 1 && i == n - 1 { stop } else { i as f64 * step + start }).collect();
    side.iter().flat_map(|&y| side.iter().map(move |&x| [x, y])).collect()
}

/// One grid per crop layer `0..=n_layers`; layer `i` has `int(n_per_side / scale_per_layer^i)`
/// points per side (`build_all_layer_point_grids`).
pub fn build_all_layer_point_grids(n_per_side: usize, n_layers: usize, scale_per_layer: usize) -> Vec<Vec<[f64; 2]>> {
    (0..=n_layers)
        .map(|i| {
            let scale = (scale_per_layer as f64).powi(i as i32);
            build_point_grid((n_per_side as f64 / scale) as usize)
        })
        .collect()
}

/// Grid points (in `[0, 1]²`) scaled to a `w × h` crop, as float32 pixels (Meta multiplies in
/// float64, then the generator casts to float32).
pub fn scale_grid(grid: &[[f64; 2]], w: usize, h: usize) -> Vec<[f32; 2]> {
    grid.iter().map(|&[x, y]| [(x * w as f64) as f32, (y * h as f64) as f32]).collect()
}

/// Crop boxes and their layer index (`generate_crop_boxes`): the whole image (layer 0), then
/// for layer `i` in `1..=n_layers` a `2^i × 2^i` set of overlapping crops, column by column
/// (every y for the first x, then the next x).
pub fn generate_crop_boxes(width: usize, height: usize, n_layers: usize, overlap_ratio: f64) -> (Vec<CropBox>, Vec<usize>) {
    let mut boxes = vec![[0, 0, width, height]];
    let mut layers = vec![0];
    let short_side = width.min(height) as f64;
    let crop_len = |orig: usize, n: usize, overlap: usize| (((overlap * (n - 1) + orig) as f64) / n as f64).ceil() as usize;
    for layer in 0..n_layers {
        let n = 1usize << (layer + 1);
        let overlap = (overlap_ratio * short_side * (2.0 / n as f64)) as usize;
        let (cw, ch) = (crop_len(width, n, overlap), crop_len(height, n, overlap));
        for i in 0..n {
            for j in 0..n {
                let (x0, y0) = ((cw - overlap) * i, (ch - overlap) * j);
                boxes.push([x0, y0, (x0 + cw).min(width), (y0 + ch).min(height)]);
                layers.push(layer + 1);
            }
        }
    }
    (boxes, layers)
}

/// Meta's stability score of one mask's logits: the IoU of the masks thresholded at
/// `mask_threshold + offset` and `mask_threshold - offset` (one contains the other), i.e.
/// `count(v > hi) / count(v > lo)`, in float32 like torch (NaN for an empty low mask).
pub fn calculate_stability_score(logits: &[f32], mask_threshold: f64, offset: f64) -> f32 {
    let (hi, lo) = ((mask_threshold + offset) as f32, (mask_threshold - offset) as f32);
    let (mut inter, mut union) = (0u32, 0u32);
    for &v in logits {
        inter += u32::from(v > hi);
        union += u32::from(v > lo);
    }
    inter as f32 / union as f32
}

/// `[x0, y0, x1, y1]` of the set pixels of a row-major `[h, w]` mask, inclusive pixel indices
/// (`batched_mask_to_box`); `[0, 0, 0, 0]` for an empty mask. Errors if `mask.len() != w * h`.
pub fn mask_to_box(mask: &[bool], w: usize, h: usize) -> Result<[usize; 4]> {
    if w.checked_mul(h) != Some(mask.len()) {
        return Err(Error::Input(format!("mask has {} values; expected {w}x{h}", mask.len())));
    }
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, row) in mask.chunks_exact(w.max(1)).enumerate() {
        if let (Some(first), Some(last)) = (row.iter().position(|&v| v), row.iter().rposition(|&v| v)) {
            (x0, x1, y0, y1) = (x0.min(first), x1.max(last), y0.min(y), y);
        }
    }
    Ok(if x0 == usize::MAX { [0; 4] } else { [x0, y0, x1, y1] })
}

/// Whether a box in crop coordinates touches (within `atol` pixels) an edge of its crop that is
/// not also an edge of the whole image `orig_box` (`is_box_near_crop_edge`; Meta uses 20).
pub fn is_box_near_crop_edge(bbox: [usize; 4], crop: CropBox, orig_box: CropBox, atol: f32) -> bool {
    let b = uncrop_box(bbox, crop);
    (0..4).any(|k| {
        let near = |edge: usize| (b[k] as f32 - edge as f32).abs() <= atol;
        near(crop[k]) && !near(orig_box[k])
    })
}

/// A box in crop coordinates moved to image coordinates (`uncrop_boxes_xyxy`).
pub fn uncrop_box(b: [usize; 4], crop: CropBox) -> [usize; 4] {
    [b[0] + crop[0], b[1] + crop[1], b[2] + crop[0], b[3] + crop[1]]
}

/// A point in crop pixels moved to image pixels (`uncrop_points`, float32).
pub fn uncrop_point([x, y]: [f32; 2], crop: CropBox) -> [f32; 2] {
    [x + crop[0] as f32, y + crop[1] as f32]
}

/// A crop-size mask `[y1 - y0, x1 - x0]` placed into an empty `[orig_h, orig_w]` mask
/// (`uncrop_masks`). Errors if the sizes do not fit.
pub fn uncrop_mask(mask: &[bool], crop: CropBox, orig_w: usize, orig_h: usize) -> Result<Vec<bool>> {
    let [x0, y0, x1, y1] = crop;
    let (cw, ch) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
    if x1 > orig_w || y1 > orig_h || cw * ch != mask.len() || cw == 0 {
        return Err(Error::Input(format!("a {} pixel mask does not fit crop {crop:?} of a {orig_w}x{orig_h} image", mask.len())));
    }
    let mut out = vec![false; orig_w * orig_h];
    for (y, row) in mask.chunks_exact(cw).enumerate() {
        out[(y0 + y) * orig_w + x0..][..cw].copy_from_slice(row);
    }
    Ok(out)
}

/// Non-maximum suppression of `[x0, y0, x1, y1]` boxes: the indices kept, highest score first.
///
/// torchvision's `batched_nms` with one category (what Meta calls), in float32: boxes are
/// visited by score, descending, ties in index order (a stable sort); a box is dropped when
/// its IoU with an already kept box is `> iou_threshold` (compared in float64; areas are
/// `(x1 - x0) * (y1 - y0)`, so a one-pixel mask box has area 0 and IoU NaN: never dropped).
/// For more than 1000 boxes torchvision re-sorts the kept ones with an unstable sort: the
/// same boxes, but equal scores may come in another order there. Errors on a length mismatch.
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], iou_threshold: f64) -> Result<Vec<usize>> {
    if boxes.len() != scores.len() {
        return Err(Error::Input(format!("{} boxes but {} scores", boxes.len(), scores.len())));
    }
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // NaN first, like torch's descending sort; -0.0 == 0.0 keeps index order.
    let key = |i: usize| if scores[i] == 0.0 { 0.0 } else { scores[i] };
    order.sort_by(|&i, &j| key(j).total_cmp(&key(i)));
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let (bi, area_i) = (boxes[i], area(&boxes[i]));
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = boxes[j];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(0.0);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(0.0);
            let inter = w * h;
            let iou = inter / (area_i + area(&bj) - inter);
            if f64::from(iou) > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    Ok(keep)
}

/// What [`remove_small_regions`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionMode {
    /// Fill background regions (8-connected) smaller than the threshold.
    Holes,
    /// Drop foreground regions (8-connected) smaller than the threshold; if all are small, keep
    /// the largest (the first in raster order among equals).
    Islands,
}

/// Meta's `remove_small_regions` (`cv2.connectedComponentsWithStats`, 8-connectivity) on a
/// row-major `[h, w]` mask: regions with area `< area_thresh` are removed. Returns the new mask
/// and whether anything changed.
pub fn remove_small_regions(mask: &[bool], w: usize, h: usize, area_thresh: f64, mode: RegionMode) -> Result<(Vec<bool>, bool)> {
    let holes = mode == RegionMode::Holes;
    let working: Vec<bool> = mask.iter().map(|&v| v != holes).collect();
    let (labels, areas) = connected_components(&working, w, h)?;
    let n = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut sizes = vec![0u32; n + 1];
    for (&l, &a) in labels.iter().zip(&areas) {
        sizes[l as usize] = a;
    }
    let small: Vec<bool> = sizes.iter().map(|&s| f64::from(s) < area_thresh).collect();
    if !small[1..].contains(&true) {
        return Ok((mask.to_vec(), false));
    }
    // Labels that end up set: label 0 is the working mask's background.
    let mut set: Vec<bool> = if holes {
        (0..=n).map(|l| l == 0 || small[l]).collect()
    } else {
        (0..=n).map(|l| l > 0 && !small[l]).collect()
    };
    if !holes && !set.contains(&true) {
        let largest = (1..=n).fold(1, |best, l| if sizes[l] > sizes[best] { l } else { best });
        set[largest] = true;
    }
    Ok((labels.iter().map(|&l| set[l as usize]).collect(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_grids_match_numpy_linspace() {
        assert_eq!(build_point_grid(1), vec![[0.5, 0.5]]);
        let g = build_point_grid(4);
        assert_eq!(g.len(), 16);
        assert_eq!(g[0], [0.125, 0.125]);
        assert_eq!(g[1], [0.375, 0.125]);
        assert_eq!(g[15], [0.875, 0.875]);
        let layers = build_all_layer_point_grids(32, 2, 2);
        assert_eq!(layers.iter().map(Vec::len).collect::<Vec<_>>(), [1024, 256, 64]);
        assert_eq!(build_all_layer_point_grids(5, 1, 2)[1].len(), 4);
        assert_eq!(scale_grid(&[[0.5, 0.25]], 317, 269), vec![[158.5, 67.25]]);
    }

    #[test]
    fn crop_boxes_use_each_side_for_its_own_length() {
        let (boxes, layers) = generate_crop_boxes(317, 269, 1, 512.0 / 1500.0);
        // overlap = int(0.3413 * 269 * 1) = 91; crop_w = ceil((91 + 317) / 2) = 204,
        // crop_h = ceil((91 + 269) / 2) = 180 (not the width: candle's bug).
        assert_eq!(boxes, vec![[0, 0, 317, 269], [0, 0, 204, 180], [0, 89, 204, 269], [113, 0, 317, 180], [113, 89, 317, 269]]);
        assert_eq!(layers, vec![0, 1, 1, 1, 1]);
        assert_eq!(generate_crop_boxes(100, 50, 2, 0.0).0.len(), 1 + 4 + 16);
    }

    #[test]
    fn stability_boxes_and_edges() {
        let logits = [3.0, 0.5, -0.5, 1.5, 2.0, -3.0];
        // > 1: {3, 1.5, 2} = 3; > -1: five values.
        assert_eq!(calculate_stability_score(&logits, 0.0, 1.0), 0.6);
        assert!(calculate_stability_score(&[-5.0; 4], 0.0, 1.0).is_nan());
        let mask = [false, false, false, false, false, true, true, false, false, true, false, false];
        assert_eq!(mask_to_box(&mask, 4, 3).unwrap(), [1, 1, 2, 2]);
        assert_eq!(mask_to_box(&[false; 6], 3, 2).unwrap(), [0; 4]);
        assert!(mask_to_box(&[false; 5], 3, 2).is_err());
        let (crop, orig) = ([100, 0, 300, 200], [0, 0, 400, 200]);
        assert!(is_box_near_crop_edge([5, 50, 60, 90], crop, orig, 20.0), "left crop edge");
        assert!(!is_box_near_crop_edge([30, 0, 60, 199], crop, orig, 20.0), "top/bottom are image edges");
        assert!(is_box_near_crop_edge([30, 30, 185, 90], crop, orig, 20.0), "right crop edge");
        assert_eq!(uncrop_point([1.5, 2.0], crop), [101.5, 2.0]);
        let big = uncrop_mask(&[true, false, true, true], [1, 1, 3, 3], 4, 3).unwrap();
        assert_eq!(big.iter().map(|&v| u8::from(v)).collect::<Vec<_>>(), [0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0]);
        assert!(uncrop_mask(&[true; 4], [3, 1, 5, 3], 4, 3).is_err());
    }

    #[test]
    fn nms_is_stable_and_strict() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 3.0], [20.0, 0.0, 30.0, 10.0], [0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]];
        let scores = [0.5, 0.9, 0.5, 0.5, 0.1, 0.2];
        // IoU(0, 1) = 0.3 (as float32 0.30000001 > 0.3 as float64); 3 equals 0; the two empty
        // boxes have IoU NaN and both stay.
        assert_eq!(nms(&boxes, &scores, 0.3).unwrap(), [1, 2, 5, 4]);
        assert_eq!(nms(&boxes, &scores, 0.31).unwrap(), [1, 0, 2, 5, 4]);
        assert_eq!(nms(&boxes, &scores, 1.0).unwrap(), [1, 0, 2, 3, 5, 4]);
        assert!(nms(&boxes, &scores[1..], 0.5).is_err());
    }

    #[test]
    fn small_holes_and_islands() {
        let rows = ["#####.....", "#.###.....", "#####...#.", "..........", "......##..", "......##.."];
        let mask: Vec<bool> = rows.iter().flat_map(|r| r.bytes().map(|b| b == b'#')).collect();
        let (filled, changed) = remove_small_regions(&mask, 10, 6, 2.0, RegionMode::Holes).unwrap();
        assert!(changed && filled[11] && filled.iter().filter(|&&v| v).count() == 20);
        let (cleaned, changed) = remove_small_regions(&mask, 10, 6, 2.0, RegionMode::Islands).unwrap();
        assert!(changed && !cleaned[28] && cleaned.iter().filter(|&&v| v).count() == 18);
        assert_eq!(remove_small_regions(&mask, 10, 6, 1.0, RegionMode::Islands).unwrap(), (mask.clone(), false));
        // All islands small: the largest stays.
        let (largest, _) = remove_small_regions(&mask, 10, 6, 100.0, RegionMode::Islands).unwrap();
        assert_eq!(largest.iter().filter(|&&v| v).count(), 14);
    }
}
