//! Predictors over the model: pre-processing, the image predictor, the automatic mask generator,
//! post-processing, label export and auto-annotation.

pub mod amg;
pub mod annotate;
pub mod automatic;
pub mod components;
pub mod image;
pub mod labels;
pub mod postprocess;
pub mod rle;
pub mod transforms;
pub mod video;

pub use image::{ImagePredictor, PredictOptions, Prediction, Prompt};
pub use transforms::ImageRef;
pub use video::{FrameResult, ObjectFrame, PropagateOptions, VideoPrompt, VideoSession};
