//! The wasm-bindgen surface: load a checkpoint from bytes onto WebGPU, then the image
//! predictor and automatic masks ([`Sam2Model`]) and video tracking ([`Sam2VideoSession`]).
//!
//! Every method returns a `Result` (a rejected promise with an `Error` in JS), never a trap.
//! GPU data is read back asynchronously only.

mod automatic;
mod image;
mod video;

pub use image::Sam2Model;
pub use video::Sam2VideoSession;

use crate::error::Error;
use burn::tensor::Device;
use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The WebGPU device: burn's wgpu runtime can be initialised once per wasm instance, so every
    /// model loaded in this instance shares it.
    static DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The shared WebGPU device, initialised on first use.
async fn webgpu_device() -> Result<Device, JsError> {
    if let Some(device) = DEVICE.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| JsError::new(&format!("WebGPU is not available: {e}")))?;
    DEVICE.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

fn js_err(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// The error of a call made while another call on the same model or session is running.
fn busy() -> JsError {
    JsError::new("the model is busy: wait for the pending call to finish")
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) -> Result<(), JsError> {
    Reflect::set(obj, &JsValue::from_str(key), &value.into()).map_err(|_| JsError::new("could not build the result object"))?;
    Ok(())
}

/// A JS array of numbers.
fn numbers(values: impl IntoIterator<Item = f64>) -> Array {
    values.into_iter().map(JsValue::from_f64).collect()
}

/// Checks an options object (`undefined` or `null`: `None`), rejecting keys outside `known` so
/// that a misspelt option is not silently ignored.
fn options_object(options: &JsValue, known: &[&str]) -> Result<Option<Object>, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    let obj: Object = options.clone().dyn_into().map_err(|_| JsError::new("options must be an object"))?;
    for key in Object::keys(&obj).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(JsError::new(&format!("unknown option `{key}` (known: {})", known.join(", "))));
        }
    }
    Ok(Some(obj))
}

/// `obj[key]` as a number, `None` when absent; an error naming the key when it is not a number.
fn opt_number(obj: &Option<Object>, key: &str) -> Result<Option<f64>, JsError> {
    let Some(obj) = obj else { return Ok(None) };
    let v = Reflect::get(obj, &JsValue::from_str(key)).map_err(|_| JsError::new(&format!("could not read option `{key}`")))?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_f64().filter(|x| x.is_finite()).map(Some).ok_or_else(|| JsError::new(&format!("option `{key}` must be a finite number")))
}

/// `obj[key]` as a non-negative integer.
fn opt_count(obj: &Option<Object>, key: &str) -> Result<Option<usize>, JsError> {
    match opt_number(obj, key)? {
        Some(x) if x < 0.0 || x.fract() != 0.0 => Err(JsError::new(&format!("option `{key}` must be a non-negative integer, got {x}"))),
        Some(x) => Ok(Some(x as usize)),
        None => Ok(None),
    }
}

/// `obj[key]` as a boolean.
fn opt_bool(obj: &Option<Object>, key: &str) -> Result<Option<bool>, JsError> {
    let Some(obj) = obj else { return Ok(None) };
    let v = Reflect::get(obj, &JsValue::from_str(key)).map_err(|_| JsError::new(&format!("could not read option `{key}`")))?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_bool().map(Some).ok_or_else(|| JsError::new(&format!("option `{key}` must be a boolean")))
}
