//! `sam2-bench`: times `set_image` and `predict` on the CPU backend and on wgpu, and the
//! reference (Meta's `sam2` in the reference venv) on the same checkpoint and image in the same
//! run, and prints the ratios.
//!
//! ```text
//! sam2-bench --weights CKPT --image IMG [--config YAML] [--repeat N] [--devices cpu,gpu]
//!            [--reference-python tools/reference/.venv/bin/python] [--threads 2]
//! sam2-bench --video --weights CKPT [--config YAML] [--objects 1,3,10] [--frames 8]
//!            [--size 640x480] [--devices cpu] [--reference-python PY] [--threads 2]
//! sam2-bench --stream N --weights CKPT [--config YAML] [--objects 2] [--size 640x480] [--devices cpu]
//! sam2-bench --everything --weights CKPT --image IMG [--config YAML] [--points-per-side 32]
//!            [--points-per-batch 64] [--repeat N] [--devices cpu] [--reference-python PY] [--threads 2]
//! ```
//!
//! `--video`: per-frame propagation time (median after two warm-up frames) with 1, 3, 10 objects
//! prompted by points on frame 0 of a synthetic video, and the reference's in the same run.
//! `--stream N`: a live stream of N frames; prints the process's resident memory (VmRSS) and the
//! session's stored outputs at the start, middle and end.
//! `--everything`: median time of the automatic mask generator (Meta's default thresholds) on an
//! image, its split into `set_image`, the decoder (the same point batches through
//! `decode_points_async`, timed separately) and the rest (host-side filtering), and the
//! reference's `SAM2AutomaticMaskGenerator` with the same parameters in the same run.

use sam2_webgpu::error::{Error, Result};
use sam2_webgpu::native::device_from_name;
use sam2_webgpu::predictor::amg::{build_point_grid, scale_grid};
use sam2_webgpu::predictor::automatic::{AmgOptions, AutomaticMaskGenerator};
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
use sam2_webgpu::predictor::video::{InMemoryFrames, PropagateOptions, VideoPrompt, VideoSession};
use sam2_webgpu::weights::{Checkpoint, config_for, load_sam2, load_sam2_video};
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

/// A synthetic frame: gradient background with discs moving across (RGB).
fn synthetic_frame(t: usize, w: usize, h: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let mut c = [(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, ((x + y + 7 * t) % 256) as u8];
            for k in 0..4usize {
                let cx = ((k + 1) * w / 5 + 4 * t) % w;
                let cy = (k % 2 + 1) * h / 3;
                let (dx, dy) = (x as f32 - cx as f32, y as f32 - cy as f32);
                if dx * dx + dy * dy < (h as f32 / 10.0).powi(2) {
                    c = [(60 * k) as u8, 200, (255 - 50 * k) as u8];
                }
            }
            px.extend(c);
        }
    }
    px
}

/// `n` points at the centres of a `ceil(sqrt(n))`-wide grid over the frame (as
/// `bench_reference.py --video` places them).
fn grid_points(n: usize, w: usize, h: usize) -> Vec<[f32; 2]> {
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let rows = n.div_ceil(cols).max(1);
    (0..n).map(|i| [((i % cols) as f32 + 0.5) * w as f32 / cols as f32, ((i / cols) as f32 + 0.5) * h as f32 / rows as f32]).collect()
}

fn parse_size(args: &[String]) -> Result<(usize, usize)> {
    let text = flag(args, "--size").unwrap_or("640x480");
    let (w, h) = text.split_once('x').ok_or_else(|| Error::Input(format!("--size {text}: expected WxH")))?;
    let parse = |v: &str| v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| Error::Input(format!("--size {text}: expected WxH")));
    Ok((parse(w)?, parse(h)?))
}

/// Median seconds per propagated frame for `objects` objects over `frames` frames.
fn bench_video(name: &str, ckpt: &Checkpoint, config: &Sam2Config, objects: usize, frames: usize, (w, h): (usize, usize)) -> Result<f64> {
    let device = device_from_name(Some(name))?;
    let model = load_sam2_video(ckpt, config, &device)?;
    let mut store = InMemoryFrames::new(w, h, config.image_size);
    for t in 0..frames {
        store.push(&ImageRef::new(w, h, 3, &synthetic_frame(t, w, h))?)?;
    }
    let mut session = VideoSession::new(model, Box::new(store))?;
    for (i, p) in grid_points(objects, w, h).into_iter().enumerate() {
        session.add_prompt(0, i as u32 + 1, &VideoPrompt { points: vec![p], labels: vec![1], ..VideoPrompt::default() })?;
    }
    let mut times = Vec::new();
    let mut last = Instant::now();
    session.propagate(PropagateOptions::default(), |_| {
        times.push(last.elapsed().as_secs_f64());
        last = Instant::now();
        true
    })?;
    // Frame 0 is the prompted frame (stored result); the next two warm up.
    let timed: Vec<f64> = times.into_iter().skip(3).collect();
    if timed.is_empty() {
        return Err(Error::Input("--frames must be at least 4 (one prompted, two warm-up, one timed)".into()));
    }
    Ok(median(timed))
}

