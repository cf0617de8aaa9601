#!/usr/bin/env python3
"""Segment-everything and label fixtures for the Rust port, produced by Meta's own
`SAM2AutomaticMaskGenerator` (PyPI `sam2==1.1.0`, CPU) and by pycocotools.

Uses the committed reduced checkpoints written by make_fixtures.py (never rebuilt or changed
here): `tests/fixtures/<model>/model.pt` + `config.yaml`, loaded with Meta's
`build_sam2(config, ckpt, device="cpu")`, on the committed test image `image_a.png` (317x269).

Usage:
    python tools/reference/make_amg_fixtures.py              # -> tests/fixtures/<model>/amg/, labels/
    python tools/reference/make_amg_fixtures.py --out DIR    # same layout under DIR

Fixtures are made by this script only, never by hand.

Random weights and the generator
--------------------------------
With random weights every mask depends on the image far more than on the point, the masks are
speckled, and Meta's default thresholds keep nothing (one case checks exactly that). The other
cases lower `pred_iou_thresh` / `stability_score_thresh` and raise the generator's
`mask_threshold` (a documented parameter: the binarisation cut-off, also the centre of the
stability score) so that masks are smaller and boxes differ, which gives box NMS and the crop
edge filter something to do. Even so the masks of one image look alike (boxes overlap by 90 %+),
so NMS keeps 0-2 records per case and every crop mask touches an inner crop edge: the pre-filter
tensors (every decoded mask, before any filter) carry most of the checking. The script prints,
per case, how close every decision came to its threshold ("margins", below) and fails when one
is fragile.

`min_mask_region_area > 0` makes Meta's image predictor fill small holes and remove small
sprinkles of the low-res logits with `sam2._C.get_connected_components`, a CUDA kernel that the
CPU install lacks (Meta then warns and skips the step). The script replaces
`sam2.utils.misc.get_connected_components` with the sequential emulation of that kernel from
make_transform_fixtures.py, so these fixtures record what GPU users get.

Format: tests/fixtures/<model>/amg/
-----------------------------------
`cases.json`:
    {"format_version": 1, "model": "sam2.1_hiera_reduced", "image_size": 256,
     "reference": {"sam2": "1.1.0", "torch": "2.15.0", "pycocotools": "2.0.11", "threads": 2,
                   "device": "cpu"},
     "image": {"png": "../image_a.png", "width": 317, "height": 269},
     "cases": [{
        "name": "grid",
        "params": {every SAM2AutomaticMaskGenerator argument, by Meta's name, defaults included;
                   point_grids is null; output_mode is "coco_rle"},
        "crop_boxes": [[x0, y0, x1, y1], ...],       # generate_crop_boxes, XYXY, x1/y1 exclusive
        "layer_idxs": [0, 1, ...],                    # crop layer of each crop box
        "batches": [{                                 # only when the case stores pre-filter data
            "crop": 0,                                # index into crop_boxes
            "points": [[x, y], ...],                  # [P, 2] float32 values: the grid points of
                                                      # this batch in crop pixels, as passed to
                                                      # _process_batch (before uncrop)
            "masks_per_point": 3,                     # M of the first decode (3 multimask, 1 not)
            "decode": "first" | "m2m",                # which decode the tensors below come from
            "kept": [entry, ...],                     # entries with iou_pred > pred_iou_thresh
                                                      # (all when pred_iou_thresh <= 0)
            "tensors": ["grid/batch0/iou_preds", ...]}, ...],
        "records": [{                                 # generate()'s output, in its order
            "segmentation": {"size": [h, w], "counts": "<pycocotools string>"},
            "area": int, "bbox": [x, y, w, h], "predicted_iou": float,
            "point_coords": [[x, y]], "stability_score": float,
            "crop_box": [x, y, w, h]}, ...],
        "margins": {"iou": float|null, "stability": float|null, "box_nms": float|null,
                    "crop_nms": float|null, "score_gap": float|null}}, ...]}

    Entries: the decoded masks of one batch, point-major: entry e belongs to point
    e // masks_per_point. With use_m2m, every entry is refined once more (its point plus its own
    clamped low-res logits as mask_input, multimask_output=False) and "decode" is "m2m": the
    tensors are then those of the refined masks (one per entry).
    `bbox` in records is Meta's: XYXY from batched_mask_to_box (inclusive pixel indices) turned
    into [x0, y0, x1 - x0, y1 - y0]; pycocotools' toBbox would add 1 to w and h.
    `margins`: the smallest |value - threshold| over the decisions of the case: "iou" for the
    predicted-IoU filter (all entries), "stability" for the stability filter (entries past the
    IoU filter), "box_nms" / "crop_nms" for the box-IoU comparisons of those NMS runs (every
    pair), "score_gap" the smallest gap between two NMS scores (ties make the order of kept
    masks depend on the sort). null when a decision did not occur.

`expected.safetensors` (float32; only for models with a case that stores pre-filter data), per
batch `<case>/batch<k>/`:
    iou_preds        [E]              predicted IoU of every entry (E = P * masks_per_point)
    stability_score  [E]              Meta's calculate_stability_score of every entry, on the
                                      full-resolution (crop-size) logits after hole filling
    low_res_masks    [K, S/4, S/4]    the decoder's low-res logits of the kept entries, in the
                                      order of "kept", unclamped and before hole filling

Format: tests/fixtures/labels/
------------------------------
`coco_rle.json`: {"format_version": 1, "pycocotools": "2.0.11", "masks": [{
    "name": "ring", "height": h, "width": w,
    "stored": true | false,               # true: the mask is `<name>` in masks.safetensors
    "uncompressed": [counts...],          # Meta's mask_to_rle_pytorch (column-major, starts
                                          # with the number of leading zeros, maybe 0)
    "counts": "<string>",                 # pycocotools mask.encode(asfortranarray(mask))
    "area": int,                          # pycocotools mask.area
    "bbox": [x, y, w, h]}, ...]}          # pycocotools mask.toBbox (w = columns spanned)
`masks.safetensors`: uint8 [H, W] 0/1 masks (row-major) of the entries with "stored": true.
The big masks are given by their counts only (rebuild them with rle_to_mask).
"""

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures"
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

