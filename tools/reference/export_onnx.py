#!/usr/bin/env python3
"""Export a SAM 2 checkpoint to ONNX as two graphs (image encoder, prompt encoder + mask decoder),
the split that the usual SAM 2 ONNX exports use, for benchmarking onnxruntime-web against the port
(tools/bench/).

    tools/reference/.venv/bin/python tools/reference/export_onnx.py
        [--weights tools/reference/out/full/sam2.1_hiera_tiny.pt]
        [--config configs/sam2.1/sam2.1_hiera_t.yaml] [--out tools/reference/out/onnx]
        [--opset 17] [--image PNG] [--no-check]

Writes OUT/<checkpoint stem>.encoder.onnx and OUT/<checkpoint stem>.decoder.onnx. If the
checkpoint is missing, it is made first by `make_fixtures.py --full` (random weights). Built with
Meta's `build_sam2` (its default apply_postprocessing=True, as make_fixtures.py does) and exported
with torch's TorchScript-based exporter (`dynamo=False`), which needs the `onnx` package.

encoder: image f32 [1,3,1024,1024] (resized to 1024x1024 and normalised with ImageNet mean/std,
         as SAM2Transforms does) -> image_embed [1,256,64,64], high_res_feats_0 [1,32,256,256],
         high_res_feats_1 [1,64,128,128]: what SAM2ImagePredictor.set_image stores (no_mem_embed
         added to the lowest-resolution level).
decoder: image_embed, high_res_feats_0, high_res_feats_1, point_coords f32 [1,N,2] (in the
         1024x1024 input frame), point_labels f32 [1,N] (1 positive, 0 negative, 2/3 box
         corners, -1 padding), mask_input f32 [1,1,256,256], has_mask_input f32 [1] (0 or 1)
         -> masks [1,3,256,256] (low-res logits of the three multimask outputs, not clamped),
         iou_predictions [1,3]. N is dynamic. A padding point is appended as
         SAM2ImagePredictor does for point prompts without a box (boxes go in as two points
         labelled 2 and 3, which is how the predictor feeds them to the prompt encoder anyway).

Unless --no-check, both graphs are run with onnxruntime (Python package `onnxruntime`, optional:
skipped with a note if it is not installed) on the image and compared with Meta's
SAM2ImagePredictor (set_image features; low-res logits and IoU of one point, of two points, and
of a point with a mask input), printing max abs differences.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = HERE / "out" / "full" / "sam2.1_hiera_tiny.pt"
DEFAULT_IMAGE = HERE / "out" / "full" / "sam2.1_hiera_tiny" / "image_full.png"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import sam2  # noqa: E402,F401  (initialises Hydra with sam2's own config module)
from PIL import Image  # noqa: E402

from sam2.build_sam import build_sam2  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

sys.path.insert(0, str(HERE))
from make_fixtures import FULL_MODELS, set_bb_feat_sizes, setup_torch, use_package_configs  # noqa: E402


class ImageEncoder(nn.Module):
    """set_image's feature computation, from the normalised 1024x1024 image on."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        backbone_out = self.model.forward_image(image)
        _, vision_feats, _, feat_sizes = self.model._prepare_backbone_features(backbone_out)
        if self.model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        # (HW, B, C) -> (B, C, H, W), finest level first
        feats = [f.permute(1, 2, 0).reshape(1, -1, h, w) for f, (h, w) in zip(vision_feats, feat_sizes)]
        return feats[-1], feats[0], feats[1]


