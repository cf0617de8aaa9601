//! Connected components and SAM 2's small-hole / small-sprinkle filling on mask logits.
//!
//! Meta's `get_connected_components` (`sam2/csrc/connected_components.cu`, a block-based
//! union-find) labels **8-connected** components: its `merge` kernel joins a 2×2 block with its
//! top-left, top, top-right and left neighbour blocks whenever any two pixels touch, diagonals
//! included. This module computes the same partition with a sequential union-find.

use crate::error::{Error, Result};

/// Labels the 8-connected components of a row-major `[h, w]` boolean mask (`true` = set).
///
/// Returns `(labels, areas)`, both `[h, w]`: `labels` numbers components `1..=n` in raster
/// order of their first pixel (0 = unset pixel); `areas` holds each set pixel's component size
/// (0 for unset pixels), like the `(labels, counts)` pair of Meta's kernel (whose label values
/// differ but induce the same partition). Errors if `mask.len() != w * h`.
pub fn connected_components(mask: &[bool], w: usize, h: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    if mask.len() != pixels(w, h)? {
        return Err(Error::Input(format!(
            "mask has {} values; expected {w}x{h}",
            mask.len()
        )));
    }
    // Union-find over pixel indices (no recursion): parent[i] == i marks a root, a root is the
    // smallest index of its set (its first pixel in raster order); `find` halves paths.
    let mut parent: Vec<u32> = (0..mask.len() as u32).collect();
    fn find(parent: &mut [u32], mut i: u32) -> u32 {
        while parent[i as usize] != i {
            let p = parent[i as usize];
            parent[i as usize] = parent[p as usize];
            i = parent[i as usize];
        }
        i
    }
    let union = |parent: &mut [u32], a: usize, b: usize| {
        let (ra, rb) = (find(parent, a as u32), find(parent, b as u32));
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        parent[hi as usize] = lo;
    };
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !mask[i] {
                continue;
            }
            // Already-visited 8-neighbours: left, up-left, up, up-right.
            if x > 0 && mask[i - 1] {
                union(&mut parent, i, i - 1);
            }
            if y > 0 {
                let up = i - w;
                let lo = if x > 0 { up - 1 } else { up };
                let hi = if x + 1 < w { up + 1 } else { up };
                for (j, &set) in (lo..=hi).zip(&mask[lo..=hi]) {
                    if set {
                        union(&mut parent, i, j);
                    }
                }
            }
        }
    }
    // Second pass: compact root ids into 1..=n (raster order of roots = of first pixels).
    let (mut labels, mut counts) = (vec![0u32; mask.len()], vec![0u32]);
    for i in 0..mask.len() {
        if mask[i] {
            let root = find(&mut parent, i as u32) as usize;
            if root == i {
                counts.push(0);
                labels[i] = (counts.len() - 1) as u32;
            } else {
                labels[i] = labels[root];
            }
            counts[labels[i] as usize] += 1;
        }
    }
    let areas = labels
        .iter()
        .map(|&l| if l > 0 { counts[l as usize] } else { 0 })
        .collect();
    Ok((labels, areas))
}

/// `w * h`, if it is a usable mask size (non-zero, < 2^32 pixels).
fn pixels(w: usize, h: usize) -> Result<usize> {
    match w.checked_mul(h) {
        Some(n) if n > 0 && n < u32::MAX as usize => Ok(n),
        _ => Err(Error::Input(format!(
            "mask size {w}x{h} must be non-zero and < 2^32 pixels"
        ))),
    }
}

/// Checks `logits` is `[n, h, w]` with `n >= 1`; returns `h * w`.
fn masks(logits: &[f32], w: usize, h: usize) -> Result<usize> {
    let n = pixels(w, h)?;
    if logits.is_empty() || !logits.len().is_multiple_of(n) {
        let len = logits.len();
        return Err(Error::Input(format!(
            "logits have {len} values, not a multiple of {w}x{h}"
        )));
    }
    Ok(n)
}

/// Sets `logits` to `value` on every component of `mask` with `area <= max_area`.
fn replace_small(
    logits: &mut [f32],
    mask: &[bool],
    w: usize,
    h: usize,
    max_area: f32,
    value: f32,
) -> Result<()> {
    let (labels, areas) = connected_components(mask, w, h)?;
    for ((v, &l), &a) in logits.iter_mut().zip(&labels).zip(&areas) {
        // Meta compares the int32 areas with a Python float: both promote to float32.
        if l > 0 && a as f32 <= max_area {
            *v = value;
        }
    }
    Ok(())
}

