//! Position encodings: the neck's sine encoding, the prompt encoder's random-Fourier encoding,
//! and the bicubic resize of Hiera's background position embedding.
//!
//! Everything here depends only on sizes and weights, never on the image, so it is computed once
//! on the host (in f32, with PyTorch's order of operations) when the model is built.

use std::f32::consts::PI;

/// Meta's `PositionEmbeddingSine` for an `h×w` map: `[num_pos_feats, h, w]` row-major, the first
/// half encoding y, the second half x (interleaved sin/cos pairs).
pub fn sine_pe(h: usize, w: usize, num_pos_feats: usize, temperature: f64, normalize: bool, scale: Option<f64>) -> Vec<f32> {
    let half = num_pos_feats / 2;
    let scale = scale.map_or(2.0 * PI, |s| s as f32);
    let axis = |n: usize| -> Vec<f32> {
        let last = n as f32;
        (1..=n)
            .map(|i| if normalize { i as f32 / (last + 1e-6) * scale } else { i as f32 })
            .collect()
    };
    let dim_t: Vec<f32> = (0..half)
        .map(|i| (temperature as f32).powf(2.0 * (i / 2) as f32 / half as f32))
        .collect();
    let (ys, xs) = (axis(h), axis(w));
    let mut out = vec![0.0f32; num_pos_feats * h * w];
    for c in 0..half {
        let trig = |v: f32| if c % 2 == 0 { (v / dim_t[c]).sin() } else { (v / dim_t[c]).cos() };
        for y in 0..h {
            for x in 0..w {
                out[(c * h + y) * w + x] = trig(ys[y]);
                out[((half + c) * h + y) * w + x] = trig(xs[x]);
            }
        }
    }
    out
}

/// Random-Fourier encoding of points already normalised to `[0, 1]`:
/// `[sin(2π (2p-1) G), cos(2π (2p-1) G)]` with `gaussian` `[2, F]` row-major → `[2F]` per point.
pub fn random_fourier(points: &[[f32; 2]], gaussian: &[f32], feats: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(points.len() * 2 * feats);
    for p in points {
        let (x, y) = (2.0 * p[0] - 1.0, 2.0 * p[1] - 1.0);
        let proj: Vec<f32> = (0..feats).map(|f| 2.0 * PI * (x * gaussian[f] + y * gaussian[feats + f])).collect();
        out.extend(proj.iter().map(|v| v.sin()));
        out.extend(proj.iter().map(|v| v.cos()));
    }
    out
}

/// The prompt encoder's dense encoding of an `h×w` grid of cell centres: `[2F, h, w]` row-major.
pub fn random_fourier_grid(h: usize, w: usize, gaussian: &[f32], feats: usize) -> Vec<f32> {
    let points: Vec<[f32; 2]> = (0..h)
        .flat_map(|y| (0..w).map(move |x| [(x as f32 + 1.0 - 0.5) / w as f32, (y as f32 + 1.0 - 0.5) / h as f32]))
        .collect();
    let per_point = random_fourier(&points, gaussian, feats);
    let c = 2 * feats;
    let mut out = vec![0.0f32; c * h * w];
    for (i, chunk) in per_point.chunks_exact(c).enumerate() {
        for (ch, v) in chunk.iter().enumerate() {
            out[ch * h * w + i] = *v;
        }
    }
    out
}

/// PyTorch's `F.interpolate(x, size=(oh, ow), mode="bicubic", align_corners=False)` for one
/// `[C, ih, iw]` map (cubic convolution with A = -0.75, borders clamped) → `[C, oh, ow]`.
pub fn bicubic_resize(src: &[f32], c: usize, (ih, iw): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    fn weights(t: f32) -> [f32; 4] {
        const A: f32 = -0.75;
        let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
        let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
        [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
    }
    // Source index and cubic weights per output coordinate (half-pixel centres, not clamped).
    let taps = |n_in: usize, n_out: usize| -> Vec<(isize, [f32; 4])> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let real = scale * (o as f32 + 0.5) - 0.5;
                let idx = real.floor();
                (idx as isize, weights(real - idx))
            })
            .collect()
    };
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let (ty, tx) = (taps(ih, oh), taps(iw, ow));
    let mut out = vec![0.0f32; c * oh * ow];
    for ch in 0..c {
        let plane = &src[ch * ih * iw..(ch + 1) * ih * iw];
        for (oy, (iy, wy)) in ty.iter().enumerate() {
            for (ox, (ix, wx)) in tx.iter().enumerate() {
                let row = |dy: isize| -> f32 {
                    let r = clamp(iy - 1 + dy, ih) * iw;
                    (0..4).map(|dx| plane[r + clamp(ix - 1 + dx as isize, iw)] * wx[dx]).fold(0.0, |a, b| a + b)
                };
                let rows = [row(0), row(1), row(2), row(3)];
                out[(ch * oh + oy) * ow + ox] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
            }
        }
    }
    out
}

/// Rotary position encoding of an `end_x × end_y` grid (`compute_axial_cis`), as the cosines and
/// sines of the rotation angles: each `[end_x·end_y, dim/2]` row-major, token `n` at
/// `(x, y) = (n mod end_x, n div end_x)`; the first `dim/4` angles rotate by x, the rest by y.
pub fn axial_rope(dim: usize, end_x: usize, end_y: usize, theta: f64) -> (Vec<f32>, Vec<f32>) {
    let quarter = dim / 4;
    let freqs: Vec<f32> = (0..quarter).map(|i| 1.0 / (theta as f32).powf((4 * i) as f32 / dim as f32)).collect();
    let n = end_x * end_y;
    let (mut cos, mut sin) = (Vec::with_capacity(n * 2 * quarter), Vec::with_capacity(n * 2 * quarter));
    for t in 0..n {
        let (tx, ty) = ((t % end_x) as f32, (t / end_x) as f32);
        for angle in freqs.iter().map(|f| tx * f).chain(freqs.iter().map(|f| ty * f)) {
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

/// `get_1d_sine_pe(pos, dim)` (temperature 10000): `[sin(p / T^(2⌊i/2⌋/(dim/2)))…, cos(…)…]`,
/// `dim` values per position.
pub fn sine_1d(positions: &[f32], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let dim_t: Vec<f32> = (0..half).map(|i| 10000f32.powf((2 * (i / 2)) as f32 / half as f32)).collect();
    let mut out = Vec::with_capacity(positions.len() * dim);
    for &p in positions {
        out.extend(dim_t.iter().map(|t| (p / t).sin()));
        out.extend(dim_t.iter().map(|t| (p / t).cos()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_identity_when_same_size() {
        let src: Vec<f32> = (0..2 * 5 * 3).map(|v| v as f32 * 0.37).collect();
        let out = bicubic_resize(&src, 2, (5, 3), (5, 3));
        for (a, b) in src.iter().zip(&out) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn sine_pe_shape_and_range() {
        let pe = sine_pe(4, 6, 8, 10000.0, true, None);
        assert_eq!(pe.len(), 8 * 4 * 6);
        assert!(pe.iter().all(|v| v.abs() <= 1.0));
    }
}
