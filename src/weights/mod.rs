//! Checkpoint reading: PyTorch `.pt` (zip + pickle, no code execution) and `.safetensors`.
//!
//! [`Checkpoint`] owns the file bytes, indexes every tensor of the state dict by name and
//! converts one tensor at a time to contiguous row-major `f32` ([`Checkpoint::tensor_f32`]).
//! [`detect`] tells which official SAM 2 / SAM 2.1 model a checkpoint holds, and
//! [`to_safetensors`] re-exports a checkpoint (e.g. a `.pt`) as `.safetensors`.
//! [`load_sam2`] builds the model from a checkpoint, with [`keymap`] relating the two.

mod detect;
pub mod keymap;
mod loader;
mod pickle;
mod pt;
mod safetensors;
mod zip;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use crate::error::{Error, Result};

pub use self::detect::{Detected, detect, detect_from_shapes, official_size};
pub use self::loader::{config_for, load_sam2, load_sam2_video, parameter_count};
pub use self::safetensors::to_safetensors;
pub use crate::config::{ModelSize, Sam2Version};

/// The container format a checkpoint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PyTorch zip archive written by `torch.save` (PyTorch >= 1.6).
    Pt,
    /// Hugging Face safetensors.
    Safetensors,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pt => "pt",
            Format::Safetensors => "safetensors",
        })
    }
}

/// Element type of a tensor as stored in the file (always little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer (not readable as float).
    I64,
    /// 32-bit signed integer (not readable as float).
    I32,
    /// 16-bit signed integer (not readable as float).
    I16,
    /// 8-bit signed integer (not readable as float).
    I8,
    /// 8-bit unsigned integer (not readable as float).
    U8,
    /// Boolean, one byte each (not readable as float).
    Bool,
}

impl SourceDType {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            SourceDType::F64 | SourceDType::I64 => 8,
            SourceDType::F32 | SourceDType::I32 => 4,
            SourceDType::F16 | SourceDType::BF16 | SourceDType::I16 => 2,
            SourceDType::I8 | SourceDType::U8 | SourceDType::Bool => 1,
        }
    }

    /// Whether [`Checkpoint::tensor_f32`] can convert this type.
    pub fn is_float(self) -> bool {
        matches!(self, SourceDType::F32 | SourceDType::F16 | SourceDType::BF16 | SourceDType::F64)
    }
}

impl fmt::Display for SourceDType {
    /// Lower-case name: `f32`, `bf16`, `i64`, `bool`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format!("{self:?}").to_ascii_lowercase())
    }
}

/// One tensor's metadata; `shape` in PyTorch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Dimensions, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Element type in the file.
    pub dtype: SourceDType,
}

const LEGACY: &str = "legacy (pre-1.6) PyTorch format is not supported; re-save with torch.save in a current PyTorch";

/// Largest element count of a tensor that is bigger than its storage (expanded views).
const MAX_EXPANDED: usize = 1 << 24;

/// Where one tensor's elements live in the owned file bytes.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    info: TensorInfo,
    /// Byte range of the whole storage in the file.
    storage: Range<usize>,
    /// Offset of element 0, in elements from the start of the storage.
    offset: usize,
    /// Stride of each dimension, in elements.
    strides: Vec<usize>,
    /// Number of elements (product of the shape).
    numel: usize,
}

impl Entry {
    /// Validates that every element addressed by (offset, shape, strides) lies inside `storage`.
    pub(crate) fn new(
        name: &str,
        info: TensorInfo,
        storage: Range<usize>,
        offset: usize,
        strides: Vec<usize>,
    ) -> Result<Entry> {
        let bad = |what: &str| Error::Weights(format!("tensor {name:?}: {what}"));
        if strides.len() != info.shape.len() {
            return Err(bad("stride and size have different lengths"));
        }
        let numel = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let numel = numel.ok_or_else(|| bad("element count overflows"))?;
        let avail = storage.len() / info.dtype.size_bytes();
        // Views that repeat elements (stride 0) may be larger than their storage, but a hostile
        // file must not make a few bytes expand into gigabytes.
        if numel > avail.max(MAX_EXPANDED) {
            return Err(bad(&format!("{numel} elements but the storage holds only {avail}")));
        }
        if numel > 0 {
            let mut last = offset;
            for (&d, &s) in info.shape.iter().zip(&strides) {
                let step = (d - 1).checked_mul(s).ok_or_else(|| bad("extent overflows"))?;
                last = last.checked_add(step).ok_or_else(|| bad("extent overflows"))?;
            }
            if last >= avail {
                return Err(bad(&format!(
                    "storage offset {offset} with size {:?} and stride {strides:?} needs {} \
                     elements but the storage holds {avail}",
                    info.shape,
                    last.saturating_add(1)
                )));
            }
        }
        Ok(Entry { info, storage, offset, strides, numel })
    }
}

