//! Run-length encoding of binary masks in COCO's layout: Meta's `mask_to_rle_pytorch`,
//! `rle_to_mask` and `area_from_rle` (`sam2/utils/amg.py`), and pycocotools' compressed string
//! form (`rleToString` / `rleFrString` / `rleToBbox` in `maskApi.c`).

use crate::error::{Error, Result};

/// An uncompressed COCO run-length encoding of an `h × w` binary mask.
///
/// `counts` alternate runs of unset and set pixels over the mask in **column-major** order
/// (down the first column, then the next), starting with unset pixels: `counts[0]` is 0 when
/// the top-left pixel is set. The counts add up to `h * w`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    /// Mask height.
    pub height: usize,
    /// Mask width.
    pub width: usize,
    /// Run lengths, unset first.
    pub counts: Vec<u32>,
}

fn bad(msg: String) -> Error {
    Error::Input(msg)
}

impl Rle {
    /// Encodes a row-major `[h, w]` mask (`v != T::default()` = set, e.g. `true` or non-zero
    /// `u8`), like Meta's `mask_to_rle_pytorch`. Errors if `mask.len() != w * h` or `w * h`
    /// is 0 or does not fit in `u32`.
    pub fn from_mask<T: Copy + PartialEq + Default>(mask: &[T], width: usize, height: usize) -> Result<Self> {
        let n = width.checked_mul(height).filter(|&n| n > 0 && n <= u32::MAX as usize);
        if n != Some(mask.len()) {
            return Err(bad(format!("mask has {} values; expected a non-empty {width}x{height} (< 2^32 pixels)", mask.len())));
        }
        let unset = T::default();
        let (mut counts, mut run, mut current) = (Vec::new(), 0u32, false);
        for x in 0..width {
            for y in 0..height {
                let set = mask[y * width + x] != unset;
                if set != current {
                    counts.push(run);
                    run = 0;
                    current = set;
                }
                run += 1;
            }
        }
        counts.push(run);
        Ok(Self { height, width, counts })
    }

    /// Checks that the counts cover exactly `h * w` pixels.
    pub fn validate(&self) -> Result<()> {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let want = self.height as u64 * self.width as u64;
        if total != want {
            return Err(bad(format!("RLE counts add up to {total}, not {}x{} = {want}", self.height, self.width)));
        }
        Ok(())
    }

    /// The row-major `[h, w]` mask (Meta's `rle_to_mask`).
    pub fn to_mask(&self) -> Result<Vec<bool>> {
        self.validate()?;
        let (w, h) = (self.width, self.height);
        let mut mask = vec![false; w * h];
        let mut i = 0usize;
        for (k, &c) in self.counts.iter().enumerate() {
            if k % 2 == 1 {
                for j in i..i + c as usize {
                    mask[(j % h) * w + j / h] = true;
                }
            }
            i += c as usize;
        }
        Ok(mask)
    }

    /// Number of set pixels (`area_from_rle`, pycocotools' `area`).
    pub fn area(&self) -> u64 {
        self.counts.iter().skip(1).step_by(2).map(|&c| u64::from(c)).sum()
    }

    /// pycocotools' `toBbox`: `[x, y, w, h]` of the set pixels, where `w`/`h` count the columns
    /// / rows spanned (a single pixel is 1×1); `[0, 0, 0, 0]` for an empty mask. (Meta's
    /// generator records `x1 - x0` instead, see `amg::mask_to_box`.)
    pub fn bbox(&self) -> [f64; 4] {
        let h = self.height as u64;
        let (mut x0, mut y0, mut x1, mut y1) = (u64::MAX, u64::MAX, 0u64, 0u64);
        let mut start = 0u64;
        for (k, &c) in self.counts.iter().enumerate() {
            let end = start + u64::from(c);
            if k % 2 == 1 && c > 0 {
                let (first, last) = (start, end - 1);
                let (cx0, cx1) = (first / h, last / h);
                let (ry0, ry1) = if cx0 == cx1 { (first % h, last % h) } else { (0, h - 1) };
                (x0, x1, y0, y1) = (x0.min(cx0), x1.max(cx1), y0.min(ry0), y1.max(ry1));
            }
            start = end;
        }
        if x0 == u64::MAX {
            return [0.0; 4];
        }
        [x0 as f64, y0 as f64, (x1 - x0 + 1) as f64, (y1 - y0 + 1) as f64]
    }

