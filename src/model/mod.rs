//! burn modules of SAM 2, stateless: weights in, tensors out.

pub mod common;
pub mod hiera;
pub mod image_encoder;
pub mod mask_decoder;
pub mod memory_attention;
pub mod memory_encoder;
pub mod params;
pub mod position_encoding;
pub mod prompt_encoder;
pub mod sam2;
pub mod sam2_video;
pub mod transformer;

pub use sam2::{ImageFeatures, Sam2};
pub use sam2_video::{FrameFeatures, MemoryTokens, NO_OBJ_SCORE, PointInputs, TrackOutput, VideoModules};
