//! SAM 2 image preprocessing and prompt-coordinate transforms on the CPU.
//!
//! [`preprocess_image`] is Meta's `SAM2Transforms` (ToTensor → `Resize((S, S))` = bilinear with
//! `antialias=True` → Normalize), bit-exact vs PyTorch's x86-64 CPU kernel (see [`aa_pass`]).
//! [`resize_bicubic_u8`] + [`normalize_u8_chw`] are the video loader: Pillow-exact bicubic
//! `resize((S, S))` (22-bit fixed point, Pillow 13 pass order), then `/255.0` in float64.

use crate::error::{Error, Result};

/// ImageNet mean used by SAM 2, per RGB channel.
pub const IMAGE_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation used by SAM 2, per RGB channel.
pub const IMAGE_STD: [f32; 3] = [0.229, 0.224, 0.225];

macro_rules! bail {
    ($($t:tt)*) => { return Err(Error::Input(format!($($t)*))) };
}

/// A borrowed 8-bit image, row-major HWC: `data` is `[height, width, channels]`.
///
/// `channels` is 3 (RGB) or 4 (RGBA; alpha is ignored everywhere).
#[derive(Clone, Copy, Debug)]
pub struct ImageRef<'a> {
    /// Width in pixels (> 0).
    pub width: usize,
    /// Height in pixels (> 0).
    pub height: usize,
    /// 3 (RGB) or 4 (RGBA).
    pub channels: usize,
    /// Pixel bytes, `width * height * channels` long.
    pub data: &'a [u8],
}

impl<'a> ImageRef<'a> {
    /// Wraps `data` (`[height, width, channels]` u8) after checking it with [`ImageRef::validate`].
    pub fn new(width: usize, height: usize, channels: usize, data: &'a [u8]) -> Result<Self> {
        let img = Self {
            width,
            height,
            channels,
            data,
        };
        img.validate().map(|()| img)
    }

    /// Checks non-zero sides, 3 or 4 channels and `data.len() == width * height * channels`.
    pub fn validate(&self) -> Result<()> {
        let (w, h, c, n) = (self.width, self.height, self.channels, self.data.len());
        if w == 0 || h == 0 {
            bail!("image is {w}x{h}; both sides must be > 0");
        }
        if c != 3 && c != 4 {
            bail!("image has {c} channels; expected 3 (RGB) or 4 (RGBA)");
        }
        if w.checked_mul(h).and_then(|p| p.checked_mul(c)) != Some(n) {
            bail!("image {w}x{h}x{c} needs {w}*{h}*{c} bytes, got {n}");
        }
        Ok(())
    }
}

/// Rejects a zero target size and one whose `[3, size, size]` f32 buffer cannot exist.
fn check_size(size: usize) -> Result<()> {
    match size.checked_mul(size).and_then(|n| n.checked_mul(12)) {
        Some(n) if size > 0 && n <= isize::MAX as usize => Ok(()),
        _ => bail!("target size {size} must be > 0 and fit in memory"),
    }
}

/// Per output sample: first input index and the weights of inputs `start..start + w.len()`.
type Taps<W> = Vec<(usize, Vec<W>)>;

/// `(xmin, xsize)` from the unrounded bounds, as both ATen and Pillow round them.
fn span(lo: f64, hi: f64, n_in: usize, max: usize) -> (usize, usize) {
    let xmin = ((lo + 0.5) as i64).max(0);
    let xmax = ((hi + 0.5) as i64).min(n_in as i64);
    (xmin as usize, (xmax - xmin).clamp(0, max as i64) as usize)
}