/// SAM 2 image-predictor post-processing (`SAM2Transforms.postprocess_masks`, before the
/// upsampling) on low-res mask logits `[n, h, w]` (row-major, `n >= 1` masks), in place.
///
/// Per mask, both steps threshold the **input** logits (Meta computes `mask_flat` once):
/// holes = components of `logit <= threshold` with `area <= max_hole_area` become
/// `threshold + 10.0`; sprinkles = components of `logit > threshold` with
/// `area <= max_sprinkle_area` become `threshold - 10.0`. A step runs only if its area is
/// `> 0`. NaN logits belong to neither set. Meta's CUDA kernel only accepts even `h` and `w`
/// (and is absent on CPU installs, where Meta skips the step); this runs for any size.
pub fn fill_holes_and_sprinkles(
    logits: &mut [f32],
    w: usize,
    h: usize,
    threshold: f32,
    max_hole_area: f32,
    max_sprinkle_area: f32,
) -> Result<()> {
    for m in logits.chunks_exact_mut(masks(logits, w, h)?) {
        let fg: Vec<bool> = m.iter().map(|&v| v > threshold).collect();
        if max_hole_area > 0.0 {
            let bg: Vec<bool> = m.iter().map(|&v| v <= threshold).collect();
            replace_small(m, &bg, w, h, max_hole_area, threshold + 10.0)?;
        }
        if max_sprinkle_area > 0.0 {
            replace_small(m, &fg, w, h, max_sprinkle_area, threshold - 10.0)?;
        }
    }
    Ok(())
}

