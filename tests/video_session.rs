//! Video session behaviour that needs no reference numbers: bad input is rejected with a typed
//! error and leaves the session usable; a live stream keeps a bounded memory.

mod common;

use common::{Fixture, device};
use sam2_webgpu::Error;
use sam2_webgpu::predictor::ImageRef;
use sam2_webgpu::predictor::video::{InMemoryFrames, PropagateOptions, VideoPrompt, VideoSession};

const V21: &str = "sam2.1_hiera_reduced";
const W: usize = 64;
const H: usize = 48;

/// A disc moving right over a gradient, RGB.
fn frame(t: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(W * H * 3);
    for y in 0..H {
        for x in 0..W {
            let (dx, dy) = (x as f32 - (10 + 3 * t) as f32, y as f32 - 24.0);
            let inside = dx * dx + dy * dy < 64.0;
            px.extend(if inside { [230, 40, 40] } else { [(x * 3) as u8, (y * 4) as u8, 90] });
        }
    }
    px
}

fn session(frames: usize) -> VideoSession {
    let fx = Fixture::open(V21);
    let model = fx.video_model(&device("cpu"));
    let mut store = InMemoryFrames::new(W, H, fx.config.image_size);
    for t in 0..frames {
        store.push(&ImageRef::new(W, H, 3, &frame(t)).unwrap()).unwrap();
    }
    VideoSession::new(model, Box::new(store)).unwrap()
}

fn point(x: f32, y: f32) -> VideoPrompt {
    VideoPrompt { points: vec![[x, y]], labels: vec![1], ..VideoPrompt::default() }
}

fn input_err<T: std::fmt::Debug>(r: sam2_webgpu::Result<T>, needle: &str) {
    match r {
        Err(Error::Input(m)) => assert!(m.contains(needle), "message {m:?} should mention {needle:?}"),
        other => panic!("expected an input error mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn bad_input_is_rejected_and_the_session_stays_usable() {
    let mut s = session(4);
    input_err(s.add_prompt(4, 1, &point(10.0, 10.0)), "out of range");
    input_err(s.add_prompt(0, 1, &point(70.0, 10.0)), "outside");
    input_err(s.add_prompt(0, 1, &point(f32::NAN, 10.0)), "");
    input_err(s.add_prompt(0, 1, &VideoPrompt { points: vec![[1.0, 1.0]], labels: vec![2], ..VideoPrompt::default() }), "label");
    input_err(s.add_prompt(0, 1, &VideoPrompt { bbox: Some([5.0, 5.0, 20.0, 20.0]), keep_old_points: true, ..VideoPrompt::default() }), "box");
    input_err(s.add_mask(0, 1, &[1, 0, 1], 2, 2), "mask");
    input_err(s.clear_prompts(0, 9), "unknown object id 9");
    input_err(s.remove_object(9), "unknown object id 9");
    assert!(matches!(s.propagate(PropagateOptions::default(), |_| true), Err(Error::State(_))));
    assert!(s.object_ids().is_empty(), "rejected prompts must not create objects");

    let r = s.add_prompt(0, 1, &point(10.0, 24.0)).unwrap();
    assert_eq!(r.objects.len(), 1);
    let r = s.add_prompt(0, 2, &VideoPrompt { bbox: Some([30.0, 10.0, 60.0, 40.0]), ..VideoPrompt::default() }).unwrap();
    assert_eq!(r.objects.iter().map(|o| o.id).collect::<Vec<_>>(), vec![1, 2]);
    input_err(s.propagate(PropagateOptions { start: Some(7), ..PropagateOptions::default() }, |_| true), "out of range");
    let mut seen = Vec::new();
    s.propagate(PropagateOptions::default(), |r| {
        assert_eq!(r.objects.len(), 2);
        assert!(r.objects.iter().all(|o| o.object_score.is_some_and(f32::is_finite) && o.low_res_logits.iter().all(|v| v.is_finite())));
        seen.push(r.frame);
        true
    })
    .unwrap();
    assert_eq!(seen, vec![0, 1, 2, 3]);
    s.remove_object(1).unwrap();
    input_err(s.add_prompt(1, 1, &point(10.0, 24.0)), "removed");
    assert_eq!(s.object_ids(), vec![2]);
    // A correction click on a tracked frame, then tracking again from it.
    s.add_prompt(2, 2, &VideoPrompt { points: vec![[40.0, 20.0]], labels: vec![0], keep_old_points: true, ..VideoPrompt::default() }).unwrap();
    let mut n = 0;
    s.propagate(PropagateOptions { start: Some(3), reverse: true, max_frames: Some(2) }, |r| {
        n += 1;
        r.frame > 2
    })
    .unwrap();
    assert_eq!(n, 2, "stopping from the callback ends propagation");
    s.reset();
    assert!(s.object_ids().is_empty());
    s.add_prompt(1, 1, &point(13.0, 24.0)).unwrap();
}

#[test]
fn mismatched_frame_sizes_are_rejected() {
    let mut store = InMemoryFrames::new(W, H, 256);
    store.push(&ImageRef::new(W, H, 3, &frame(0)).unwrap()).unwrap();
    let small = vec![0u8; 10 * 10 * 3];
    input_err(store.push(&ImageRef::new(10, 10, 3, &small).unwrap()), "same size");
    assert_eq!(sam2_webgpu::predictor::video::FrameSource::len(&store), 1);
}

#[test]
fn a_live_stream_keeps_memory_bounded() {
    let fx = Fixture::open(V21);
    let model = fx.video_model(&device("cpu"));
    let mut s = VideoSession::stream(model, W, H).unwrap();
    let mut stored = Vec::new();
    for t in 0..40 {
        let px = frame(t % 12);
        let img = ImageRef::new(W, H, 3, &px).unwrap();
        let r = s.track_next_frame(&img).unwrap();
        assert_eq!(r.frame, t);
        if t == 0 {
            assert!(r.objects.is_empty());
            s.add_prompt(0, 1, &point(10.0, 24.0)).unwrap();
        } else {
            assert_eq!(r.objects.len(), if t > 20 { 2 } else { 1 });
        }
        if t == 20 {
            // a new object mid-stream
            s.add_prompt(20, 2, &point(40.0, 10.0)).unwrap();
            input_err(s.add_prompt(19, 2, &point(40.0, 10.0)), "latest frame");
        }
        stored.push(s.stored_outputs());
    }
    // One conditioning frame per object plus at most 16 recent frames each.
    assert!(stored.iter().all(|&n| n <= 2 * 17), "{stored:?}");
    assert_eq!(stored[39], stored[38], "memory is flat once the window is full: {stored:?}");
    let bad = vec![0u8; 8 * 8 * 3];
    input_err(s.track_next_frame(&ImageRef::new(8, 8, 3, &bad).unwrap()), "same size");
    assert_eq!(s.num_frames(), 40);
}