/// ATen `HelperInterpLinear` + `_compute_indices_min_size_weights_aa` for float32,
/// replicating its float/double promotions (`center`, bounds and the filter argument).
/// Equal sizes give identity taps (ATen skips that pass; `v * 1.0` is exact).
fn taps_aa_linear(n_in: usize, n_out: usize) -> Taps<f32> {
    if n_in == n_out {
        return (0..n_in).map(|i| (i, vec![1.0])).collect();
    }
    let scale = n_in as f32 / n_out as f32;
    let support = scale.max(1.0);
    let invscale = (1.0 / f64::from(support)) as f32;
    let max = support.ceil() as usize * 2 + 1;
    let filter = |x: usize, center: f32| {
        let arg = ((f64::from(x as f32 - center) + 0.5) * f64::from(invscale)) as f32;
        (1.0 - f64::from(arg.abs())).max(0.0) as f32
    };
    let tap = |i: usize| {
        let center = (f64::from(scale) * (i as f64 + 0.5)) as f32;
        let (lo, hi) = (f64::from(center - support), f64::from(center + support));
        let (xmin, len) = span(lo, hi, n_in, max);
        let mut w: Vec<f32> = (xmin..xmin + len).map(|x| filter(x, center)).collect();
        let total = w.iter().fold(0.0f32, |a, &b| a + b);
        let total = if total != 0.0 { total } else { 1.0 }; // `/ 1.0` is exact
        w.iter_mut().for_each(|v| *v /= total);
        (xmin, w)
    };
    (0..n_out).map(tap).collect()
}

