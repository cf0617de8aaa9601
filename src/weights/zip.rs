//! Minimal zip reader for PyTorch archives: central directory (with ZIP64), STORED entries only.
//!
//! Every offset and length is checked against the buffer; nothing is decompressed and CRCs are
//! not verified (torch never compresses, and tensor bytes are validated by shape instead).

use std::collections::BTreeMap;
use std::ops::Range;

use crate::error::{Error, Result};

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;

fn bad(msg: String) -> Error {
    Error::Weights(msg)
}

fn to_usize(v: u64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| bad(format!("zip {what} {v} does not fit in memory")))
}

/// Where the central directory is and how many entries it has.
struct Directory {
    offset: usize,
    size: usize,
    entries: u64,
}

/// Finds the End of Central Directory record (and the ZIP64 record when there is one).
fn find_directory(buf: &[u8]) -> Result<Directory> {
    let missing = || {
        bad(format!(
            "truncated or not a zip: zip central directory not found (file is {} bytes)",
            buf.len()
        ))
    };
    let last = buf.len().checked_sub(EOCD_LEN).ok_or_else(missing)?;
    let first = last.saturating_sub(u16::MAX as usize);
    let is_sig = |p: usize| buf.get(p..p + 4) == Some(&EOCD_SIG.to_le_bytes()[..]);
    let eocd = (first..=last).rev().find(|&p| is_sig(p)).ok_or_else(missing)?;
    let mut c = Cursor::new(buf, eocd + 4, "zip end of central directory");
    let (disk, cd_disk) = (c.u16()?, c.u16()?);
    let (_on_disk, total) = (c.u16()?, c.u16()?);
    let (size, offset) = (c.u32()?, c.u32()?);
    let needs64 = total == u16::MAX || size == u32::MAX || offset == u32::MAX;
    let locator = eocd.checked_sub(20).filter(|&p| buf.get(p..p + 4) == Some(&ZIP64_LOCATOR_SIG.to_le_bytes()[..]));
    let Some(locator) = locator else {
        if needs64 {
            return Err(bad("truncated: zip64 end of central directory locator not found".into()));
        }
        if disk != 0 || cd_disk != 0 {
            return Err(bad("multi-disk zip archives are not supported".into()));
        }
        let offset = offset as usize;
        return Ok(Directory { offset, size: size as usize, entries: total.into() });
    };
    let mut c = Cursor::new(buf, locator + 8, "zip64 end of central directory locator");
    let rec = to_usize(c.u64()?, "zip64 record offset")?;
    let mut c = Cursor::new(buf, rec, "zip64 end of central directory record");
    if c.u32()? != ZIP64_EOCD_SIG {
        return Err(bad(format!("zip64 end of central directory record not found at offset {rec}")));
    }
    let _rec_size = c.u64()?;
    let _versions = c.u32()?;
    let (disk, cd_disk) = (c.u32()?, c.u32()?);
    if disk != 0 || cd_disk != 0 {
        return Err(bad("multi-disk zip archives are not supported".into()));
    }
    let (_on_disk, entries) = (c.u64()?, c.u64()?);
    let size = to_usize(c.u64()?, "central directory size")?;
    let offset = to_usize(c.u64()?, "central directory offset")?;
    Ok(Directory { offset, size, entries })
}

/// Reads the ZIP64 extended-information extra field (id 1), replacing saturated values.
fn apply_zip64_extra(extra: &[u8], fields: [&mut u64; 3]) -> Result<()> {
    let mut c = Cursor::new(extra, 0, "zip extra field");
    while !c.at_end() {
        let (id, len) = (c.u16()?, c.u16()?);
        let body = c.take(len.into())?;
        if id != 1 {
            continue;
        }
        let mut b = Cursor::new(body, 0, "zip64 extra field");
        for f in fields {
            if *f == u64::from(u32::MAX) {
                *f = b.u64()?;
            }
        }
        return Ok(());
    }
    Ok(())
}