import make_fixtures as mf  # noqa: E402  (the model fixtures' helpers)
import sam2.automatic_mask_generator as amg_module  # noqa: E402
import sam2.utils.misc as sam2_misc  # noqa: E402
from make_transform_fixtures import cuda_connected_components  # noqa: E402
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator  # noqa: E402
from sam2.build_sam import build_sam2  # noqa: E402
from sam2.utils.amg import (  # noqa: E402
    calculate_stability_score,
    generate_crop_boxes,
    mask_to_rle_pytorch,
)

FORMAT_VERSION = 1
SAFETENSORS_METADATA = {"generator": f"tools/reference/make_amg_fixtures.py format {FORMAT_VERSION}"}

# Meta's SAM2AutomaticMaskGenerator defaults (the signature of sam2 1.1.0), recorded per case;
# except output_mode, "binary_mask" in Meta's signature: the fixtures store COCO strings.
DEFAULTS = {
    "points_per_side": 32, "points_per_batch": 64, "pred_iou_thresh": 0.8,
    "stability_score_thresh": 0.95, "stability_score_offset": 1.0, "mask_threshold": 0.0,
    "box_nms_thresh": 0.7, "crop_n_layers": 0, "crop_nms_thresh": 0.7,
    "crop_overlap_ratio": 512 / 1500, "crop_n_points_downscale_factor": 1, "point_grids": None,
    "min_mask_region_area": 0, "output_mode": "coco_rle", "use_m2m": False,
    "multimask_output": True,
}

