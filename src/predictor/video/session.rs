//! A video session (`SAM2VideoPredictor` and its `inference_state`): prompts per object and
//! frame, propagation through the memory bank, correction clicks, removal, reset, and a live
//! stream mode whose memory stays bounded.

mod track;

use super::frames::FrameSource;
use super::{FrameResult, ObjectFrame};
use crate::error::{Error, Result};
use crate::model::prompt_encoder::label;
use crate::model::{FrameFeatures, NO_OBJ_SCORE, PointInputs, Sam2, TrackOutput};
use crate::predictor::components::fill_holes_in_mask_scores;
use crate::predictor::image::read_f32;
#[cfg(not(target_family = "wasm"))]
use crate::predictor::image::block_on;
use crate::predictor::postprocess::LOW_RES_CLAMP;
use crate::predictor::transforms::{normalize_u8_chw, resize_plane_aa, scale_boxes, scale_points, validate_box, validate_points};
use burn::tensor::{Tensor, TensorData};
use std::collections::{BTreeMap, BTreeSet};

/// What is kept of one object on one frame (`compact_current_out`).
#[derive(Debug, Clone)]
pub(super) struct FrameOut {
    /// Memory features rounded to bfloat16 as Meta stores them: `[1, mem, S/16, S/16]`.
    maskmem: Option<Tensor<4>>,
    /// Low-resolution logits `S/4 × S/4` (holes filled when enabled).
    pred_masks: Vec<f32>,
    /// `[1, C]`.
    obj_ptr: Tensor<2>,
    object_score: f32,
}

/// Points (in `S×S` input pixels) prompted on one frame of one object.
#[derive(Debug, Clone, Default)]
struct Points {
    coords: Vec<[f32; 2]>,
    labels: Vec<i32>,
}

/// Per-object state (`*_per_obj[obj_idx]` of Meta's `inference_state`).
#[derive(Debug, Clone)]
struct Object {
    id: u32,
    points: BTreeMap<usize, Points>,
    /// Binary `S×S` mask prompts.
    masks: BTreeMap<usize, Vec<f32>>,
    cond: BTreeMap<usize, FrameOut>,
    non_cond: BTreeMap<usize, FrameOut>,
    temp_cond: BTreeMap<usize, FrameOut>,
    temp_non_cond: BTreeMap<usize, FrameOut>,
    /// Frames tracked, with the direction they were tracked in.
    tracked: BTreeMap<usize, bool>,
}

impl Object {
    fn new(id: u32) -> Self {
        Self { id, points: BTreeMap::new(), masks: BTreeMap::new(), cond: BTreeMap::new(), non_cond: BTreeMap::new(), temp_cond: BTreeMap::new(), temp_non_cond: BTreeMap::new(), tracked: BTreeMap::new() }
    }

    /// The newest output of this object on `frame`, temporary ones first (`is_cond` picks which).
    fn latest(&self, frame: usize, is_cond: bool) -> Option<&FrameOut> {
        let temp = if is_cond { &self.temp_cond } else { &self.temp_non_cond };
        temp.get(&frame).or_else(|| self.cond.get(&frame)).or_else(|| self.non_cond.get(&frame))
    }

    /// A stored output usable as memory (conditioning frames included).
    fn memory_at(&self, frame: usize) -> Result<&FrameOut> {
        self.non_cond.get(&frame).or_else(|| self.cond.get(&frame)).ok_or_else(|| Error::State(format!("internal: no memory of object {} on frame {frame}", self.id)))
    }
}

/// Where frames come from.
enum Frames {
    Offline(Box<dyn FrameSource>),
    /// A live stream: `next` frames have been pushed; only the latest one's features exist.
    Stream { next: usize },
}

/// One video and every object tracked in it. The model stays stateless; this owns all state.
pub struct VideoSession {
    model: Sam2,
    frames: Frames,
    width: usize,
    height: usize,
    objects: Vec<Object>,
    /// Ids removed since the last reset (prompting them again is an error).
    removed: BTreeSet<u32>,
    /// Features of the most recently used frame.
    cached: Option<(usize, FrameFeatures)>,
    /// `maskmem_pos_enc`, the same for every frame and object.
    maskmem_pos: Option<Tensor<4>>,
    /// Holes in predicted masks up to this area (low-res pixels) are filled; 0 turns it off.
    pub fill_hole_area: usize,
}

