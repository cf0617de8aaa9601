//! YOLO labels (Ultralytics' text format, one object per line, coordinates normalised to
//! `[0, 1]` by the image width and height): segmentation lines `class x1 y1 x2 y2 …` written
//! from masks, and box / segmentation lines parsed with clear errors.

use super::{Ring, mask_to_polygons, ring_area};
use crate::error::{Error, Result};

/// How a mask with several components becomes the single polygon of a YOLO line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentStrategy {
    /// Every component's outline, joined into one polygon by zero-width bridges between the
    /// closest vertices of consecutive components (Ultralytics' default, `"all"`).
    #[default]
    All,
    /// Only the outline enclosing the largest area (Ultralytics' `"largest"` picks the
    /// contour with the most points instead).
    Largest,
}

/// The polygon of a YOLO segmentation label for a mask (holes are dropped: the format has
/// none), or `None` for an empty mask.
pub fn yolo_polygon(mask: &[bool], w: usize, h: usize, strategy: SegmentStrategy, tolerance: f64) -> Result<Option<Ring>> {
    let mut rings: Vec<Ring> = mask_to_polygons(mask, w, h, tolerance)?.into_iter().map(|p| p.exterior).collect();
    if strategy == SegmentStrategy::Largest {
        let best = (0..rings.len()).max_by(|&i, &j| ring_area(&rings[i]).total_cmp(&ring_area(&rings[j])).then(j.cmp(&i)));
        return Ok(best.map(|i| rings.swap_remove(i)));
    }
    Ok(match rings.len() {
        0 => None,
        1 => rings.pop(),
        _ => Some(merge_rings(&rings)),
    })
}

/// One closed path through all rings: ring i is entered at its vertex closest to ring i-1,
/// walked to its vertex closest to ring i+1, and finished on the way back.
fn merge_rings(rings: &[Ring]) -> Ring {
    let closest = |a: &Ring, b: &Ring| {
        let mut best = (0, 0, f64::INFINITY);
        for (i, p) in a.iter().enumerate() {
            for (j, q) in b.iter().enumerate() {
                let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
                if d < best.2 {
                    best = (i, j, d);
                }
            }
        }
        (best.0, best.1)
    };
    let links: Vec<(usize, usize)> = rings.windows(2).map(|p| closest(&p[0], &p[1])).collect();
    let entry = |i: usize| if i == 0 { links[0].0 } else { links[i - 1].1 };
    let walk = |out: &mut Ring, ring: &Ring, from: usize, steps: usize| out.extend((0..=steps).map(|k| ring[(from + k) % ring.len()]));
    let mut out = Ring::new();
    let last = rings.len() - 1;
    for (i, ring) in rings[..last].iter().enumerate() {
        walk(&mut out, ring, entry(i), (links[i].0 + ring.len() - entry(i)) % ring.len());
    }
    walk(&mut out, &rings[last], entry(last), rings[last].len());
    for (i, ring) in rings[..last].iter().enumerate().rev() {
        let n = ring.len();
        let steps = match (entry(i) + n - links[i].0) % n { 0 => n, s => s };
        walk(&mut out, ring, links[i].0, steps);
    }
    out.pop(); // back at the first vertex
    out
}

/// A YOLO segmentation line for a polygon in pixels of a `w × h` image: the class id, then
/// `x/w y/h` per vertex with 6 decimals (clamped to `[0, 1]`).
pub fn yolo_line(class: usize, polygon: &[[f64; 2]], w: usize, h: usize) -> String {
    let mut line = class.to_string();
    for &[x, y] in polygon {
        line.push_str(&format!(" {:.6} {:.6}", (x / w as f64).clamp(0.0, 1.0), (y / h as f64).clamp(0.0, 1.0)));
    }
    line
}

/// One parsed line of a YOLO label file.
#[derive(Debug, Clone, PartialEq)]
pub enum YoloLabel {
    /// `class cx cy w h [confidence]`: a box, centre and size normalised (detector output files
    /// add the confidence).
    Box { class: usize, xywh: [f64; 4], confidence: Option<f64> },
    /// `class x1 y1 x2 y2 x3 y3 …`: a polygon of at least 3 normalised vertices.
    Segment { class: usize, points: Vec<[f64; 2]> },
}

impl YoloLabel {
    /// The class id.
    pub fn class(&self) -> usize {
        match self {
            YoloLabel::Box { class, .. } | YoloLabel::Segment { class, .. } => *class,
        }
    }
}

