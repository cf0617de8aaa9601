//! PyTorch `.pt` checkpoints (the zip format of `torch.save`, PyTorch >= 1.6).
//!
//! The archive holds `<root>/data.pkl` (the pickled object), `<root>/data/<key>` (one blob per
//! storage) and `<root>/byteorder`. Only tensors are rebuilt; no Python code is run.

use std::collections::BTreeMap;

use super::pickle::{self, Id, Obj, Pickle};
use super::{Entry, Index, SourceDType, TensorInfo, zip};
use crate::error::{Error, Result};

fn bad(msg: String) -> Error {
    Error::Weights(msg)
}

/// Indexes the state dict of a `.pt` file held in `bytes`.
pub(crate) fn index(bytes: &[u8]) -> Result<Index> {
    let files = zip::entries(bytes)?;
    let pickles: Vec<&String> = files
        .keys()
        .filter(|n| (*n == "data.pkl" || n.ends_with("/data.pkl")) && n.matches('/').count() <= 1)
        .collect();
    let pkl_name = match pickles.as_slice() {
        [one] => *one,
        [] => return Err(bad("zip archive has no <root>/data.pkl; not a PyTorch checkpoint".into())),
        many => return Err(bad(format!("zip archive has several data.pkl files: {many:?}"))),
    };
    let root = pkl_name.strip_suffix("data.pkl").unwrap_or_default();
    let file = |name: &str| files.get(name).and_then(|r| bytes.get(r.clone()));
    if let Some(order) = file(&format!("{root}byteorder"))
        && order != b"little"
    {
        let order = String::from_utf8_lossy(order);
        return Err(bad(format!("byte order {order:?} is not supported (only little-endian)")));
    }
    let pkl = file(pkl_name).ok_or_else(|| bad(format!("{pkl_name} lies outside the file")))?;
    let pickle = pickle::load(pkl)?;
    let mut index = BTreeMap::new();
    for (name, t) in state_dict(&pickle)? {
        let blob = format!("{root}data/{}", t.key);
        let storage = files.get(&blob).cloned().ok_or_else(|| {
            bad(format!("tensor {name:?}: storage {blob} is missing from the archive"))
        })?;
        let info = TensorInfo { shape: t.shape, dtype: t.dtype };
        let entry = Entry::new(&name, info, storage, t.offset, t.stride)?;
        index.insert(name, entry);
    }
    Ok(index)
}