/// What a session holds for one object on one frame (for inspection and tests).
#[derive(Debug, Clone)]
pub struct StoredOutput {
    /// Low-resolution logits `[S/4, S/4]`.
    pub pred_masks: Vec<f32>,
    pub object_score: f32,
    /// `[1, C]`.
    pub obj_ptr: Tensor<2>,
    /// bfloat16-valued memory features `[1, mem, S/16, S/16]`, once encoded.
    pub maskmem: Option<Tensor<4>>,
    /// Whether it is a conditioning (prompted) frame.
    pub is_cond: bool,
}

/// A prompt for one object on one frame, in video pixels.
#[derive(Debug, Clone, Default)]
pub struct VideoPrompt {
    pub points: Vec<[f32; 2]>,
    /// 1 positive, 0 negative.
    pub labels: Vec<i32>,
    /// `[x0, y0, x1, y1]`; needs `clear_old_points`.
    pub bbox: Option<[f32; 4]>,
    /// Keep the points given earlier on this frame and add these (`clear_old_points=False`).
    pub keep_old_points: bool,
}

/// Rounds to the nearest bfloat16 (ties to even), as `tensor.to(torch.bfloat16)`.
pub fn round_bf16(v: f32) -> f32 {
    half::bf16::from_f32(v).to_f32()
}

impl VideoSession {
    /// An offline session over `frames` (the model must have its video modules).
    pub fn new(model: Sam2, frames: Box<dyn FrameSource>) -> Result<Self> {
        model.video()?;
        let (width, height) = frames.size();
        if frames.is_empty() {
            return Err(Error::Input("the video has no frames".into()));
        }
        Ok(Self::with_frames(model, Frames::Offline(frames), width, height))
    }

    /// A live-stream session for frames of `width × height`: push frames with
    /// [`Self::track_next_frame_async`]; only what later frames can attend to is kept.
    pub fn stream(model: Sam2, width: usize, height: usize) -> Result<Self> {
        model.video()?;
        if width == 0 || height == 0 {
            return Err(Error::Input(format!("frame size {width}x{height} is empty")));
        }
        Ok(Self::with_frames(model, Frames::Stream { next: 0 }, width, height))
    }

    fn with_frames(model: Sam2, frames: Frames, width: usize, height: usize) -> Self {
        let fill_hole_area = model.config.video.tracking.fill_hole_area;
        Self { model, frames, width, height, objects: Vec::new(), removed: BTreeSet::new(), cached: None, maskmem_pos: None, fill_hole_area }
    }

    /// `(width, height)` of the video.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Frames in the video (offline) or pushed so far (stream).
    pub fn num_frames(&self) -> usize {
        match &self.frames {
            Frames::Offline(f) => f.len(),
            Frames::Stream { next } => *next,
        }
    }

    /// Object ids in the order results list them.
    pub fn object_ids(&self) -> Vec<u32> {
        self.objects.iter().map(|o| o.id).collect()
    }

    /// Stored outputs (memory entries) over all objects, for checking memory stays bounded.
    pub fn stored_outputs(&self) -> usize {
        self.objects.iter().map(|o| o.cond.len() + o.non_cond.len() + o.temp_cond.len() + o.temp_non_cond.len()).sum()
    }

    /// The newest output held for object `obj_id` on `frame` (prompted results not yet
    /// propagated first), if any.
    pub fn stored_output(&self, obj_id: u32, frame: usize) -> Option<StoredOutput> {
        let o = self.objects.iter().find(|o| o.id == obj_id)?;
        let (out, is_cond) = [(&o.temp_cond, true), (&o.temp_non_cond, false), (&o.cond, true), (&o.non_cond, false)].into_iter().find_map(|(m, c)| m.get(&frame).map(|out| (out, c)))?;
        Some(StoredOutput { pred_masks: out.pred_masks.clone(), object_score: out.object_score, obj_ptr: out.obj_ptr.clone(), maskmem: out.maskmem.clone(), is_cond })
    }

    /// Forgets every object, prompt and result (`reset_state`); frames stay.
    pub fn reset(&mut self) {
        self.objects.clear();
        self.removed.clear();
    }

    fn video_len(&self) -> Option<usize> {
        match &self.frames {
            Frames::Offline(f) => Some(f.len()),
            Frames::Stream { .. } => None,
        }
    }