/// Parses one line: a non-negative integer class, then 4 (box), 5 (box + confidence) or an
/// even number ≥ 6 (polygon) of finite numbers in `[0, 1]`. Errors say which token is wrong.
pub fn parse_yolo_line(line: &str) -> Result<YoloLabel> {
    let mut tokens = line.split_whitespace();
    let first = tokens.next().ok_or_else(|| Error::Input("empty label line".into()))?;
    let class: usize = first.parse().map_err(|_| Error::Input(format!("class id {first:?} is not a non-negative integer")))?;
    let mut values = Vec::new();
    for (i, tok) in tokens.enumerate() {
        let v: f64 = tok.parse().map_err(|_| Error::Input(format!("value {} ({tok:?}) is not a number", i + 1)))?;
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::Input(format!("value {} ({tok}) is outside [0, 1]: coordinates must be normalised", i + 1)));
        }
        values.push(v);
    }
    match values.len() {
        4 | 5 => Ok(YoloLabel::Box { class, xywh: [values[0], values[1], values[2], values[3]], confidence: values.get(4).copied() }),
        n if n >= 6 && n % 2 == 0 => Ok(YoloLabel::Segment { class, points: values.chunks_exact(2).map(|p| [p[0], p[1]]).collect() }),
        n if n >= 6 => Err(Error::Input(format!("odd number of polygon coordinates ({n})"))),
        n => Err(Error::Input(format!("{n} values after the class id: expected 4 (box), 5 (box + confidence) or an even number >= 6 (polygon)"))),
    }
}

/// Parses a label file: the labels of the good lines, and an error naming the line (1-based)
/// for each bad one. Blank lines are skipped.
pub fn parse_yolo_labels(text: &str) -> (Vec<YoloLabel>, Vec<Error>) {
    let (mut labels, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match parse_yolo_line(line) {
            Ok(label) => labels.push(label),
            Err(Error::Input(m)) => errors.push(Error::Input(format!("line {}: {m}", i + 1))),
            Err(e) => errors.push(e),
        }
    }
    (labels, errors)
}

#[cfg(test)]
mod tests {
    use super::super::rasterize_rings;
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        (rows.iter().flat_map(|r| r.bytes().map(|b| b == b'#')).collect(), rows[0].len(), rows.len())
    }

    #[test]
    fn components_merge_through_zero_width_bridges() {
        let (m, w, h) = grid(&["##......", "##...###", ".....###", "#.......", "........"]);
        let merged = yolo_polygon(&m, w, h, SegmentStrategy::All, 0.0).unwrap().unwrap();
        assert_eq!(rasterize_rings([&merged], w, h), m, "bridges add no area");
        assert_eq!(merged.len(), 4 + 4 + 4 + 2 * 2);
        let largest = yolo_polygon(&m, w, h, SegmentStrategy::Largest, 0.0).unwrap().unwrap();
        assert_eq!(largest, vec![[5.0, 1.0], [8.0, 1.0], [8.0, 3.0], [5.0, 3.0]]);
        assert_eq!(yolo_polygon(&[false; 4], 2, 2, SegmentStrategy::All, 0.0).unwrap(), None);
    }

    #[test]
    fn lines_round_trip() {
        let line = yolo_line(3, &[[0.0, 0.0], [317.0, 0.0], [100.5, 269.0]], 317, 269);
        assert_eq!(line, "3 0.000000 0.000000 1.000000 0.000000 0.317035 1.000000");
        let YoloLabel::Segment { class, points } = parse_yolo_line(&line).unwrap() else { panic!("segment") };
        assert_eq!((class, points.len()), (3, 3));
        assert!((points[2][0] * 317.0 - 100.5).abs() < 317e-6);
        assert_eq!(parse_yolo_line("0 0.5 0.5 0.2 0.1").unwrap(), YoloLabel::Box { class: 0, xywh: [0.5, 0.5, 0.2, 0.1], confidence: None });
        assert_eq!(parse_yolo_line("7 0.5 0.5 0.2 0.1 0.9").unwrap().class(), 7);
    }

    #[test]
    fn bad_lines_are_named() {
        for (line, why) in [("", "empty"), ("x 0.1 0.1 0.2 0.2", "class id"), ("-1 0.1 0.1 0.2 0.2", "class id"), ("1.5 0.1 0.1 0.2 0.2", "class id"),
            ("0 0.1 abc 0.2 0.2", "value 2"), ("0 0.1 0.1 1.2 0.2", "outside [0, 1]"), ("0 0.1 0.1 NaN 0.2", "outside"),
            ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "odd number"), ("0 0.1 0.2", "2 values")] {
            let err = parse_yolo_line(line).unwrap_err().to_string();
            assert!(err.contains(why), "{line:?}: {err}");
        }
        let (labels, errors) = parse_yolo_labels("0 0.5 0.5 0.1 0.1\n\n0 2 0.5 0.1 0.1\n1 0.1 0.1 0.2 0.1 0.2 0.2\n");
        assert_eq!(labels.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("line 3"), "{}", errors[0]);
    }
}
