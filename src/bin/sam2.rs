//! `sam2`: the native command line over the library.
//!
//! ```text
//! sam2 info CKPT
//! sam2 convert CKPT OUT.safetensors [--f16]
//! sam2 predict --weights CKPT [--config YAML] --image IMG (--point X,Y,LABEL)... (--box X0,Y0,X1,Y1)...
//!              [--mask-input NPY] [--multimask] [--max-hole-area A] [--max-sprinkle-area A]
//!              [--device cpu|gpu] --out DIR
//! sam2 track --weights CKPT [--config YAML] [--device cpu|gpu] --frames DIR
//!            (--prompt FRAME:OBJ:point:X,Y,L | FRAME:OBJ:box:X0,Y0,X1,Y1 | FRAME:OBJ:mask:PNG)...
//!            [--reverse] [--start F] [--max N] [--no-fill-holes] [--save-logits] --out DIR
//! sam2 everything --weights CKPT [--config YAML] [--device cpu|gpu] --image IMG [GENERATOR FLAGS] --out DIR
//! sam2 annotate --weights CKPT [--config YAML] [--device cpu|gpu] --images DIR [--labels DIR]
//!               [--classes 0,2,...] [--conf C] [--max-det N] [--num-classes N] [GENERATOR FLAGS] --out DIR
//! ```

use sam2_webgpu::error::{Error, Result};
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
use sam2_webgpu::predictor::video::{PropagateOptions, VideoPrompt, VideoSession};
use sam2_webgpu::weights::{Checkpoint, config_for, detect, load_sam2, load_sam2_video, parameter_count, to_safetensors};
use sam2_webgpu::{Sam2Config, native, npy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "sam2/segment.rs"]
mod segment;

