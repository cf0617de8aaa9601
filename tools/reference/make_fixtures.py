#!/usr/bin/env python3
"""Reference fixtures for the Rust port, produced by Meta's own SAM 2 code (PyPI `sam2==1.1.0`).

There are no pretrained weights here: every model is built by Meta's `build_sam2` from a Hydra
config, its weights are seeded-random and then perturbed (so that no bias is 0 and no norm weight
is 1), saved in the official checkpoint layout `{"model": state_dict}` and loaded back through
Meta's loader before anything is recorded. All numbers come from `SAM2ImagePredictor`, on CPU.

Usage (see README.md in this folder):
    python tools/reference/make_fixtures.py                 # committed fixtures -> tests/fixtures/
    python tools/reference/make_fixtures.py --out DIR       # same, elsewhere
    python tools/reference/make_fixtures.py --full [DIR]    # full-size tiny/base+ (not committed)

Fixtures are made by this script only, never by hand.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

# Run from anywhere, but never from a directory that would shadow the `sam2` package.
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CONFIG_DIR = HERE / "configs"
DEFAULT_OUT = REPO / "tests" / "fixtures"
DEFAULT_FULL_OUT = HERE / "out" / "full"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import sam2  # noqa: E402,F401  (initialises Hydra with sam2's own config module)
from hydra import initialize_config_dir, initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from sam2.build_sam import build_sam2  # noqa: E402
from sam2.modeling.sam2_utils import LayerNorm2d  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

FORMAT_VERSION = 1
THREADS = 2

# ---------------------------------------------------------------------------------------------
# What is generated
# ---------------------------------------------------------------------------------------------

# Reduced models of the real architecture (committed). `seed` seeds both Meta's init and the
# perturbation. Configs live in tools/reference/configs/ and are copied verbatim as config.yaml.
# `mask_gain` / `iou_gain` scale the last layer of the mask hypernetwork MLPs / the IoU head after
# the perturbation, so that random-weight low-res logits have a realistic spread (std of a few
# units instead of ~0.05; both branches of the dynamic-multimask stability test then occur) and
# the IoU predictions are far enough apart for argmax to be robust.
REDUCED_MODELS = [
    {"name": "sam2.1_hiera_reduced", "config": "sam2.1_hiera_reduced.yaml", "seed": 101,
     "mask_gain": 65.0, "iou_gain": 20.0},
    {"name": "sam2_hiera_reduced", "config": "sam2_hiera_reduced.yaml", "seed": 202,
     "mask_gain": 100.0, "iou_gain": 20.0},
    {"name": "sam2.1_hiera_reduced_b", "config": "sam2.1_hiera_reduced_b.yaml", "seed": 303,
     "mask_gain": 25.0, "iou_gain": 20.0},
]

# Full-size models (--full, never committed): Meta's own package configs.
FULL_MODELS = [
    {"name": "sam2.1_hiera_tiny", "config": "configs/sam2.1/sam2.1_hiera_t.yaml", "seed": 1001,
     "mask_gain": 30.0, "iou_gain": 20.0},
    {"name": "sam2.1_hiera_base_plus", "config": "configs/sam2.1/sam2.1_hiera_b+.yaml",
     "seed": 1002, "mask_gain": 30.0, "iou_gain": 20.0},
]

# Synthetic test images (W x H). "a" is larger than every reduced image_size (downscaling with
# antialias), "b" is small and odd (upscaling).
IMAGES = [
    {"id": "a", "width": 317, "height": 269, "seed": 11},
    {"id": "b", "width": 97, "height": 131, "seed": 12},
]
FULL_IMAGES = [{"id": "full", "width": 800, "height": 600, "seed": 13}]

# Image ids whose image-encoder intermediates (input, trunk.*, neck.*, neck_pos.*) are recorded.
# The others get only the predictor features (image_embed, high_res_feats.*). Kept to one image
# to keep the committed fixtures small; these tensors are the big ones.
FULL_INTERMEDIATES = {"a"}
# Levels recorded for those images (also to save space): trunk.0-3 (every Hiera stage);
# neck.1-3 (neck.0 is one 1x1 conv from trunk.0 and feeds high_res_feats.0 = conv_s0(neck.0),
# which is recorded); neck_pos.2-3 (levels 0 and 1 of the position encoding are computed by the
# reference but never used by any later computation; level 2 is the one memory attention uses,
# level 3 is dropped by scalp=1).
TRUNK_LEVELS = (0, 1, 2, 3)
NECK_LEVELS = (1, 2, 3)
NECK_POS_LEVELS = (2, 3)

# Prompt cases, in image pixels, exactly as passed to `predictor.predict`. `box` is always a list
# of [x0, y0, x1, y1]; it is passed as an array of shape [N, 4]. `extras` lists optional
# per-case tensors (see README).
CASES = [
    {"name": "point", "image": "a", "point_coords": [[150.0, 120.0]], "point_labels": [1],
     "multimask_output": False,
     "extras": ["dense_embeddings", "transformer", "decoder.all_masks"]},
    {"name": "point_multimask", "image": "a", "point_coords": [[150.0, 120.0]], "point_labels": [1],
     "multimask_output": True},
    {"name": "box", "image": "a", "box": [[60.0, 50.0, 230.0, 200.0]], "multimask_output": False},
    {"name": "box_point", "image": "a", "box": [[60.0, 50.0, 230.0, 200.0]],
     "point_coords": [[140.0, 130.0]], "point_labels": [0], "multimask_output": False},
    {"name": "pos_neg_points", "image": "a",
     "point_coords": [[100.0, 90.0], [200.0, 160.0], [260.0, 60.0]], "point_labels": [1, 1, 0],
     "multimask_output": True},
    {"name": "multimask_off", "image": "a",
     "point_coords": [[100.0, 90.0], [200.0, 160.0], [260.0, 60.0]], "point_labels": [1, 1, 0],
     "multimask_output": False},
    {"name": "boxes3", "image": "a",
     "box": [[20.0, 30.0, 120.0, 140.0], [150.0, 40.0, 300.0, 250.0], [60.0, 150.0, 200.0, 260.0]],
     "multimask_output": False, "extras": ["transformer"]},
    # Meta's notebook: the best low-res mask of the previous round as mask_input, plus a click.
    {"name": "refine_round2", "image": "a",
     "point_coords": [[150.0, 120.0], [210.0, 170.0]], "point_labels": [1, 1],
     "mask_input": "point_multimask", "multimask_output": False, "extras": ["dense_embeddings"]},
    {"name": "box_outside", "image": "a", "box": [[-40.0, 180.0, 180.0, 330.0]],
     "multimask_output": False},
    # Points on the image border: (0,0), and (W,H), one past the last pixel index (the predictor
    # scales x by S/W and y by S/H; the prompt encoder then adds 0.5, the pixel centre).
    {"name": "point_border", "image": "a", "point_coords": [[0.0, 0.0], [317.0, 269.0]],
     "point_labels": [1, 0], "multimask_output": True},
    {"name": "b_point_multimask", "image": "b", "point_coords": [[48.0, 65.0]], "point_labels": [1],
     "multimask_output": True, "extras": ["masks_logits"]},
    {"name": "b_box", "image": "b", "box": [[10.0, 20.0, 80.0, 110.0]], "multimask_output": False},
    {"name": "b_boxes3_multimask", "image": "b",
     "box": [[5.0, 5.0, 50.0, 60.0], [40.0, 30.0, 95.0, 125.0], [0.0, 70.0, 97.0, 131.0]],
     "multimask_output": True},
]

FULL_CASES = [
    {"name": "point", "image": "full", "point_coords": [[420.0, 260.0]], "point_labels": [1],
     "multimask_output": False},
    {"name": "point_multimask", "image": "full", "point_coords": [[420.0, 260.0]],
     "point_labels": [1], "multimask_output": True, "extras": ["masks_logits"]},
    {"name": "box", "image": "full", "box": [[150.0, 120.0, 610.0, 470.0]],
     "multimask_output": False},
]

# One key only: safetensors writes metadata in hash order, so several keys are not byte-stable.
SAFETENSORS_METADATA = {"generator": f"tools/reference/make_fixtures.py format {FORMAT_VERSION}"}

# build_sam2(apply_postprocessing=True) adds these; recorded in cases.json for the port.
POSTPROCESSING = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}


# ---------------------------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------------------------

def setup_torch():
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_grad_enabled(False)


def use_config_dir(path):
    """Point Hydra at a directory of config files (our reduced configs)."""
    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(Path(path).resolve()), version_base="1.2")


def use_package_configs():
    """Point Hydra back at sam2's own configs (what `import sam2` does)."""
    GlobalHydra.instance().clear()
    initialize_config_module("sam2", version_base="1.2")