/// Tensor name -> where its elements are.
pub(crate) type Index = BTreeMap<String, Entry>;

/// Row-major contiguous strides of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    strides
}

/// A loaded checkpoint: the file bytes plus an index of its state dict.
#[derive(Clone)]
pub struct Checkpoint {
    bytes: Vec<u8>,
    format: Format,
    index: Index,
    metadata: BTreeMap<String, String>,
    num_params: usize,
}

impl fmt::Debug for Checkpoint {
    /// A summary (format and sizes), not the file bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("format", &self.format)
            .field("tensors", &self.index.len())
            .field("num_params", &self.num_params)
            .field("byte_len", &self.bytes.len())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Checkpoint {
    /// Parses a checkpoint held in memory; the format is sniffed from the first bytes
    /// (`PK\x03\x04` zip magic => `.pt`, otherwise safetensors).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let (format, index, metadata) = if bytes.starts_with(b"PK\x03\x04") {
            (Format::Pt, pt::index(&bytes)?, BTreeMap::new())
        } else if bytes.first() == Some(&0x80) && !safetensors::looks_like(&bytes) {
            return Err(Error::Weights(LEGACY.into()));
        } else {
            let (index, metadata) = safetensors::index(&bytes)?;
            (Format::Safetensors, index, metadata)
        };
        Self::assemble(bytes, format, index, metadata)
    }

    /// Reads and parses a checkpoint file (`.pt` or `.safetensors`, sniffed from its content).
    #[cfg(not(target_family = "wasm"))]
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        Self::from_bytes(bytes)
    }

    fn assemble(bytes: Vec<u8>, format: Format, index: Index, metadata: BTreeMap<String, String>) -> Result<Self> {
        let num_params = index.values().try_fold(0usize, |a, e| a.checked_add(e.numel));
        let num_params = num_params.ok_or_else(|| Error::Weights("total parameter count overflows".into()))?;
        Ok(Checkpoint { bytes, format, index, metadata, num_params })
    }

    /// The container format the checkpoint was read from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Tensor names (state-dict keys), in sorted (byte-wise lexicographic) order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Shape and dtype of one tensor, or `None` if there is no tensor of that name.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|e| &e.info)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the checkpoint holds no tensor (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Total number of elements over all tensors.
    pub fn num_params(&self) -> usize {
        self.num_params
    }

    /// Size of the checkpoint file in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Safetensors `__metadata__` (empty for `.pt`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The tensor as contiguous row-major f32 (f16/bf16/f64 converted), honouring storage
    /// offset and strides. Returns `(shape, data)`; integer and bool tensors are an error.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let e = self.entry(name)?;
        let conv: fn(&[u8]) -> f32 = match e.info.dtype {
            SourceDType::F32 => |b| b.try_into().map_or(f32::NAN, f32::from_le_bytes),
            SourceDType::F16 => |b| b.try_into().map_or(f32::NAN, |a| half::f16::from_le_bytes(a).to_f32()),
            SourceDType::BF16 => |b| b.try_into().map_or(f32::NAN, |a| half::bf16::from_le_bytes(a).to_f32()),
            SourceDType::F64 => |b| b.try_into().map_or(f32::NAN, |a| f64::from_le_bytes(a) as f32),
            other => {
                return Err(Error::Weights(format!(
                    "tensor {name:?} has dtype {other}, which cannot be read as float"
                )));
            }
        };
        let mut out = Vec::with_capacity(e.numel);
        self.for_each_element(name, e, |b| out.push(conv(b)))?;
        Ok((e.info.shape.clone(), out))
    }

    /// The tensor's elements in row-major order, in the file's dtype, little-endian.
    pub(crate) fn tensor_raw(&self, name: &str) -> Result<(TensorInfo, Vec<u8>)> {
        let e = self.entry(name)?;
        let mut out = Vec::with_capacity(e.numel.saturating_mul(e.info.dtype.size_bytes()));
        self.for_each_element(name, e, |b| out.extend_from_slice(b))?;
        Ok((e.info.clone(), out))
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.index
            .get(name)
            .ok_or_else(|| Error::Weights(format!("no tensor named {name:?} in the checkpoint")))
    }

    /// Calls `f` with the bytes of every element, in row-major order.
    fn for_each_element(&self, name: &str, e: &Entry, mut f: impl FnMut(&[u8])) -> Result<()> {
        let oob = || Error::Weights(format!("tensor {name:?} lies outside the file"));
        let es = e.info.dtype.size_bytes();
        let storage = self.bytes.get(e.storage.clone()).ok_or_else(oob)?;
        if e.numel == 0 {
            return Ok(());
        }
        let mut dims = e.info.shape.iter().zip(&e.strides).zip(contiguous_strides(&e.info.shape));
        if dims.all(|((&d, &s), c)| d == 1 || s == c) {
            let start = e.offset * es;
            let data = storage.get(start..start + e.numel * es).ok_or_else(oob)?;
            data.chunks_exact(es).for_each(f);
            return Ok(());
        }
        // Odometer over the multi-index; `pos` is the element offset of the current index.
        let rank = e.info.shape.len();
        let mut idx = vec![0usize; rank];
        let mut pos = e.offset;
        for _ in 0..e.numel {
            f(storage.get(pos * es..pos * es + es).ok_or_else(oob)?);
            for d in (0..rank).rev() {
                let (Some(i), Some(&n), Some(&s)) = (idx.get_mut(d), e.info.shape.get(d), e.strides.get(d)) else {
                    break;
                };
                // Wrapping steps: intermediate values may leave the storage (or even wrap
                // around) only while carrying; every position actually read was validated.
                *i += 1;
                pos = pos.wrapping_add(s);
                if *i < n {
                    break;
                }
                pos = pos.wrapping_sub(s.wrapping_mul(n));
                *i = 0;
            }
        }
        Ok(())
    }

    /// An index-only checkpoint from `(name, shape)` pairs (f32, zero-filled storage), for tests.
    #[cfg(test)]
    pub(crate) fn from_shapes(items: &[(String, Vec<usize>)]) -> Result<Self> {
        let mut index = BTreeMap::new();
        for (name, shape) in items {
            let info = TensorInfo { shape: shape.clone(), dtype: SourceDType::F32 };
            let e = Entry::new(name, info, 0..usize::MAX, 0, contiguous_strides(shape))?;
            index.insert(name.clone(), e);
        }
        Self::assemble(Vec::new(), Format::Safetensors, index, BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type View<'a> = (&'a str, usize, &'a [usize], &'a [usize]);

    /// A checkpoint of f32 views `(name, offset, shape, strides)` over one storage `0..n`.
    fn views(n: usize, views: &[View]) -> Result<Checkpoint> {
        let bytes: Vec<u8> = (0..n).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let mut index = BTreeMap::new();
        for &(name, offset, shape, strides) in views {
            let info = TensorInfo { shape: shape.to_vec(), dtype: SourceDType::F32 };
            index.insert(name.to_string(), Entry::new(name, info, 0..bytes.len(), offset, strides.to_vec())?);
        }
        Checkpoint::assemble(bytes, Format::Pt, index, BTreeMap::new())
    }

    #[test]
    fn strided_views() {
        let c = views(24, &[
            ("perm", 0, &[4, 2, 3], &[1, 12, 4]),
            ("slice", 5, &[2, 2], &[6, 2]),
            ("size1", 1, &[2, 1, 2], &[1, usize::MAX, 2]),
            ("empty", 0, &[0, 5], &[5, 1]),
        ])
        .unwrap();
        let perm: Vec<f32> = (0..4).flat_map(|k| (0..2).flat_map(move |i| (0..3).map(move |j| (i * 12 + j * 4 + k) as f32))).collect();
        assert_eq!(c.tensor_f32("perm").unwrap(), (vec![4, 2, 3], perm));
        assert_eq!(c.tensor_f32("slice").unwrap().1, [5.0, 7.0, 11.0, 13.0]);
        assert_eq!(c.tensor_f32("size1").unwrap().1, [1.0, 3.0, 2.0, 4.0]);
        assert_eq!(c.tensor_f32("empty").unwrap(), (vec![0, 5], vec![]));
        assert_eq!((c.len(), c.num_params(), c.byte_len()), (4, 24 + 4 + 4, 96));
    }

    #[test]
    fn views_must_fit_their_storage() {
        let err = |v: View| views(24, &[v]).unwrap_err().to_string();
        assert!(err(("a", 20, &[5], &[1])).contains("needs 25 elements but the storage holds 24"));
        assert!(err(("a", 0, &[2, 3], &[usize::MAX, 1])).contains("overflows"));
        assert!(err(("a", 0, &[1 << 40, 1 << 40], &[0, 0])).contains("overflows"));
        assert!(err(("a", 0, &[2, 3], &[3])).contains("different lengths"));
        assert!(err(("a", 0, &[MAX_EXPANDED + 1], &[0])).contains("holds only 24"));
        assert!(views(24, &[("a", 23, &[1000], &[0])]).is_ok());
    }
}