/// A tensor as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` builds it.
struct TensorRef {
    key: String,
    dtype: SourceDType,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// Element type named by a `torch.*Storage` class or a `torch.<dtype>` global.
fn dtype_of(module: &str, name: &str) -> Option<SourceDType> {
    if module != "torch" {
        return None;
    }
    Some(match name {
        "FloatStorage" | "float32" | "float" => SourceDType::F32,
        "HalfStorage" | "float16" | "half" => SourceDType::F16,
        "BFloat16Storage" | "bfloat16" => SourceDType::BF16,
        "DoubleStorage" | "float64" | "double" => SourceDType::F64,
        "LongStorage" | "int64" | "long" => SourceDType::I64,
        "IntStorage" | "int32" | "int" => SourceDType::I32,
        "ShortStorage" | "int16" | "short" => SourceDType::I16,
        "CharStorage" | "int8" => SourceDType::I8,
        "ByteStorage" | "uint8" => SourceDType::U8,
        "BoolStorage" | "bool" => SourceDType::Bool,
        _ => return None,
    })
}

/// What object `id` is: `None` if not a tensor, else the tensor or why it cannot be rebuilt.
fn tensor(p: &Pickle, id: Id, depth: u8) -> Option<std::result::Result<TensorRef, String>> {
    match p.get(id) {
        Obj::Call(func, args) => call(p, *func, *args, depth),
        _ => None,
    }
}

/// Interprets `func(*args)` for the torch rebuild functions (nesting bounded by `depth`).
fn call(p: &Pickle, func: Id, args: Id, depth: u8) -> Option<std::result::Result<TensorRef, String>> {
    let args = p.items(args).unwrap_or_default();
    let arg = |i: usize| args.get(i).copied();
    match p.global(func)? {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Some(rebuild(p, args)),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") if depth < 4 => {
            tensor(p, arg(0)?, depth + 1)
        }
        ("torch._utils", "_rebuild_from_type_v2") if depth < 4 => call(p, arg(0)?, arg(2)?, depth + 1),
        _ => None,
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)` where `storage` is the
/// persistent id `('storage', storage_type, key, location, numel)`.
fn rebuild(p: &Pickle, args: &[Id]) -> std::result::Result<TensorRef, String> {
    let not_storage = || "first argument is not a ('storage', type, key, ...) persistent id".to_string();
    let pid = match args.first().map(|&a| p.get(a)) {
        Some(Obj::Persistent(pid)) => p.items(*pid).unwrap_or_default(),
        _ => return Err(not_storage()),
    };
    let (key, ty) = match *pid {
        [tag, ty, key, ..] if p.str(tag) == Some("storage") => match p.get(key) {
            Obj::Str(s) => (s.clone(), ty),
            Obj::Int(i) => (i.to_string(), ty),
            _ => return Err(not_storage()),
        },
        _ => return Err(not_storage()),
    };
    let global = p.global(ty).unwrap_or(("?", "?"));
    let dtype = dtype_of(global.0, global.1)
        .ok_or_else(|| format!("storage {key} has an unsupported element type {}.{}", global.0, global.1))?;
    let ints = |i: usize| {
        let items = p.items(*args.get(i)?)?;
        items.iter().map(|&d| p.usize(d)).collect::<Option<Vec<_>>>()
    };
    let offset = args.get(1).and_then(|&o| p.usize(o));
    match (offset, ints(2), ints(3)) {
        (Some(offset), Some(shape), Some(stride)) => Ok(TensorRef { key, dtype, offset, shape, stride }),
        _ => Err(format!("storage {key}: offset, size or stride is not a non-negative int")),
    }
}

/// The tensors of the dict `id` (non-tensor values skipped); a broken tensor is an error.
fn tensors_of(p: &Pickle, id: Id) -> Result<BTreeMap<String, TensorRef>> {
    let mut out = BTreeMap::new();
    let Obj::Dict(items) = p.get(id) else {
        return Ok(out);
    };
    for &(k, v) in items {
        let Some(name) = p.str(k) else { continue };
        match tensor(p, v, 0) {
            Some(Ok(t)) => drop(out.insert(name.to_string(), t)),
            Some(Err(why)) => return Err(bad(format!("tensor {name:?}: {why}"))),
            None => {}
        }
    }
    Ok(out)
}

/// The state dict: `root["model"]` (Meta's layout), `root["state_dict"]`, or `root` itself.
fn state_dict(p: &Pickle) -> Result<BTreeMap<String, TensorRef>> {
    let none = || {
        bad("the file holds no state dict (no dict of tensors at the top level or under \"model\")".into())
    };
    let Obj::Dict(items) = p.get(p.root) else {
        return Err(none());
    };
    for wrapper in ["model", "state_dict"] {
        let inner = items.iter().rev().find(|&&(k, _)| p.str(k) == Some(wrapper));
        if let Some(&(_, v)) = inner {
            let tensors = tensors_of(p, v)?;
            if !tensors.is_empty() {
                return Ok(tensors);
            }
        }
    }
    let tensors = tensors_of(p, p.root)?;
    if tensors.is_empty() { Err(none()) } else { Ok(tensors) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::weights::{Checkpoint, SourceDType};

    /// Emits pickle opcodes the way `torch.save` (protocol 2) does.
    #[derive(Default)]
    struct P(Vec<u8>);

    impl P {
        fn op(&mut self, b: &[u8]) -> &mut Self {
            self.0.extend_from_slice(b);
            self
        }
        fn s(&mut self, s: &str) -> &mut Self {
            self.op(b"X").op(&(s.len() as u32).to_le_bytes()).op(s.as_bytes())
        }
        fn int(&mut self, v: usize) -> &mut Self {
            self.op(b"J").op(&(v as i32).to_le_bytes())
        }
        fn ints(&mut self, v: &[usize]) -> &mut Self {
            self.op(b"(");
            for &i in v {
                self.int(i);
            }
            self.op(b"t")
        }
        fn global(&mut self, m: &str, n: &str) -> &mut Self {
            self.op(format!("c{m}\n{n}\n").as_bytes())
        }
        /// `_rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())`.
        fn tensor(&mut self, ty: &str, key: &str, t: (usize, &[usize], &[usize])) -> &mut Self {
            self.global("torch._utils", "_rebuild_tensor_v2").op(b"((").s("storage").global("torch", ty);
            self.s(key).s("cpu").int(0).op(b"tQ").int(t.0).ints(t.1).ints(t.2).op(b"\x89");
            self.global("collections", "OrderedDict").op(b")Rq\x07tR")
        }
    }

    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }

    /// A torch-like `{"model": OrderedDict(...), "epoch": 3}` archive.
    pub(crate) fn sample_pt(zip64: bool) -> Vec<u8> {
        let mut p = P::default();
        p.op(b"\x80\x02}q\x00(").s("model").global("collections", "OrderedDict").op(b")R(");
        p.s("w").tensor("FloatStorage", "0", (0, &[3, 4], &[4, 1]));
        p.s("wt").op(b"h\x07").op(b"0").tensor("FloatStorage", "0", (0, &[4, 3], &[1, 4]));
        p.s("row").tensor("FloatStorage", "0", (8, &[4], &[1]));
        p.s("scalar").tensor("FloatStorage", "0", (5, &[], &[]));
        p.s("expand").tensor("FloatStorage", "0", (1, &[2, 3], &[0, 2]));
        p.s("h").tensor("HalfStorage", "1", (0, &[2, 2], &[2, 1]));
        p.s("b").global("torch._utils", "_rebuild_parameter");
        p.tensor("BFloat16Storage", "2", (1, &[2], &[1])).op(b"\x88").global("collections", "OrderedDict").op(b")R\x87R");
        p.s("n").tensor("LongStorage", "3", (0, &[2], &[1])).s("not a tensor").int(7).op(b"u");
        p.s("epoch").op(b"K\x03u.");
        let f32s = le(&(0..12).map(|i| i as f32).collect::<Vec<_>>(), f32::to_le_bytes);
        let f16s = le(&[1.5f32, -2.0, 0.25, 65504.0], |x| half::f16::from_f32(x).to_le_bytes());
        let bf16s = le(&[9.0f32, 1.0, -3.0], |x| half::bf16::from_f32(x).to_le_bytes());
        let i64s = le(&[5i64, -6], i64::to_le_bytes);
        let files: Vec<(&str, &[u8])> = vec![
            ("archive/data.pkl", &p.0),
            ("archive/byteorder", b"little"),
            ("archive/data/0", &f32s),
            ("archive/data/1", &f16s),
            ("archive/data/2", &bf16s),
            ("archive/data/3", &i64s),
            ("archive/version", b"3\n"),
        ];
        zip::build(&files, zip64, 0)
    }

    #[test]
    fn torch_like_archive_values() {
        for zip64 in [false, true] {
            let c = Checkpoint::from_bytes(sample_pt(zip64)).unwrap();
            let names: Vec<_> = c.names().collect();
            assert_eq!(names, ["b", "expand", "h", "n", "row", "scalar", "w", "wt"]);
            let t = |n: &str| c.tensor_f32(n).unwrap();
            assert_eq!(t("w"), (vec![3, 4], (0..12).map(|i| i as f32).collect()));
            let wt: Vec<f32> = (0..4).flat_map(|j| (0..3).map(move |i| (i * 4 + j) as f32)).collect();
            assert_eq!(t("wt"), (vec![4, 3], wt));
            assert_eq!(t("row"), (vec![4], vec![8.0, 9.0, 10.0, 11.0]));
            assert_eq!(t("scalar"), (vec![], vec![5.0]));
            assert_eq!(t("expand"), (vec![2, 3], vec![1.0, 3.0, 5.0, 1.0, 3.0, 5.0]));
            assert_eq!(t("h"), (vec![2, 2], vec![1.5, -2.0, 0.25, 65504.0]));
            assert_eq!(t("b"), (vec![2], vec![1.0, -3.0]));
            assert_eq!(c.info("b").unwrap().dtype, SourceDType::BF16);
            assert!(c.tensor_f32("n").unwrap_err().to_string().contains("i64"));
            assert_eq!(c.num_params(), 12 + 12 + 4 + 1 + 6 + 4 + 2 + 2);
            assert!(c.metadata().is_empty());
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let pt = sample_pt(true);
        for cut in 0..pt.len() {
            match Checkpoint::from_bytes(pt[..cut].to_vec()) {
                Err(Error::Weights(_)) => {}
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let pt = sample_pt(false);
        for i in 0..pt.len() {
            for x in [0xFF, 0x01] {
                let mut b = pt.clone();
                b[i] ^= x;
                if let Ok(c) = Checkpoint::from_bytes(b) {
                    for n in c.names() {
                        let _ = c.tensor_f32(n);
                    }
                }
            }
        }
    }

    fn pt_with(pickle: &[u8], blob: &[u8]) -> Result<Checkpoint> {
        let files: Vec<(&str, &[u8])> = vec![("m/data.pkl", pickle), ("m/data/0", blob)];
        Checkpoint::from_bytes(zip::build(&files, false, 0))
    }

    #[test]
    fn bad_tensors_are_reported() {
        let mut p = P::default();
        p.op(b"\x80\x02}(").s("x").tensor("FloatStorage", "0", (2, &[2, 2], &[2, 1])).op(b"u.");
        let err = pt_with(&p.0, &[0; 16]).unwrap_err().to_string();
        assert!(err.contains("\"x\"") && err.contains("holds 4"), "{err}");
        let err = pt_with(&p.0, &[0; 24]).err().map(|e| e.to_string());
        assert_eq!(err, None);
        let mut p = P::default();
        p.op(b"\x80\x02}(").s("x").tensor("FloatStorage", "9", (0, &[1], &[1])).op(b"u.");
        assert!(pt_with(&p.0, &[0; 4]).unwrap_err().to_string().contains("m/data/9 is missing"));
        let mut p = P::default();
        p.op(b"\x80\x02}(").s("x").tensor("ComplexFloatStorage", "0", (0, &[1], &[1])).op(b"u.");
        assert!(pt_with(&p.0, &[0; 8]).unwrap_err().to_string().contains("unsupported element type"));
        let mut p = P::default();
        p.op(b"\x80\x02}(").s("lr").op(b"G?\xb9\x99\x99\x99\x99\x99\x9au.");
        assert!(pt_with(&p.0, &[]).unwrap_err().to_string().contains("no state dict"));
    }

    #[test]
    fn legacy_and_garbage() {
        let legacy = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.";
        let err = Checkpoint::from_bytes(legacy.to_vec()).unwrap_err().to_string();
        assert!(err.contains("legacy (pre-1.6)"), "{err}");
        for junk in [&b""[..], b"PK\x03\x04", b"hello world, this is not a checkpoint", &[0u8; 64]] {
            assert!(matches!(Checkpoint::from_bytes(junk.to_vec()), Err(Error::Weights(_))));
        }
        let files: Vec<(&str, &[u8])> = vec![("m/data.pkl", b"\x80\x02}.")];
        let err = Checkpoint::from_bytes(zip::build(&files, false, 8)).unwrap_err().to_string();
        assert!(err.contains("m/data.pkl is compressed"), "{err}");
        let files: Vec<(&str, &[u8])> = vec![("m/data.pkl", b"\x80\x02}."), ("m/byteorder", b"big")];
        assert!(Checkpoint::from_bytes(zip::build(&files, false, 0)).unwrap_err().to_string().contains("big"));
    }
}
