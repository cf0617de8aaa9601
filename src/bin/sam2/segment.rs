//! `sam2 everything` (segment everything: COCO JSON and an overlay) and `sam2 annotate`
//! (YOLO segmentation labels for a folder of images, from box labels or segment-everything).

use super::{Args, load_config, load_image, write_file};
use sam2_webgpu::error::{Error, Result};
use sam2_webgpu::model::Sam2;
use sam2_webgpu::native;
use sam2_webgpu::predictor::ImageRef;
use sam2_webgpu::predictor::annotate::{AnnotateInput, AnnotateOptions, Annotator, ImageReport};
use sam2_webgpu::predictor::automatic::{AmgOptions, AutomaticMaskGenerator, OutputMode};
use sam2_webgpu::predictor::labels::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoImage};
use sam2_webgpu::weights::{Checkpoint, load_sam2};
use std::path::{Path, PathBuf};

/// The generator's on/off flags.
const AMG_SWITCHES: [&str; 2] = ["use-m2m", "no-multimask"];

/// `--flag VALUE` parsed as `T`, if given.
fn parsed<T: std::str::FromStr>(a: &Args, flag: &str, what: &str) -> Result<Option<T>> {
    a.one(flag)?.map(|v| v.parse::<T>().map_err(|_| Error::Input(format!("--{flag} {v}: expected {what}")))).transpose()
}

/// The automatic mask generator's options from its flags; Meta's defaults for the others.
fn amg_options(a: &Args) -> Result<AmgOptions> {
    let d = AmgOptions::default();
    let count = |flag: &str| parsed::<usize>(a, flag, "a non-negative integer");
    let number = |flag: &str, default: f64| Ok::<f64, Error>(parsed::<f64>(a, flag, "a number")?.unwrap_or(default));
    Ok(AmgOptions {
        points_per_side: Some(count("points-per-side")?.unwrap_or(32)),
        points_per_batch: count("points-per-batch")?.unwrap_or(d.points_per_batch),
        pred_iou_thresh: number("pred-iou-thresh", d.pred_iou_thresh)?,
        stability_score_thresh: number("stability-score-thresh", d.stability_score_thresh)?,
        stability_score_offset: number("stability-score-offset", d.stability_score_offset)?,
        mask_threshold: number("mask-threshold", d.mask_threshold)?,
        box_nms_thresh: number("box-nms-thresh", d.box_nms_thresh)?,
        crop_n_layers: count("crop-n-layers")?.unwrap_or(d.crop_n_layers),
        crop_nms_thresh: number("crop-nms-thresh", d.crop_nms_thresh)?,
        crop_overlap_ratio: number("crop-overlap-ratio", d.crop_overlap_ratio)?,
        crop_n_points_downscale_factor: count("crop-n-points-downscale-factor")?.unwrap_or(d.crop_n_points_downscale_factor),
        min_mask_region_area: parsed::<f32>(a, "min-mask-region-area", "an area in low-res pixels")?.unwrap_or(d.min_mask_region_area),
        use_m2m: a.switch("use-m2m"),
        multimask_output: !a.switch("no-multimask"),
        output_mode: OutputMode::UncompressedRle,
        ..d
    })
}

fn load_model(a: &Args) -> Result<Sam2> {
    let device = native::device_from_name(a.one("device")?)?;
    let ckpt = Checkpoint::from_path(a.required("weights")?)?;
    let config = load_config(a, &ckpt)?;
    load_sam2(&ckpt, &config, &device)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))
}

/// `sam2 everything`: every mask of one image as COCO JSON, and an overlay.
pub fn everything(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &AMG_SWITCHES)?;
    let image_path = a.required("image")?;
    let out_dir = PathBuf::from(a.required("out")?);
    let options = amg_options(&a)?;
    let mut generator = AutomaticMaskGenerator::new(load_model(&a)?, options)?;
    let (w, h, rgb) = load_image(image_path)?;
    let records = generator.generate(&ImageRef::new(w, h, 3, &rgb)?)?;

    let file_name = Path::new(image_path).file_name().map_or_else(|| image_path.to_string(), |n| n.to_string_lossy().into_owned());
    let annotations = records.iter().enumerate().map(|(i, r)| CocoAnnotation::from_amg_record(i as u64 + 1, 1, 1, r, w, h)).collect::<Result<Vec<_>>>()?;
    let dataset = CocoDataset {
        images: vec![CocoImage { id: 1, file_name, width: w, height: h }],
        annotations,
        categories: vec![CocoCategory { id: 1, name: "object".into(), supercategory: String::new() }],
    };
    create_dir(&out_dir)?;
    write_file(&out_dir.join("annotations.json"), dataset.to_json()?.as_bytes())?;
    // Largest first, so that small masks stay visible on top.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(records[i].area));
    let mut overlay = rgb;
    for (k, &i) in order.iter().enumerate() {
        native::blend_mask(&mut overlay, records[i].segmentation.to_rle(w, h)?.to_mask()?, k);
    }
    write_file(&out_dir.join("overlay.png"), &native::rgb_png(w, h, overlay)?)?;
    println!("{} masks; wrote annotations.json and overlay.png to {}", records.len(), out_dir.display());
    Ok(())
}

