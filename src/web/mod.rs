//! The wasm-bindgen surface: load a checkpoint from bytes onto WebGPU, then the image
//! predictor and automatic masks ([`Sam2Model`]) and video tracking ([`Sam2VideoSession`]).
//!
//! Every method returns a `Result` (a rejected promise with an `Error` in JS), never a trap.
//! GPU data is read back asynchronously only. Without WebGPU the same API runs on burn's CPU
//! backend compiled to wasm, and `info()` says so.

mod automatic;
mod image;
mod labels;
mod video;

pub use image::Sam2Model;
pub use video::Sam2VideoSession;

use crate::error::Error;
use burn::tensor::Device;
use burn::tensor::wgpu::wgpu;
use js_sys::{Array, Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The WebGPU device of this wasm instance and what it runs on.
#[derive(Clone)]
struct Gpu {
    device: Device,
    /// The wgpu handle, kept to destroy the device in the device-loss test.
    handle: wgpu::Device,
    /// The adapter, as the browser describes it (`vendor architecture description`).
    adapter: String,
}

thread_local! {
    /// burn's wgpu runtime can be initialised once per wasm instance, so every model loaded in
    /// this instance shares the device.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// Whether the JS global (window or worker) has `navigator.gpu`.
fn has_webgpu() -> bool {
    let global = js_sys::global();
    Reflect::get(&global, &JsValue::from_str("navigator"))
        .ok()
        .filter(|n| n.is_object())
        .and_then(|n| Reflect::get(&n, &JsValue::from_str("gpu")).ok())
        .is_some_and(|gpu| gpu.is_object())
}

/// The shared WebGPU device (high-performance adapter), initialised on first use.
async fn webgpu() -> Result<Gpu, String> {
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    if !has_webgpu() {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".into());
    }
    let (device, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| format!("no WebGPU adapter: {e}"))?;
    let info = setup.adapter.get_info();
    let adapter = [info.vendor.to_string(), info.name.clone(), info.driver.clone()]
        .into_iter()
        .filter(|s| !s.is_empty() && s != "0")
        .collect::<Vec<_>>()
        .join(" ");
    let gpu = Gpu { device, handle: setup.device, adapter };
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

/// Where a model runs: `{backend, adapter, fallbackReason}` for `info()`, and the device.
pub(crate) struct Placement {
    pub device: Device,
    pub backend: &'static str,
    pub adapter: String,
    /// Why WebGPU was not used, when the CPU was a fallback.
    pub fallback_reason: Option<String>,
}

/// Picks the device for `backend`: `"webgpu"` (fails without WebGPU), `"cpu"` (burn's flex
/// backend in wasm, single-threaded), or `"auto"`/absent (WebGPU, else the CPU with the reason).
async fn placement(backend: Option<&str>) -> Result<Placement, JsError> {
    let cpu = |reason| Placement { device: Device::flex(), backend: "cpu", adapter: "wasm (single thread)".into(), fallback_reason: reason };
    match backend.unwrap_or("auto") {
        "cpu" => Ok(cpu(None)),
        "webgpu" => {
            let gpu = webgpu().await.map_err(|e| JsError::new(&format!("WebGPU is not available: {e}")))?;
            Ok(Placement { device: gpu.device, backend: "webgpu", adapter: gpu.adapter, fallback_reason: None })
        }
        "auto" => Ok(match webgpu().await {
            Ok(gpu) => Placement { device: gpu.device, backend: "webgpu", adapter: gpu.adapter, fallback_reason: None },
            Err(reason) => cpu(Some(reason)),
        }),
        other => Err(JsError::new(&format!("unknown backend {other:?}: use \"auto\", \"webgpu\" or \"cpu\""))),
    }
}

/// Destroys this instance's WebGPU device, as a driver reset or a GPU being unplugged would:
/// for testing that pending and later calls reject with a clear error (`Sam2.load` in a new
/// worker recovers). Returns whether there was a device.
#[wasm_bindgen(js_name = _destroyWebgpuDevice)]
pub fn destroy_webgpu_device() -> bool {
    GPU.with(|g| g.borrow().as_ref().map(|gpu| gpu.handle.destroy()).is_some())
}

/// A library error as a JS `Error`; a lost GPU device (burn reports it as a poisoned device on
/// the next read) gets a message that says so and what to do.
fn js_err(e: Error) -> JsError {
    let message = e.to_string();
    if message.contains("Poison") || message.contains("poison") || message.contains("device was lost") {
        let first_line = message.lines().next().unwrap_or_default();
        return JsError::new(&format!("{DEVICE_LOST} ({first_line})"));
    }
    JsError::new(&message)
}

/// The start of the message of every error caused by a lost GPU device.
pub const DEVICE_LOST: &str = "the GPU device was lost; load the model again";

/// The error of a call made while another call on the same model or session is running.
fn busy() -> JsError {
    JsError::new("the model is busy: wait for the pending call to finish")
}

/// Whether to go on after calling the JS callback `f` (progress, a propagated frame) with `arg`:
/// its answer, awaited when it is a Promise (so that the JS event loop runs in between), `false`
/// meaning stop. An error (in building `arg`, thrown or rejected) also stops and is kept in
/// `failure`, for the call to reject with.
fn go_on(f: &Function, arg: Result<JsValue, JsValue>, failure: &Rc<RefCell<Option<JsValue>>>) -> impl Future<Output = bool> + 'static {
    let called = arg.and_then(|a| f.call1(&JsValue::NULL, &a));
    let failure = Rc::clone(failure);
    async move {
        let answer = match called {
            Ok(v) if v.is_instance_of::<Promise>() => JsFuture::from(v.unchecked_into::<Promise>()).await,
            other => other,
        };
        match answer {
            Ok(v) => v.as_bool() != Some(false),
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                false
            }
        }
    }
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