    fn check_frame(&self, frame: usize) -> Result<()> {
        match &self.frames {
            Frames::Offline(f) if frame >= f.len() => Err(Error::Input(format!("frame {frame} out of range: the video has {} frames", f.len()))),
            Frames::Stream { next } if *next == 0 => Err(Error::State("no frame has been pushed to the stream yet".into())),
            Frames::Stream { next } if frame + 1 != *next => Err(Error::Input(format!("a live stream takes prompts on its latest frame ({}) only, not {frame}", next - 1))),
            _ => Ok(()),
        }
    }

    fn object_index(&self, id: u32) -> Result<usize> {
        self.objects.iter().position(|o| o.id == id).ok_or_else(|| {
            if self.removed.contains(&id) {
                Error::Input(format!("object {id} was removed; reset the session to use its id again"))
            } else {
                Error::Input(format!("unknown object id {id} (known: {:?})", self.object_ids()))
            }
        })
    }

    /// The index of `id`, adding the object if it is new (`_obj_id_to_idx`).
    fn object_index_or_add(&mut self, id: u32) -> Result<usize> {
        if self.removed.contains(&id) {
            return self.object_index(id);
        }
        Ok(self.object_index(id).unwrap_or_else(|_| {
            self.objects.push(Object::new(id));
            self.objects.len() - 1
        }))
    }

    async fn features(&mut self, frame: usize) -> Result<FrameFeatures> {
        if let Some((f, feats)) = &self.cached {
            if *f == frame {
                return Ok(feats.clone());
            }
        }
        let size = self.model.config.image_size;
        let rgb = match &mut self.frames {
            Frames::Offline(source) => source.load(frame, size)?,
            Frames::Stream { .. } => return Err(Error::State(format!("frame {frame} of the stream is gone (only the latest is kept)"))),
        };
        let feats = self.encode_frame(&rgb)?;
        self.cached = Some((frame, feats.clone()));
        Ok(feats)
    }

