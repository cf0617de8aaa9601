//! [`Sam2VideoSession`]: tracking objects through an offline video (frames pushed with
//! `addFrame`, then prompts and `propagate`) or a live stream (`trackFrame`).

use super::image::Sam2Model;
use super::{busy, go_on, js_err, opt_bool, opt_count, options_object, set};
use crate::model::Sam2;
use crate::predictor::video::{FrameSource, InMemoryFrames};
use crate::predictor::{FrameResult, ImageRef, PropagateOptions, VideoPrompt, VideoSession};
use js_sys::{Array, Float32Array, Function, Object, Promise, Uint8Array, Uint32Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// An offline video collects its frames until the first prompt starts the session.
enum State {
    Collecting { model: Sam2, frames: InMemoryFrames, fill_hole_area: Option<usize> },
    Ready(Box<VideoSession>),
}

impl State {
    /// The session, started from the collected frames on first use.
    fn session(&mut self) -> Result<&mut VideoSession, JsError> {
        if let State::Collecting { model, frames, fill_hole_area } = self {
            if frames.is_empty() {
                return Err(JsError::new("the video has no frames: add them with addFrame first"));
            }
            let frames = std::mem::replace(frames, InMemoryFrames::new(0, 0, 0));
            let mut session = VideoSession::new(model.clone(), Box::new(frames)).map_err(js_err)?;
            if let Some(area) = fill_hole_area {
                session.fill_hole_area = *area;
            }
            *self = State::Ready(Box::new(session));
        }
        match self {
            State::Ready(session) => Ok(session),
            State::Collecting { .. } => Err(JsError::new("internal: the video session did not start")),
        }
    }
}

/// `{frame, objIds: Uint32Array, width, height, masks: Uint8Array, lowResSize, lowResLogits:
/// Float32Array, objectScores: Float32Array}`: `masks` holds one `width·height` mask (1 =
/// object) at video resolution and `lowResLogits` `lowResSize²` logits per object, in `objIds`
/// order; an object without output on the frame has `NaN` as its score.
fn frame_object(r: &FrameResult, (width, height): (usize, usize)) -> Result<JsValue, JsError> {
    let ids: Vec<u32> = r.objects.iter().map(|o| o.id).collect();
    let masks: Vec<u8> = (0..r.objects.len()).flat_map(|i| r.mask(i, width, height)).collect();
    let logits: Vec<f32> = r.objects.iter().flat_map(|o| o.low_res_logits.iter().copied()).collect();
    let scores: Vec<f32> = r.objects.iter().map(|o| o.object_score.unwrap_or(f32::NAN)).collect();
    let obj = Object::new();
    set(&obj, "frame", r.frame as u32)?;
    set(&obj, "objIds", Uint32Array::from(ids.as_slice()))?;
    set(&obj, "width", width as u32)?;
    set(&obj, "height", height as u32)?;
    set(&obj, "masks", Uint8Array::from(masks.as_slice()))?;
    set(&obj, "lowResSize", r.low_res_size as u32)?;
    set(&obj, "lowResLogits", Float32Array::from(logits.as_slice()))?;
    set(&obj, "objectScores", Float32Array::from(scores.as_slice()))?;
    Ok(obj.into())
}

/// Points `[x0, y0, x1, y1, ...]` as pairs.
fn point_pairs(points: &[f32]) -> Result<Vec<[f32; 2]>, JsError> {
    if points.len() % 2 != 0 {
        return Err(JsError::new("points must hold x, y pairs"));
    }
    Ok(points.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

/// A video being tracked with a [`Sam2Model`] loaded with its video modules.
#[wasm_bindgen]
pub struct Sam2VideoSession {
    state: Rc<RefCell<State>>,
}

impl Sam2VideoSession {
    /// Runs `f` on the session in a promise resolving to its frame result.
    fn with_session<F>(&self, f: F) -> Promise
    where
        F: for<'a> FnOnce(&'a mut VideoSession) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::error::Result<FrameResult>> + 'a>> + 'static,
    {
        let state = Rc::clone(&self.state);
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = state.try_borrow_mut().map_err(|_| busy())?;
            let session = guard.session()?;
            let size = session.size();
            let result = f(session).await.map_err(js_err)?;
            frame_object(&result, size).map_err(JsValue::from)
        })
    }

    fn model_with_video(model: &Sam2Model) -> Result<Sam2, JsError> {
        let predictor = model.predictor.try_borrow().map_err(|_| busy())?;
        predictor.model().video().map_err(|_| JsError::new("the model was loaded without its video modules (the checkpoint lacks them)"))?;
        Ok(predictor.model().clone())
    }
}