# Cases per model. `prefilter`: also store the pre-filter tensors of every batch (the large
# part: 16 KiB per stored low-res mask at S = 256, so only on small grids). Thresholds sit in
# gaps of the recorded values (see "margins"); they were chosen by looking at those values.
MODELS = [
    {"name": "sam2.1_hiera_reduced", "cases": [
        {"name": "defaults", "prefilter": False, "params": {"points_per_side": 4}},
        {"name": "grid", "prefilter": True,
         "params": {"points_per_side": 3, "points_per_batch": 4, "mask_threshold": 4.0,
                    "pred_iou_thresh": 0.5, "stability_score_thresh": 0.015,
                    "box_nms_thresh": 0.93}},
        {"name": "single_mask", "prefilter": True,
         "params": {"points_per_side": 2, "mask_threshold": 4.0, "multimask_output": False,
                    "pred_iou_thresh": 0.5, "stability_score_thresh": 0.018,
                    "box_nms_thresh": 0.95}},
        {"name": "m2m", "prefilter": True,
         "params": {"points_per_side": 2, "points_per_batch": 3, "mask_threshold": 4.0,
                    "use_m2m": True, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.013,
                    "box_nms_thresh": 0.95}},
        {"name": "crops", "prefilter": True,
         "params": {"points_per_side": 2, "mask_threshold": 4.0, "crop_n_layers": 1,
                    "crop_n_points_downscale_factor": 2, "pred_iou_thresh": 0.5,
                    "stability_score_thresh": 0.01, "box_nms_thresh": 0.95}},
        {"name": "min_region", "prefilter": True,
         "params": {"points_per_side": 2, "mask_threshold": 4.0, "min_mask_region_area": 25,
                    "pred_iou_thresh": 0.5, "stability_score_thresh": 0.116,
                    "box_nms_thresh": 0.95}},
        {"name": "grid6", "prefilter": False,
         "params": {"points_per_side": 6, "mask_threshold": 4.0, "pred_iou_thresh": 0.5,
                    "stability_score_thresh": 0.031, "box_nms_thresh": 0.93}},
    ]},
    {"name": "sam2_hiera_reduced", "cases": [
        {"name": "grid", "prefilter": False,
         "params": {"points_per_side": 4, "pred_iou_thresh": 0.3, "stability_score_thresh": 0.05,
                    "box_nms_thresh": 0.97}},
        {"name": "m2m", "prefilter": False,
         "params": {"points_per_side": 4, "use_m2m": True, "pred_iou_thresh": 0.3,
                    "stability_score_thresh": 0.05, "box_nms_thresh": 0.97}},
    ]},
]

# Decisions closer than this to their threshold make the fixture fragile for a float32 port
# (a port's IoU predictions differ by ~1e-6, a flipped pixel moves a stability score by
# 1/union and a box IoU by about 1/side).
MIN_MARGIN = {"iou": 1e-4, "stability": 2e-3, "box_nms": 1e-3, "crop_nms": 1e-3,
              "score_gap": 5e-6}


# ---------------------------------------------------------------------------------------------
# Meta's CUDA connected components, emulated (see the module docstring)
# ---------------------------------------------------------------------------------------------

def emulated_connected_components(mask):
    """`sam2.utils.misc.get_connected_components` on [N, 1, H, W]: (labels, areas), int32."""
    arr = mask.to(torch.uint8).cpu().numpy()
    labels, areas = np.zeros(arr.shape, np.int32), np.zeros(arr.shape, np.int32)
    for i in range(arr.shape[0]):
        labels[i, 0], areas[i, 0] = cuda_connected_components(arr[i, 0])
    return torch.from_numpy(labels), torch.from_numpy(areas)


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------

