//! Minimal NumPy `.npy` reading and writing (format versions 1.0, 2.0 and 3.0).
//!
//! Only what the CLI and the tests need: C-order arrays of little-endian `f32`
//! (`'<f4'`) and `u8` (`'|u1'`) are written; `'<f4'`, `'<f8'`, `'|u1'` and `'|b1'`
//! are read and converted to `f32`. Every malformed input is an [`Error::Input`].

use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Serialises a C-order `f32` array of shape `shape` (`data.len()` must be the
/// product of `shape`; an empty `shape` is a scalar holding one value) as `.npy` bytes.
pub fn write_npy_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let mut out = header("<f4", shape, data.len())?;
    out.reserve(data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Serialises a C-order `u8` array of shape `shape` (`data.len()` must be the
/// product of `shape`) as `.npy` bytes with dtype `'|u1'`.
pub fn write_npy_u8(shape: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = header("|u1", shape, data.len())?;
    out.extend_from_slice(data);
    Ok(out)
}

/// Parses `.npy` bytes into `(shape, values)`, values in C order converted to `f32`.
///
/// Accepts dtypes `'<f4'`, `'<f8'` (rounded to `f32`), `'|u1'` and `'|b1'` (0.0 / 1.0).
/// Fortran-order arrays, other dtypes, truncated or trailing data are [`Error::Input`].
pub fn read_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>)> {
    let (descr, shape, body) = parse(bytes)?;
    let n = numel(&shape)?;
    let item = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        "|u1" | "<u1" | "u1" | "|b1" | "<b1" | "b1" => 1,
        d => {
            return Err(bad(format!(
                "unsupported dtype {d:?} (want <f4, <f8, |u1 or |b1)"
            )));
        }
    };
    let want = n
        .checked_mul(item)
        .ok_or_else(|| bad("array size overflows".into()))?;
    if body.len() != want {
        return Err(bad(format!(
            "data has {} bytes, shape {shape:?} of {descr} needs {want}",
            body.len()
        )));
    }
    let data: Vec<f32> = match item {
        4 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        8 => body
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b) as f32
            })
            .collect(),
        _ if descr.ends_with("b1") => body
            .iter()
            .map(|&b| if b != 0 { 1.0 } else { 0.0 })
            .collect(),
        _ => body.iter().map(|&b| f32::from(b)).collect(),
    };
    Ok((shape, data))
}

/// Reads a `.npy` file with [`read_npy_f32`]; a failed read is an [`Error::Io`].
pub fn read_npy_f32_file(path: &std::path::Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    read_npy_f32(&bytes)
}

fn bad(msg: String) -> Error {
    Error::Input(format!("npy: {msg}"))
}

fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))
}

/// Builds magic + version + header, padded so the data starts on a 64-byte boundary.
fn header(descr: &str, shape: &[usize], len: usize) -> Result<Vec<u8>> {
    let n = numel(shape)?;
    if n != len {
        return Err(bad(format!(
            "shape {shape:?} holds {n} values but data has {len}"
        )));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // Version 1.0 has a u16 header length; fall back to 2.0 (u32) for huge headers.
    let padded = |prefix: usize| (prefix + dict.len() + 1).div_ceil(64) * 64 - prefix;
    let (version, hlen) = match padded(10) {
        h if h <= usize::from(u16::MAX) => (1u8, h),
        _ => (2u8, padded(12)),
    };
    dict.extend(std::iter::repeat_n(' ', hlen - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(12 + hlen);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(hlen as u16).to_le_bytes());
    } else {
        let hl = u32::try_from(hlen).map_err(|_| bad("header too long".into()))?;
        out.extend_from_slice(&hl.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    Ok(out)
}

/// Splits `.npy` bytes into (descr, shape, data bytes).
fn parse(bytes: &[u8]) -> Result<(String, Vec<usize>, &[u8])> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not an .npy file (bad magic)".into()));
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (
                usize::try_from(l).map_err(|_| bad("header too long".into()))?,
                12,
            )
        }
        v => return Err(bad(format!("unsupported format version {v}.{}", bytes[7]))),
    };
    let end = start.checked_add(hlen).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| bad("truncated header".into()))?;
    let text =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not UTF-8".into()))?;
    let mut p = Dict {
        s: text.trim_end().as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            k => return Err(bad(format!("unexpected header key {k:?}"))),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(bad("garbage after header dict".into()));
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(bad("header lacks descr, fortran_order or shape".into()));
    };
    if fortran {
        return Err(bad(
            "fortran_order=True arrays are not supported (C order only)".into(),
        ));
    }
    Ok((descr, shape, &bytes[end..]))
}

/// A cursor over the Python-literal header dict.
struct Dict<'a> {
    s: &'a [u8],
    i: usize,
}