def package_config_path(config_name):
    return Path(sam2.__file__).resolve().parent / config_name


def perturb_(model, seed):
    """Add seeded Gaussian noise to every floating-point state-dict entry, in place.

    norm weights and layer-scale gammas -> 1 + 0.1*randn; norm biases -> 0.1*randn;
    entries that Meta initialises to a constant (zeros, e.g. pos_embed) -> c + 0.1*randn;
    everything else (incl. the buffer positional_encoding_gaussian_matrix) -> p + 0.02*randn.
    """
    norm_w, norm_b = set(), set()
    for mname, mod in model.named_modules():
        if isinstance(mod, (nn.LayerNorm, LayerNorm2d, nn.GroupNorm, nn.BatchNorm2d)):
            norm_w.add(f"{mname}.weight")
            norm_b.add(f"{mname}.bias")
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict(keep_vars=True)
    for key, v in sd.items():
        if not v.is_floating_point():
            continue
        t = v.data
        noise = torch.randn(t.shape, generator=g, dtype=torch.float32).to(t.dtype)
        if key in norm_w or key.endswith(".gamma"):
            t.copy_(1.0 + 0.1 * noise)
        elif key in norm_b:
            t.copy_(0.1 * noise)
        elif t.numel() > 1 and bool((t == t.reshape(-1)[0]).all()):
            t.add_(0.1 * noise)
        else:
            t.add_(0.02 * noise)
    for key, v in model.state_dict().items():
        if v.is_floating_point():
            # Rounding can still land on exactly 0 or 1 (seen once in 40 M values): nudge those.
            v.add_(((v == 0) | (v == 1)).to(v.dtype) * 0.01)
            bad = int(((v == 0) | (v == 1)).sum())
            assert bad == 0, f"{key}: {bad} entries exactly 0 or 1 after perturbation"