/// SAM 2 video-predictor hole filling (`sam2.utils.misc.fill_holes_in_mask_scores`, used with
/// `fill_hole_area = 8` by SAM 2.1): on mask logits `[n, h, w]`, components of `logit <= 0` with
/// `area <= max_area` become `0.1`, in place. Does nothing unless `max_area > 0`.
pub fn fill_holes_in_mask_scores(
    logits: &mut [f32],
    w: usize,
    h: usize,
    max_area: f32,
) -> Result<()> {
    let n = masks(logits, w, h)?;
    if max_area > 0.0 {
        for m in logits.chunks_exact_mut(n) {
            let bg: Vec<bool> = m.iter().map(|&v| v <= 0.0).collect();
            replace_small(m, &bg, w, h, max_area, 0.1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` of `#` (set) and `.` (unset) → (mask, w, h).
    fn grid(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let mask = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'#'))
            .collect();
        (mask, rows[0].len(), rows.len())
    }

    fn areas(rows: &[&str]) -> Vec<u32> {
        let (m, w, h) = grid(rows);
        connected_components(&m, w, h).unwrap().1
    }

    #[test]
    fn diagonal_pixels_connect_and_labels_are_raster_ordered() {
        let (m, w, h) = grid(&["#..#", ".#..", "...#", "#..#"]);
        let (labels, areas) = connected_components(&m, w, h).unwrap();
        assert_eq!(labels, [1, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 3, 4, 0, 0, 3]);
        assert_eq!(areas, [2, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 2, 1, 0, 0, 2]);
        // The background of a diagonal line is one 8-connected region too.
        let (m, w, h) = grid(&["#...", ".#..", "..#.", "...#"]);
        let bg: Vec<bool> = m.iter().map(|v| !v).collect();
        assert!(
            connected_components(&bg, w, h)
                .unwrap()
                .1
                .iter()
                .all(|&a| a == 0 || a == 12)
        );
    }

    #[test]
    fn empty_full_and_bad_sizes() {
        assert_eq!(areas(&["...", "..."]), [0; 6]);
        assert_eq!(areas(&["###", "###"]), [6; 6]);
        assert!(connected_components(&[], 0, 0).is_err());
        assert!(connected_components(&[true; 5], 2, 3).is_err());
        assert!(connected_components(&[true; 12], 2, 3).is_err());
        assert!(connected_components(&[true; 4], usize::MAX, 2).is_err());
        let mut logits = [0.0f32; 7];
        assert!(fill_holes_and_sprinkles(&mut logits, 2, 3, 0.0, 1.0, 1.0).is_err());
        assert!(fill_holes_in_mask_scores(&mut logits, 0, 7, 1.0).is_err());
    }

    /// Masks, labels and areas from an emulation of Meta's CUDA kernel
    /// (tools/reference/make_transform_fixtures.py `cuda_connected_components`).
    #[test]
    fn same_partition_as_meta_kernel() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transforms");
        let read = |n: &str| crate::npy::read_npy_f32_file(format!("{dir}/cc_{n}.npy").as_ref());
        let ((shape, masks), (_, want_labels), (_, want_areas)) = (
            read("masks").unwrap(),
            read("labels").unwrap(),
            read("areas").unwrap(),
        );
        let (w, h) = (shape[2], shape[1]);
        for k in 0..shape[0] {
            let r = k * w * h..(k + 1) * w * h;
            let mask: Vec<bool> = masks[r.clone()].iter().map(|&v| v != 0.0).collect();
            let (labels, areas) = connected_components(&mask, w, h).unwrap();
            let want: Vec<u32> = want_areas[r.clone()].iter().map(|&a| a as u32).collect();
            assert_eq!(areas, want, "mask {k}");
            // Same partition: our label <-> theirs is a bijection on set pixels.
            let mut map = std::collections::HashMap::new();
            for (&ours, &theirs) in labels.iter().zip(&want_labels[r]) {
                assert_eq!(ours == 0, theirs == 0.0);
                assert_eq!(*map.entry(ours).or_insert(theirs), theirs, "mask {k}");
            }
            assert_eq!(
                map.len(),
                labels.iter().max().map_or(0, |&m| m as usize + 1)
            );
        }
    }

    #[test]
    fn fills_holes_and_removes_sprinkles_from_the_input_masks() {
        let (m, w, h) = grid(&[
            "#####....",
            "#.#.#..#.",
            "#####....",
            ".........",
            "...###...",
            "...#.#...",
            "...###...",
        ]);
        let input: Vec<f32> = m.iter().map(|&v| if v { 3.0 } else { -2.0 }).collect();
        let mut one = input.clone();
        fill_holes_and_sprinkles(&mut one, w, h, 0.0, 1.0, 8.0).unwrap();
        let (fill, gone) = (10.0, -10.0);
        // Holes of area 1 filled (the 3x3 ring's centre too, even though the ring itself is
        // removed: both steps see the input mask); the 8-pixel ring and the lone pixel vanish;
        // the 13-pixel block stays. The big background (area > 1) is untouched.
        assert_eq!(one[w + 1], fill);
        assert_eq!(one[w + 3], fill);
        assert_eq!(one[5 * w + 4], fill);
        assert_eq!(one[4 * w + 3], gone);
        assert_eq!(one[w + 7], gone);
        assert_eq!(one[0], 3.0);
        assert_eq!(one[3 * w], -2.0);
        // Off when the areas are 0; threshold shifts the values.
        let mut same = input.clone();
        fill_holes_and_sprinkles(&mut same, w, h, 0.0, 0.0, 0.0).unwrap();
        assert_eq!(same, input);
        let mut two = [input.clone(), input.clone()].concat();
        fill_holes_and_sprinkles(&mut two, w, h, 1.0, 1.0, 0.0).unwrap();
        assert_eq!(
            (two[w + 1], two[w * h + w + 1], two[w + 7]),
            (11.0, 11.0, 3.0)
        );
        // Video-predictor variant: holes (logit <= 0) of area <= max become 0.1.
        let mut vid = input.clone();
        fill_holes_in_mask_scores(&mut vid, w, h, 1.0).unwrap();
        assert_eq!(
            (vid[w + 1], vid[5 * w + 4], vid[3 * w], vid[w + 7]),
            (0.1, 0.1, -2.0, 3.0)
        );
    }

    /// Cross-check against a plain BFS flood fill on pseudo-random masks.
    #[test]
    fn matches_bfs_on_random_masks() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for (w, h) in [(1, 1), (1, 9), (9, 1), (17, 13), (64, 48)] {
            for density in [3u64, 5, 7] {
                let mut mask = vec![false; w * h];
                for v in &mut mask {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    *v = (x >> 60) < density * 2;
                }
                let (_, areas) = connected_components(&mask, w, h).unwrap();
                let mut want = vec![0u32; w * h];
                for start in 0..w * h {
                    if !mask[start] || want[start] > 0 {
                        continue;
                    }
                    let (mut seen, mut stack) = (vec![start], vec![start]);
                    let mut visited = vec![false; w * h];
                    visited[start] = true;
                    while let Some(i) = stack.pop() {
                        let (x0, y0) = ((i % w) as i64, (i / w) as i64);
                        for (dx, dy) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dx, dy))) {
                            let (nx, ny) = (x0 + dx, y0 + dy);
                            let j = (ny * w as i64 + nx) as usize;
                            let inside = nx >= 0 && ny >= 0 && nx < w as i64 && ny < h as i64;
                            if inside && mask[j] && !visited[j] {
                                visited[j] = true;
                                seen.push(j);
                                stack.push(j);
                            }
                        }
                    }
                    seen.iter().for_each(|&j| want[j] = seen.len() as u32);
                }
                assert_eq!(areas, want, "{w}x{h} density {density}");
            }
        }
    }
}
