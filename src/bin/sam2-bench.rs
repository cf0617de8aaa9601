//! `sam2-bench`: times `set_image` and `predict` on the CPU backend and on wgpu, and the
//! reference (Meta's `sam2` in the reference venv) on the same checkpoint and image in the same
//! run, and prints the ratios.
//!
//! ```text
//! sam2-bench --weights CKPT --image IMG [--config YAML] [--repeat N] [--devices cpu,gpu]
//!            [--reference-python tools/reference/.venv/bin/python] [--threads 2]
//! ```

use sam2_webgpu::error::{Error, Result};
use sam2_webgpu::native::device_from_name;
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
use sam2_webgpu::weights::{Checkpoint, config_for, load_sam2};
use sam2_webgpu::Sam2Config;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Median seconds of `set_image` (forcing the encoder to finish) and of a one-point `predict`.
fn bench_device(name: &str, ckpt: &Checkpoint, config: &Sam2Config, rgb: &[u8], (w, h): (usize, usize), repeat: usize) -> Result<(f64, f64)> {
    let device = device_from_name(Some(name))?;
    let model = load_sam2(ckpt, config, &device)?;
    let mut predictor = ImagePredictor::new(model);
    let image = ImageRef::new(w, h, 3, rgb)?;
    let prompt = [Prompt { points: vec![[w as f32 / 2.0, h as f32 / 2.0]], labels: vec![1], ..Prompt::default() }];
    let options = PredictOptions { multimask_output: true, return_logits: false };
    let (mut encode, mut decode) = (Vec::new(), Vec::new());
    for i in 0..=repeat {
        let t = Instant::now();
        predictor.set_image(&image)?;
        // Reading one value waits for the whole encoder.
        let embed = predictor.features().ok_or_else(|| Error::State("no features".into()))?.image_embed.clone();
        embed.slice([0..1, 0..1, 0..1, 0..1]).into_data();
        let t_encode = t.elapsed().as_secs_f64();
        let t = Instant::now();
        predictor.predict(&prompt, options)?;
        let t_decode = t.elapsed().as_secs_f64();
        if i > 0 {
            encode.push(t_encode);
            decode.push(t_decode);
        } else {
            println!("{name}: first run (compile/warm-up) set_image {t_encode:.3}s predict {t_decode:.3}s");
        }
    }
    Ok((median(encode), median(decode)))
}

fn run(args: &[String]) -> Result<()> {
    let weights = flag(args, "--weights").ok_or_else(|| Error::Input("--weights is required".into()))?;
    let image_path = flag(args, "--image").ok_or_else(|| Error::Input("--image is required".into()))?;
    let repeat: usize = flag(args, "--repeat").unwrap_or("3").parse().map_err(|_| Error::Input("--repeat N".into()))?;
    let threads = flag(args, "--threads").unwrap_or("2");
    let ckpt = Checkpoint::from_path(weights)?;
    let config = match flag(args, "--config") {
        Some(p) => Sam2Config::from_yaml(&std::fs::read_to_string(p)?)?,
        None => config_for(&ckpt)?,
    };
    let img = image::open(image_path).map_err(|e| Error::Input(format!("{image_path}: {e}")))?.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.into_raw();

    let reference = match flag(args, "--reference-python") {
        Some(python) => {
            let out = Command::new(python)
                .args(["tools/reference/bench_reference.py", "--weights", weights, "--image", image_path])
                .args(["--threads", threads, "--repeat", &repeat.to_string()])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).ok_or_else(|| {
                Error::State(format!("reference benchmark failed: {}", String::from_utf8_lossy(&out.stderr)))
            })?;
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::State(e.to_string()))?;
            let (e, d) = (v["set_image_s"].as_f64(), v["predict_s"].as_f64());
            println!("reference (torch, {threads} threads): set_image {:.3}s predict {:.4}s", e.unwrap_or(f64::NAN), d.unwrap_or(f64::NAN));
            e.zip(d)
        }
        None => None,
    };
    for name in flag(args, "--devices").unwrap_or("cpu,gpu").split(',') {
        let (encode, decode) = bench_device(name, &ckpt, &config, &rgb, (w, h), repeat.max(1))?;
        print!("{name}: set_image {encode:.3}s predict {decode:.4}s");
        if let Some((re, rd)) = reference {
            print!("  (ours / reference: set_image {:.2}x, predict {:.2}x)", encode / re, decode / rd);
        }
        println!();
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