def apply_gains_(model, mask_gain, iou_gain):
    dec = model.sam_mask_decoder
    for mlp in dec.output_hypernetworks_mlps:
        mlp.layers[-1].weight.data.mul_(mask_gain)
        mlp.layers[-1].bias.data.mul_(mask_gain)
    dec.iou_prediction_head.layers[-1].weight.data.mul_(iou_gain)
    dec.iou_prediction_head.layers[-1].bias.data.mul_(iou_gain)


def build_random_model(spec, ckpt_path):
    """Build with Meta's build_sam2, perturb, save officially, reload through Meta's loader."""
    config_name, seed = spec["config"], spec["seed"]
    torch.manual_seed(seed)
    model = build_sam2(config_name, ckpt_path=None, device="cpu", mode="eval")
    perturb_(model, seed + 7919)
    apply_gains_(model, spec["mask_gain"], spec["iou_gain"])
    sd = model.state_dict()
    torch.save({"model": sd}, ckpt_path)
    # Round trip through Meta's own loader (torch.load weights_only=True + strict load_state_dict).
    torch.manual_seed(seed + 1)  # different init, so an unloaded tensor would show
    reloaded = build_sam2(config_name, ckpt_path=str(ckpt_path), device="cpu", mode="eval")
    sd2 = reloaded.state_dict()
    assert list(sd.keys()) == list(sd2.keys())
    for k in sd:
        assert sd[k].dtype == sd2[k].dtype and torch.equal(sd[k], sd2[k]), f"round trip: {k}"
    n_params = sum(v.numel() for v in sd.values())
    return reloaded, n_params


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def make_image(seed, w, h):
    """Smooth gradients + a few solid shapes + high-frequency patches (checkerboard, stripes,
    noise) that make antialiased downscaling matter. Deterministic, uint8 RGB [H, W, 3]."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    img = np.empty((h, w, 3), np.float64)
    img[..., 0] = 30 + 150 * u
    img[..., 1] = 50 + 120 * v
    img[..., 2] = 110 + 70 * np.sin(6.0 * u + 4.0 * v)
    # solid ellipse, rectangle, triangle
    cx, cy = rs.uniform(0.3, 0.5) * w, rs.uniform(0.35, 0.6) * h
    rx, ry = 0.18 * w, 0.22 * h
    img[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0] = rs.randint(0, 256, 3)
    x0, y0 = int(0.62 * w), int(0.12 * h)
    img[y0:y0 + int(0.3 * h), x0:x0 + int(0.25 * w)] = rs.randint(0, 256, 3)
    tri = (yy > 0.65 * h) & (xx > 0.55 * w) & ((xx - 0.55 * w) < (yy - 0.65 * h) * 1.2)
    img[tri] = rs.randint(0, 256, 3)
    # 1-pixel checkerboard (aliases badly without antialias)
    cb = ((xx.astype(int) + yy.astype(int)) % 2 == 1) & (xx < 0.2 * w) & (yy < 0.25 * h)
    img[cb] = 255 - img[cb]
    # vertical stripes, period 3
    st = (xx.astype(int) % 3 == 0) & (yy > 0.8 * h) & (xx < 0.4 * w)
    img[st] = 0.0
    # a noise patch
    ny0, nx0 = int(0.45 * h), int(0.8 * w)
    patch = img[ny0:ny0 + int(0.15 * h), nx0:nx0 + int(0.15 * w)]
    patch += rs.normal(0.0, 40.0, patch.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------

# The float64 cross-check (see reference_f32_error) records in float64; fixtures are float32.
_KEEP_DTYPE = False


def f32(t):
    if _KEEP_DTYPE:
        return t.detach().contiguous().clone()
    return t.detach().to(torch.float32).contiguous().clone()


class Recorder:
    """Hooks on Meta's modules. Each capture slot holds the latest call's tensors."""

    def __init__(self, model):
        self.model = model
        self.cap = {}
        self.handles = []
        enc = model.image_encoder
        self.handles.append(enc.register_forward_pre_hook(self._enc_in))
        self.handles.append(enc.trunk.register_forward_hook(self._trunk))
        self.handles.append(enc.neck.register_forward_hook(self._neck))
        self.handles.append(
            model.sam_prompt_encoder.register_forward_hook(self._prompt, with_kwargs=True))
        self.handles.append(model.sam_mask_decoder.register_forward_hook(self._decoder))
        self.handles.append(
            model.sam_mask_decoder.transformer.register_forward_hook(self._transformer))
        # predict_masks returns all 4 (1 single + 3 multi) masks before the selection in forward.
        dec = model.sam_mask_decoder
        orig = dec.predict_masks

        def predict_masks(*a, **kw):
            out = orig(*a, **kw)
            self.cap["all_masks"], self.cap["all_iou"] = f32(out[0]), f32(out[1])
            return out

        dec.predict_masks = predict_masks

    def _enc_in(self, mod, args):
        self.cap["input"] = f32(args[0])

    def _trunk(self, mod, args, out):
        self.cap["trunk"] = [f32(x) for x in out]

    def _neck(self, mod, args, out):
        feats, pos = out
        self.cap["neck"] = [f32(x) for x in feats]
        self.cap["neck_pos"] = [f32(x) for x in pos]

    def _prompt(self, mod, args, kwargs, out):
        points = kwargs.get("points", args[0] if args else None)
        masks = kwargs.get("masks", args[2] if len(args) > 2 else None)
        assert kwargs.get("boxes", None) is None  # the image predictor merges boxes into points
        self.cap["point_coords"] = f32(points[0])
        self.cap["point_labels"] = f32(points[1])
        self.cap["mask_input"] = None if masks is None else f32(masks)
        self.cap["sparse"], self.cap["dense"] = f32(out[0]), f32(out[1])

    def _decoder(self, mod, args, out):
        self.cap["object_score_logits"] = f32(out[3])

    def _transformer(self, mod, args, out):
        self.cap["queries"], self.cap["keys"] = f32(out[0]), f32(out[1])


def wrap_predict(predictor, cap):
    """Capture `_predict`'s batched tensors ([B, M, ...]); `predict` squeezes B when it is 1."""
    orig = predictor._predict

    def _predict(*a, **kw):
        masks, iou, low = orig(*a, **kw)
        cap["masks"], cap["iou"], cap["low"] = f32(masks), f32(iou), f32(low)
        return masks, iou, low

    predictor._predict = _predict


