//! # sam2-webgpu
//!
//! Meta's SAM 2 / SAM 2.1 (Segment Anything Model 2) on [burn]: Hiera image encoder, prompt
//! encoder and mask decoder, loaded from Meta's own `.pt` checkpoints or safetensors, running on
//! the CPU (`flex`), natively on wgpu, and in the browser on WebGPU.
//!
//! Layout: [`model`] (burn modules, stateless) ← [`predictor`] (image predictor, pre- and
//! post-processing) ← `web` (wasm-bindgen surface); [`weights`] reads checkpoints into the model.

pub mod config;
pub mod error;
pub mod model;
#[cfg(not(target_family = "wasm"))]
pub mod native;
pub mod npy;
pub mod predictor;
pub mod weights;
#[cfg(target_family = "wasm")]
pub mod web;

pub use config::{ModelSize, Sam2Config, Sam2Version};
pub use error::{Error, Result};
