//! Label export: mask outlines as polygons (outer contours and holes) and polygons rasterised
//! back (this file), YOLO segmentation lines ([`yolo`]), COCO JSON ([`coco`]). Run-length
//! encodings and COCO's compressed strings are in [`super::rle`].
//!
//! Coordinates are pixel corners: pixel `(col, row)` covers `[col, col+1) × [row, row+1)`, so
//! an outline traced here encloses exactly the set pixels and rasterises back to the same mask.

pub mod coco;
pub mod yolo;

use super::components::connected_components;
use crate::error::{Error, Result};

/// A closed ring of `[x, y]` vertices; the last connects back to the first (not repeated).
pub type Ring = Vec<[f64; 2]>;

/// One 8-connected component of a mask: its outline and the outlines of its holes.
///
/// The exterior runs clockwise on screen (y down: positive shoelace area), holes the other way.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    /// Outer boundary.
    pub exterior: Ring,
    /// Boundaries of the holes (4-connected background regions the component encloses).
    pub holes: Vec<Ring>,
}

/// Signed shoelace area of a ring (positive for exteriors traced here).
pub fn ring_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    (0..n).map(|i| { let (a, b) = (ring[i], ring[(i + 1) % n]); a[0] * b[1] - b[0] * a[1] }).sum::<f64>() / 2.0
}

fn check_mask(len: usize, w: usize, h: usize) -> Result<()> {
    match w.checked_mul(h) {
        Some(n) if n == len && n > 0 => Ok(()),
        _ => Err(Error::Input(format!("mask has {len} values; expected a non-empty {w}x{h}"))),
    }
}

/// Outlines of a row-major `[h, w]` mask, one [`Polygon`] per 8-connected component in raster
/// order of their first pixel. Vertices are the outline's corners; with `tolerance > 0` each ring
/// is simplified (Douglas–Peucker, max deviation `tolerance` pixels; a ring that would fall below
/// 3 vertices keeps its corners).
pub fn mask_to_polygons(mask: &[bool], w: usize, h: usize, tolerance: f64) -> Result<Vec<Polygon>> {
    check_mask(mask.len(), w, h)?;
    let (labels, _) = connected_components(mask, w, h)?;
    let set = |x: i64, y: i64| x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && mask[y as usize * w + x as usize];
    // Directed boundary edges, clockwise around each set pixel: bit d of out[v] = an edge
    // leaving vertex v (index y * (w+1) + x) in direction d (0 east, 1 south, 2 west, 3 north).
    let vw = w + 1;
    let mut out = vec![0u8; vw * (h + 1)];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            if !set(x, y) {
                continue;
            }
            let v = |vx: i64, vy: i64| vy as usize * vw + vx as usize;
            if !set(x, y - 1) { out[v(x, y)] |= 1; }
            if !set(x + 1, y) { out[v(x + 1, y)] |= 2; }
            if !set(x, y + 1) { out[v(x + 1, y + 1)] |= 4; }
            if !set(x - 1, y) { out[v(x, y + 1)] |= 8; }
        }
    }
    const STEP: [(i64, i64); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];
    let n_components = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut polygons: Vec<Option<Polygon>> = vec![None; n_components];
    let mut holes: Vec<Vec<Ring>> = vec![Vec::new(); n_components];
    for start in 0..out.len() {
        while out[start] != 0 {
            let d0 = out[start].trailing_zeros() as usize;
            out[start] &= !(1 << d0);
            let (sx, sy) = ((start % vw) as i64, (start / vw) as i64);
            // The set pixel on the right of the first edge names the component.
            let (px, py) = match d0 { 0 => (sx, sy), 1 => (sx - 1, sy), 2 => (sx - 1, sy - 1), _ => (sx, sy - 1) };
            let label = labels[py as usize * w + px as usize] as usize - 1;
            let (mut ring, mut x, mut y, mut d) = (vec![[sx as f64, sy as f64]], sx, sy, d0);
            loop {
                (x, y) = (x + STEP[d].0, y + STEP[d].1);
                let v = y as usize * vw + x as usize;
                let avail = out[v] | if v == start { 1 << d0 } else { 0 };
                // At a saddle (two edges leave), turn left: diagonal set pixels stay joined.
                let left = (d + 3) % 4;
                let next = if avail.count_ones() > 1 { left } else { avail.trailing_zeros() as usize };
                if v == start && next == d0 {
                    break;
                }
                out[v] &= !(1 << next);
                if next != d {
                    ring.push([x as f64, y as f64]);
                }
                d = next;
            }
            if d == d0 {
                ring.remove(0); // the start lies inside a straight run
            }
            let exterior = ring_area(&ring) > 0.0;
            let ring = simplify_ring(ring, tolerance);
            if exterior {
                polygons[label] = Some(Polygon { exterior: ring, holes: Vec::new() });
            } else {
                holes[label].push(ring);
            }
        }
    }
    Ok(polygons.into_iter().zip(holes).filter_map(|(p, hs)| p.map(|p| Polygon { holes: hs, ..p })).collect())
}

