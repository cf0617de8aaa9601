//! Video parity with Meta's `SAM2VideoPredictor` on the reduced fixture models: every op of every
//! scenario in `tests/fixtures/<model>/video/scenarios.json` (written by
//! `tools/reference/make_video_fixtures.py`) is replayed on a [`VideoSession`] and each recorded
//! per-frame, per-object output is compared: low-res logits, object scores, object pointers,
//! bfloat16 memory features and the video-resolution masks the API returns. The memory
//! encoder and memory attention are also checked on their own against captured inputs.
//!
//! Set `SAM2_PARITY_REPORT=1` to print the largest differences per quantity.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{Fixture, assert_close, device, fixture_dir, host, max_abs_diff};
use sam2_webgpu::predictor::video::{FrameResult, InMemoryFrames, PropagateOptions, VideoPrompt, VideoSession};
use sam2_webgpu::predictor::ImageRef;
use sam2_webgpu::weights::Checkpoint;
use serde_json::Value;
use std::collections::BTreeMap;

/// Low-res and video-res logits (values of magnitude up to ~40): the reference's own float32
/// noise on these (vs float64) is recorded in scenarios.json; bfloat16 storage of the memory
/// can move a value by one bf16 step when our float32 result lands on the other side of a
/// rounding boundary, which these bounds absorb.
const LOGIT_TOL: f32 = 2e-3;
const SCORE_TOL: f32 = 2e-3;
const PTR_TOL: f32 = 2e-3;
/// Memory features are compared as stored (bfloat16 values): a flip by one bf16 step of a value
/// of magnitude m moves it by m/128.
const MEM_REL_TOL: f32 = 1.0 / 64.0;

fn video_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("video/scenarios.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no video fixtures: run tools/reference/make_video_fixtures.py");
    names
}

struct VideoFixture {
    fx: Fixture,
    meta: Value,
    expected: Checkpoint,
    frames: Vec<(usize, usize, Vec<u8>)>,
}

impl VideoFixture {
    fn open(name: &str) -> Self {
        let fx = Fixture::open(name);
        let dir = fx.dir.join("video");
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("scenarios.json")).unwrap()).unwrap();
        let expected = Checkpoint::from_path(dir.join("expected.safetensors")).unwrap();
        let frames = meta["video"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let img = image::open(dir.join(f.as_str().unwrap())).unwrap().to_rgb8();
                (img.width() as usize, img.height() as usize, img.into_raw())
            })
            .collect();
        Self { fx, meta, expected, frames }
    }

    fn get(&self, key: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        self.expected.info(key)?;
        Some(self.expected.tensor_f32(key).unwrap())
    }

    fn session(&self, dev: &burn::tensor::Device) -> VideoSession {
        let (w, h) = (self.frames[0].0, self.frames[0].1);
        let mut store = InMemoryFrames::new(w, h, self.fx.config.image_size);
        for (fw, fh, px) in &self.frames {
            store.push(&ImageRef::new(*fw, *fh, 3, px).unwrap()).unwrap();
        }
        let mut s = VideoSession::new(self.fx.video_model(dev), Box::new(store)).unwrap();
        // The reference's hole filling needs CUDA and is skipped on CPU.
        s.fill_hole_area = 0;
        s
    }

    fn mask(&self, name: &str) -> (usize, usize, Vec<u8>) {
        let img = image::open(self.fx.dir.join("video/masks").join(format!("{name}.png"))).unwrap().to_luma8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        (w, h, img.into_raw().into_iter().map(|v| u8::from(v > 127)).collect())
    }
}