    fn encode_frame(&self, rgb: &[u8]) -> Result<FrameFeatures> {
        let size = self.model.config.image_size;
        let pixels = normalize_u8_chw(rgb, size)?;
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), self.model.device());
        Ok(self.model.frame_features(input))
    }

    fn low(&self) -> usize {
        self.model.config.low_res_size()
    }

    /// [`Self::add_prompt_async`], blocking (native).
    #[cfg(not(target_family = "wasm"))]
    pub fn add_prompt(&mut self, frame: usize, obj_id: u32, prompt: &VideoPrompt) -> Result<FrameResult> {
        block_on(self.add_prompt_async(frame, obj_id, prompt))
    }

    /// [`Self::add_mask_async`], blocking (native).
    #[cfg(not(target_family = "wasm"))]
    pub fn add_mask(&mut self, frame: usize, obj_id: u32, mask: &[u8], mask_w: usize, mask_h: usize) -> Result<FrameResult> {
        block_on(self.add_mask_async(frame, obj_id, mask, mask_w, mask_h))
    }

    /// Adds points and/or a box for object `obj_id` on `frame` (`add_new_points_or_box`) and
    /// returns every object's prediction on that frame.
    pub async fn add_prompt_async(&mut self, frame: usize, obj_id: u32, prompt: &VideoPrompt) -> Result<FrameResult> {
        self.check_frame(frame)?;
        validate_points(&prompt.points, &prompt.labels, self.width, self.height)?;
        if let Some(b) = prompt.bbox {
            validate_box(&[b], self.width, self.height)?;
            if prompt.keep_old_points {
                return Err(Error::Input("a box must come first: add it with keep_old_points false, then add points".into()));
            }
        } else if prompt.points.is_empty() {
            return Err(Error::Input("a prompt needs points or a box".into()));
        }
        if prompt.labels.iter().any(|l| !matches!(*l, 0 | 1)) {
            return Err(Error::Input("point labels must be 0 (negative) or 1 (positive)".into()));
        }
        let size = self.model.config.image_size;
        let mut new = Points::default();
        if let Some(b) = prompt.bbox {
            let [[x0, y0], [x1, y1]] = scale_boxes(&[b], self.width, self.height, size)[0];
            new.coords.extend([[x0, y0], [x1, y1]]);
            new.labels.extend([label::BOX_TOP_LEFT, label::BOX_BOTTOM_RIGHT]);
        }
        new.coords.extend(scale_points(&prompt.points, self.width, self.height, size));
        new.labels.extend(&prompt.labels);
        let idx = self.object_index_or_add(obj_id)?;
        let obj = &self.objects[idx];
        let mut points = if prompt.keep_old_points { obj.points.get(&frame).cloned().unwrap_or_default() } else { Points::default() };
        points.coords.extend(new.coords);
        points.labels.extend(new.labels);
        let is_init = !obj.tracked.contains_key(&frame);
        let reverse = obj.tracked.get(&frame).copied().unwrap_or(false);
        let is_cond = is_init || self.model.config.video.tracking.add_all_frames_to_correct_as_cond;
        let prev = obj.latest(frame, is_cond).map(|o| o.pred_masks.iter().map(|v| v.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)).collect::<Vec<f32>>());
        let out = self.run_single(idx, frame, is_init, Input::Points(&points, prev), reverse).await?;
        let obj = &mut self.objects[idx];
        obj.points.insert(frame, points);
        obj.masks.remove(&frame);
        if is_cond { &mut obj.temp_cond } else { &mut obj.temp_non_cond }.insert(frame, out);
        Ok(self.consolidated(frame, is_cond))
    }

    /// Sets a mask prompt (`mask_h × mask_w`, nonzero = object, any size; resized to `S×S`) for
    /// object `obj_id` on `frame` (`add_new_mask`).
    pub async fn add_mask_async(&mut self, frame: usize, obj_id: u32, mask: &[u8], mask_w: usize, mask_h: usize) -> Result<FrameResult> {
        self.check_frame(frame)?;
        if mask_w == 0 || mask_h == 0 || mask.len() != mask_w * mask_h {
            return Err(Error::Input(format!("mask has {} values, expected {mask_w}x{mask_h} (non-empty)", mask.len())));
        }
        let size = self.model.config.image_size;
        let plane: Vec<f32> = mask.iter().map(|&v| f32::from(u8::from(v != 0))).collect();
        let binary = if (mask_w, mask_h) == (size, size) {
            plane
        } else {
            resize_plane_aa(&plane, (mask_h, mask_w), (size, size)).into_iter().map(|v| f32::from(u8::from(v >= 0.5))).collect()
        };
        let idx = self.object_index_or_add(obj_id)?;
        let obj = &self.objects[idx];
        let is_init = !obj.tracked.contains_key(&frame);
        let reverse = obj.tracked.get(&frame).copied().unwrap_or(false);
        let is_cond = is_init || self.model.config.video.tracking.add_all_frames_to_correct_as_cond;
        let out = self.run_single(idx, frame, is_init, Input::Mask(&binary), reverse).await?;
        let obj = &mut self.objects[idx];
        obj.masks.insert(frame, binary);
        obj.points.remove(&frame);
        if is_cond { &mut obj.temp_cond } else { &mut obj.temp_non_cond }.insert(frame, out);
        Ok(self.consolidated(frame, is_cond))
    }

    /// Removes object `obj_id`'s prompts on `frame` (`clear_all_prompts_in_frame`); its result
    /// there, if any, stays as an ordinary tracked frame.
    pub fn clear_prompts(&mut self, frame: usize, obj_id: u32) -> Result<FrameResult> {
        self.check_frame(frame)?;
        let idx = self.object_index(obj_id)?;
        self.clear_prompts_of(idx, frame);
        let is_cond = self.objects.iter().any(|o| o.temp_cond.contains_key(&frame));
        Ok(self.consolidated(frame, is_cond))
    }

    fn clear_prompts_of(&mut self, idx: usize, frame: usize) {
        let obj = &mut self.objects[idx];
        obj.points.remove(&frame);
        obj.masks.remove(&frame);
        obj.temp_cond.remove(&frame);
        obj.temp_non_cond.remove(&frame);
        if let Some(out) = obj.cond.remove(&frame) {
            obj.non_cond.insert(frame, out);
            obj.tracked.remove(&frame);
        }
    }

    /// Removes object `obj_id` (`remove_object`) and returns the updated predictions on the
    /// frames it had prompts on. Removing the last object resets the session.
    pub fn remove_object(&mut self, obj_id: u32) -> Result<Vec<FrameResult>> {
        let idx = self.object_index(obj_id)?;
        if self.objects.len() == 1 {
            self.reset();
            self.removed.insert(obj_id);
            return Ok(Vec::new());
        }
        let obj = &self.objects[idx];
        let frames: BTreeSet<usize> = obj.points.keys().chain(obj.masks.keys()).copied().collect();
        for &f in &frames {
            self.clear_prompts_of(idx, f);
        }
        self.objects.remove(idx);
        self.removed.insert(obj_id);
        Ok(frames
            .into_iter()
            .map(|f| {
                let is_cond = self.objects.iter().any(|o| o.temp_cond.contains_key(&f));
                self.consolidated(f, is_cond)
            })
            .collect())
    }

    /// Every object's latest prediction on `frame` (missing ones: `NO_OBJ_SCORE`).
    fn consolidated(&self, frame: usize, is_cond: bool) -> FrameResult {
        let low = self.low();
        let objects = self
            .objects
            .iter()
            .map(|o| match o.latest(frame, is_cond) {
                Some(out) => ObjectFrame { id: o.id, low_res_logits: out.pred_masks.clone(), object_score: Some(out.object_score) },
                None => ObjectFrame { id: o.id, low_res_logits: vec![NO_OBJ_SCORE; low * low], object_score: None },
            })
            .collect();
        FrameResult { frame, low_res_size: low, objects }
    }

    /// `_run_single_frame_inference` for one object with a prompt (memory encoder not run).
    async fn run_single(&mut self, idx: usize, frame: usize, is_init: bool, input: Input<'_>, reverse: bool) -> Result<FrameOut> {
        let feats = self.features(frame).await?;
        let model = &self.model;
        let t = &model.config.video.tracking;
        let device = model.device().clone();
        let size = model.config.image_size;
        let low = self.low();
        let out: TrackOutput = match input {
            Input::Mask(mask) if t.use_mask_input_as_output_without_sam => {
                let logits: Vec<f32> = mask.iter().map(|v| v * 20.0 - 10.0).collect();
                let low_res = resize_plane_aa(&logits, (size, size), (low, low));
                let high = Tensor::<4>::from_data(TensorData::new(logits, [1, 1, size, size]), &device);
                let low_t = Tensor::<4>::from_data(TensorData::new(low_res, [1, 1, low, low]), &device);
                model.mask_as_output(&feats, high, low_t, &[mask.iter().any(|&v| v > 0.0)])?
            }
            input => {
                let memory = if is_init { None } else { Some(self.memory_for(&[idx], frame, reverse)?) };
                let pix = model.condition_on_memory(&feats, 1, memory)?;
                let (points, mask_input, num_pts) = match &input {
                    Input::Points(p, prev) => {
                        let prev = prev.as_ref().map(|v| Tensor::<4>::from_data(TensorData::new(v.clone(), [1, 1, low, low]), &device));
                        (Some(PointInputs { coords: &p.coords, labels: &p.labels }), prev, p.labels.len())
                    }
                    Input::Mask(mask) => {
                        let down = resize_plane_aa(mask, (size, size), (low, low));
                        (None, Some(Tensor::<4>::from_data(TensorData::new(down, [1, 1, low, low]), &device)), 0)
                    }
                };
                let multimask = self.use_multimask(is_init, matches!(input, Input::Points(..)).then_some(num_pts));
                model.sam_heads(pix, feats.high_res.clone(), points, mask_input, multimask)?
            }
        };
        let mut pred = read_f32(out.low_res_masks).await?;
        let score = read_f32(out.object_score_logits).await?[0];
        fill_holes_in_mask_scores(&mut pred, low, low, self.fill_hole_area as f32)?;
        Ok(FrameOut { maskmem: None, pred_masks: pred, obj_ptr: out.obj_ptr, object_score: score })
    }

    /// `_use_multimask`: `num_pts` is `None` without point inputs.
    fn use_multimask(&self, is_init: bool, num_pts: Option<usize>) -> bool {
        let t = &self.model.config.video.tracking;
        let n = num_pts.unwrap_or(0);
        t.multimask_output_in_sam && (is_init || t.multimask_output_for_tracking) && (t.multimask_min_pt_num..=t.multimask_max_pt_num).contains(&n)
    }
}

enum Input<'a> {
    /// Points with the previous low-res logits on this frame, if any (a correction click).
    Points(&'a Points, Option<Vec<f32>>),
    /// A binary `S×S` mask.
    Mask(&'a [f32]),
}
