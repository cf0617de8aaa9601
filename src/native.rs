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

#[cfg(feature = "wgpu")]
fn gpu() -> Result<Device> {
    Device::wgpu_options().init().map_err(|e| Error::State(format!("no usable GPU adapter: {e}")))
}

#[cfg(not(feature = "wgpu"))]
fn gpu() -> Result<Device> {
    Err(Error::State("built without the `wgpu` feature".into()))
}

/// The image with the best mask of each prediction blended in a distinct colour, as PNG bytes.
pub fn overlay_png(width: usize, height: usize, rgb: &[u8], predictions: &[Prediction]) -> Result<Vec<u8>> {
    const COLOURS: [[u8; 3]; 6] = [[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0], [186, 85, 211], [0, 206, 209]];
    let mut out = rgb.to_vec();
    for (i, p) in predictions.iter().enumerate() {
        let best = (0..p.num_masks).max_by(|&a, &b| p.scores[a].total_cmp(&p.scores[b])).unwrap_or(0);
        let mask = &p.masks[best * width * height..(best + 1) * width * height];
        let colour = COLOURS[i % COLOURS.len()];
        for (px, &m) in out.chunks_exact_mut(3).zip(mask) {
            if m != 0 {
                for c in 0..3 {
                    px[c] = ((px[c] as u16 + colour[c] as u16) / 2) as u8;
                }
            }
        }
    }
    let img = image::RgbImage::from_raw(width as u32, height as u32, out)
        .ok_or_else(|| Error::Input(format!("{} bytes is not a {width}x{height} RGB image", rgb.len())))?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(|e| Error::Io(e.to_string()))?;
    Ok(bytes)
}