/// Douglas–Peucker on a closed ring (anchored at vertex 0 and the vertex farthest from it).
fn simplify_ring(ring: Ring, tolerance: f64) -> Ring {
    if tolerance <= 0.0 || ring.len() <= 3 {
        return ring;
    }
    let d2 = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let far = (1..ring.len()).max_by(|&i, &j| d2(ring[0], ring[i]).total_cmp(&d2(ring[0], ring[j]))).unwrap_or(0);
    let mut keep = vec![false; ring.len() + 1];
    (keep[0], keep[far], keep[ring.len()]) = (true, true, true);
    let at = |i: usize| ring[i % ring.len()];
    let mut stack = vec![(0, far), (far, ring.len())];
    while let Some((a, b)) = stack.pop() {
        let (pa, pb) = (at(a), at(b));
        let seg = d2(pa, pb);
        let dist = |p: [f64; 2]| {
            let t = if seg > 0.0 { (((p[0] - pa[0]) * (pb[0] - pa[0]) + (p[1] - pa[1]) * (pb[1] - pa[1])) / seg).clamp(0.0, 1.0) } else { 0.0 };
            d2(p, [pa[0] + t * (pb[0] - pa[0]), pa[1] + t * (pb[1] - pa[1])]).sqrt()
        };
        if let Some((i, dmax)) = (a + 1..b).map(|i| (i, dist(at(i)))).max_by(|x, y| x.1.total_cmp(&y.1))
            && dmax > tolerance
        {
            keep[i] = true;
            stack.extend([(a, i), (i, b)]);
        }
    }
    let simplified: Ring = (0..ring.len()).filter(|&i| keep[i]).map(|i| ring[i]).collect();
    if simplified.len() < 3 { ring } else { simplified }
}

/// Rasterises rings with the even-odd rule at pixel centres into a row-major `[h, w]` mask
/// (exteriors and their holes together; rings may run outside the image).
pub fn rasterize_rings<'a>(rings: impl IntoIterator<Item = &'a Ring>, w: usize, h: usize) -> Vec<bool> {
    let mut crossings: Vec<Vec<f64>> = vec![Vec::new(); h];
    for ring in rings {
        for i in 0..ring.len() {
            let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
            if a[1] == b[1] {
                continue;
            }
            let (lo, hi) = (a[1].min(b[1]), a[1].max(b[1]));
            // Rows whose centre y + 0.5 lies in [lo, hi).
            let (first, last) = ((lo - 0.5).ceil().max(0.0), (hi - 0.5).ceil().min(h as f64));
            let mut row = first;
            while row < last {
                let t = (row + 0.5 - a[1]) / (b[1] - a[1]);
                crossings[row as usize].push(a[0] + t * (b[0] - a[0]));
                row += 1.0;
            }
        }
    }
    let mut mask = vec![false; w * h];
    for (y, xs) in crossings.iter_mut().enumerate() {
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            let from = (pair[0] - 0.5).ceil().clamp(0.0, w as f64) as usize;
            let to = (pair[1] - 0.5).ceil().clamp(0.0, w as f64) as usize;
            mask[y * w + from..y * w + to.max(from)].fill(true);
        }
    }
    mask
}

