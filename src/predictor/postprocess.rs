//! Host-side post-processing of low-resolution mask logits (`SAM2Transforms.postprocess_masks`):
//! clamping, bilinear upsampling to the original image size and thresholding.

/// Meta clamps the returned low-resolution logits to ±32.
pub const LOW_RES_CLAMP: f32 = 32.0;

/// PyTorch's `F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=False)` for one
/// `[in_h, in_w]` plane, calling `emit(index, value)` for every output pixel in row-major order
/// (so callers can threshold without keeping the full-resolution logits).
pub fn upsample_bilinear(src: &[f32], (in_h, in_w): (usize, usize), (out_h, out_w): (usize, usize), mut emit: impl FnMut(usize, f32)) {
    // Source index, next index and weight of the next index, per output coordinate.
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let real = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
                let i0 = (real as usize).min(n_in - 1);
                let i1 = if i0 + 1 < n_in { i0 + 1 } else { i0 };
                (i0, i1, real - i0 as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(in_h, out_h), taps(in_w, out_w));
    for (oy, &(y0, y1, ly)) in ty.iter().enumerate() {
        let (r0, r1) = (&src[y0 * in_w..(y0 + 1) * in_w], &src[y1 * in_w..(y1 + 1) * in_w]);
        for (ox, &(x0, x1, lx)) in tx.iter().enumerate() {
            let top = (1.0 - lx) * r0[x0] + lx * r0[x1];
            let bottom = (1.0 - lx) * r1[x0] + lx * r1[x1];
            emit(oy * out_w + ox, (1.0 - ly) * top + ly * bottom);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_a_constant_is_constant() {
        let src = vec![2.5f32; 4 * 3];
        let mut out = vec![0.0; 9 * 7];
        upsample_bilinear(&src, (4, 3), (9, 7), |i, v| out[i] = v);
        assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-6));
    }

    #[test]
    fn upsampling_interpolates_between_pixels() {
        // 1×2 → 1×4: half-pixel centres give 0, 0.25, 0.75, 1.
        let mut out = vec![0.0; 4];
        upsample_bilinear(&[0.0, 1.0], (1, 2), (1, 4), |i, v| out[i] = v);
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
    }
}