def set_bb_feat_sizes(predictor, s):
    # SAM2ImagePredictor hard-codes these for image_size 1024.
    predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]


def record(model, name, images, cases, full_intermediates, png_dir=None):
    """Run the predictor over all images and cases; return (tensors, image meta, case meta,
    summary). Writes the PNGs to png_dir when given."""
    s = int(model.image_size)
    predictor = SAM2ImagePredictor(model)
    set_bb_feat_sizes(predictor, s)
    rec = Recorder(model)
    wrap_predict(predictor, rec.cap)
    tensors = {}
    tensors["image_pe"] = f32(model.sam_prompt_encoder.get_dense_pe())

    img_meta, img_arrays = [], {}
    for im in images:
        arr = make_image(im["seed"], im["width"], im["height"])
        img_arrays[im["id"]] = arr
        if png_dir is not None:
            Image.fromarray(arr, "RGB").save(png_dir / f"image_{im['id']}.png", optimize=True)

    summary = {"cases": {}}
    case_meta = []
    by_image = {}
    for c in cases:
        by_image.setdefault(c["image"], []).append(c)
    for im in images:
        iid = im["id"]
        arr = img_arrays[iid]
        t0 = time.perf_counter()
        predictor.set_image(arr)
        t_set = time.perf_counter() - t0
        names = [f"{iid}/rgb"]
        tensors[f"{iid}/rgb"] = torch.from_numpy(arr.copy())  # uint8 [H, W, 3]
        if iid in full_intermediates:
            tensors[f"{iid}/input"] = rec.cap["input"]
            names.append(f"{iid}/input")
            for kind, levels in (("trunk", TRUNK_LEVELS), ("neck", NECK_LEVELS),
                                 ("neck_pos", NECK_POS_LEVELS)):
                assert len(rec.cap[kind]) == 4
                for i in levels:
                    tensors[f"{iid}/{kind}.{i}"] = rec.cap[kind][i]
                    names.append(f"{iid}/{kind}.{i}")
        tensors[f"{iid}/image_embed"] = f32(predictor._features["image_embed"])
        names.append(f"{iid}/image_embed")
        for i, t in enumerate(predictor._features["high_res_feats"]):
            tensors[f"{iid}/high_res_feats.{i}"] = f32(t)
            names.append(f"{iid}/high_res_feats.{i}")
        img_meta.append({"id": iid, "width": im["width"], "height": im["height"],
                         "png": f"image_{iid}.png", "tensors": names})
        summary[f"set_image_s.{iid}"] = round(t_set, 3)

        for c in by_image.get(iid, []):
            cname = c["name"]
            extras = set(c.get("extras", []))
            pc = c.get("point_coords")
            pl = c.get("point_labels")
            box = c.get("box")
            mask_input, mask_idx = None, None
            if c.get("mask_input"):
                prev = c["mask_input"]
                prev_low = tensors[f"{prev}/low_res_masks"]  # [1, M, S/4, S/4]
                prev_iou = tensors[f"{prev}/iou_predictions"]  # [1, M]
                assert prev_low.shape[0] == 1
                mask_idx = int(torch.argmax(prev_iou[0]))
                # Meta's notebook: mask_input = logits[np.argmax(scores), :, :][None, :, :]
                mask_input = prev_low[0, mask_idx].numpy()[None, :, :]
            predictor.predict(
                point_coords=None if pc is None else np.array(pc, dtype=np.float32),
                point_labels=None if pl is None else np.array(pl, dtype=np.int64),
                box=None if box is None else np.array(box, dtype=np.float32),
                mask_input=mask_input,
                multimask_output=c["multimask_output"],
                return_logits=True,
            )
            cap = rec.cap
            out = {
                "point_coords": cap["point_coords"],
                "point_labels": cap["point_labels"],
                "sparse_embeddings": cap["sparse"],
                "low_res_masks": cap["low"],
                "iou_predictions": cap["iou"],
                "object_score_logits": cap["object_score_logits"],
                "decoder.all_iou": cap["all_iou"],
                "decoder.singlemask_stability": f32(
                    model.sam_mask_decoder._get_stability_scores(cap["all_masks"][:, 0:1])),
            }
            if cap["mask_input"] is not None:
                out["mask_input"] = cap["mask_input"]
            if "dense_embeddings" in extras:
                out["dense_embeddings"] = cap["dense"]
            if "transformer" in extras:
                out["transformer.queries"] = cap["queries"]
                out["transformer.keys"] = cap["keys"]
            if "decoder.all_masks" in extras:
                out["decoder.all_masks"] = cap["all_masks"]
            if "masks_logits" in extras:
                out["masks_logits"] = cap["masks"]
            for k, v in out.items():
                tensors[f"{cname}/{k}"] = v
            case_meta.append({
                "name": cname,
                "image": iid,
                "point_coords": pc,
                "point_labels": pl,
                "box": box,
                "mask_input": c.get("mask_input"),
                "mask_input_index": mask_idx,
                "multimask_output": c["multimask_output"],
                "tensors": [f"{cname}/{k}" for k in out],
            })
            low = cap["low"]
            stab = out["decoder.singlemask_stability"].reshape(-1)
            thresh = POSTPROCESSING["dynamic_multimask_stability_thresh"]
            all_iou = cap["all_iou"]
            top2 = torch.topk(all_iou[:, 1:], 2, dim=-1).values
            iou_margin = float((top2[:, 0] - top2[:, 1]).min())
            # Is the dynamic-multimask decision robust to a 1e-3 change of every logit?
            dec = model.sam_mask_decoder
            m0 = cap["all_masks"][:, 0:1]
            robust = all(torch.equal(dec._get_stability_scores(m0 + e) >= thresh,
                                     dec._get_stability_scores(m0) >= thresh)
                         for e in (-1e-3, 1e-3))
            warn = []
            if iou_margin < 1e-3:
                warn.append(f"multimask IoU argmax margin {iou_margin:.2e}")
            if not robust:
                warn.append("stability decision flips with a 1e-3 logit change")
            summary["cases"][cname] = (
                f"low{list(low.shape)} min {float(low.min()):+.2f} max {float(low.max()):+.2f} "
                f"std {float(low.std()):.2f} pos {float((low > 0).float().mean()):.2f} "
                f"clamped {float((low.abs() >= 32).float().mean()):.3f} | "
                f"iou {[round(x, 3) for x in cap['iou'].reshape(-1).tolist()]} "
                f"obj {[round(x, 2) for x in cap['object_score_logits'].reshape(-1).tolist()]} "
                f"stab {[round(x, 3) for x in stab.tolist()]}"
                + ("" if c["multimask_output"] else
                   f" single-kept {[bool(x >= thresh) for x in stab.tolist()]}")
                + "".join(f" WARNING: {w}" for w in warn))
            assert float(low.std()) > 1e-3, f"{name}/{cname}: constant logits"
            assert float((low.abs() >= 32).float().mean()) < 0.5, f"{name}/{cname}: saturated"

    rec.cap.clear()
    for hnd in rec.handles:
        hnd.remove()
    return tensors, img_meta, case_meta, summary