const USAGE: &str = "usage:
  sam2 info CKPT
  sam2 convert CKPT OUT.safetensors [--f16]
  sam2 predict --weights CKPT [--config YAML] --image IMG (--point X,Y,LABEL)... (--box X0,Y0,X1,Y1)...
               [--mask-input NPY] [--multimask] [--max-hole-area A] [--max-sprinkle-area A]
               [--device cpu|gpu] --out DIR
  sam2 track --weights CKPT [--config YAML] [--device cpu|gpu] --frames DIR
             (--prompt FRAME:OBJ:point:X,Y,L | FRAME:OBJ:box:X0,Y0,X1,Y1 | FRAME:OBJ:mask:PNG)...
             [--reverse] [--start F] [--max N] [--no-fill-holes] [--save-logits] --out DIR
    frames: the PNG/JPEG files of DIR sorted by name; prompts apply in order (points for the same
    frame and object add up); then tracking runs forward from the first prompted frame (or from
    --start, backwards with --reverse, for at most --max frames after the start). Writes
    OUT/{frame:05}_{obj}.png (255 = object) for every tracked frame and object, scores.json
    (object-score logits per frame), and with --save-logits OUT/{frame:05}_{obj}.npy (low-res
    logits [S/4, S/4]).
  sam2 everything --weights CKPT [--config YAML] [--device cpu|gpu] --image IMG [GENERATOR FLAGS] --out DIR
    writes OUT/annotations.json (COCO: one annotation per mask with compressed-RLE segmentation,
    bbox, area, predicted_iou, stability_score, point_coords) and OUT/overlay.png.
  sam2 annotate --weights CKPT [--config YAML] [--device cpu|gpu] --images DIR [--labels DIR]
                [--classes 0,2,...] [--conf C] [--max-det N] [--num-classes N] [GENERATOR FLAGS] --out DIR
    writes a YOLO segmentation file OUT/<stem>.txt per PNG/JPEG image of DIR: the boxes of
    LABELS/<stem>.txt (class cx cy w h [conf], normalised) with conf > C (0.25), of the listed
    classes, the N (300) most confident, each segmented; without --labels, every mask of the
    image as class 0. Class ids >= --num-classes, bad label lines and unreadable files are
    reported per file; the exit code is non-zero only if no image could be processed.
  GENERATOR FLAGS (Meta's SAM2AutomaticMaskGenerator, defaults in brackets):
    --points-per-side N [32] --points-per-batch N [64] --pred-iou-thresh T [0.8]
    --stability-score-thresh T [0.95] --stability-score-offset T [1] --mask-threshold T [0]
    --box-nms-thresh T [0.7] --crop-n-layers N [0] --crop-nms-thresh T [0.7]
    --crop-overlap-ratio T [0.3413] --crop-n-points-downscale-factor N [1]
    --min-mask-region-area A [0, low-res pixels] --use-m2m --no-multimask";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("info") => info(&args[1..]),
        Some("convert") => convert(&args[1..]),
        Some("predict") => predict(&args[1..]),
        Some("track") => track(&args[1..]),
        Some("everything") => segment::everything(&args[1..]),
        Some("annotate") => segment::annotate(&args[1..]),
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

fn load_config(a: &Args, ckpt: &Checkpoint) -> Result<Sam2Config> {
    match a.one("config")? {
        Some(path) => Sam2Config::from_yaml(&std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{path}: {e}")))?),
        None => config_for(ckpt),
    }
}

/// One `--prompt FRAME:OBJ:KIND:VALUE`.
enum TrackPrompt {
    Points(VideoPrompt),
    Mask(Vec<u8>, usize, usize),
}

fn parse_prompt(text: &str) -> Result<(usize, u32, TrackPrompt)> {
    let bad = |why: &str| Error::Input(format!("--prompt {text}: {why} (FRAME:OBJ:point:X,Y,L | FRAME:OBJ:box:X0,Y0,X1,Y1 | FRAME:OBJ:mask:PNG)"));
    let mut parts = text.splitn(4, ':');
    let (Some(f), Some(o), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected four ':'-separated fields"));
    };
    let frame = f.parse::<usize>().map_err(|_| bad("FRAME must be a frame index"))?;
    let obj = o.parse::<u32>().map_err(|_| bad("OBJ must be a non-negative integer id"))?;
    let prompt = match kind {
        "point" => {
            let [x, y, l] = numbers::<3>("prompt", value)?;
            if l != 0.0 && l != 1.0 {
                return Err(bad("the point label must be 1 (positive) or 0 (negative)"));
            }
            TrackPrompt::Points(VideoPrompt { points: vec![[x, y]], labels: vec![l as i32], ..VideoPrompt::default() })
        }
        "box" => TrackPrompt::Points(VideoPrompt { bbox: Some(numbers::<4>("prompt", value)?), ..VideoPrompt::default() }),
        "mask" => {
            let img = image::open(value).map_err(|e| bad(&format!("{value}: {e}")))?.to_luma8();
            let (w, h) = (img.width() as usize, img.height() as usize);
            TrackPrompt::Mask(img.into_raw(), w, h)
        }
        _ => return Err(bad("KIND must be point, box or mask")),
    };
    Ok((frame, obj, prompt))
}

fn track(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &["reverse", "no-fill-holes", "save-logits"])?;
    let frames = native::DirFrames::open(Path::new(a.required("frames")?))?;
    let out_dir = PathBuf::from(a.required("out")?);
    let prompts: Vec<(usize, u32, TrackPrompt)> = a.all("prompt").iter().map(|p| parse_prompt(p)).collect::<Result<_>>()?;
    if prompts.is_empty() {
        return Err(Error::Input(format!("track needs at least one --prompt\n{USAGE}")));
    }
    let index = |flag: &str| -> Result<Option<usize>> {
        a.one(flag)?.map(|v| v.parse::<usize>().map_err(|_| Error::Input(format!("--{flag} {v}: expected a non-negative integer")))).transpose()
    };
    let options = PropagateOptions { start: index("start")?, max_frames: index("max")?, reverse: a.switch("reverse") };
    let device = native::device_from_name(a.one("device")?)?;
    let ckpt = Checkpoint::from_path(a.required("weights")?)?;
    let config = load_config(&a, &ckpt)?;
    let model = load_sam2_video(&ckpt, &config, &device)?;
    drop(ckpt);
    let (w, h) = sam2_webgpu::predictor::video::FrameSource::size(&frames);
    let mut session = VideoSession::new(model, Box::new(frames))?;
    if a.switch("no-fill-holes") {
        session.fill_hole_area = 0;
    }
    // Points for the same frame and object given in several --prompt flags add up.
    let mut pointed: std::collections::BTreeSet<(usize, u32)> = std::collections::BTreeSet::new();
    for (frame, obj, prompt) in prompts {
        match prompt {
            TrackPrompt::Points(mut p) => {
                p.keep_old_points = p.bbox.is_none() && pointed.contains(&(frame, obj));
                pointed.insert((frame, obj));
                session.add_prompt(frame, obj, &p)?;
            }
            TrackPrompt::Mask(mask, mw, mh) => {
                pointed.remove(&(frame, obj));
                session.add_mask(frame, obj, &mask, mw, mh)?;
            }
        }
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::Io(format!("{}: {e}", out_dir.display())))?;
    let ids = session.object_ids();
    let save_logits = a.switch("save-logits");
    let mut scores = Vec::new();
    let mut failure: Option<Error> = None;
    session.propagate(options, |result| {
        let mut frame_scores = serde_json::Map::new();
        for (i, obj) in result.objects.iter().enumerate() {
            let stem = format!("{:05}_{}", result.frame, obj.id);
            let written = native::mask_png(w, h, &result.mask(i, w, h)).and_then(|png| write_file(&out_dir.join(format!("{stem}.png")), &png)).and_then(|()| {
                if !save_logits {
                    return Ok(());
                }
                let s = result.low_res_size;
                write_file(&out_dir.join(format!("{stem}.npy")), &npy::write_npy_f32(&[s, s], &obj.low_res_logits)?)
            });
            if let Err(e) = written {
                failure = Some(e);
                return false;
            }
            frame_scores.insert(obj.id.to_string(), obj.object_score.map_or(serde_json::Value::Null, |v| serde_json::json!(v)));
        }
        println!("frame {:5}: {}", result.frame, result.objects.iter().map(|o| format!("obj {} score {:+.3}", o.id, o.object_score.unwrap_or(f32::NAN))).collect::<Vec<_>>().join(", "));
        scores.push(serde_json::json!({"frame": result.frame, "scores": frame_scores}));
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let json = serde_json::json!({"objects": ids, "frames": scores});
    write_file(&out_dir.join("scores.json"), serde_json::to_string_pretty(&json).map_err(|e| Error::Io(e.to_string()))?.as_bytes())?;
    println!("wrote {} frames x {} objects to {}", scores.len(), ids.len(), out_dir.display());
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
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
