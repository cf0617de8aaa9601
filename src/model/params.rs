//! How modules receive their weights: a [`ParamSource`] hands out tensors by module path.
//!
//! Module paths mirror the PyTorch attribute paths of Meta's `SAM2Base`
//! (`image_encoder.trunk.blocks.3.attn.qkv`), so the checkpoint reader in `crate::weights`
//! maps them to checkpoint keys with one short table. The model never reads files itself.

use crate::error::{Error, Result};
use burn::tensor::{Device, Tensor, TensorData};

/// Supplies parameters by module path; implemented by the checkpoint loader.
pub trait ParamSource {
    /// The parameter at `path` as row-major f32 values, checked to have exactly `shape`
    /// (PyTorch order). Each path is taken at most once.
    fn take(&mut self, path: &str, shape: &[usize]) -> Result<Vec<f32>>;

    /// The device the model is built on.
    fn device(&self) -> &Device;
}

/// A parameter as a tensor of rank `D` on the source's device.
pub fn tensor<const D: usize>(src: &mut dyn ParamSource, path: &str, shape: [usize; D]) -> Result<Tensor<D>> {
    let values = src.take(path, &shape)?;
    Ok(Tensor::from_data(TensorData::new(values, shape), src.device()))
}

/// A host-side f32 tensor with its shape, for small constants computed on the CPU.
pub fn host_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Result<Tensor<D>> {
    if values.len() != shape.iter().product::<usize>() {
        return Err(Error::Config(format!("internal: {} values for shape {shape:?}", values.len())));
    }
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

/// Joins a module path and a child name (`"a.b"` + `"c"` → `"a.b.c"`).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}