/// Parses a zip archive and returns every entry's name and the byte range of its data.
pub(crate) fn entries(buf: &[u8]) -> Result<BTreeMap<String, Range<usize>>> {
    let dir = find_directory(buf)?;
    let dir_end = dir.offset.checked_add(dir.size).filter(|&e| e <= buf.len());
    let dir_end = dir_end.ok_or_else(|| {
        bad(format!(
            "truncated: zip central directory ({} bytes at offset {}) extends past end of file ({} bytes)",
            dir.size,
            dir.offset,
            buf.len()
        ))
    })?;
    if dir.entries > (dir.size / CENTRAL_LEN) as u64 {
        return Err(bad(format!(
            "zip central directory claims {} entries but has room for at most {}",
            dir.entries,
            dir.size / CENTRAL_LEN
        )));
    }
    let table = buf.get(dir.offset..dir_end).unwrap_or_default();
    let mut c = Cursor::new(table, 0, "zip central directory");
    let mut out = BTreeMap::new();
    for i in 0..dir.entries {
        if c.u32()? != CENTRAL_SIG {
            return Err(bad(format!("zip central directory entry {i} has a bad signature")));
        }
        c.take(4)?; // versions
        let (flags, method) = (c.u16()?, c.u16()?);
        c.take(8)?; // time, date, crc
        let (mut comp, mut uncomp) = (u64::from(c.u32()?), u64::from(c.u32()?));
        let (name_len, extra_len, comment_len) = (c.u16()?, c.u16()?, c.u16()?);
        c.take(8)?; // disk start, attributes
        let mut local = u64::from(c.u32()?);
        let name = String::from_utf8_lossy(c.take(name_len.into())?).into_owned();
        apply_zip64_extra(c.take(extra_len.into())?, [&mut uncomp, &mut comp, &mut local])?;
        c.take(comment_len.into())?;
        if flags & 1 != 0 {
            return Err(bad(format!("zip entry {name} is encrypted")));
        }
        if method != 0 {
            return Err(bad(format!(
                "zip entry {name} is compressed (method {method}); only stored entries are supported"
            )));
        }
        if comp != uncomp {
            return Err(bad(format!("zip entry {name} is stored but its sizes differ")));
        }
        let range = data_range(buf, &name, to_usize(local, "local header offset")?, comp)?;
        if out.insert(name.clone(), range).is_some() {
            return Err(bad(format!("duplicate zip entry {name}")));
        }
    }
    Ok(out)
}

/// The data range of one entry, from its local file header.
fn data_range(buf: &[u8], name: &str, local: usize, size: u64) -> Result<Range<usize>> {
    let past_end = || bad(format!("truncated: zip entry {name} extends past end of file"));
    let mut c = Cursor::new(buf, local, "zip local file header");
    if c.u32().map_err(|_| past_end())? != LOCAL_SIG {
        return Err(bad(format!("zip entry {name}: local file header not found at offset {local}")));
    }
    c.take(22).map_err(|_| past_end())?;
    let name_len = c.u16().map_err(|_| past_end())?;
    let extra_len = c.u16().map_err(|_| past_end())?;
    let start = c.pos() + usize::from(name_len) + usize::from(extra_len);
    let end = usize::try_from(size).ok().and_then(|s| start.checked_add(s));
    match end {
        Some(end) if end <= buf.len() => Ok(start..end),
        _ => Err(past_end()),
    }
}