@contextlib.contextmanager
def static_pos_embed(trunk):
    """Hiera._get_pos_embed with the tile repeats as plain ints and `repeat` for `tile`, while
    exporting: the exporter turns `tile` into `If` nodes (for a rank mismatch that cannot happen
    here) whose branches declare different ranks, which onnxruntime-web rejects at session
    creation. Same values: the repeats have one entry per dimension, so tile == repeat."""

    def get_pos_embed(hw):
        h, w = (int(v) for v in hw)
        window_embed = trunk.pos_embed_window
        pos_embed = F.interpolate(trunk.pos_embed, size=(h, w), mode="bicubic")
        reps = [int(a) // int(b) for a, b in zip(pos_embed.shape, window_embed.shape)]
        return (pos_embed + window_embed.repeat(reps)).permute(0, 2, 3, 1)

    trunk._get_pos_embed = get_pos_embed
    try:
        yield
    finally:
        del trunk._get_pos_embed  # back to the class's method


class PromptMaskDecoder(nn.Module):
    """SAM2ImagePredictor._predict for point prompts (multimask output), with the mask prompt
    switched by `has_mask_input` instead of being absent."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels,
                mask_input, has_mask_input):
        pe = self.model.sam_prompt_encoder
        sparse = pe._embed_points(point_coords, point_labels, pad=True)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        # exactly one of the two terms is non-zero for has_mask_input in {0, 1}
        dense = pe.mask_downscaling(mask_input) * has + no_mask * (1.0 - has)
        low_res_masks, iou_predictions, _, _ = self.model.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        return low_res_masks, iou_predictions


def export(module, args, path, input_names, output_names, dynamic_axes, opset):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    import onnx

    onnx.checker.check_model(str(path))
    print(f"{path}: {path.stat().st_size:,} bytes ({path.stat().st_size / 2**20:.1f} MiB), "
          f"exported in {time.perf_counter() - t0:.1f}s", flush=True)


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def check(model, enc_path, dec_path, image_path):
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime (Python) not installed: ONNX-vs-torch check skipped")
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    enc = ort.InferenceSession(str(enc_path), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(dec_path), opts, providers=["CPUExecutionProvider"])

    predictor = SAM2ImagePredictor(model)
    set_bb_feat_sizes(predictor, int(model.image_size))
    image = np.array(Image.open(image_path).convert("RGB"))
    h, w = image.shape[:2]
    x = predictor._transforms(image)[None].numpy()
    predictor.set_image(image)
    feats = {"image_embed": predictor._features["image_embed"].numpy(),
             "high_res_feats_0": predictor._features["high_res_feats"][0].numpy(),
             "high_res_feats_1": predictor._features["high_res_feats"][1].numpy()}
    t0 = time.perf_counter()
    got = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"image": x})))
    print(f"onnxruntime {ort.__version__} CPU encoder run: {time.perf_counter() - t0:.1f}s")
    worst = 0.0
    for k, ref in feats.items():
        d = maxdiff(got[k], ref)
        worst = max(worst, d)
        print(f"  encoder {k} {list(got[k].shape)}: max abs diff {d:.2e} (ref max |x| "
              f"{np.abs(ref).max():.2f})")

    # Decoder: fed with the reference features so that only the decoder is compared.
    cases = [
        ("1 point", [[w * 0.5, h * 0.5]], [1], False),
        ("2 points", [[w * 0.3, h * 0.4], [w * 0.7, h * 0.6]], [1, 0], False),
        ("point + mask", [[w * 0.4, h * 0.5]], [1], True),
    ]
    prev_low = None
    for name, pts, labels, use_mask in cases:
        pts = np.array(pts, dtype=np.float32)
        labels = np.array(labels, dtype=np.int32)
        mask_in = prev_low[:1] if use_mask else None  # [1, 256, 256], as the predictor takes it
        _, ref_iou, ref_low = predictor.predict(point_coords=pts, point_labels=labels,
                                                mask_input=mask_in, multimask_output=True,
                                                return_logits=True, normalize_coords=True)
        # SAM2Transforms.transform_coords(normalize=True): x / w * 1024, y / h * 1024
        coords = (pts / np.array([w, h], dtype=np.float32) * model.image_size)[None]
        feed = dict(feats, point_coords=coords.astype(np.float32),
                    point_labels=labels[None].astype(np.float32),
                    mask_input=(mask_in[None] if use_mask else np.zeros((1, 1, 256, 256), np.float32)),
                    has_mask_input=np.array([1.0 if use_mask else 0.0], np.float32))
        masks, iou = dec.run(["masks", "iou_predictions"], feed)
        d_low = maxdiff(np.clip(masks[0], -32, 32), ref_low)
        d_iou = maxdiff(iou[0], ref_iou)
        worst = max(worst, d_low, d_iou)
        print(f"  decoder {name}: low-res logits max abs diff {d_low:.2e} (ref range "
              f"{ref_low.min():.1f}..{ref_low.max():.1f}), iou {d_iou:.2e}")
        prev_low = ref_low if prev_low is None else prev_low
    print(f"worst max abs diff: {worst:.2e}")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--config", default=next(m["config"] for m in FULL_MODELS
                                             if m["name"] == "sam2.1_hiera_tiny"),
                    help="Meta's package config name (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "onnx")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="image for the check")
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    if args.opset < 17:
        ap.error("--opset must be >= 17")

    if not args.weights.exists():
        if args.weights.resolve() != DEFAULT_WEIGHTS.resolve():
            raise SystemExit(f"{args.weights}: not found")
        print(f"{args.weights} missing: running make_fixtures.py --full", flush=True)
        subprocess.run([sys.executable, str(HERE / "make_fixtures.py"), "--full", "--quiet"],
                       check=True)

    setup_torch()
    use_package_configs()
    model = build_sam2(args.config, ckpt_path=str(args.weights), device="cpu", mode="eval")
    s = int(model.image_size)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.weights.name.removesuffix(".pt")
    enc_path = args.out / f"{stem}.encoder.onnx"
    dec_path = args.out / f"{stem}.decoder.onnx"

    encoder = ImageEncoder(model).eval()
    image = torch.randn(1, 3, s, s)
    embed, hr0, hr1 = encoder(image)
    with static_pos_embed(model.image_encoder.trunk):
        export(encoder, (image,), enc_path, ["image"],
               ["image_embed", "high_res_feats_0", "high_res_feats_1"], None, args.opset)

    decoder = PromptMaskDecoder(model).eval()
    dec_args = (embed, hr0, hr1, torch.tensor([[[s * 0.5, s * 0.5], [s * 0.25, s * 0.75]]]),
                torch.tensor([[1.0, 0.0]]), torch.zeros(1, 1, s // 4, s // 4), torch.tensor([0.0]))
    export(decoder, dec_args, dec_path,
           ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels",
            "mask_input", "has_mask_input"],
           ["masks", "iou_predictions"],
           {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}, args.opset)

    if not args.no_check:
        worst = check(model, enc_path, dec_path, args.image)
        if worst is not None and worst > 1e-3:
            print("FAIL: ONNX outputs differ from the reference by more than 1e-3")
            return 1
    for p in (enc_path, dec_path):
        print(f"{p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p}: "
              f"{p.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