    /// pycocotools' compressed string (`rleToString`): each count, minus the count two places
    /// earlier from the fourth on, in 5-bit groups (least significant first, bit 5 = more
    /// groups follow, bit 4 of the last group = sign), each group + 48 as one ASCII character.
    pub fn to_coco_string(&self) -> String {
        let mut s = String::new();
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = i64::from(c);
            if i > 2 {
                x -= i64::from(self.counts[i - 2]);
            }
            loop {
                let mut group = (x & 0x1f) as u8;
                x >>= 5;
                let more = if group & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    group |= 0x20;
                }
                s.push(char::from(group + 48));
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Decodes pycocotools' compressed string for an `h × w` mask (`rleFrString`). Errors on
    /// characters outside `'0'..='o'`, a truncated value, a negative or oversized count, or
    /// counts that do not add up to `h * w`.
    pub fn from_coco_string(s: &str, height: usize, width: usize) -> Result<Self> {
        let bytes = s.as_bytes();
        let (mut counts, mut p) = (Vec::<u32>::new(), 0usize);
        while p < bytes.len() {
            let (mut x, mut k) = (0i64, 0u32);
            loop {
                let Some(&b) = bytes.get(p) else {
                    return Err(bad(format!("COCO RLE string ends inside a value (count {})", counts.len())));
                };
                if !(48..48 + 64).contains(&b) || k >= 12 {
                    return Err(bad(format!("COCO RLE string: bad character {:?} at {p}", char::from(b))));
                }
                let c = i64::from(b - 48);
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            if counts.len() > 2 {
                x += i64::from(counts[counts.len() - 2]);
            }
            let count = u32::try_from(x).map_err(|_| bad(format!("COCO RLE string: count {} is {x}", counts.len())))?;
            counts.push(count);
        }
        let rle = Self { height, width, counts };
        rle.validate()?;
        Ok(rle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        (rows.iter().flat_map(|r| r.bytes().map(|b| b == b'#')).collect(), rows[0].len(), rows.len())
    }

    #[test]
    fn column_major_runs_start_with_unset() {
        let (m, w, h) = rows(&["#..", "##.", "..#"]);
        let rle = Rle::from_mask(&m, w, h).unwrap();
        // Columns: [1,1,0], [0,1,0], [0,0,1] -> 0 unset, 2 set, 2 unset, 1 set, 3 unset, 1 set.
        assert_eq!(rle.counts, [0, 2, 2, 1, 3, 1]);
        assert_eq!(rle.to_mask().unwrap(), m);
        assert_eq!(rle.area(), 4);
        assert_eq!(rle.bbox(), [0.0, 0.0, 3.0, 3.0]);
        let empty = Rle::from_mask(&[0u8; 6], 3, 2).unwrap();
        assert_eq!((empty.counts.as_slice(), empty.area(), empty.bbox()), (&[6u32][..], 0, [0.0; 4]));
    }

    #[test]
    fn bbox_of_runs_crossing_columns_and_single_pixels() {
        // One run from the bottom of column 1 to the top of column 2.
        let (m, w, h) = rows(&["..#.", "....", ".#.."]);
        assert_eq!(Rle::from_mask(&m, w, h).unwrap().bbox(), [1.0, 0.0, 2.0, 3.0]);
        let (m, w, h) = rows(&["....", "..#.", "...."]);
        assert_eq!(Rle::from_mask(&m, w, h).unwrap().bbox(), [2.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn coco_strings_round_trip_including_negative_deltas_and_long_runs() {
        for counts in [vec![35u32], vec![0, 12], vec![3, 40, 1, 2, 100, 1, 5000, 1], vec![0, 1_320_000], vec![7, 1, 1, 1, 1, 1, 1]] {
            let n: u32 = counts.iter().sum();
            let rle = Rle { height: 1, width: n as usize, counts };
            let s = rle.to_coco_string();
            assert!(s.bytes().all(|b| (48..112).contains(&b)), "{s}");
            assert_eq!(Rle::from_coco_string(&s, 1, n as usize).unwrap(), rle);
        }
        // pycocotools' strings for a 5x7 empty mask and a 4x3 full one.
        assert_eq!(Rle { height: 5, width: 7, counts: vec![35] }.to_coco_string(), "S1");
        assert_eq!(Rle { height: 4, width: 3, counts: vec![0, 12] }.to_coco_string(), "0<");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Rle::from_mask(&[true; 5], 2, 3).is_err());
        assert!(Rle::from_mask::<bool>(&[], 0, 0).is_err());
        assert!(Rle::from_coco_string("S1", 5, 8).is_err(), "wrong total");
        assert!(Rle::from_coco_string("S", 5, 7).is_err(), "truncated");
        assert!(Rle::from_coco_string("S1~", 5, 7).is_err(), "bad character");
        assert!(Rle::from_coco_string("0<", 4, 3).is_ok());
        assert!(Rle::from_coco_string("01O", 1, 1).is_err(), "negative count");
        assert!(Rle { height: 2, width: 2, counts: vec![1, 2] }.to_mask().is_err());
    }
}