class AmgRecorder:
    """Wraps one generator: every batch's final decode, and every NMS call."""

    def __init__(self, gen):
        self.gen = gen
        self.batches = []   # per _process_batch: dict of tensors and metadata
        self.nms_calls = []  # ("box_nms" | "crop_nms", boxes, scores, iou_threshold)
        self._calls = None
        self._in_crop = False
        dec = gen.predictor.model.sam_mask_decoder
        self._decoder_out = None
        self._hook = dec.register_forward_hook(self._decoder_hook)
        orig_predict = gen.predictor._predict
        orig_batch = gen._process_batch
        orig_crop = gen._process_crop

        def _predict(*a, **kw):
            masks, iou, low = orig_predict(*a, **kw)
            self._calls.append((self._decoder_out, f32(iou), masks.detach().clone()))
            return masks, iou, low

        def _process_batch(points, im_size, crop_box, orig_size, normalize=False):
            self._calls = []
            out = orig_batch(points, im_size, crop_box, orig_size, normalize=normalize)
            self._record_batch(points, crop_box)
            self._calls = None
            return out

        def _process_crop(image, crop_box, layer_idx, orig_size):
            self._in_crop = True
            try:
                return orig_crop(image, crop_box, layer_idx, orig_size)
            finally:
                self._in_crop = False

        gen.predictor._predict = _predict
        gen._process_batch = _process_batch
        gen._process_crop = _process_crop
        orig_nms = amg_module.batched_nms

        def batched_nms(boxes, scores, idxs, iou_threshold):
            key = "box_nms" if self._in_crop else "crop_nms"
            self.nms_calls.append((key, boxes.clone(), scores.clone(), iou_threshold))
            return orig_nms(boxes, scores, idxs, iou_threshold)

        self._orig_nms = orig_nms
        amg_module.batched_nms = batched_nms

    def close(self):
        amg_module.batched_nms = self._orig_nms
        self._hook.remove()

    def _decoder_hook(self, mod, args, out):
        self._decoder_out = f32(out[0])  # selected low-res logits, unclamped

    def _record_batch(self, points, crop_box):
        gen = self.gen
        first = self._calls[0]
        m = first[0].shape[1]
        if gen.use_m2m:
            finals = self._calls[1:]
            low = torch.cat([c[0] for c in finals]).flatten(0, 1)
            iou = torch.cat([c[1] for c in finals]).flatten(0, 1)
            masks = torch.cat([c[2] for c in finals]).flatten(0, 1)
        else:
            low, iou, masks = first[0].flatten(0, 1), first[1].flatten(0, 1), first[2].flatten(0, 1)
        stability = calculate_stability_score(masks, gen.mask_threshold, gen.stability_score_offset)
        if gen.pred_iou_thresh > 0.0:
            kept = torch.nonzero(iou > gen.pred_iou_thresh).flatten().tolist()
        else:
            kept = list(range(iou.shape[0]))
        self.batches.append({
            "crop_box": list(crop_box), "points": np.asarray(points, np.float32),
            "masks_per_point": m, "decode": "m2m" if gen.use_m2m else "first",
            "iou_preds": iou.contiguous(), "stability_score": f32(stability),
            "low_res_masks": low[kept].contiguous(), "kept": kept,
        })


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def margins(gen, rec):
    out = {"iou": None, "stability": None, "box_nms": None, "crop_nms": None, "score_gap": None}

    def upd(key, v):
        if v is not None and np.isfinite(v):
            out[key] = v if out[key] is None else min(out[key], v)

    for b in rec.batches:
        iou = b["iou_preds"].double()
        if gen.pred_iou_thresh > 0.0:
            upd("iou", float((iou - np.float32(gen.pred_iou_thresh)).abs().min()))
        if gen.stability_score_thresh > 0.0 and b["kept"]:
            st = b["stability_score"][b["kept"]].double()
            upd("stability", float((st - np.float32(gen.stability_score_thresh)).abs().min()))
    for key, boxes, scores, thresh in rec.nms_calls:
        n = boxes.shape[0]
        if n > 1:
            ious = box_iou(boxes.double(), boxes.double())
            iu = torch.triu_indices(n, n, 1)
            upd(key, float((ious[iu[0], iu[1]] - thresh).abs().min()))
            if key == "box_nms":
                s = scores.double().sort().values
                gaps = s[1:] - s[:-1]
                upd("score_gap", float(gaps.min()))
    return out


