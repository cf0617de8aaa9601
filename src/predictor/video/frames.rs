//! Video frames as the session reads them: Meta's video preprocessing (Pillow bicubic resize of
//! the uint8 frame to `S×S`, then normalisation), from memory or from any other source.

use crate::error::{Error, Result};
use crate::predictor::transforms::{ImageRef, resize_bicubic_u8};

/// Where an offline session gets its frames. `load` returns the frame resized to the model's
/// `S×S` as RGB bytes (`[S, S, 3]`, see [`resize_bicubic_u8`]); it may be called several times
/// for the same frame (the session caches the features of the latest frame only).
pub trait FrameSource: Send {
    /// Number of frames.
    fn len(&self) -> usize;
    /// Whether there are no frames.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(width, height)` of the original frames.
    fn size(&self) -> (usize, usize);
    /// Frame `index` resized to `size × size`, RGB.
    fn load(&mut self, index: usize, size: usize) -> Result<Vec<u8>>;
}

/// Frames kept in memory, already resized: `3·S²` bytes per frame (3 MiB at `S` = 1024).
/// Long videos are better fed through a lazy [`FrameSource`] or a live stream.
#[derive(Debug, Clone)]
pub struct InMemoryFrames {
    size: usize,
    width: usize,
    height: usize,
    frames: Vec<Vec<u8>>,
}

impl InMemoryFrames {
    /// An empty store for frames of `width × height` and a model of input size `size`.
    pub fn new(width: usize, height: usize, size: usize) -> Self {
        Self { size, width, height, frames: Vec::new() }
    }

    /// Appends a frame (RGB or RGBA, the store's size); returns its index.
    pub fn push(&mut self, image: &ImageRef) -> Result<usize> {
        check_frame_size(image, self.width, self.height)?;
        self.frames.push(resize_bicubic_u8(image, self.size)?);
        Ok(self.frames.len() - 1)
    }

    /// Bytes held.
    pub fn byte_len(&self) -> usize {
        self.frames.iter().map(Vec::len).sum()
    }
}

impl FrameSource for InMemoryFrames {
    fn len(&self) -> usize {
        self.frames.len()
    }

    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn load(&mut self, index: usize, size: usize) -> Result<Vec<u8>> {
        if size != self.size {
            return Err(Error::Config(format!("frames were resized to {}, the model wants {size}", self.size)));
        }
        self.frames.get(index).cloned().ok_or_else(|| Error::Input(format!("frame {index} out of range (0..{})", self.frames.len())))
    }
}

/// Rejects a frame whose size differs from the video's.
pub fn check_frame_size(image: &ImageRef, width: usize, height: usize) -> Result<()> {
    if (image.width, image.height) != (width, height) {
        return Err(Error::Input(format!(
            "frame is {}x{}, the video is {width}x{height}: every frame must have the same size",
            image.width, image.height
        )));
    }
    Ok(())
}
