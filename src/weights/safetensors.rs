//! `.safetensors` reading (through the `safetensors` crate) and writing.

use std::collections::{BTreeMap, HashMap};

use ::safetensors::tensor::TensorView;
use ::safetensors::{Dtype, SafeTensors};

use super::{Checkpoint, Entry, Index, SourceDType, TensorInfo, contiguous_strides};
use crate::error::{Error, Result};

/// Whether `bytes` starts like a safetensors file (8-byte length, then a JSON object).
pub(crate) fn looks_like(bytes: &[u8]) -> bool {
    let len = bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let fits = len.is_some_and(|n| n <= bytes.len().saturating_sub(8) as u64);
    fits && bytes.get(8) == Some(&b'{')
}

fn from_dtype(d: Dtype) -> Option<SourceDType> {
    Some(match d {
        Dtype::F32 => SourceDType::F32,
        Dtype::F16 => SourceDType::F16,
        Dtype::BF16 => SourceDType::BF16,
        Dtype::F64 => SourceDType::F64,
        Dtype::I64 => SourceDType::I64,
        Dtype::I32 => SourceDType::I32,
        Dtype::I16 => SourceDType::I16,
        Dtype::I8 => SourceDType::I8,
        Dtype::U8 => SourceDType::U8,
        Dtype::BOOL => SourceDType::Bool,
        _ => return None,
    })
}

fn to_dtype(d: SourceDType) -> Dtype {
    match d {
        SourceDType::F32 => Dtype::F32,
        SourceDType::F16 => Dtype::F16,
        SourceDType::BF16 => Dtype::BF16,
        SourceDType::F64 => Dtype::F64,
        SourceDType::I64 => Dtype::I64,
        SourceDType::I32 => Dtype::I32,
        SourceDType::I16 => Dtype::I16,
        SourceDType::I8 => Dtype::I8,
        SourceDType::U8 => Dtype::U8,
        SourceDType::Bool => Dtype::BOOL,
    }
}

/// Index and `__metadata__` of the safetensors file in `bytes`.
pub(crate) type Indexed = (Index, BTreeMap<String, String>);

/// Parses the header of a safetensors file and indexes its tensors.
pub(crate) fn index(bytes: &[u8]) -> Result<Indexed> {
    let (header_len, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        Error::Weights(if looks_like(bytes) {
            format!("invalid safetensors file: {e}")
        } else {
            format!("unrecognised format: neither a PyTorch zip (.pt) nor safetensors ({e})")
        })
    })?;
    let data_start = header_len.saturating_add(8);
    let mut index = BTreeMap::new();
    for (name, info) in meta.tensors() {
        let dtype = from_dtype(info.dtype).ok_or_else(|| {
            Error::Weights(format!("tensor {name:?} has unsupported dtype {:?}", info.dtype))
        })?;
        let (start, end) = info.data_offsets;
        let range = data_start.saturating_add(start)..data_start.saturating_add(end);
        let info = TensorInfo { shape: info.shape.clone(), dtype };
        let strides = contiguous_strides(&info.shape);
        let entry = Entry::new(&name, info, range, 0, strides)?;
        index.insert(name, entry);
    }
    if index.is_empty() {
        return Err(Error::Weights("safetensors file holds no tensors".into()));
    }
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok((index, metadata))
}

