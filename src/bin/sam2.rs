//! `sam2`: the native command line over the library.
//!
//! ```text
//! sam2 info CKPT
//! sam2 convert CKPT OUT.safetensors [--f16]
//! sam2 predict --weights CKPT [--config YAML] --image IMG (--point X,Y,LABEL)... (--box X0,Y0,X1,Y1)...
//!              [--mask-input NPY] [--multimask] [--max-hole-area A] [--max-sprinkle-area A]
//!              [--device cpu|gpu] --out DIR
//! ```

use sam2_webgpu::error::{Error, Result};
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
use sam2_webgpu::weights::{Checkpoint, config_for, detect, load_sam2, parameter_count, to_safetensors};
use sam2_webgpu::{Sam2Config, native, npy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  sam2 info CKPT
  sam2 convert CKPT OUT.safetensors [--f16]
  sam2 predict --weights CKPT [--config YAML] --image IMG (--point X,Y,LABEL)... (--box X0,Y0,X1,Y1)...
               [--mask-input NPY] [--multimask] [--max-hole-area A] [--max-sprinkle-area A]
               [--device cpu|gpu] --out DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("info") => info(&args[1..]),
        Some("convert") => convert(&args[1..]),
        Some("predict") => predict(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(Error::Input(format!("unknown or missing command\n{USAGE}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Flags (`--name value`, repeatable) and positional arguments.
struct Args {
    flags: BTreeMap<String, Vec<String>>,
    switches: Vec<String>,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String], switches: &[&str]) -> Result<Self> {
        let mut out = Args { flags: BTreeMap::new(), switches: Vec::new(), positional: Vec::new() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if switches.contains(&name) {
                    out.switches.push(name.to_string());
                } else {
                    let value = it.next().ok_or_else(|| Error::Input(format!("--{name} needs a value")))?;
                    out.flags.entry(name.to_string()).or_default().push(value.clone());
                }
            } else {
                out.positional.push(a.clone());
            }
        }
        Ok(out)
    }

    fn one(&self, name: &str) -> Result<Option<&str>> {
        match self.flags.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([v]) => Ok(Some(v)),
            Some(_) => Err(Error::Input(format!("--{name} given more than once"))),
        }
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.one(name)?.ok_or_else(|| Error::Input(format!("--{name} is required\n{USAGE}")))
    }

    fn all(&self, name: &str) -> &[String] {
        self.flags.get(name).map_or(&[], Vec::as_slice)
    }

    fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

fn info(args: &[String]) -> Result<()> {
    let [path] = args else { return Err(Error::Input(format!("info takes one checkpoint path\n{USAGE}"))) };
    let ckpt = Checkpoint::from_path(path)?;
    let found = detect(&ckpt)?;
    let layers = ckpt.names().filter(|n| n.ends_with(".weight")).count();
    let params = parameter_count(&ckpt);
    println!("file:        {path}");
    println!("format:      {:?}", ckpt.format());
    println!("model:       {}", found.model_name());
    println!("version:     {}", found.version);
    println!("size:        {}", found.size);
    println!("embed dim:   {}", found.embed_dim);
    println!("blocks:      {}", found.num_blocks);
    println!("tensors:     {}", ckpt.len());
    println!("layers:      {layers}");
    println!("parameters:  {params} (+{} buffer values)", ckpt.num_params() - params);
    println!("bytes:       {}", ckpt.byte_len());
    Ok(())
}

fn convert(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &["f16"])?;
    let [input, output] = a.positional.as_slice() else {
        return Err(Error::Input(format!("convert takes CKPT and OUT.safetensors\n{USAGE}")));
    };
    let ckpt = Checkpoint::from_path(input)?;
    let found = detect(&ckpt)?;
    let meta = BTreeMap::from([
        ("format".to_string(), "sam2-webgpu".to_string()),
        ("model".to_string(), found.model_name()),
    ]);
    let bytes = to_safetensors(&ckpt, a.switch("f16"), meta)?;
    std::fs::write(output, &bytes).map_err(|e| Error::Io(format!("{output}: {e}")))?;
    println!("wrote {output}: {} tensors, {} bytes ({})", ckpt.len(), bytes.len(), if a.switch("f16") { "f16" } else { "f32" });
    Ok(())
}

/// Parses `a,b,c,...` into exactly `N` numbers.
fn numbers<const N: usize>(flag: &str, text: &str) -> Result<[f32; N]> {
    let values: Vec<f32> = text
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|_| Error::Input(format!("--{flag} {text}: {v:?} is not a number"))))
        .collect::<Result<_>>()?;
    values.try_into().map_err(|_| Error::Input(format!("--{flag} {text}: expected {N} comma-separated numbers")))
}

