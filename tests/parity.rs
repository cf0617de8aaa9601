//! Parity with Meta's reference (`sam2` 1.1.0) on random weights: every module's output and the
//! image predictor end to end, on the CPU backend (flex) and on wgpu.
//!
//! Fixtures come from `tools/reference/make_fixtures.py`; tolerances are max abs differences.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::{Fixture, assert_close, device, host, model_fixtures};
use sam2_webgpu::predictor::transforms::preprocess_image;
use sam2_webgpu::predictor::{ImagePredictor, ImageRef, PredictOptions, Prompt};
use serde_json::Value;

/// Logits (low- and full-resolution) and everything downstream of the decoder.
const TOL_LOGITS: f32 = 1e-4;
/// Encoder features and embeddings, relative to the largest expected magnitude.
const TOL_FEATURES_REL: f32 = 1e-5;

fn rel_tol(expected: &[f32]) -> f32 {
    TOL_FEATURES_REL * expected.iter().fold(1.0f32, |m, v| m.max(v.abs()))
}

fn prompt_from_case(case: &Value, fx: &Fixture) -> Vec<Prompt> {
    let pairs = |v: &Value| -> Vec<[f32; 2]> {
        v.as_array().map_or(Vec::new(), |a| a.iter().map(|p| [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32]).collect())
    };
    let points = pairs(&case["point_coords"]);
    let labels: Vec<i32> = case["point_labels"].as_array().map_or(Vec::new(), |a| a.iter().map(|l| l.as_i64().unwrap() as i32).collect());
    let boxes: Vec<[f32; 4]> = case["box"].as_array().map_or(Vec::new(), |a| {
        a.iter().map(|b| [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap() as f32)).collect()
    });
    let mask_input = case["mask_input"].as_str().map(|prev| {
        let (shape, values) = fx.expect(&format!("{prev}/low_res_masks"));
        let index = case["mask_input_index"].as_u64().unwrap_or(0) as usize;
        let plane = shape[2] * shape[3];
        values[index * plane..(index + 1) * plane].to_vec()
    });
    if boxes.len() > 1 {
        assert!(points.is_empty(), "fixture mixes several boxes with points");
        boxes.iter().map(|b| Prompt { bbox: Some(*b), ..Prompt::default() }).collect()
    } else {
        vec![Prompt { points, labels, bbox: boxes.first().copied(), mask_input }]
    }
}