/// Largest differences seen per quantity.
#[derive(Default)]
struct Report(BTreeMap<&'static str, f32>);

impl Report {
    fn note(&mut self, what: &'static str, d: f32) {
        let e = self.0.entry(what).or_insert(0.0);
        *e = e.max(d);
    }
}

fn num(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

fn points(v: &Value) -> Vec<[f32; 2]> {
    v.as_array().map_or(Vec::new(), |a| a.iter().map(|p| [num(&p[0]), num(&p[1])]).collect())
}

/// Compares the video-resolution masks an op returned.
fn check_video_res(vf: &VideoFixture, rec: &Value, result: &FrameResult, ctx: &str, report: &mut Report) {
    let (w, h) = (vf.frames[0].0, vf.frames[0].1);
    assert_eq!(rec["frame_idx"].as_u64().unwrap() as usize, result.frame, "{ctx}");
    let ours: Vec<f32> = (0..result.objects.len()).flat_map(|i| result.logits(i, w, h)).collect();
    let shape = vec![result.objects.len(), 1, h, w];
    if rec["all_no_obj"].as_bool() == Some(true) {
        assert!(ours.iter().all(|&v| v == -1024.0), "{ctx}: reference has no object anywhere");
        return;
    }
    if let Some(key) = rec["key"].as_str() {
        let exp = vf.get(key).unwrap_or_else(|| panic!("{ctx}: missing {key}"));
        report.note("video-res logits", assert_close(&format!("{ctx} {key}"), (&shape, &ours), (&exp.0, &exp.1), LOGIT_TOL));
    }
}

/// Compares every per-call tensor the reference recorded for an op with what the session holds.
fn check_calls(vf: &VideoFixture, session: &VideoSession, scenario: &str, op_index: usize, op: &Value, report: &mut Report) {
    let low = vf.fx.config.low_res_size();
    for call in op["calls"].as_array().unwrap() {
        let (frame, obj) = (call["frame"].as_u64().unwrap() as usize, call["obj"].as_u64().unwrap() as u32);
        let prefix = format!("{scenario}/{op_index:02}/f{frame:03}/o{obj}");
        let out = session.stored_output(obj, frame).unwrap_or_else(|| panic!("{prefix}: the session holds nothing"));
        for name in call["tensors"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()) {
            let key = format!("{prefix}/{name}");
            let exp = vf.get(&key).unwrap_or_else(|| panic!("missing {key}"));
            match name {
                "pred_masks" => report.note("low-res logits", assert_close(&key, (&[1, 1, low, low], &out.pred_masks), (&exp.0, &exp.1), LOGIT_TOL)),
                "object_score_logits" => report.note("object score", assert_close(&key, (&[1, 1], &[out.object_score]), (&exp.0, &exp.1), SCORE_TOL)),
                "obj_ptr" => {
                    let ours = host(out.obj_ptr.clone());
                    report.note("object pointer", assert_close(&key, (&ours.0, &ours.1), (&exp.0, &exp.1), PTR_TOL));
                }
                "maskmem_features" | "preflight_maskmem_features" => {
                    let ours = host(out.maskmem.clone().unwrap_or_else(|| panic!("{key}: no memory encoded")));
                    let scale = exp.1.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1.0);
                    let d = assert_close(&key, (&ours.0, &ours.1), (&exp.0, &exp.1), MEM_REL_TOL * scale);
                    report.note("memory features (relative)", d / scale);
                    let bf16_exact = ours.1.iter().all(|v| *v == sam2_webgpu::predictor::video::session::round_bf16(*v));
                    assert!(bf16_exact, "{key}: stored memory is not bfloat16-valued");
                }
                other => panic!("{key}: unknown tensor {other}"),
            }
        }
        if call["pred_masks_all_no_obj"].as_bool() == Some(true) {
            assert!(out.pred_masks.iter().all(|&v| v == -1024.0), "{prefix}: reference says the object is absent");
        }
        if let Some(s) = call["object_score"].as_f64() {
            report.note("object score", (out.object_score - s as f32).abs());
            assert!((out.object_score > 0.0) == (s > 0.0), "{prefix}: visibility differs ({} vs {s})", out.object_score);
        }
    }
}

fn replay(vf: &VideoFixture, dev_kind: &str, report: &mut Report) {
    let dev = device(dev_kind);
    for sc in vf.meta["scenarios"].as_array().unwrap() {
        let name = sc["name"].as_str().unwrap();
        let mut session = vf.session(&dev);
        for (i, op) in sc["ops"].as_array().unwrap().iter().enumerate() {
            let args = &op["args"];
            let res = &op["result"];
            let ctx = format!("{} {dev_kind} {name}/{i:02} {}", vf.fx.name, op["op"]);
            let obj = || args["obj_id"].as_u64().unwrap() as u32;
            let frame = || args["frame_idx"].as_u64().unwrap() as usize;
            match op["op"].as_str().unwrap() {
                "add_new_points_or_box" => {
                    let prompt = VideoPrompt {
                        points: points(&args["points"]),
                        labels: args["labels"].as_array().map_or(Vec::new(), |l| l.iter().map(|v| v.as_i64().unwrap() as i32).collect()),
                        bbox: args["box"].as_array().map(|b| [num(&b[0]), num(&b[1]), num(&b[2]), num(&b[3])]),
                        keep_old_points: args["clear_old_points"].as_bool() == Some(false),
                    };
                    let r = session.add_prompt(frame(), obj(), &prompt).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(r.objects.iter().map(|o| o.id as u64).collect::<Vec<_>>(), ids(&res["obj_ids"]), "{ctx}");
                    check_video_res(vf, &res["video_res_masks"], &r, &ctx, report);
                }
                "add_new_mask" => {
                    let (w, h, m) = vf.mask(args["mask"].as_str().unwrap());
                    let r = session.add_mask(frame(), obj(), &m, w, h).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    check_video_res(vf, &res["video_res_masks"], &r, &ctx, report);
                }
                "propagate_in_video" => {
                    let options = PropagateOptions {
                        start: args["start_frame_idx"].as_u64().map(|v| v as usize),
                        max_frames: args["max_frame_num_to_track"].as_u64().map(|v| v as usize),
                        reverse: args["reverse"].as_bool() == Some(true),
                    };
                    let mut results = Vec::new();
                    session.propagate(options, |r| {
                        results.push(r);
                        true
                    })
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let frames: Vec<u64> = results.iter().map(|r| r.frame as u64).collect();
                    let expected: Vec<u64> = res["frames"].as_array().unwrap().iter().map(|f| f["frame_idx"].as_u64().unwrap()).collect();
                    assert_eq!(frames, expected, "{ctx}: frames visited");
                    for (r, f) in results.iter().zip(res["frames"].as_array().unwrap()) {
                        assert_eq!(r.objects.iter().map(|o| o.id as u64).collect::<Vec<_>>(), ids(&f["obj_ids"]), "{ctx}");
                    }
                    for rec in res["video_res_masks"].as_array().unwrap() {
                        let f = rec["frame_idx"].as_u64().unwrap() as usize;
                        let r = results.iter().find(|r| r.frame == f).unwrap();
                        check_video_res(vf, rec, r, &ctx, report);
                    }
                }
                "clear_all_prompts_in_frame" => {
                    let r = session.clear_prompts(frame(), obj()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    check_video_res(vf, &res["video_res_masks"], &r, &ctx, report);
                }
                "remove_object" => {
                    let updated = session.remove_object(obj()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(session.object_ids().iter().map(|&v| v as u64).collect::<Vec<_>>(), ids(&res["obj_ids"]), "{ctx}");
                    let recs = res["updated_frames"].as_array().unwrap();
                    assert_eq!(updated.len(), recs.len(), "{ctx}");
                    for (u, rec) in updated.iter().zip(recs) {
                        check_video_res(vf, &rec["video_res_masks"], u, &ctx, report);
                    }
                }
                "reset_state" => session.reset(),
                other => panic!("{ctx}: unknown op {other}"),
            }
            check_calls(vf, &session, name, i, op, report);
        }
    }
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn print(report: &Report, what: &str) {
    if std::env::var_os("SAM2_PARITY_REPORT").is_some() {
        for (k, v) in &report.0 {
            println!("{what}: {k}: max abs diff {v:.3e}");
        }
    }
}

fn scenarios_match(dev: &str) {
    for name in video_fixtures() {
        let vf = VideoFixture::open(&name);
        let mut report = Report::default();
        replay(&vf, dev, &mut report);
        print(&report, &format!("{name} {dev}"));
    }
}

#[test]
fn every_scenario_matches_the_reference_on_cpu() {
    scenarios_match("cpu");
}

#[test]
fn every_scenario_matches_the_reference_on_wgpu() {
    scenarios_match("wgpu");
}

#[test]
fn memory_encoder_and_memory_attention_match_on_captured_inputs() {
    for name in video_fixtures() {
        let vf = VideoFixture::open(&name);
        let dev = device("cpu");
        let model = vf.fx.video_model(&dev);
        let video = model.video().unwrap();
        let t = |key: &str| -> (Vec<usize>, Vec<f32>) { vf.get(&format!("module/{key}")).unwrap_or_else(|| panic!("{name}: missing module/{key}")) };
        let t4 = |(s, v): (Vec<usize>, Vec<f32>)| Tensor::<4>::from_data(TensorData::new(v, [s[0], s[1], s[2], s[3]]), &dev);
        let t3 = |(s, v): (Vec<usize>, Vec<f32>)| Tensor::<3>::from_data(TensorData::new(v, [s[0], s[1], s[2]]), &dev);
        let enc = video.memory_encoder.forward(t4(t("memory_encoder/pix_feat")), t4(t("memory_encoder/masks")));
        let feats = t("memory_encoder/vision_features");
        let scale = feats.1.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let (f, p) = (host(enc.features), host(enc.pos));
        let d = assert_close(&format!("{name} memory encoder"), (&f.0, &f.1), (&feats.0, &feats.1), 1e-5 * scale.max(1.0));
        let pe = t("memory_encoder/vision_pos_enc");
        assert_close(&format!("{name} memory pos"), (&p.0, &p.1), (&pe.0, &pe.1), 1e-5);
        // The reference runs memory attention sequence-first: [N, B, C].
        let seq_first = |x: (Vec<usize>, Vec<f32>)| t3(x).swap_dims(0, 1);
        let n_ptr = vf.meta["module_capture"]["num_obj_ptr_tokens"].as_u64().unwrap() as usize;
        let out = video.memory_attention.forward(
            seq_first(t("memory_attention/curr")),
            seq_first(t("memory_attention/curr_pos")),
            seq_first(t("memory_attention/memory")),
            seq_first(t("memory_attention/memory_pos")),
            n_ptr,
        );
        let exp = t("memory_attention/output");
        let ours = host(out.swap_dims(0, 1));
        let scale_a = exp.1.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let da = max_abs_diff("memory attention", (&ours.0, &ours.1), (&exp.0, &exp.1));
        assert!(da <= 1e-5 * scale_a.max(1.0), "{name} memory attention: {da:e} (scale {scale_a})");
        if std::env::var_os("SAM2_PARITY_REPORT").is_some() {
            println!("{name}: memory encoder {d:.3e} (scale {scale:.2}), memory attention {da:.3e} (scale {scale_a:.2}), {n_ptr} pointer tokens");
        }
    }
}