def run_case(model, image, case):
    params = dict(DEFAULTS)
    params.update(case["params"])
    kwargs = {k: v for k, v in params.items() if k != "point_grids"}
    gen = SAM2AutomaticMaskGenerator(model, **kwargs)
    mf.set_bb_feat_sizes(gen.predictor, int(model.image_size))
    rec = AmgRecorder(gen)
    try:
        records = gen.generate(image)
    finally:
        rec.close()
    crop_boxes, layer_idxs = generate_crop_boxes(image.shape[:2], gen.crop_n_layers,
                                                 gen.crop_overlap_ratio)
    meta = {"name": case["name"], "params": params, "crop_boxes": crop_boxes,
            "layer_idxs": layer_idxs, "records": [json_record(r) for r in records],
            "margins": margins(gen, rec)}
    tensors = {}
    if case["prefilter"]:
        meta["batches"] = []
        for k, b in enumerate(rec.batches):
            names = []
            for key in ("iou_preds", "stability_score", "low_res_masks"):
                name = f"{case['name']}/batch{k}/{key}"
                tensors[name] = b[key]
                names.append(name)
            meta["batches"].append({
                "crop": crop_boxes.index(b["crop_box"]),
                "points": [[float(x), float(y)] for x, y in b["points"]],
                "masks_per_point": b["masks_per_point"], "decode": b["decode"],
                "kept": b["kept"], "tensors": names})
    return meta, tensors


def json_record(r):
    return {"segmentation": {"size": [int(v) for v in r["segmentation"]["size"]],
                             "counts": r["segmentation"]["counts"]},
            "area": int(r["area"]), "bbox": [float(v) for v in r["bbox"]],
            "predicted_iou": float(r["predicted_iou"]),
            "point_coords": [[float(v) for v in p] for p in r["point_coords"]],
            "stability_score": float(r["stability_score"]),
            "crop_box": [float(v) for v in r["crop_box"]]}


def dump_json(doc):
    """Indented JSON with every list of plain values on one line (counts, points, boxes)."""
    text = json.dumps(doc, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text) + "\n"


def check_margins(model_name, meta):
    fragile = []
    for key, lo in MIN_MARGIN.items():
        v = meta["margins"][key]
        if v is not None and v < lo:
            fragile.append(f"{key} margin {v:.3g} < {lo:g}")
    if fragile:
        raise SystemExit(f"{model_name}/{meta['name']}: fragile fixture: {'; '.join(fragile)}")


def generate_model(spec, out_root):
    name = spec["name"]
    model_dir = FIXTURES / name
    mf.use_config_dir(model_dir)
    torch.manual_seed(0)
    model = build_sam2("config.yaml", ckpt_path=str(model_dir / "model.pt"), device="cpu")
    image = np.array(Image.open(model_dir / "image_a.png").convert("RGB"))
    h, w = image.shape[:2]
    cases, tensors, summary = [], {}, {}
    for case in spec["cases"]:
        t0 = time.perf_counter()
        meta, t = run_case(model, image, case)
        check_margins(name, meta)
        cases.append(meta)
        tensors.update(t)
        summary[case["name"]] = {"records": len(meta["records"]),
                                 "batches": len(meta.get("batches", [])),
                                 "margins": {k: (None if v is None else float(f"{v:.3g}"))
                                             for k, v in meta["margins"].items()},
                                 "seconds": round(time.perf_counter() - t0, 1)}
    out_dir = out_root / name / "amg"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if tensors:
        save_file(tensors, str(out_dir / "expected.safetensors"), metadata=SAFETENSORS_METADATA)
        os.chmod(out_dir / "expected.safetensors", 0o644)
    doc = {"format_version": FORMAT_VERSION, "model": name, "image_size": int(model.image_size),
           "reference": reference_versions(),
           "image": {"png": "../image_a.png", "width": w, "height": h},
           "cases": cases}
    (out_dir / "cases.json").write_text(dump_json(doc))
    return summary