fn load_image(path: &str) -> Result<(usize, usize, Vec<u8>)> {
    let img = image::open(path).map_err(|e| Error::Input(format!("{path}: {e}")))?.to_rgb8();
    Ok((img.width() as usize, img.height() as usize, img.into_raw()))
}

fn predict(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &["multimask"])?;
    let weights = a.required("weights")?;
    let image_path = a.required("image")?;
    let out_dir = PathBuf::from(a.required("out")?);
    let device = native::device_from_name(a.one("device")?)?;

    let mut points = Vec::new();
    let mut labels = Vec::new();
    for p in a.all("point") {
        let [x, y, l] = numbers::<3>("point", p)?;
        if l.fract() != 0.0 {
            return Err(Error::Input(format!("--point {p}: the label must be an integer")));
        }
        points.push([x, y]);
        labels.push(l as i32);
    }
    let boxes: Vec<[f32; 4]> = a.all("box").iter().map(|b| numbers::<4>("box", b)).collect::<Result<_>>()?;
    let mask_input = match a.one("mask-input")? {
        Some(path) => {
            let (shape, values) = npy::read_npy_f32_file(Path::new(path))?;
            if shape.len() != 3 || shape[0] != 1 {
                return Err(Error::Input(format!("{path}: mask input must have shape [1, S/4, S/4], got {shape:?}")));
            }
            Some(values)
        }
        None => None,
    };
    if boxes.len() > 1 && !points.is_empty() {
        return Err(Error::Input("points with several boxes are ambiguous: give one box with points, or boxes alone".into()));
    }
    if boxes.len() > 1 && mask_input.is_some() {
        return Err(Error::Input("--mask-input applies to one object; it cannot be combined with several boxes".into()));
    }
    let prompts: Vec<Prompt> = if boxes.len() > 1 {
        boxes.iter().map(|b| Prompt { bbox: Some(*b), ..Prompt::default() }).collect()
    } else {
        vec![Prompt { points, labels, bbox: boxes.first().copied(), mask_input }]
    };

    let ckpt = Checkpoint::from_path(weights)?;
    let config = match a.one("config")? {
        Some(path) => Sam2Config::from_yaml(&std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{path}: {e}")))?)?,
        None => config_for(&ckpt)?,
    };
    let model = load_sam2(&ckpt, &config, &device)?;
    drop(ckpt);
    let (w, h, rgb) = load_image(image_path)?;
    let mut predictor = ImagePredictor::new(model);
    // Meta's SAM2ImagePredictor options: fill background holes / drop foreground specks up to
    // this many low-res pixels before upsampling (0, the default, is off).
    for (flag, field) in [("max-hole-area", &mut predictor.max_hole_area), ("max-sprinkle-area", &mut predictor.max_sprinkle_area)] {
        if let Some(v) = a.one(flag)? {
            *field = v.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| Error::Input(format!("--{flag} {v}: expected an area >= 0")))?;
        }
    }
    predictor.set_image(&ImageRef::new(w, h, 3, &rgb)?)?;
    let options = PredictOptions { multimask_output: a.switch("multimask"), return_logits: false };
    let results = predictor.predict(&prompts, options)?;

    std::fs::create_dir_all(&out_dir).map_err(|e| Error::Io(format!("{}: {e}", out_dir.display())))?;
    let m = results[0].num_masks;
    let low = config.low_res_size();
    let batched = boxes.len() > 1;
    let lead: Vec<usize> = if batched { vec![results.len(), m] } else { vec![m] };
    let cat = |f: &dyn Fn(&sam2_webgpu::predictor::Prediction) -> &[u8]| results.iter().flat_map(|r| f(r).iter().copied()).collect::<Vec<u8>>();
    let catf = |f: &dyn Fn(&sam2_webgpu::predictor::Prediction) -> &[f32]| results.iter().flat_map(|r| f(r).iter().copied()).collect::<Vec<f32>>();
    let shape = |rest: &[usize]| [lead.as_slice(), rest].concat();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = out_dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    };
    write("masks.npy", npy::write_npy_u8(&shape(&[h, w]), &cat(&|r| &r.masks))?)?;
    write("scores.npy", npy::write_npy_f32(&shape(&[]), &catf(&|r| &r.scores))?)?;
    write("low_res_logits.npy", npy::write_npy_f32(&shape(&[low, low]), &catf(&|r| &r.low_res_logits))?)?;
    let overlay = native::overlay_png(w, h, &rgb, &results)?;
    write("mask.png", overlay)?;
    for (i, r) in results.iter().enumerate() {
        println!("object {i}: scores {:?}, object score logit {:.4}", r.scores, r.object_score_logit);
    }
    println!("wrote masks.npy, scores.npy, low_res_logits.npy, mask.png to {}", out_dir.display());
    Ok(())
}