def reference_f32_error(spec, ckpt_path, images, cases, full_intermediates, tensors32):
    """Max |float32 - float64| of Meta's own code for every recorded tensor: the same model and
    prompts run in float64 (weights cast exactly; every module's float32 inputs cast to float64).
    A port in float32 cannot be expected to match the fixtures much better than this."""
    global _KEEP_DTYPE
    torch.manual_seed(0)
    model = build_sam2(spec["config"], ckpt_path=str(ckpt_path), device="cpu", mode="eval")
    model = model.double()

    def cast(x):
        if isinstance(x, torch.Tensor) and x.dtype == torch.float32:
            return x.double()
        if isinstance(x, (list, tuple)):
            return type(x)(cast(y) for y in x)
        if isinstance(x, dict):
            return {k: cast(v) for k, v in x.items()}
        return x

    for mod in model.modules():
        mod.register_forward_pre_hook(lambda m, a, k: (cast(a), cast(k)), with_kwargs=True)
    pe = model.sam_prompt_encoder.pe_layer
    pe_encoding = pe._pe_encoding  # forward_with_coords casts coords to float32 first
    pe._pe_encoding = lambda coords: pe_encoding(coords.double())
    _KEEP_DTYPE = True
    try:
        tensors64, _, case_meta64, _ = record(model, spec["name"], images, cases,
                                              full_intermediates)
    finally:
        _KEEP_DTYPE = False
    errors = {}
    for k, t32 in tensors32.items():
        if t32.dtype != torch.float32:
            continue
        t64 = tensors64[k]
        assert t64.shape == t32.shape, k
        errors[k] = float((t64 - t32.double()).abs().max())
    return errors, case_meta64