#[wasm_bindgen]
impl Sam2VideoSession {
    /// An offline video of `width × height` frames: push them with `addFrame`, then prompt.
    #[wasm_bindgen(constructor)]
    pub fn new(model: &Sam2Model, width: usize, height: usize) -> Result<Sam2VideoSession, JsError> {
        let model = Self::model_with_video(model)?;
        if width == 0 || height == 0 {
            return Err(JsError::new(&format!("frame size {width}x{height} is empty")));
        }
        let frames = InMemoryFrames::new(width, height, model.config.image_size);
        Ok(Sam2VideoSession { state: Rc::new(RefCell::new(State::Collecting { model, frames, fill_hole_area: None })) })
    }

    /// A live stream of `width × height` frames, each pushed and tracked with `trackFrame`.
    pub fn stream(model: &Sam2Model, width: usize, height: usize) -> Result<Sam2VideoSession, JsError> {
        let session = VideoSession::stream(Self::model_with_video(model)?, width, height).map_err(js_err)?;
        Ok(Sam2VideoSession { state: Rc::new(RefCell::new(State::Ready(Box::new(session)))) })
    }

    /// Appends an RGBA frame (`width·height·4` bytes) to an offline video, before any prompt;
    /// returns its index.
    #[wasm_bindgen(js_name = addFrame)]
    pub fn add_frame(&self, rgba: &[u8], width: usize, height: usize) -> Result<usize, JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        match &mut *state {
            State::Collecting { frames, .. } => frames.push(&ImageRef::new(width, height, 4, rgba).map_err(js_err)?).map_err(js_err),
            State::Ready(_) => Err(JsError::new("frames can only be added to an offline video before its first prompt")),
        }
    }

    /// Frames in the video (offline) or pushed so far (stream).
    #[wasm_bindgen(getter, js_name = numFrames)]
    pub fn num_frames(&self) -> Result<usize, JsError> {
        match &*self.state.try_borrow().map_err(|_| busy())? {
            State::Collecting { frames, .. } => Ok(frames.len()),
            State::Ready(session) => Ok(session.num_frames()),
        }
    }

    /// Holes in predicted masks up to this area (low-res pixels) are filled; 0 turns it off.
    #[wasm_bindgen(setter, js_name = fillHoleArea)]
    pub fn set_fill_hole_area(&self, area: usize) -> Result<(), JsError> {
        match &mut *self.state.try_borrow_mut().map_err(|_| busy())? {
            State::Collecting { fill_hole_area, .. } => *fill_hole_area = Some(area),
            State::Ready(session) => session.fill_hole_area = area,
        }
        Ok(())
    }

    /// Adds points `[x0, y0, ...]` (video pixels, labels 1 positive / 0 negative) for object
    /// `obj_id` on `frame`; `clear_old` drops the points given there before. Resolves to the
    /// frame's result.
    #[wasm_bindgen(js_name = addPoints)]
    pub fn add_points(&self, frame: usize, obj_id: u32, points: Vec<f32>, labels: Vec<i32>, clear_old: bool) -> Result<Promise, JsError> {
        let prompt = VideoPrompt { points: point_pairs(&points)?, labels, bbox: None, keep_old_points: !clear_old };
        Ok(self.with_session(move |s| Box::pin(async move { s.add_prompt_async(frame, obj_id, &prompt).await })))
    }

    /// Sets a box `[x0, y0, x1, y1]` for object `obj_id` on `frame` (replacing its points there).
    #[wasm_bindgen(js_name = addBox)]
    pub fn add_box(&self, frame: usize, obj_id: u32, bbox: Vec<f32>) -> Result<Promise, JsError> {
        let bbox = <[f32; 4]>::try_from(bbox.as_slice()).map_err(|_| JsError::new("a box needs 4 numbers"))?;
        let prompt = VideoPrompt { points: Vec::new(), labels: Vec::new(), bbox: Some(bbox), keep_old_points: false };
        Ok(self.with_session(move |s| Box::pin(async move { s.add_prompt_async(frame, obj_id, &prompt).await })))
    }

    /// Sets a binary mask (`width·height` bytes, nonzero = object) for object `obj_id` on `frame`.
    #[wasm_bindgen(js_name = addMask)]
    pub fn add_mask(&self, frame: usize, obj_id: u32, mask: Vec<u8>, width: usize, height: usize) -> Result<Promise, JsError> {
        Ok(self.with_session(move |s| Box::pin(async move { s.add_mask_async(frame, obj_id, &mask, width, height).await })))
    }

    /// Tracks every object through an offline video (`{start, maxFrames, reverse}`, all
    /// optional), calling `on_frame` with each frame's result as soon as it is ready; `on_frame`
    /// may return a Promise (awaited before the next frame); `false` (or a Promise of it) stops,
    /// and throwing or rejecting rejects the call. Resolves to the frames visited.
    pub fn propagate(&self, options: JsValue, on_frame: Function) -> Result<Promise, JsError> {
        let o = options_object(&options, &["start", "maxFrames", "reverse"])?;
        let options = PropagateOptions { start: opt_count(&o, "start")?, max_frames: opt_count(&o, "maxFrames")?, reverse: opt_bool(&o, "reverse")?.unwrap_or(false) };
        let state = Rc::clone(&self.state);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = state.try_borrow_mut().map_err(|_| busy())?;
            let session = guard.session()?;
            let size = session.size();
            let failure = Rc::new(RefCell::new(None));
            let mut visited = 0u32;
            let run = session.propagate_async(options, |result| {
                visited += 1;
                go_on(&on_frame, frame_object(&result, size).map_err(JsValue::from), &failure)
            });
            run.await.map_err(js_err)?;
            match failure.take() {
                Some(e) => Err(e),
                None => Ok(JsValue::from(visited)),
            }
        }))
    }

    /// Pushes the next RGBA frame of a live stream and tracks every object on it; resolves to
    /// the frame's result.
    #[wasm_bindgen(js_name = trackFrame)]
    pub fn track_frame(&self, rgba: Vec<u8>, width: usize, height: usize) -> Result<Promise, JsError> {
        Ok(self.with_session(move |s| {
            Box::pin(async move {
                let image = ImageRef::new(width, height, 4, &rgba)?;
                s.track_next_frame_async(&image).await
            })
        }))
    }

    /// Removes object `obj_id` everywhere; returns the results of the frames it was prompted on.
    #[wasm_bindgen(js_name = removeObject)]
    pub fn remove_object(&self, obj_id: u32) -> Result<Array, JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        let session = state.session()?;
        let size = session.size();
        let results = session.remove_object(obj_id).map_err(js_err)?;
        results.iter().map(|r| frame_object(r, size)).collect()
    }

    /// Removes object `obj_id`'s prompts on `frame`; returns the frame's result.
    #[wasm_bindgen(js_name = clearPrompts)]
    pub fn clear_prompts(&self, frame: usize, obj_id: u32) -> Result<JsValue, JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        let session = state.session()?;
        let size = session.size();
        frame_object(&session.clear_prompts(frame, obj_id).map_err(js_err)?, size)
    }

    /// Forgets every object, prompt and result; the frames stay.
    pub fn reset(&self) -> Result<(), JsError> {
        match &mut *self.state.try_borrow_mut().map_err(|_| busy())? {
            State::Collecting { .. } => {}
            State::Ready(session) => session.reset(),
        }
        Ok(())
    }
}
