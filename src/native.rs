//! Native-only helpers shared by the CLI, tests and benchmarks: device selection and PNG output.

use crate::error::{Error, Result};
use crate::predictor::Prediction;
use burn::tensor::Device;

/// The device for `--device cpu|gpu`; without a name, the GPU when an adapter exists, else the CPU.
///
/// `cpu` is burn's pure-Rust `flex` backend; `gpu` is wgpu (Vulkan, Metal or DX12; Mesa's
/// llvmpipe counts as an adapter).
pub fn device_from_name(name: Option<&str>) -> Result<Device> {
    match name {
        Some("cpu") => Ok(Device::flex()),
        Some("gpu") => gpu(),
        None => Ok(gpu().unwrap_or_else(|_| Device::flex())),
        Some(other) => Err(Error::Input(format!("unknown device {other:?}: use cpu or gpu"))),
    }
}

/// The process's one wgpu device: burn registers its wgpu runtime once, so a second `init` fails
/// ("Service already initialized"); later calls get the first one's device (or its error).
#[cfg(feature = "wgpu")]
fn gpu() -> Result<Device> {
    static GPU: std::sync::OnceLock<std::result::Result<Device, String>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| Error::State(format!("no usable GPU adapter: {e}")))
}

#[cfg(not(feature = "wgpu"))]
fn gpu() -> Result<Device> {
    Err(Error::State("built without the `wgpu` feature".into()))
}

/// Colours of successive masks in overlays.
const COLOURS: [[u8; 3]; 6] = [[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0], [186, 85, 211], [0, 206, 209]];

/// The image with the best mask of each prediction blended in a distinct colour, as PNG bytes.
pub fn overlay_png(width: usize, height: usize, rgb: &[u8], predictions: &[Prediction]) -> Result<Vec<u8>> {
    let mut out = rgb.to_vec();
    for (i, p) in predictions.iter().enumerate() {
        let best = (0..p.num_masks).max_by(|&a, &b| p.scores[a].total_cmp(&p.scores[b])).unwrap_or(0);
        let mask = &p.masks[best * width * height..(best + 1) * width * height];
        blend_mask(&mut out, mask.iter().map(|&m| m != 0), i);
    }
    rgb_png(width, height, out)
}

/// Blends one mask (row-major, one value per pixel) into RGB pixels, half image and half the
/// `index`-th overlay colour.
pub fn blend_mask(rgb: &mut [u8], mask: impl IntoIterator<Item = bool>, index: usize) {
    let colour = COLOURS[index % COLOURS.len()];
    for (px, m) in rgb.chunks_exact_mut(3).zip(mask) {
        if m {
            for c in 0..3 {
                px[c] = ((px[c] as u16 + colour[c] as u16) / 2) as u8;
            }
        }
    }
}

/// RGB pixels `[height, width, 3]` as PNG bytes.
pub fn rgb_png(width: usize, height: usize, rgb: Vec<u8>) -> Result<Vec<u8>> {
    let len = rgb.len();
    let img = image::RgbImage::from_raw(width as u32, height as u32, rgb).ok_or_else(|| Error::Input(format!("{len} bytes is not a {width}x{height} RGB image")))?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(|e| Error::Io(e.to_string()))?;
    Ok(bytes)
}

/// Video frames read lazily from the image files (PNG, JPEG) of a folder, in file-name order;
/// other files are ignored. Every frame must have the first frame's size.
pub struct DirFrames {
    paths: Vec<std::path::PathBuf>,
    width: usize,
    height: usize,
}

impl DirFrames {
    /// Lists the frames of `dir` and reads the first one's size.
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let mut paths: Vec<std::path::PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")))
            .collect();
        paths.sort();
        let first = paths.first().ok_or_else(|| Error::Input(format!("{}: no PNG or JPEG frames", dir.display())))?;
        let (width, height) = image::image_dimensions(first).map_err(|e| Error::Input(format!("{}: {e}", first.display())))?;
        Ok(Self { paths, width: width as usize, height: height as usize })
    }

    /// The frame files, in order.
    pub fn paths(&self) -> &[std::path::PathBuf] {
        &self.paths
    }

    /// Frame `index` as RGB bytes at its own size.
    pub fn rgb(&self, index: usize) -> Result<Vec<u8>> {
        let path = self.paths.get(index).ok_or_else(|| Error::Input(format!("frame {index} out of range (0..{})", self.paths.len())))?;
        let img = image::open(path).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?.to_rgb8();
        if (img.width() as usize, img.height() as usize) != (self.width, self.height) {
            return Err(Error::Input(format!(
                "{}: frame is {}x{}, the first frame is {}x{}: every frame must have the same size",
                path.display(),
                img.width(),
                img.height(),
                self.width,
                self.height
            )));
        }
        Ok(img.into_raw())
    }
}

impl crate::predictor::video::FrameSource for DirFrames {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn load(&mut self, index: usize, size: usize) -> Result<Vec<u8>> {
        let rgb = self.rgb(index)?;
        crate::predictor::transforms::resize_bicubic_u8(&crate::predictor::ImageRef::new(self.width, self.height, 3, &rgb)?, size)
    }
}

/// An 8-bit grayscale PNG of a binary mask (255 where `mask` is nonzero).
pub fn mask_png(width: usize, height: usize, mask: &[u8]) -> Result<Vec<u8>> {
    let img = image::GrayImage::from_raw(width as u32, height as u32, mask.iter().map(|&m| if m != 0 { 255 } else { 0 }).collect())
        .ok_or_else(|| Error::Input(format!("{} values is not a {width}x{height} mask", mask.len())))?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(|e| Error::Io(e.to_string()))?;
    Ok(bytes)
}
