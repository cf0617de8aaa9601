//! Propagation: memory selection and encoding, `propagate_in_video` over an offline video, and
//! the frame-by-frame live stream with its pruning.

use super::{FrameOut, Frames, VideoSession, round_bf16};
use crate::error::{Error, Result};
use crate::model::FrameFeatures;
use crate::predictor::components::fill_holes_in_mask_scores;
use crate::predictor::image::read_f32;
#[cfg(not(target_family = "wasm"))]
use crate::predictor::image::block_on;
use crate::predictor::transforms::{ImageRef, resize_bicubic_u8};
use crate::predictor::video::frames::check_frame_size;
use crate::predictor::video::memory::{MemoryPlan, oldest_reachable, plan_memory, reachable_cond_frames};
use crate::predictor::video::{FrameResult, ObjectFrame, PropagateOptions};
use burn::tensor::{Tensor, TensorData};

impl VideoSession {
    fn plan(&self, idx: usize, frame: usize, reverse: bool) -> MemoryPlan {
        let o = &self.objects[idx];
        plan_memory(frame, reverse, &o.cond, &o.non_cond, &self.model.config.video.tracking, self.video_len())
    }

    /// Memory tokens for objects `members` (which share one plan) on `frame`.
    pub(super) fn memory_for(&self, members: &[usize], frame: usize, reverse: bool) -> Result<crate::model::MemoryTokens> {
        let plan = self.plan(members[0], frame, reverse);
        let pos = self.maskmem_pos.clone().ok_or_else(|| Error::State("internal: memory used before any was encoded".into()))?;
        let gather = |frame: usize, pick: &dyn Fn(&FrameOut) -> Result<Tensor<4>>| -> Result<Tensor<4>> {
            let parts = members.iter().map(|&i| pick(self.objects[i].memory_at(frame)?)).collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(parts, 0))
        };
        let maskmem = |o: &FrameOut| o.maskmem.clone().ok_or_else(|| Error::State("internal: a memory frame without memory features".into()));
        let frames = plan.frames.iter().map(|&(f, t_pos)| Ok((gather(f, &maskmem)?, t_pos))).collect::<Result<Vec<_>>>()?;
        let ptrs = plan
            .ptrs
            .iter()
            .map(|&(f, p)| {
                let parts = members.iter().map(|&i| Ok(self.objects[i].memory_at(f)?.obj_ptr.clone())).collect::<Result<Vec<_>>>()?;
                Ok((p, Tensor::cat(parts, 0)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.model.memory_tokens(frames, &pos, ptrs, plan.t_diff_max)
    }

    /// Encodes memories for `B` objects and rounds them to bfloat16; returns one `[1, mem, h, w]`
    /// tensor per object.
    async fn encode(&mut self, feats: &FrameFeatures, high_res: Tensor<4>, scores: Tensor<2>, from_points: bool) -> Result<Vec<Tensor<4>>> {
        let enc = self.model.encode_memory(feats, high_res, scores, from_points)?;
        let [b, mem, h, w] = enc.features.dims();
        if self.maskmem_pos.is_none() {
            self.maskmem_pos = Some(enc.pos);
        }
        let values: Vec<f32> = read_f32(enc.features).await?.into_iter().map(round_bf16).collect();
        let device = self.model.device().clone();
        Ok(values.chunks_exact(mem * h * w).take(b).map(|c| Tensor::<4>::from_data(TensorData::new(c.to_vec(), [1, mem, h, w]), &device)).collect())
    }

    /// `propagate_in_video_preflight`: encodes the memory of prompted frames and files them.
    async fn preflight(&mut self) -> Result<()> {
        if self.objects.is_empty() {
            return Err(Error::State("no object has a prompt yet: add points, a box or a mask first".into()));
        }
        let low = self.low();
        for idx in 0..self.objects.len() {
            for is_cond in [false, true] {
                let obj = &mut self.objects[idx];
                let temp = std::mem::take(if is_cond { &mut obj.temp_cond } else { &mut obj.temp_non_cond });
                for (frame, mut out) in temp {
                    if out.maskmem.is_none() {
                        let feats = self.features(frame).await?;
                        let device = self.model.device().clone();
                        let lowt = Tensor::<4>::from_data(TensorData::new(out.pred_masks.clone(), [1, 1, low, low]), &device);
                        let high = self.model.upsample_to_input(lowt);
                        let score = Tensor::<2>::from_data(TensorData::new(vec![out.object_score], [1, 1]), &device);
                        out.maskmem = self.encode(&feats, high, score, true).await?.pop();
                    }
                    let obj = &mut self.objects[idx];
                    if is_cond { &mut obj.cond } else { &mut obj.non_cond }.insert(frame, out);
                }
            }
            let obj = &mut self.objects[idx];
            if obj.cond.is_empty() {
                return Err(Error::State(format!("object {} has no prompt on any frame: add one before propagating", obj.id)));
            }
            let cond: Vec<usize> = obj.cond.keys().copied().collect();
            for f in cond {
                obj.non_cond.remove(&f);
            }
        }
        Ok(())
    }

    /// [`Self::propagate_async`], blocking (native).
    #[cfg(not(target_family = "wasm"))]
    pub fn propagate(&mut self, options: PropagateOptions, mut on_frame: impl FnMut(FrameResult) -> bool + Send) -> Result<()> {
        block_on(self.propagate_async(options, |r| std::future::ready(on_frame(r))))
    }

    /// [`Self::track_next_frame_async`], blocking (native).
    #[cfg(not(target_family = "wasm"))]
    pub fn track_next_frame(&mut self, image: &ImageRef<'_>) -> Result<FrameResult> {
        block_on(self.track_next_frame_async(image))
    }

    /// Tracks every object through the video (`propagate_in_video`), calling `on_frame` with
    /// each frame's predictions as soon as they are ready and awaiting its answer: `false`
    /// stops. (Awaiting lets a caller on a browser's event loop take messages, such as a
    /// cancellation, between frames.) Objects that share a memory layout run as one batch.
    pub async fn propagate_async<F, Fut>(&mut self, options: PropagateOptions, mut on_frame: F) -> Result<()>
    where
        F: FnMut(FrameResult) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let n = match &self.frames {
            Frames::Offline(f) => f.len(),
            Frames::Stream { .. } => return Err(Error::State("a live stream is tracked frame by frame with track_next_frame".into())),
        };
        if let Some(s) = options.start {
            self.check_frame(s)?;
        }
        self.preflight().await?;
        let start = options.start.unwrap_or_else(|| self.objects.iter().filter_map(|o| o.cond.keys().next().copied()).min().unwrap_or(0));
        let max = options.max_frames.unwrap_or(n);
        let order: Vec<usize> = if options.reverse {
            let end = start.saturating_sub(max);
            if start > 0 { (end..=start).rev().collect() } else { Vec::new() }
        } else {
            (start..=(start + max).min(n - 1)).collect()
        };
        for frame in order {
            let result = self.track_frame(frame, options.reverse).await?;
            if !on_frame(result).await {
                break;
            }
        }
        Ok(())
    }

    /// Tracks all objects on one frame: conditioning frames return their stored result, the
    /// others run memory attention, the SAM heads and the memory encoder in batches.
    async fn track_frame(&mut self, frame: usize, reverse: bool) -> Result<FrameResult> {
        let mut groups: Vec<(MemoryPlan, Vec<usize>)> = Vec::new();
        for idx in 0..self.objects.len() {
            if self.objects[idx].cond.contains_key(&frame) {
                continue;
            }
            let plan = self.plan(idx, frame, reverse);
            match groups.iter_mut().find(|(p, _)| *p == plan) {
                Some((_, members)) => members.push(idx),
                None => groups.push((plan, vec![idx])),
            }
        }
        if !groups.is_empty() {
            let feats = self.features(frame).await?;
            for (_, members) in groups {
                let outs = self.track_group(&members, frame, reverse, &feats).await?;
                for (idx, out) in members.into_iter().zip(outs) {
                    self.objects[idx].non_cond.insert(frame, out);
                }
            }
        }
        let low = self.low();
        let mut objects = Vec::with_capacity(self.objects.len());
        for obj in &mut self.objects {
            obj.tracked.insert(frame, reverse);
            let out = obj.memory_at(frame)?;
            objects.push(ObjectFrame { id: obj.id, low_res_logits: out.pred_masks.clone(), object_score: Some(out.object_score) });
        }
        Ok(FrameResult { frame, low_res_size: low, objects })
    }

    async fn track_group(&mut self, members: &[usize], frame: usize, reverse: bool, feats: &FrameFeatures) -> Result<Vec<FrameOut>> {
        let b = members.len();
        let memory = self.memory_for(members, frame, reverse)?;
        let pix = self.model.condition_on_memory(feats, b, Some(memory))?;
        let multimask = self.use_multimask(false, None);
        let out = self.model.sam_heads(pix, feats.high_res.clone(), None, None, multimask)?;
        let maskmem = self.encode(feats, out.high_res_masks, out.object_score_logits.clone(), false).await?;
        let mut pred = read_f32(out.low_res_masks).await?;
        let scores = read_f32(out.object_score_logits).await?;
        let low = self.low();
        fill_holes_in_mask_scores(&mut pred, low, low, self.fill_hole_area as f32)?;
        Ok(maskmem
            .into_iter()
            .enumerate()
            .map(|(i, m)| FrameOut { maskmem: Some(m), pred_masks: pred[i * low * low..(i + 1) * low * low].to_vec(), obj_ptr: out.obj_ptr.clone().narrow(0, i, 1), object_score: scores[i] })
            .collect())
    }

    /// Live stream: takes the next frame (RGB or RGBA, the stream's size), tracks every object
    /// prompted so far on it and returns the predictions. Prompts for this frame can follow
    /// ([`Self::add_prompt_async`] with the returned frame index); they take effect from the next
    /// frame on. Outputs no later frame can reach are dropped, so memory stays flat.
    pub async fn track_next_frame_async(&mut self, image: &ImageRef<'_>) -> Result<FrameResult> {
        let next = match &self.frames {
            Frames::Stream { next } => *next,
            Frames::Offline(_) => return Err(Error::State("track_next_frame is for live streams; offline videos use propagate".into())),
        };
        check_frame_size(image, self.width, self.height)?;
        let rgb = resize_bicubic_u8(image, self.model.config.image_size)?;
        let feats = self.encode_frame(&rgb)?;
        // Prompts given on the previous frame become memory now.
        if self.objects.iter().any(|o| !o.temp_cond.is_empty() || !o.temp_non_cond.is_empty()) {
            self.preflight().await?;
        }
        self.cached = Some((next, feats));
        self.frames = Frames::Stream { next: next + 1 };
        let result = if self.objects.iter().any(|o| !o.cond.is_empty()) {
            // Objects without any prompt yet cannot be tracked; preflight rejected them above.
            self.track_frame(next, false).await?
        } else {
            FrameResult { frame: next, low_res_size: self.low(), objects: Vec::new() }
        };
        self.prune_stream(next + 1);
        Ok(result)
    }

    /// Drops what frames from `next` on cannot attend to.
    fn prune_stream(&mut self, next: usize) {
        let cfg = &self.model.config.video.tracking;
        let oldest = oldest_reachable(next, cfg);
        for obj in &mut self.objects {
            let cond: Vec<usize> = obj.cond.keys().copied().collect();
            let keep = reachable_cond_frames(&cond, cfg);
            obj.cond.retain(|f, _| keep.contains(f) || *f >= oldest);
            obj.non_cond.retain(|f, _| *f >= oldest);
            obj.tracked.retain(|f, _| *f >= oldest);
            obj.points.retain(|f, _| *f >= oldest || keep.contains(f));
            obj.masks.retain(|f, _| *f >= oldest || keep.contains(f));
        }
    }
}