/// Pillow `precompute_coeffs` (BICUBIC: a = -0.5, support 2) + `normalize_coeffs_8bpc`.
/// Equal sizes give identity taps (Pillow skips that pass; `1 << 22` weights are exact).
fn taps_pil_bicubic(n_in: usize, n_out: usize) -> Taps<i32> {
    if n_in == n_out {
        return (0..n_in).map(|i| (i, vec![1 << PRECISION_BITS])).collect();
    }
    let bicubic = |x: f64| match x.abs() {
        x if x < 1.0 => (1.5 * x - 2.5) * x * x + 1.0,
        x if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5,
        _ => 0.0,
    };
    let scale = f64::from(n_in as f32) / n_out as f64;
    let (support, inv_filterscale) = (2.0 * scale.max(1.0), 1.0 / scale.max(1.0));
    let max = support.ceil() as usize * 2 + 1;
    let tap = |i: usize| {
        let center = (i as f64 + 0.5) * scale;
        let (xmin, len) = span(center - support, center + support, n_in, max);
        let k = (xmin..xmin + len).map(|x| bicubic((x as f64 - center + 0.5) * inv_filterscale));
        let k: Vec<f64> = k.collect();
        let ww: f64 = k.iter().fold(0.0, |a, &b| a + b);
        let fixed = |v: f64| if ww != 0.0 { v / ww } else { v } * f64::from(1 << PRECISION_BITS);
        let round_away = |v: f64| (v + 0.5f64.copysign(v)) as i32; // C `(int)(v ± 0.5)`
        (xmin, k.iter().map(|&v| round_away(fixed(v))).collect())
    };
    (0..n_out).map(tap).collect()
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Correctly rounded `a * b + c` via f64 (musl's `fmaf`): inlinable and fast on targets
/// without hardware FMA (wasm32), where `f32::mul_add` is a library call.
#[inline]
fn fmaf(a: f32, b: f32, c: f32) -> f32 {
    let (xy, z) = (f64::from(a) * f64::from(b), f64::from(c));
    let r = xy + z;
    let bits = r.to_bits();
    // Rounding r to f32 is only wrong when r sits exactly halfway and is itself inexact.
    if bits & 0x1fff_ffff != 0x1000_0000 || !r.is_finite() || (r - xy == z && r - z == xy) {
        return r as f32;
    }
    let neg = r.is_sign_negative();
    let (p, q) = if neg == (z > xy) { (xy, z) } else { (z, xy) };
    f64::from_bits(bits + u64::from(neg == (p - r + q < 0.0)) * 2 - 1) as f32
}

/// One ATen AA pass along the middle axis of `src` viewed as `[outer, n_in, inner]`, keeping
/// the first `keep` of every `inner` values: returns `[outer, t.len(), keep]`.
///
/// Tap order as PyTorch's x86-64 build computes it (GCC, AVX2/AVX-512 kernels): tap 0 is a
/// product; GCC vectorises the next `4 * ((len - 1) / 4)` taps as rounded products added in
/// order, and contracts the scalar remainder into FMAs.
fn aa_pass(src: impl Fn(usize) -> f32, dims: [usize; 4], t: &Taps<f32>) -> Vec<f32> {
    let [outer, n_in, inner, keep] = dims;
    let mut out = vec![0.0f32; outer * t.len() * keep];
    for (o, block) in out.chunks_exact_mut(t.len() * keep).enumerate() {
        for (dst, (x0, ws)) in block.chunks_exact_mut(keep).zip(t) {
            let plain = ws.len().saturating_sub(1) / 4 * 4;
            for (j, &w) in ws.iter().enumerate() {
                let base = (o * n_in + x0 + j) * inner;
                for (k, d) in dst.iter_mut().enumerate() {
                    let v = src(base + k);
                    *d = if j == 0 {
                        v * w
                    } else if j <= plain {
                        *d + v * w
                    } else {
                        fmaf(v, w, *d)
                    };
                }
            }
        }
    }
    out
}

/// One Pillow 8-bit pass (`ImagingResample{Horizontal,Vertical}_8bpc`), shaped like
/// [`aa_pass`]; the resampled axis of `src` starts at source index `r0`.
fn pil_pass(src: &[u8], dims: [usize; 4], r0: usize, t: &Taps<i32>) -> Vec<u8> {
    let [outer, n_in, inner, keep] = dims;
    let mut out = vec![0u8; outer * t.len() * keep];
    let mut ss = vec![0i32; keep];
    for (o, block) in out.chunks_exact_mut(t.len() * keep).enumerate() {
        for (dst, (x0, ks)) in block.chunks_exact_mut(keep).zip(t) {
            ss.fill(1 << (PRECISION_BITS - 1));
            for (j, &k) in ks.iter().enumerate() {
                let line = &src[(o * n_in + x0 - r0 + j) * inner..][..keep];
                ss.iter_mut()
                    .zip(line)
                    .for_each(|(a, &v)| *a += i32::from(v) * k);
            }
            let clip8 = |a: i32| (a >> PRECISION_BITS).clamp(0, 255) as u8;
            dst.iter_mut().zip(&ss).for_each(|(d, &a)| *d = clip8(a));
        }
    }
    out
}

/// SAM 2 image-predictor preprocessing: `[3, size, size]` CHW float32 in ImageNet-normalised
/// units, matching `SAM2Transforms(resolution=size)(image)` on PyTorch CPU.
///
/// `img` is `[H, W, 3|4]` u8 (alpha ignored); errors on an invalid image or `size == 0`.
pub fn preprocess_image(img: &ImageRef, size: usize) -> Result<Vec<f32>> {
    img.validate()?;
    check_size(size)?;
    let (w, h, c, s) = (img.width, img.height, img.channels, size);
    let lut: [f32; 256] = std::array::from_fn(|v| v as f32 / 255.0);
    // ATen resamples the contiguous (width) axis first: [h, s, 3], then height: [s, s, 3].
    let px = |i: usize| lut[usize::from(img.data[i])];
    let tmp = aa_pass(px, [h, w, c, 3], &taps_aa_linear(w, s));
    let hwc = aa_pass(|i| tmp[i], [1, h, s * 3, s * 3], &taps_aa_linear(h, s));
    Ok(normalize_chw(s * s, |i| hwc[i]))
}

/// `F.interpolate(x, (oh, ow), mode="bilinear", align_corners=False, antialias=True)` of one
/// `[h, w]` float32 plane on PyTorch CPU (how the video predictor resizes mask prompts).
pub fn resize_plane_aa(src: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    let tmp = aa_pass(|i| src[i], [h, w, 1, 1], &taps_aa_linear(w, ow));
    aa_pass(|i| tmp[i], [1, h, ow, ow], &taps_aa_linear(h, oh))
}

/// Normalises `[n, 3]` HWC values (read by flat index) into `[3, n]` CHW with the SAM 2
/// mean/std, in float32 like torchvision's `Normalize` (`sub_(mean).div_(std)`).
fn normalize_chw(n: usize, hwc: impl Fn(usize) -> f32) -> Vec<f32> {
    let norm = |o: usize| (hwc(o % n * 3 + o / n) - IMAGE_MEAN[o / n]) / IMAGE_STD[o / n];
    (0..3 * n).map(norm).collect()
}

/// Pillow-exact `Image.convert("RGB").resize((size, size))` (default BICUBIC with
/// antialiasing, Pillow 13 pass order): returns `[size, size, 3]` HWC RGB u8.
/// Alpha is dropped, not composited.
pub fn resize_bicubic_u8(img: &ImageRef, size: usize) -> Result<Vec<u8>> {
    img.validate()?;
    check_size(size)?;
    let (w, h, c, s, data) = (img.width, img.height, img.channels, size, img.data);
    let (tx, ty) = (taps_pil_bicubic(w, s), taps_pil_bicubic(h, s));
    // Pillow >= 13 resamples vertically first when the height shrinks more than twice as
    // much as the width (`in_h - out_h > 2 * (in_w - out_w)`); older Pillow never does.
    if h > s && (h - s) as i128 > 2 * (w as i128 - s as i128) {
        let tmp = pil_pass(data, [1, h, w * c, w * c], 0, &ty);
        return Ok(pil_pass(&tmp, [s, w, c, 3], 0, &tx));
    }
    // Horizontal first, only over the source rows the vertical pass reads.
    let (r0, r1) = (ty[0].0, ty[s - 1].0 + ty[s - 1].1.len());
    let tmp = pil_pass(&data[r0 * w * c..r1 * w * c], [r1 - r0, w, c, 3], 0, &tx);
    Ok(pil_pass(&tmp, [1, r1 - r0, s * 3, s * 3], r0, &ty))
}

/// Video-loader normalisation of a resized frame: `rgb_u8` is `[size, size, 3]` HWC;
/// returns `[3, size, size]` CHW f32 = `((v / 255.0 in f64) as f32 - mean) / std` in f32,
/// the dtype sequence of `sam2.utils.misc.load_video_frames_from_jpg_images`.
pub fn normalize_u8_chw(rgb_u8: &[u8], size: usize) -> Result<Vec<f32>> {
    check_size(size)?;
    if rgb_u8.len() != size * size * 3 {
        bail!("frame needs {size}*{size}*3 bytes, got {}", rgb_u8.len());
    }
    Ok(normalize_chw(size * size, |i| {
        (f64::from(rgb_u8[i]) / 255.0) as f32
    }))
}

/// Maps image-pixel points `[x, y]` of a `w`×`h` image to model input coordinates for a
/// `size`×`size` input: `(x / w) * size`, `(y / h) * size` in float32, the order of
/// `SAM2Transforms.transform_coords`. Out-of-image points are scaled, not rejected; a zero
/// `w` or `h` yields non-finite values ([`validate_points`] rejects it first).
pub fn scale_points(points: &[[f32; 2]], w: usize, h: usize, size: usize) -> Vec<[f32; 2]> {
    let (w, h, s) = (w as f32, h as f32, size as f32);
    points
        .iter()
        .map(|&[x, y]| [x / w * s, y / h * s])
        .collect()
}

/// Maps boxes `[x0, y0, x1, y1]` (image pixels) to their two model-space corner points
/// `[[x0', y0'], [x1', y1']]`, exactly as [`scale_points`] (`transform_boxes`).
pub fn scale_boxes(boxes: &[[f32; 4]], w: usize, h: usize, size: usize) -> Vec<[[f32; 2]; 2]> {
    let pts: Vec<[f32; 2]> = boxes
        .iter()
        .flat_map(|b| [[b[0], b[1]], [b[2], b[3]]])
        .collect();
    scale_points(&pts, w, h, size)
        .chunks_exact(2)
        .map(|c| [c[0], c[1]])
        .collect()
}

/// Checks point prompts `[N, 2]` with labels `[N]` for a `w`×`h` image: non-zero size, equal
/// lengths, finite coordinates inside the image (`0 <= x <= w`, `0 <= y <= h`: pixel edges
/// count as inside), labels in {-1, 0, 1, 2, 3}. Meta would scale an outside point silently;
/// a click outside the image is a caller bug, so it is an error here.
pub fn validate_points(points: &[[f32; 2]], labels: &[i32], w: usize, h: usize) -> Result<()> {
    let (n, m) = (points.len(), labels.len());
    if w == 0 || h == 0 || n != m {
        bail!("{n} points, {m} labels on a {w}x{h} image: need equal counts and area > 0");
    }
    for (i, (p, &l)) in points.iter().zip(labels).enumerate() {
        if !p.iter().all(|v| v.is_finite()) {
            bail!("point {i} has a non-finite coordinate {p:?}");
        }
        if p[0] < 0.0 || p[1] < 0.0 || p[0] > w as f32 || p[1] > h as f32 {
            bail!("point {i} {p:?} is outside the {w}x{h} image");
        }
        if !(-1..=3).contains(&l) {
            bail!("point {i} has label {l}; expected -1, 0, 1, 2 or 3");
        }
    }
    Ok(())
}

/// Checks box prompts `[N, 4]` (`[x0, y0, x1, y1]`) for a `w`×`h` image: non-zero size,
/// finite, `x1 >= x0`, `y1 >= y0`. Boxes partly outside the image are accepted (as Meta does).
pub fn validate_box(boxes: &[[f32; 4]], w: usize, h: usize) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("cannot place boxes on a {w}x{h} image");
    }
    for (i, b) in boxes.iter().enumerate() {
        if !b.iter().all(|v| v.is_finite()) {
            bail!("box {i} has a non-finite coordinate {b:?}");
        }
        if b[2] < b[0] || b[3] < b[1] {
            bail!("box {i} {b:?} has x1 < x0 or y1 < y0");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mirror of `test_image` in tools/reference/make_transform_fixtures.py.
    fn test_image(w: usize, h: usize, c: usize) -> Vec<u8> {
        let noise = |i: usize| ((i as u64 * 2654435761) & 0xFFFF_FFFF) >> 24 & 0x3F;
        let px = |i: usize| noise(i) + ((i / c) % w * 255 / (w - 1).max(1)) as u64 * 3 / 4;
        (0..w * h * c).map(|i| px(i) as u8).collect()
    }

    /// Runs the function a `{torch,pil}_{w}x{h}x{c}_{s}[_norm]` fixture was made with.
    fn ours(case: &str, [w, h, c, s]: [usize; 4]) -> Vec<f32> {
        let data = test_image(w, h, c);
        let img = ImageRef::new(w, h, c, &data).unwrap();
        let rgb = || resize_bicubic_u8(&img, s).unwrap();
        match (case.starts_with("torch"), case.ends_with("_norm")) {
            (true, _) => preprocess_image(&img, s).unwrap(),
            (false, true) => normalize_u8_chw(&rgb(), s).unwrap(),
            (false, false) => rgb().into_iter().map(f32::from).collect(),
        }
    }

    /// Each fixture holds `[N, 2]` (flat output index, reference value) pairs.
    #[test]
    fn matches_torch_and_pillow_fixtures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transforms");
        let mut cases = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            cases.extend(name.strip_suffix("_samples.npy").map(str::to_owned));
        }
        assert!(cases.len() >= 20, "only {} fixtures in {dir}", cases.len());
        for case in &cases {
            let dims: Vec<usize> = case.split(['_', 'x']).flat_map(str::parse).collect();
            let got = ours(case, dims.try_into().unwrap());
            let path = format!("{dir}/{case}_samples.npy");
            let (_, pairs) = crate::npy::read_npy_f32_file(path.as_ref()).unwrap();
            let diff = |p: &[f32]| (got[p[0] as usize] - p[1]).abs();
            let max = pairs.chunks_exact(2).map(diff).fold(0.0, f32::max);
            let tol = if case.starts_with("torch") { 2e-6 } else { 0.0 };
            assert!(max <= tol, "{case}: max |diff| {max:e}");
        }
    }

    #[test]
    fn rejects_bad_images_and_sizes() {
        let px = [0u8; 12];
        let sizes = [0, 0, 3, 0, 2, 2, 3, 11, 2, 2, 2, 8, usize::MAX, 2, 3, 12];
        for d in sizes.chunks_exact(4) {
            assert!(ImageRef::new(d[0], d[1], d[2], &px[..d[3]]).is_err());
        }
        let img = ImageRef::new(2, 2, 3, &px).unwrap();
        let wrong = ImageRef { width: 3, ..img };
        assert!(preprocess_image(&wrong, 8).is_err() && resize_bicubic_u8(&wrong, 8).is_err());
        assert!(preprocess_image(&img, 0).is_err() && resize_bicubic_u8(&img, usize::MAX).is_err());
        assert!(normalize_u8_chw(&px, 2).is_ok() && normalize_u8_chw(&px[..11], 2).is_err());
    }

    #[test]
    fn prompts_scale_like_torch_and_validate() {
        // Bits of torch float32 `c[..., 0] / 517`, `c[..., 1] / 333`, then `* 1024`.
        let pts = [[10.3, 20.7], [517.0, 333.0], [-5.0, 400.0], [0.1, 0.2]];
        let want = [
            1101214921, 1115594177, 1149239296, 1149239296, 3239998430, 1150927094,
        ];
        let got = scale_points(&pts, 517, 333, 1024);
        let bits: Vec<u32> = got.iter().flatten().map(|v| v.to_bits()).collect();
        assert_eq!(bits, [&want[..], &[1045090753, 1058894240]].concat());
        let boxes = scale_boxes(&[[10.3, 20.7, 517.0, 333.0]], 517, 333, 1024);
        assert_eq!(boxes, vec![[got[0], got[1]]]);
        assert!(validate_points(&[pts[0], pts[1], pts[3]], &[1, 0, 3], 517, 333).is_ok());
        let outside = validate_points(&pts, &[1, 0, -1, 3], 517, 333).unwrap_err().to_string();
        assert!(outside.contains("point 2") && outside.contains("outside"), "{outside}");
        let e = |p, l| validate_points(&[[0.0; 2], p], &[1, l], 9, 9).map_err(|e| e.to_string());
        assert!(e([f32::NAN, 1.0], 1).unwrap_err().contains("point 1"));
        assert!(e([1.0; 2], 4).unwrap_err().contains("point 1"));
        assert!(validate_points(&pts, &[1], 9, 9).is_err());
        assert!(validate_points(&[], &[], 0, 5).is_err());
        assert!(validate_box(&[[-50.0, -5.0, 900.0, 20.0], [1.0; 4]], 10, 10).is_ok());
        let e = |b| validate_box(&[[0.0; 4], b], 9, 9).unwrap_err().to_string();
        assert!(e([5.0, 0.0, 4.0, 1.0]).contains("box 1"));
        assert!(e([0.0, 5.0, 1.0, 4.0]).contains("box 1"));
        assert!(e([0.0, 0.0, f32::NAN, 1.0]).contains("box 1"));
    }

    #[test]
    fn fmaf_is_correctly_rounded() {
        // (1 + 2^-23) * 2^-24 (1 - 2^-23) + (1 + 2^-23) hits an f32 tie only after f64 rounding.
        let a = 1.0 + f32::EPSILON;
        assert_eq!(fmaf(a, 2f32.powi(-24) * (1.0 - f32::EPSILON), a), a);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let f = |k: u32| f32::from_bits((x >> k) as u32 & 0xBFFF_FFFF);
            let (a, b, c) = (f(0), f(21), f(32));
            assert_eq!(fmaf(a, b, c).to_bits(), a.mul_add(b, c).to_bits());
        }
    }
}