/// Rasterises polygons (exteriors minus holes) into a row-major `[h, w]` mask.
pub fn rasterize_polygons(polygons: &[Polygon], w: usize, h: usize) -> Vec<bool> {
    rasterize_rings(polygons.iter().flat_map(|p| std::iter::once(&p.exterior).chain(&p.holes)), w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        (rows.iter().flat_map(|r| r.bytes().map(|b| b == b'#')).collect(), rows[0].len(), rows.len())
    }

    #[test]
    fn outlines_corners_holes_and_diagonal_joins() {
        let (m, w, h) = grid(&["####.", "#..#.", "####.", "....#"]);
        let polys = mask_to_polygons(&m, w, h, 0.0).unwrap();
        // The box and the diagonal pixel are one 8-connected component with one hole.
        assert_eq!(polys.len(), 1);
        assert_eq!(polys[0].holes.len(), 1);
        assert_eq!(polys[0].holes[0].len(), 4);
        assert_eq!(ring_area(&polys[0].holes[0]), -2.0);
        assert_eq!(ring_area(&polys[0].exterior), 13.0);
        assert_eq!(rasterize_polygons(&polys, w, h), m);
        let (m, w, h) = grid(&["##..", "##..", "....", "...#"]);
        let polys = mask_to_polygons(&m, w, h, 0.0).unwrap();
        assert_eq!(polys.len(), 2);
        assert_eq!(polys[0].exterior, vec![[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]);
        assert!(mask_to_polygons(&[false; 6], 3, 2, 0.0).unwrap().is_empty());
        assert!(mask_to_polygons(&[false; 5], 3, 2, 0.0).is_err());
    }

    /// A disc with two holes, an island inside one hole, and a ragged edge.
    fn shape(w: usize, h: usize) -> Vec<bool> {
        let mut m = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                let r = |cx: f64, cy: f64| ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
                let outer = r(60.0, 50.0) < 42.0 + 3.0 * (fx * 0.3).sin();
                let hole = r(45.0, 45.0) < 14.0 || r(80.0, 60.0) < 9.0;
                m[y * w + x] = (outer && !hole) || r(45.0, 45.0) < 5.0;
            }
        }
        m
    }

    fn iou(a: &[bool], b: &[bool]) -> f64 {
        let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count() as f64;
        let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count() as f64;
        inter / union
    }

    #[test]
    fn polygons_rasterise_back_exactly_or_within_tolerance() {
        let (w, h) = (120, 100);
        let m = shape(w, h);
        let exact = mask_to_polygons(&m, w, h, 0.0).unwrap();
        assert_eq!(exact.len(), 2, "the disc and the island");
        assert_eq!(exact.iter().map(|p| p.holes.len()).sum::<usize>(), 2);
        assert_eq!(rasterize_polygons(&exact, w, h), m);
        for tol in [0.5, 1.0] {
            let simple = mask_to_polygons(&m, w, h, tol).unwrap();
            let corners: usize = exact.iter().map(|p| p.exterior.len()).sum();
            let kept: usize = simple.iter().map(|p| p.exterior.len()).sum();
            assert!(kept < corners && (tol < 1.0 || kept * 2 < corners), "tolerance {tol}: {kept} of {corners} vertices");
            let back = rasterize_polygons(&simple, w, h);
            assert!(iou(&back, &m) >= 0.98, "tolerance {tol}: IoU {}", iou(&back, &m));
        }
    }

    #[test]
    fn rasterising_clips_to_the_image() {
        let ring: Ring = vec![[-5.0, -5.0], [2.0, -5.0], [2.0, 2.0], [-5.0, 2.0]];
        let m = rasterize_rings([&ring], 4, 3);
        assert_eq!(m, [true, true, false, false, true, true, false, false, false, false, false, false]);
    }
}
