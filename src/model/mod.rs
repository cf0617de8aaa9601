//! burn modules of SAM 2, stateless: weights in, tensors out.

pub mod common;
pub mod hiera;
pub mod image_encoder;
pub mod mask_decoder;
pub mod params;
pub mod position_encoding;
pub mod prompt_encoder;
pub mod sam2;
pub mod transformer;

pub use sam2::{ImageFeatures, Sam2};