fn run_parity(kind: &str) {
    let device = device(kind);
    for name in model_fixtures() {
        let fx = Fixture::open(&name);
        let model = fx.model(&device);
        let size = fx.config.image_size;
        let mut report = Vec::new();
        let mut check = |what: String, actual: (Vec<usize>, Vec<f32>), tol: Option<f32>| {
            let (shape, expected) = fx.expect(&what);
            let tol = tol.unwrap_or_else(|| rel_tol(&expected));
            let d = assert_close(&format!("{name} [{kind}] {what}"), (&actual.0, &actual.1), (&shape, &expected), tol);
            report.push(format!("{what}: {d:.2e}"));
        };

        // The dense PE is image independent.
        check("image_pe".into(), host(model.sam_prompt_encoder.dense_pe()), None);

        let mut predictor = ImagePredictor::new(model.clone());
        let mut intermediates = 0;
        for image in fx.cases["images"].as_array().unwrap() {
            let id = image["id"].as_str().unwrap();
            let (w, h, rgb) = fx.image(id);
            let img = ImageRef::new(w, h, 3, &rgb).unwrap();
            let pixels = preprocess_image(&img, size).unwrap();
            // Per-module intermediates are stored for the first image only (fixture size); each
            // module is fed the reference's own input so a failure points at one module.
            if fx.get(&format!("{id}/input")).is_some() {
                intermediates += 1;
                check(format!("{id}/input"), (vec![1, 3, size, size], pixels.clone()), None);
                let (_, ref_input) = fx.expect(&format!("{id}/input"));
                let input = Tensor::<4>::from_data(TensorData::new(ref_input, [1, 3, size, size]), &device);
                let trunk = model.image_encoder.trunk.forward(input);
                for (i, t) in trunk.iter().enumerate() {
                    check(format!("{id}/trunk.{i}"), host(t.clone()), None);
                }
                let neck = model.image_encoder.neck.forward(trunk);
                for (i, t) in neck.iter().enumerate() {
                    if fx.get(&format!("{id}/neck.{i}")).is_some() {
                        check(format!("{id}/neck.{i}"), host(t.clone()), None);
                    }
                    if fx.get(&format!("{id}/neck_pos.{i}")).is_some() {
                        check(format!("{id}/neck_pos.{i}"), host(model.image_encoder.neck.pos(i, 1)), None);
                    }
                }
            }

            predictor.set_image(&img).unwrap();
            let features = predictor.features().unwrap();
            check(format!("{id}/image_embed"), host(features.image_embed.clone()), None);
            if let Some((s0, s1)) = &features.high_res {
                check(format!("{id}/high_res_feats.0"), host(s0.clone()), None);
                check(format!("{id}/high_res_feats.1"), host(s1.clone()), None);
            }

            for case in fx.cases["cases"].as_array().unwrap().iter().filter(|c| c["image"] == id) {
                let cname = case["name"].as_str().unwrap();
                // Prompt encoder on the reference's transformed coordinates.
                let (cshape, coords) = fx.expect(&format!("{cname}/point_coords"));
                let (_, labels) = fx.expect(&format!("{cname}/point_labels"));
                let pts: Vec<[f32; 2]> = coords.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
                let lbl: Vec<i32> = labels.iter().map(|l| *l as i32).collect();
                let sparse = model.sam_prompt_encoder.embed_points(&pts, &lbl, cshape[0], &device).unwrap();
                check(format!("{cname}/sparse_embeddings"), host(sparse), None);
                if fx.get(&format!("{cname}/dense_embeddings")).is_some() {
                    let mask = fx.get(&format!("{cname}/mask_input")).map(|(shape, values)| {
                        let shape: [usize; 4] = shape.try_into().unwrap();
                        Tensor::<4>::from_data(TensorData::new(values, shape), &device)
                    });
                    let dense = model.sam_prompt_encoder.embed_dense(mask, cshape[0]);
                    check(format!("{cname}/dense_embeddings"), host(dense), None);
                }

                if fx.get(&format!("{cname}/transformer.queries")).is_some() {
                    let sparse = model.sam_prompt_encoder.embed_points(&pts, &lbl, cshape[0], &device).unwrap();
                    let dense = model.sam_prompt_encoder.embed_dense(None, cshape[0]);
                    let image_pe = model.sam_prompt_encoder.dense_pe();
                    let (queries, keys) = model.sam_mask_decoder.transformer_outputs(features.image_embed.clone(), image_pe, sparse, dense);
                    check(format!("{cname}/transformer.queries"), host(queries), None);
                    check(format!("{cname}/transformer.keys"), host(keys), None);
                }
                let prompts = prompt_from_case(case, &fx);
                let multimask = case["multimask_output"].as_bool().unwrap();
                let options = PredictOptions { multimask_output: multimask, return_logits: true };
                let preds = predictor.predict(&prompts, options).unwrap();
                let b = preds.len();
                let m = preds[0].num_masks;
                let low = fx.config.low_res_size();
                let cat = |f: &dyn Fn(&sam2_webgpu::predictor::Prediction) -> Vec<f32>| preds.iter().flat_map(f).collect::<Vec<f32>>();
                check(format!("{cname}/low_res_masks"), (vec![b, m, low, low], cat(&|p| p.low_res_logits.clone())), Some(TOL_LOGITS));
                check(format!("{cname}/iou_predictions"), (vec![b, m], cat(&|p| p.scores.clone())), Some(TOL_LOGITS));
                check(format!("{cname}/object_score_logits"), (vec![b, 1], cat(&|p| vec![p.object_score_logit])), Some(TOL_LOGITS));
                if fx.get(&format!("{cname}/masks_logits")).is_some() {
                    let (hh, ww) = (preds[0].height, preds[0].width);
                    check(format!("{cname}/masks_logits"), (vec![b, m, hh, ww], cat(&|p| p.logits.clone().unwrap())), Some(TOL_LOGITS));
                }
            }
        }
        assert!(intermediates > 0, "{name}: no image with per-module intermediates");
        println!("{name} [{kind}] max abs diffs:\n  {}", report.join("\n  "));
    }
}

#[test]
fn parity_cpu() {
    run_parity("cpu");
}

#[test]
fn parity_wgpu() {
    run_parity("wgpu");
}