fn reference_json(python: &str, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let out = Command::new(python).arg("tools/reference/bench_reference.py").args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text.lines().filter(|l| l.trim_start().starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect();
    if lines.is_empty() {
        return Err(Error::State(format!("reference benchmark failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(lines)
}

fn run_video(args: &[String], weights: &str, ckpt: &Checkpoint, config: &Sam2Config) -> Result<()> {
    let frames: usize = flag(args, "--frames").unwrap_or("8").parse().map_err(|_| Error::Input("--frames N".into()))?;
    let objects: Vec<usize> = flag(args, "--objects").unwrap_or("1,3,10").split(',').map(|v| v.parse().map_err(|_| Error::Input("--objects 1,3,10".into()))).collect::<Result<_>>()?;
    let size = parse_size(args)?;
    let threads = flag(args, "--threads").unwrap_or("2");
    let mut reference = std::collections::BTreeMap::new();
    if let Some(python) = flag(args, "--reference-python") {
        // The reference tracks the very frames we do.
        let dir = std::env::temp_dir().join(format!("sam2-bench-frames-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        for t in 0..frames {
            let png = image::RgbImage::from_raw(size.0 as u32, size.1 as u32, synthetic_frame(t, size.0, size.1)).ok_or_else(|| Error::Input("frame size".into()))?;
            png.save(dir.join(format!("{t:05}.png"))).map_err(|e| Error::Io(e.to_string()))?;
        }
        let objs = flag(args, "--objects").unwrap_or("1,3,10");
        let dir_arg = dir.to_string_lossy().into_owned();
        let lines = reference_json(python, &["--video", "--weights", weights, "--objects", objs, "--frames", &frames.to_string(), "--frames-dir", &dir_arg, "--threads", threads]);
        std::fs::remove_dir_all(&dir)?;
        for v in lines? {
            if let (Some(n), Some(t)) = (v["objects"].as_u64(), v["per_frame_s"].as_f64()) {
                println!("reference (torch, {threads} threads): {n} objects {t:.3}s per frame");
                reference.insert(n as usize, t);
            }
        }
    }
    for name in flag(args, "--devices").unwrap_or("cpu").split(',') {
        let mut one = None;
        for &n in &objects {
            let t = bench_video(name, ckpt, config, n, frames, size)?;
            let base = *one.get_or_insert(t);
            print!("{name}: {n} objects {t:.3}s per frame ({:.2}x one object)", t / base);
            if let Some(r) = reference.get(&n) {
                print!("  (ours / reference {:.2}x; reference {:.2}x its one object)", t / r, r / reference.get(&objects[0]).copied().unwrap_or(f64::NAN));
            }
            println!();
        }
    }
    Ok(())
}

/// Resident set size of this process in KiB (Linux), if readable.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn run_stream(args: &[String], n: usize, ckpt: &Checkpoint, config: &Sam2Config) -> Result<()> {
    let (w, h) = parse_size(args)?;
    let objects: usize = flag(args, "--objects").unwrap_or("2").parse().map_err(|_| Error::Input("--objects N".into()))?;
    let name = flag(args, "--devices").unwrap_or("cpu");
    let device = device_from_name(Some(name))?;
    let mut session = VideoSession::stream(load_sam2_video(ckpt, config, &device)?, w, h)?;
    let frames: Vec<Vec<u8>> = (0..24).map(|t| synthetic_frame(t, w, h)).collect();
    let start = Instant::now();
    for t in 0..n {
        let img = ImageRef::new(w, h, 3, &frames[t % frames.len()])?;
        session.track_next_frame(&img)?;
        if t == 0 {
            for (i, p) in grid_points(objects, w, h).into_iter().enumerate() {
                session.add_prompt(0, i as u32 + 1, &VideoPrompt { points: vec![p], labels: vec![1], ..VideoPrompt::default() })?;
            }
        }
        if t == 0 || t == n / 2 || t + 1 == n || (t + 1) % 250 == 0 {
            let rss = rss_kib().map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            println!("{name}: frame {:5}: resident {rss}, stored outputs {}, {:.1}s elapsed", t + 1, session.stored_outputs(), start.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// Median seconds of the automatic mask generator on one image and of its parts.
struct EverythingTimes {
    generate: f64,
    masks: usize,
    set_image: f64,
    decoder: f64,
}

/// Segment-everything at `pps` points per side, `ppb` per batch, Meta's default thresholds:
/// `repeat` timed `generate` calls after a warm-up (one encoder run and one decoder batch),
/// then the same work split: `set_image` once and every grid batch through the decoder.
fn bench_everything(name: &str, ckpt: &Checkpoint, config: &Sam2Config, image: &ImageRef, (pps, ppb): (usize, usize), repeat: usize) -> Result<EverythingTimes> {
    let device = device_from_name(Some(name))?;
    let model = load_sam2(ckpt, config, &device)?;
    let options = AmgOptions { points_per_side: Some(pps), points_per_batch: ppb, ..AmgOptions::default() };
    let mut generator = AutomaticMaskGenerator::new(model.clone(), options)?;
    let mut predictor = ImagePredictor::new(model);
    let points = scale_grid(&build_point_grid(pps), image.width, image.height);
    let decode = |p: &ImagePredictor, batch: &[[f32; 2]]| {
        burn::tensor::try_read_sync(p.decode_points_async(batch, None, true)).unwrap_or_else(|| Err(Error::State("could not wait for the device".into())))
    };
    let t = Instant::now();
    predictor.set_image(image)?;
    decode(&predictor, &points[..ppb.min(points.len())])?;
    println!("{name}: warm-up (one set_image, one decoder batch) {:.3}s", t.elapsed().as_secs_f64());
    let (mut total, mut encode, mut decoder, mut masks) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..repeat {
        let t = Instant::now();
        masks = generator.generate(image)?.len();
        total.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        predictor.set_image(image)?;
        // Reading one value waits for the whole encoder.
        let embed = predictor.features().ok_or_else(|| Error::State("no features".into()))?.image_embed.clone();
        embed.slice([0..1, 0..1, 0..1, 0..1]).into_data();
        encode.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for batch in points.chunks(ppb) {
            decode(&predictor, batch)?;
        }
        decoder.push(t.elapsed().as_secs_f64());
    }
    Ok(EverythingTimes { generate: median(total), masks, set_image: median(encode), decoder: median(decoder) })
}

fn run_everything(args: &[String], weights: &str, ckpt: &Checkpoint, config: &Sam2Config) -> Result<()> {
    let image_path = flag(args, "--image").ok_or_else(|| Error::Input("--image is required".into()))?;
    let count = |name: &str, default: &str| -> Result<usize> {
        let v = flag(args, name).unwrap_or(default);
        v.parse().ok().filter(|&n| n > 0).ok_or_else(|| Error::Input(format!("{name} {v}: expected a positive integer")))
    };
    let (pps, ppb, repeat) = (count("--points-per-side", "32")?, count("--points-per-batch", "64")?, count("--repeat", "3")?);
    let threads = flag(args, "--threads").unwrap_or("2");
    let img = image::open(image_path).map_err(|e| Error::Input(format!("{image_path}: {e}")))?.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.into_raw();
    let image = ImageRef::new(w, h, 3, &rgb)?;
    println!("segment everything: {w}x{h}, {pps} points per side ({} prompts, batches of {ppb}), Meta's default thresholds", pps * pps);
    let share = |part: f64, whole: f64| 100.0 * part / whole;
    let reference = match flag(args, "--reference-python") {
        Some(python) => {
            let (pps_s, ppb_s, repeat_s) = (pps.to_string(), ppb.to_string(), repeat.to_string());
            let mut cmd = vec!["--everything", "--weights", weights, "--image", image_path, "--points-per-side", &pps_s];
            cmd.extend(["--points-per-batch", &ppb_s, "--threads", threads, "--repeat", &repeat_s]);
            let v = reference_json(python, &cmd)?.remove(0);
            let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let (g, e, d) = (num("everything_s"), num("set_image_s"), num("decoder_s"));
            println!(
                "reference (torch, {threads} threads): generate {g:.3}s, {} masks; set_image {e:.3}s ({:.0}%), decoder {d:.3}s ({:.0}%), rest {:.3}s ({:.0}%)",
                v["masks"], share(e, g), share(d, g), g - e - d, share(g - e - d, g)
            );
            Some(g)
        }
        None => None,
    };
    for name in flag(args, "--devices").unwrap_or("cpu").split(',') {
        let t = bench_everything(name, ckpt, config, &image, (pps, ppb), repeat)?;
        let rest = t.generate - t.set_image - t.decoder;
        print!(
            "{name}: generate {:.3}s, {} masks; set_image {:.3}s ({:.0}%), decoder {:.3}s ({:.0}%), rest {rest:.3}s ({:.0}%)",
            t.generate, t.masks, t.set_image, share(t.set_image, t.generate), t.decoder, share(t.decoder, t.generate), share(rest, t.generate)
        );
        if let Some(r) = reference {
            print!("  (ours / reference {:.2}x)", t.generate / r);
        }
        println!();
    }
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--video" || a == "--stream" || a == "--everything") {
        let weights = flag(args, "--weights").ok_or_else(|| Error::Input("--weights is required".into()))?;
        let ckpt = Checkpoint::from_path(weights)?;
        let config = match flag(args, "--config") {
            Some(p) => Sam2Config::from_yaml(&std::fs::read_to_string(p)?)?,
            None => config_for(&ckpt)?,
        };
        if args.iter().any(|a| a == "--everything") {
            return run_everything(args, weights, &ckpt, &config);
        }
        return match flag(args, "--stream") {
            Some(n) => run_stream(args, n.parse().map_err(|_| Error::Input("--stream N".into()))?, &ckpt, &config),
            None => run_video(args, weights, &ckpt, &config),
        };
    }
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