/// The PNG and JPEG files of `dir` (names, sorted).
fn image_names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

fn stem(name: &str) -> String {
    Path::new(name).file_stem().map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned())
}

/// One image and, with a labels folder, its boxes from `LABELS/<stem>.txt`.
fn read_input(images: &Path, labels: Option<&Path>, name: &str, options: &AnnotateOptions) -> Result<AnnotateInput> {
    let (width, height, rgb) = load_image(&images.join(name).to_string_lossy())?;
    let Some(dir) = labels else {
        return Ok(AnnotateInput { width, height, rgb, detections: None, errors: Vec::new() });
    };
    let path = dir.join(format!("{}.txt", stem(name)));
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io(format!("{}: no readable label file ({e})", path.display())))?;
    let (detections, errors) = options.boxes_from_yolo(&text, width, height);
    let errors = errors.into_iter().map(|e| match e {
        Error::Input(m) => Error::Input(format!("{}: {m}", path.display())),
        other => other,
    });
    Ok(AnnotateInput { width, height, rgb, detections: Some(detections), errors: errors.collect() })
}

/// Writes one image's labels; prints its progress line and problems.
fn report_image(out_dir: &Path, done: usize, total: usize, r: &ImageReport) -> bool {
    let written = r.lines.as_ref().map(|lines| {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        write_file(&out_dir.join(format!("{}.txt", stem(&r.name))), text.as_bytes()).map(|()| lines.len())
    });
    match &written {
        Some(Ok(n)) => println!("[{done}/{total}] {}: {n} objects", r.name),
        Some(Err(e)) => eprintln!("{}: {e}", r.name),
        None => println!("[{done}/{total}] {}: skipped", r.name),
    }
    for e in &r.errors {
        eprintln!("{}: {e}", r.name);
    }
    matches!(written, Some(Ok(_)))
}

/// `sam2 annotate`: a YOLO segmentation label file per image of a folder.
pub fn annotate(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &AMG_SWITCHES)?;
    let images = PathBuf::from(a.required("images")?);
    let labels = a.one("labels")?.map(PathBuf::from);
    let out_dir = PathBuf::from(a.required("out")?);
    let classes = a.one("classes")?.map(|list| {
        list.split(',').map(|c| c.trim().parse::<usize>().map_err(|_| Error::Input(format!("--classes {list}: {c:?} is not a class id")))).collect::<Result<Vec<_>>>()
    });
    let d = AnnotateOptions::default();
    let options = AnnotateOptions {
        conf: parsed(&a, "conf", "a confidence")?.unwrap_or(d.conf),
        classes: classes.transpose()?,
        max_det: parsed(&a, "max-det", "a non-negative integer")?.unwrap_or(d.max_det),
        num_classes: parsed(&a, "num-classes", "a non-negative integer")?,
        everything: amg_options(&a)?,
        ..d
    };
    let names = image_names(&images)?;
    if names.is_empty() {
        return Err(Error::Input(format!("{}: no PNG or JPEG images", images.display())));
    }
    let mut annotator = Annotator::new(load_model(&a)?, options.clone())?;
    create_dir(&out_dir)?;
    let mut written = 0;
    let report = annotator.run(
        &names,
        |name| read_input(&images, labels.as_deref(), name, &options),
        |done, total, r| written += usize::from(report_image(&out_dir, done, total, r)),
    )?;
    let with_errors = report.images.iter().filter(|r| !r.errors.is_empty()).count();
    println!("labelled {written} of {} images ({with_errors} with errors); labels in {}", names.len(), out_dir.display());
    if written == 0 {
        return Err(Error::Input("no image could be processed".into()));
    }
    Ok(())
}