/// Writes a safetensors file of every tensor of `ckpt`, names unchanged, contiguous.
///
/// Float tensors are stored as f32, or as f16 when `f16` is set (values beyond ±65504 become
/// infinite); integer and bool tensors keep their dtype. `metadata` becomes `__metadata__`
/// (e.g. `{"model": "sam2.1_hiera_tiny"}`).
pub fn to_safetensors(
    ckpt: &Checkpoint,
    f16: bool,
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut tensors = Vec::with_capacity(ckpt.len());
    for name in ckpt.names() {
        let float = ckpt.info(name).is_some_and(|i| i.dtype.is_float());
        if float {
            let (shape, data) = ckpt.tensor_f32(name)?;
            let bytes: Vec<u8> = if f16 {
                data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect()
            } else {
                data.iter().flat_map(|&x| x.to_le_bytes()).collect()
            };
            tensors.push((name, if f16 { Dtype::F16 } else { Dtype::F32 }, shape, bytes));
        } else {
            let (info, bytes) = ckpt.tensor_raw(name)?;
            tensors.push((name, to_dtype(info.dtype), info.shape, bytes));
        }
    }
    let st_err = |e: ::safetensors::SafeTensorError| Error::Weights(format!("safetensors: {e}"));
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((*name, TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(st_err)?;
    let metadata =
        (!metadata.is_empty()).then(|| metadata.into_iter().collect::<HashMap<_, _>>());
    ::safetensors::serialize(views, metadata).map_err(st_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Format;
    use crate::weights::pt::tests::sample_pt;

    fn meta() -> BTreeMap<String, String> {
        BTreeMap::from([("model".to_string(), "sam2.1_hiera_tiny".to_string())])
    }

    #[test]
    fn round_trip_f32_and_f16() {
        let pt = Checkpoint::from_bytes(sample_pt(false)).unwrap();
        for f16 in [false, true] {
            let bytes = to_safetensors(&pt, f16, meta()).unwrap();
            let st = Checkpoint::from_bytes(bytes).unwrap();
            assert_eq!(st.format(), Format::Safetensors);
            assert_eq!(st.metadata(), &meta());
            assert_eq!(st.names().collect::<Vec<_>>(), pt.names().collect::<Vec<_>>());
            assert_eq!(st.num_params(), pt.num_params());
            for name in pt.names() {
                let want = pt.info(name).unwrap();
                let got = st.info(name).unwrap();
                assert_eq!(got.shape, want.shape, "{name}");
                if want.dtype.is_float() {
                    let f = if f16 { SourceDType::F16 } else { SourceDType::F32 };
                    assert_eq!(got.dtype, f);
                    // Every sample value is exact in f16, so both round trips are lossless.
                    assert_eq!(st.tensor_f32(name).unwrap(), pt.tensor_f32(name).unwrap(), "{name}");
                } else {
                    assert_eq!(st.tensor_raw(name).unwrap(), pt.tensor_raw(name).unwrap());
                }
            }
        }
    }

    #[test]
    fn f64_and_bf16_read_as_f32() {
        let f64s: Vec<u8> = [1.25f64, -1e300].iter().flat_map(|x| x.to_le_bytes()).collect();
        let bf: Vec<u8> = [0.5f32, 3.0].iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
        let views = vec![
            ("a", TensorView::new(Dtype::F64, vec![2], &f64s).unwrap()),
            ("b", TensorView::new(Dtype::BF16, vec![1, 2], &bf).unwrap()),
        ];
        let c = Checkpoint::from_bytes(::safetensors::serialize(views, None).unwrap()).unwrap();
        assert_eq!(c.tensor_f32("a").unwrap(), (vec![2], vec![1.25, f32::NEG_INFINITY]));
        assert_eq!(c.tensor_f32("b").unwrap(), (vec![1, 2], vec![0.5, 3.0]));
        assert!(c.metadata().is_empty());
        assert!(c.tensor_f32("zzz").is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let pt = Checkpoint::from_bytes(sample_pt(false)).unwrap();
        let bytes = to_safetensors(&pt, true, meta()).unwrap();
        for cut in 0..bytes.len() {
            assert!(matches!(Checkpoint::from_bytes(bytes[..cut].to_vec()), Err(Error::Weights(_))), "cut {cut}");
        }
    }

    #[test]
    fn bad_headers() {
        let file = |h: &str| {
            let mut b = (h.len() as u64).to_le_bytes().to_vec();
            b.extend(h.as_bytes());
            b.extend(vec![0u8; if h.contains("data_offsets") { 8 } else { 0 }]);
            Checkpoint::from_bytes(b)
        };
        let e = file(r#"{"x":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}}"#).unwrap_err();
        assert!(e.to_string().contains("unsupported dtype U16"), "{e}");
        assert!(file(r#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#).is_err());
        assert!(file(r#"{"x":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#).is_ok());
        assert!(file(r#"{"x":{"dtype":"F32","shape":[99999999999,99999999999,999999],"data_offsets":[0,8]}}"#).is_err());
        assert!(file(r#"{"__metadata__":{"a":"b"}}"#).unwrap_err().to_string().contains("no tensors"));
        assert!(file("{not json").unwrap_err().to_string().contains("invalid safetensors"));
    }
}