def write_fixture(out_dir, model, name, tensors, img_meta, case_meta, config_text, n_params,
                  f32_errors=None):
    s = int(model.image_size)
    for k, v in tensors.items():
        assert v.dtype in (torch.float32, torch.uint8), k
        assert torch.isfinite(v.float()).all(), k
    save_file(tensors, str(out_dir / "expected.safetensors"),
              metadata=SAFETENSORS_METADATA)
    os.chmod(out_dir / "expected.safetensors", 0o644)
    (out_dir / "config.yaml").write_text(config_text)
    meta = {
        "format_version": FORMAT_VERSION,
        "model": name,
        "image_size": s,
        "checkpoint": "model.pt",
        "config": "config.yaml",
        "n_params": n_params,
        "sam2_version": "2.1" if "no_obj_embed_spatial" in model.state_dict() else "2.0",
        "reference": {"sam2": "1.1.0", "torch": torch.__version__.split("+")[0],
                      "threads": THREADS, "device": "cpu"},
        "predictor": {"mask_threshold": 0.0, "return_logits": True,
                      "normalize_coords": True, "low_res_clamp": 32.0, **POSTPROCESSING},
        "images": img_meta,
        "model_tensors": ["image_pe"],
        "cases": case_meta,
    }
    if f32_errors is not None:
        meta["reference_f32_error"] = {k: float(f"{v:.3g}") for k, v in f32_errors.items()}
    (out_dir / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# Weight-loader edge cases
# ---------------------------------------------------------------------------------------------

def same_tensors(path, sd):
    try:
        back = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    back = back["model"] if isinstance(back, dict) and "model" in back else back
    return (isinstance(back, dict) and list(back) == list(sd) and
            all(back[k].dtype == t.dtype and torch.equal(back[k], t) for k, t in sd.items()))


def make_weight_cases(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(4242)

    def rnd(*shape):
        return torch.randn(*shape, generator=g)

    files = {}
    files["f16.pt"] = {"model": {"w": rnd(3, 5).half(), "b": rnd(5).half(),
                                  "layer.0.weight": rnd(2, 2, 3, 3).half()}}
    files["bf16.pt"] = {"model": {"w": rnd(4, 6).bfloat16(), "b": rnd(6).bfloat16()}}
    base = rnd(3, 4)
    shared = rnd(20)
    files["views.pt"] = {"model": {
        "transposed": base.t(),                  # [4,3], stride (1,4): not contiguous
        "shared_a": shared[2:8].view(2, 3),      # storage offset 2
        "shared_b": shared[10:14],               # same storage, offset 10
        "scalar": torch.tensor(3.25),            # 0-d
        "int64": torch.arange(-3, 5, dtype=torch.int64).view(2, 4),
    }}
    files["plain_state_dict.pt"] = {"w": rnd(2, 3), "nested.layer.bias": rnd(3)}
    files["legacy.pt"] = {"model": {"w": rnd(2, 2)}}

    expected, manifest = {}, {}
    for fname, obj in files.items():
        path = out_dir / fname
        sd = obj["model"] if "model" in obj else obj
        # The legacy format pickles storage addresses, so its bytes change on every run: keep an
        # existing file that already holds exactly these tensors (no churn in git).
        if not (fname == "legacy.pt" and path.exists() and same_tensors(path, sd)):
            if fname == "legacy.pt":
                torch.save(obj, path, _use_new_zipfile_serialization=False)
            else:
                torch.save(obj, path)
        manifest[fname] = {
            "wrapped_in_model": "model" in obj,
            "zip_format": fname != "legacy.pt",
            "tensors": {},
        }
        for k, t in sd.items():
            manifest[fname]["tensors"][k] = {
                "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                "stride": list(t.stride()), "storage_offset": t.storage_offset(),
                "contiguous": t.is_contiguous()}
            expected[f"{fname}/{k}"] = t.to(torch.float32).contiguous().clone()
        # a check that torch reads back exactly what we wrote
        back = torch.load(path, map_location="cpu", weights_only=True)
        back = back["model"] if "model" in back else back
        for k, t in sd.items():
            assert torch.equal(back[k], t), (fname, k)
    save_file(expected, str(out_dir / "expected.safetensors"),
              metadata=SAFETENSORS_METADATA)
    os.chmod(out_dir / "expected.safetensors", 0o644)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out_dir / "README.md").write_text(WEIGHTS_README)


WEIGHTS_README = """\
# Weight-loader edge cases (generated by tools/reference/make_fixtures.py; do not edit)

Tiny `torch.save` files. `expected.safetensors` holds, as float32, the value every tensor must
load to, named `<file>/<key>`; `manifest.json` gives each tensor's source dtype, shape, stride
and storage offset.

- `f16.pt`: `{"model": {...}}` with float16 tensors (`w`, `b`, `layer.0.weight`).
- `bf16.pt`: `{"model": {...}}` with bfloat16 tensors (`w`, `b`).
- `views.pt`: `{"model": {...}}` with `transposed` (a `.t()` view, stride [1,4], not contiguous),
  `shared_a` / `shared_b` (two views of one 20-float storage, offsets 2 and 10), `scalar`
  (0-d tensor, 3.25), `int64` (int64 [2,4], values -3..4).
- `plain_state_dict.pt`: a bare dict of tensors, no `"model"` wrapper (`w`, `nested.layer.bias`).
- `legacy.pt`: `{"model": {"w": ...}}` written with `_use_new_zipfile_serialization=False`
  (pre-1.6 pickle format, not a zip). The loader must reject it with a clear error;
  `legacy.pt/w` is in expected.safetensors only for completeness. Its bytes embed storage
  addresses, so the generator keeps an existing legacy.pt that already holds these values.

`keys/<name>.txt`: the state-dict key lists of Meta's official checkpoints (`sam2_hiera_{t,s,b+,l}`,
`sam2.1_hiera_{t,s,b+,l}`) and of two reduced 2.1 models (`sam2.1_hiera_reduced32` = the
`sam2.1_hiera_reduced` fixture's config, `sam2.1_hiera_reduced16` = the `sam2_hiera_reduced`
fixture's shapes with the 2.1 flags), built from Meta's configs by Meta's code: one
`key [d0,d1,...]` per line, in state-dict order (the order of the official files).
"""


# ---------------------------------------------------------------------------------------------
# Key lists of Meta's checkpoints
# ---------------------------------------------------------------------------------------------

# (file name, config, where the config lives, extra Hydra overrides). Built by Meta's code, no
# weights involved: each line is `key [d0,d1,...]` in state-dict order, as official checkpoints.
KEY_LISTS = (
    [(f"{v}_hiera_{s}", f"configs/{d}/{v}_hiera_{s}.yaml", "package", [])
     for v, d in (("sam2", "sam2"), ("sam2.1", "sam2.1")) for s in ("t", "s", "b+", "l")]
    + [("sam2.1_hiera_reduced32", "sam2.1_hiera_reduced.yaml", "dir", []),
       # the 2.0 fixture's shapes with the 2.1 flags: the 2.1 checkpoint of the same size
       ("sam2.1_hiera_reduced16", "sam2_hiera_reduced.yaml", "dir",
        ["++model.no_obj_embed_spatial=true", "++model.add_tpos_enc_to_obj_ptrs=true",
         "++model.proj_tpos_enc_in_obj_ptrs=true", "++model.use_signed_tpos_enc_to_obj_ptrs=true"])]
)


def key_list_text(model):
    return "".join(f"{k} [{','.join(map(str, t.shape))}]\n" for k, t in model.state_dict().items())


def make_key_lists(out_dir):
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    out_dir.mkdir(parents=True, exist_ok=True)
    for where in ("package", "dir"):
        if where == "package":
            use_package_configs()
        else:
            use_config_dir(CONFIG_DIR)
        for fname, config, w, overrides in KEY_LISTS:
            if w != where:
                continue
            cfg = compose(config_name=config, overrides=overrides)
            OmegaConf.resolve(cfg)
            torch.manual_seed(0)
            model = instantiate(cfg.model, _recursive_=True)
            (out_dir / f"{fname}.txt").write_text(key_list_text(model))
            del model


def copy_official_configs(out_dir):
    """Meta's eight official model configs, as shipped in the package, so the Rust YAML reader
    can be checked against its presets."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for version in ("sam2", "sam2.1"):
        for size in ("t", "s", "b+", "l"):
            name = f"{version}_hiera_{size}.yaml"
            text = package_config_path(f"configs/{version}/{name}").read_text()
            (out_dir / name).write_text(text)


# ---------------------------------------------------------------------------------------------
# Drivers
# ---------------------------------------------------------------------------------------------

def generate_reduced(out_root):
    use_config_dir(CONFIG_DIR)
    report = {}
    for m in REDUCED_MODELS:
        t0 = time.perf_counter()
        out_dir = out_root / m["name"]
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        model, n = build_random_model(m, out_dir / "model.pt")
        config_text = (CONFIG_DIR / m["config"]).read_text()
        tensors, img_meta, case_meta, summary = record(model, m["name"], IMAGES, CASES,
                                                       FULL_INTERMEDIATES, png_dir=out_dir)
        errors, case_meta64 = reference_f32_error(m, out_dir / "model.pt", IMAGES, CASES,
                                                  FULL_INTERMEDIATES, tensors)
        assert case_meta64 == case_meta, "float64 run chose other masks (mask_input_index)"
        write_fixture(out_dir, model, m["name"], tensors, img_meta, case_meta, config_text, n,
                      errors)
        worst = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
        summary["f32_vs_f64_worst"] = [f"{k} {v:.2e}" for k, v in worst]
        summary["n_params"] = n
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        report[m["name"]] = summary
    make_weight_cases(out_root / "weights")
    make_key_lists(out_root / "weights" / "keys")
    copy_official_configs(out_root / "configs")
    return report


def generate_full(out_root):
    use_package_configs()
    out_root.mkdir(parents=True, exist_ok=True)
    report = {}
    for m in FULL_MODELS:
        t0 = time.perf_counter()
        out_dir = out_root / m["name"]
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        model, n = build_random_model(m, out_dir / "model.pt")
        flat = out_root / f"{m['name']}.pt"
        if flat.exists():
            flat.unlink()
        try:
            os.link(out_dir / "model.pt", flat)
        except OSError:
            shutil.copyfile(out_dir / "model.pt", flat)
        config_text = package_config_path(m["config"]).read_text()
        tensors, img_meta, case_meta, summary = record(model, m["name"], FULL_IMAGES, FULL_CASES,
                                                       set(), png_dir=out_dir)
        write_fixture(out_dir, model, m["name"], tensors, img_meta, case_meta, config_text, n)
        summary["n_params"] = n
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        report[m["name"]] = summary
        del model
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="root of the reduced fixtures (default: tests/fixtures)")
    ap.add_argument("--full", nargs="?", type=Path, const=DEFAULT_FULL_OUT, default=None,
                    metavar="OUT_DIR",
                    help="instead, build full-size random tiny and base+ "
                         f"(default OUT_DIR: {DEFAULT_FULL_OUT.relative_to(REPO)})")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    setup_torch()
    t0 = time.perf_counter()
    if args.full is not None:
        report = generate_full(args.full.resolve())
    else:
        report = generate_reduced(args.out.resolve())
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    if not args.quiet:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