/// Little-endian cursor over a byte slice that reports truncation instead of panicking.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor at byte `pos` of `buf`; `what` names the structure in error messages.
    pub(crate) fn new(buf: &'a [u8], pos: usize, what: &'static str) -> Self {
        Cursor { buf, pos, what }
    }

    /// Current position.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Whether the cursor is at the end of the buffer.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let slice = self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end));
        let slice = slice.ok_or_else(|| {
            Error::Weights(format!(
                "truncated: {} needs {n} bytes at offset {} but only {} remain",
                self.what,
                self.pos,
                self.buf.len().saturating_sub(self.pos)
            ))
        })?;
        self.pos += n;
        Ok(slice)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| Error::Weights(format!("{}: internal read error", self.what)))
    }

    /// Next byte.
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    /// Next little-endian u16.
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Next little-endian u32.
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Next little-endian u64.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Hand-assembles a STORED zip (optionally ZIP64 everywhere, optionally with a fake method).
#[cfg(test)]
pub(crate) fn build(files: &[(&str, &[u8])], zip64: bool, method: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u64;
        out.extend(LOCAL_SIG.to_le_bytes());
        out.extend([20, 0, 0, 0]);
        out.extend(method.to_le_bytes());
        out.extend([0u8; 8]);
        let small = if zip64 { u32::MAX } else { data.len() as u32 };
        out.extend(small.to_le_bytes());
        out.extend(small.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(3u16.to_le_bytes()); // extra: 3 bytes of padding, like torch's alignment
        out.extend(name.as_bytes());
        out.extend([0u8; 3]);
        out.extend(*data);
        central.extend(CENTRAL_SIG.to_le_bytes());
        central.extend([45, 3, 45, 0, 0, 0]);
        central.extend(method.to_le_bytes());
        central.extend([0u8; 8]);
        central.extend(small.to_le_bytes());
        central.extend(small.to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend((if zip64 { 28u16 } else { 0 }).to_le_bytes());
        central.extend([0u8; 10]);
        central.extend((if zip64 { u32::MAX } else { offset as u32 }).to_le_bytes());
        central.extend(name.as_bytes());
        if zip64 {
            central.extend([1, 0, 24, 0]);
            central.extend((data.len() as u64).to_le_bytes());
            central.extend((data.len() as u64).to_le_bytes());
            central.extend(offset.to_le_bytes());
        }
    }
    let cd_offset = out.len() as u64;
    out.extend(&central);
    let n = files.len() as u64;
    if zip64 {
        let rec = out.len() as u64;
        out.extend(ZIP64_EOCD_SIG.to_le_bytes());
        out.extend(44u64.to_le_bytes());
        out.extend([45, 3, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for v in [n, n, central.len() as u64, cd_offset] {
            out.extend(v.to_le_bytes());
        }
        out.extend(ZIP64_LOCATOR_SIG.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(rec.to_le_bytes());
        out.extend(1u32.to_le_bytes());
    }
    out.extend(EOCD_SIG.to_le_bytes());
    out.extend([0u8; 4]);
    let (n16, size32, off32) = if zip64 {
        (u16::MAX, u32::MAX, u32::MAX)
    } else {
        (n as u16, central.len() as u32, cd_offset as u32)
    };
    out.extend(n16.to_le_bytes());
    out.extend(n16.to_le_bytes());
    out.extend(size32.to_le_bytes());
    out.extend(off32.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[(&str, &[u8])] =
        &[("m/data.pkl", b"pickle!"), ("m/data/0", &[1, 2, 3, 4, 5, 6, 7, 8]), ("m/version", b"3\n")];

    fn check(zip: &[u8]) {
        let map = entries(zip).unwrap();
        assert_eq!(map.len(), 3);
        for (name, data) in FILES {
            assert_eq!(&zip[map[*name].clone()], *data, "{name}");
        }
    }

    #[test]
    fn stored_zip_and_zip64() {
        check(&build(FILES, false, 0));
        check(&build(FILES, true, 0));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for zip64 in [false, true] {
            let zip = build(FILES, zip64, 0);
            for cut in 0..zip.len() {
                let err = entries(&zip[..cut]).unwrap_err();
                assert!(matches!(err, Error::Weights(_)), "cut {cut}: {err:?}");
            }
        }
    }

    #[test]
    fn compressed_entry_is_named() {
        let err = entries(&build(FILES, false, 8)).unwrap_err().to_string();
        assert!(err.contains("m/data.pkl") && err.contains("compressed"), "{err}");
    }

    #[test]
    fn garbage_and_corruption() {
        assert!(entries(b"").is_err());
        assert!(entries(&[0xAB; 5000]).is_err());
        let mut zip = build(FILES, false, 0);
        let n = zip.len();
        zip[n - 6..n - 2].copy_from_slice(&9999u32.to_le_bytes()); // central directory offset
        assert!(entries(&zip).unwrap_err().to_string().contains("past end"));
        // Flip every byte of the directory region in turn: never a panic.
        let zip = build(FILES, true, 0);
        for i in 0..zip.len() {
            let mut z = zip.clone();
            z[i] ^= 0xFF;
            let _ = entries(&z);
        }
    }
}