def reference_versions():
    return {"sam2": "1.1.0", "torch": torch.__version__.split("+")[0],
            "pycocotools": importlib.metadata.version("pycocotools"), "threads": mf.THREADS,
            "device": "cpu"}


# ---------------------------------------------------------------------------------------------
# Label fixtures (pycocotools)
# ---------------------------------------------------------------------------------------------

def label_masks():
    """Synthetic masks: (name, uint8 [H, W] mask, stored in masks.safetensors)."""
    def disc(h, w, cx, cy, r):
        yy, xx = np.mgrid[0:h, 0:w]
        return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r

    g = np.random.default_rng(7)
    ring = disc(40, 50, 24, 20, 17) & ~disc(40, 50, 22, 19, 7)
    blobs = np.zeros((30, 41), bool)
    blobs[3:12, 4:15] = True
    blobs[12:20, 15:22] = True          # touches the first blob diagonally only
    blobs[22:28, 30:39] = True
    blobs[24:26, 33:36] = False         # a hole
    checker = (np.add.outer(np.arange(9), np.arange(8)) % 2).astype(bool)
    big = np.zeros((600, 700), bool)
    big[100:550, 50:690] = True
    big[300:310, :] = False
    full_big = np.ones((1200, 1100), bool)  # counts > 2^20: multi-character runs
    masks = [
        ("empty", np.zeros((5, 7), bool), True),
        ("full", np.ones((4, 3), bool), True),
        ("pixel", np.pad(np.ones((1, 1), bool), ((2, 3), (4, 1))), True),
        ("one_by_one_set", np.ones((1, 1), bool), True),
        ("row", np.array([[0, 1, 1, 0, 1, 1, 1, 0, 0, 1]], bool), True),
        ("ring", ring, True),
        ("blobs", blobs, True),
        ("checker", checker, True),
        ("noise", g.random((17, 31)) < 0.4, True),
        ("big", big, False),
        ("full_big", full_big, False),
    ]
    return [(n, m.astype(np.uint8), s) for n, m, s in masks]


def generate_labels(out_root):
    out_dir = out_root / "labels"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    entries, tensors = [], {}
    for name, mask, stored in label_masks():
        h, w = mask.shape
        rle = mask_utils.encode(np.asfortranarray(mask))
        uncompressed = mask_to_rle_pytorch(torch.from_numpy(mask.astype(bool))[None])[0]
        back = mask_utils.decode(mask_utils.frPyObjects(uncompressed, h, w))
        assert np.array_equal(back, mask), name
        entries.append({"name": name, "height": h, "width": w, "stored": stored,
                        "uncompressed": [int(c) for c in uncompressed["counts"]],
                        "counts": rle["counts"].decode("ascii"),
                        "area": int(mask_utils.area(rle)),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
        if stored:
            tensors[name] = torch.from_numpy(mask.copy())
    save_file(tensors, str(out_dir / "masks.safetensors"), metadata=SAFETENSORS_METADATA)
    os.chmod(out_dir / "masks.safetensors", 0o644)
    doc = {"format_version": FORMAT_VERSION,
           "pycocotools": importlib.metadata.version("pycocotools"), "masks": entries}
    (out_dir / "coco_rle.json").write_text(dump_json(doc))
    return {"masks": len(entries)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="root of the fixtures (default: tests/fixtures)")
    ap.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    args = ap.parse_args()
    mf.setup_torch()
    warnings.filterwarnings("ignore", message=".*cannot import name '_C'.*")
    sam2_misc.get_connected_components = emulated_connected_components
    out_root = args.out.resolve()
    wanted = None if args.models is None else set(args.models.split(","))
    t0 = time.perf_counter()
    report = {"labels": generate_labels(out_root)}
    for spec in MODELS:
        if wanted is None or spec["name"] in wanted:
            report[spec["name"]] = generate_model(spec, out_root)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
