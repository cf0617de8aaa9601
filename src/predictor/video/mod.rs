//! The video predictor: a [`VideoSession`] owns one video's prompts, memory bank and results,
//! offline (frames from a [`FrameSource`], propagation forwards or backwards) or as a live
//! stream (frames pushed one at a time, memory bounded).
//!
//! Offline sessions keep, per object, the outputs of every tracked frame (low-res logits,
//! `S²/16` floats, plus on the device a bfloat16-valued memory `mem·S²/256` floats and a
//! pointer), as Meta's predictor does; streams keep only what later frames can attend to.

pub mod frames;
pub mod memory;
pub mod session;

pub use frames::{FrameSource, InMemoryFrames};
pub use session::{StoredOutput, VideoPrompt, VideoSession};

use crate::predictor::postprocess::upsample_bilinear;

/// Which frames [`VideoSession::propagate_async`] visits (`propagate_in_video` arguments).
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateOptions {
    /// First frame; by default the earliest prompted frame.
    pub start: Option<usize>,
    /// Frames after (or before) the start to track; by default the whole video.
    pub max_frames: Option<usize>,
    /// Track towards the first frame.
    pub reverse: bool,
}

/// One object's prediction on one frame.
#[derive(Debug, Clone)]
pub struct ObjectFrame {
    pub id: u32,
    /// Mask logits `[S/4, S/4]` (`NO_OBJ_SCORE` where the object is absent or has no output).
    pub low_res_logits: Vec<f32>,
    /// Object-presence logit (positive: visible); `None` when the object has no output here.
    pub object_score: Option<f32>,
}

/// Every object's prediction on one frame, in the session's object order.
#[derive(Debug, Clone)]
pub struct FrameResult {
    pub frame: usize,
    /// Side of the low-resolution logits.
    pub low_res_size: usize,
    pub objects: Vec<ObjectFrame>,
}

impl FrameResult {
    /// The object with id `id`.
    pub fn object(&self, id: u32) -> Option<&ObjectFrame> {
        self.objects.iter().find(|o| o.id == id)
    }

    /// Logits of object `index` at video resolution `[height, width]` (bilinear, as
    /// `_get_orig_video_res_output`).
    pub fn logits(&self, index: usize, width: usize, height: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; width * height];
        let s = self.low_res_size;
        upsample_bilinear(&self.objects[index].low_res_logits, (s, s), (height, width), |i, v| out[i] = v);
        out
    }

    /// Binary mask of object `index` at video resolution (1 where the logit is positive).
    pub fn mask(&self, index: usize, width: usize, height: usize) -> Vec<u8> {
        self.logits(index, width, height).into_iter().map(|v| u8::from(v > 0.0)).collect()
    }
}
