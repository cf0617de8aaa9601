//! Predictors over the model: pre-processing, the image predictor and post-processing.

pub mod components;
pub mod image;
pub mod postprocess;
pub mod transforms;
pub mod video;

pub use image::{ImagePredictor, PredictOptions, Prediction, Prompt};
pub use transforms::ImageRef;
pub use video::{FrameResult, ObjectFrame, PropagateOptions, VideoPrompt, VideoSession};