impl Dict<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(bad(format!(
                "header: expected {:?} at {}",
                c as char, self.i
            )))
        }
    }
    fn string(&mut self) -> Result<String> {
        let q = *self
            .s
            .get(self.i)
            .filter(|&&c| c == b'\'' || c == b'"')
            .ok_or_else(|| bad("header: expected a string".into()))?;
        let rest = &self.s[self.i + 1..];
        let len = rest
            .iter()
            .position(|&c| c == q)
            .ok_or_else(|| bad("header: unterminated string".into()))?;
        self.i += len + 2;
        Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
    }
    fn boolean(&mut self) -> Result<bool> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(bad("header: expected True or False".into()))
    }
    fn tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let n = self.s[self.i..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let digits = std::str::from_utf8(&self.s[self.i..self.i + n]).unwrap_or("");
            dims.push(
                digits
                    .parse()
                    .map_err(|_| bad("header: bad shape".into()))?,
            );
            self.i += n;
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!(
            "{}/tests/fixtures/transforms/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn round_trip_f32_and_u8() {
        for shape in [vec![2, 3, 4], vec![7], vec![], vec![0, 5]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
            let bytes = write_npy_f32(&shape, &data).unwrap();
            let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + hl) % 64, 0);
            assert_eq!(read_npy_f32(&bytes).unwrap(), (shape.clone(), data));
            let u: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let (s, v) = read_npy_f32(&write_npy_u8(&shape, &u).unwrap()).unwrap();
            assert_eq!((s, v), (shape, u.iter().map(|&b| f32::from(b)).collect()));
        }
        assert!(matches!(
            write_npy_f32(&[2, 2], &[1.0; 3]),
            Err(Error::Input(_))
        ));
    }

    #[test]
    fn reads_numpy_written_files() {
        let (s, v) = read_npy_f32(&fixture("npy_f4.npy")).unwrap();
        assert_eq!(s, vec![2, 3, 4]);
        assert_eq!(v, (0..24).map(|i| i as f32 / 8.0 - 1.0).collect::<Vec<_>>());
        // The writer is byte-identical to numpy's `np.save`.
        assert_eq!(write_npy_f32(&s, &v).unwrap(), fixture("npy_f4.npy"));
        assert_eq!(
            write_npy_u8(&[4], &[0, 1, 128, 255]).unwrap(),
            fixture("npy_u1.npy")
        );
        let (s, v) = read_npy_f32(&fixture("npy_f8.npy")).unwrap();
        assert_eq!((s, v), (vec![2, 2], vec![0.1, -2.5, 1e30, 3.0]));
        assert_eq!(
            read_npy_f32(&fixture("npy_u1.npy")).unwrap(),
            (vec![4], vec![0.0, 1.0, 128.0, 255.0])
        );
        assert_eq!(
            read_npy_f32(&fixture("npy_b1.npy")).unwrap(),
            (vec![1, 3], vec![1.0, 0.0, 1.0])
        );
        assert_eq!(
            read_npy_f32(&fixture("npy_scalar_f4.npy")).unwrap(),
            (vec![], vec![7.5])
        );
        assert!(matches!(
            read_npy_f32(&fixture("npy_fortran_f4.npy")),
            Err(Error::Input(_))
        ));
    }

    #[test]
    fn versions_2_and_3_headers() {
        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }    \n";
        for v in [2u8, 3] {
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[v, 0]);
            b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
            b.extend_from_slice(dict);
            b.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
            assert_eq!(read_npy_f32(&b).unwrap(), (vec![2], vec![1.0, 2.0]));
        }
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        let good = write_npy_f32(&[3, 2], &[0.0; 6]).unwrap();
        for cut in 0..good.len() {
            assert!(
                matches!(read_npy_f32(&good[..cut]), Err(Error::Input(_))),
                "cut {cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(read_npy_f32(&long).is_err());
        for (from, to) in [
            ("<f4", ">f4"),
            ("<f4", "<i8"),
            ("(3, 2)", "(3, x)"),
            ("False", "Maybe"),
            ("'shape'", "'shapz'"),
        ] {
            let text = String::from_utf8_lossy(&good).replacen(from, to, 1);
            assert!(
                matches!(read_npy_f32(text.as_bytes()), Err(Error::Input(_))),
                "{to}"
            );
        }
        let mut huge = good[..10].to_vec();
        huge.extend_from_slice(
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
        );
        let hl = (huge.len() - 10) as u16;
        huge[8..10].copy_from_slice(&hl.to_le_bytes());
        assert!(read_npy_f32(&huge).is_err());
        assert!(read_npy_f32(b"garbage garbage garbage").is_err());
    }
}
