#!/usr/bin/env python3
"""Time Meta's reference SAM 2 image predictor on CPU (for speed ratios against the Rust port).

    python tools/reference/bench_reference.py --weights CKPT --image PNG [--threads 2] [--repeat N]
                                              [--config CONFIG]

CKPT is an official-layout checkpoint ({"model": state_dict}), e.g. one written by
make_fixtures.py. The Hydra config is, in this order: --config (a .yaml path, or a config name
inside the sam2 package such as configs/sam2.1/sam2.1_hiera_t.yaml); a config.yaml next to CKPT
(the fixture folders have one); else Meta's config that matches the checkpoint's keys (size from
the patch-embed width and block count, 2.0 vs 2.1 from `no_obj_embed_spatial`).

Times `set_image` and `predict` (one positive point at the image centre, multimask output, the
predictor's defaults) after one warm-up call of each, and prints one JSON line:
{"set_image_s": median, "predict_s": median, "threads": n, ...}.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import sam2  # noqa: F401  (initialises Hydra with sam2's config module)
from hydra import initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

# (patch-embed width, number of Hiera blocks) -> Meta's size name
SIZES = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}


def detect_config(sd):
    embed = sd["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    blocks = {int(k.split(".")[3]) for k in sd if k.startswith("image_encoder.trunk.blocks.")}
    size = SIZES.get((embed, len(blocks)))
    if size is None:
        raise SystemExit(f"no Meta config for embed_dim {embed} with {len(blocks)} blocks; "
                         "pass --config")
    if "no_obj_embed_spatial" in sd:
        return f"configs/sam2.1/sam2.1_hiera_{size}.yaml"
    return f"configs/sam2/sam2_hiera_{size}.yaml"


def resolve_config(args):
    """Return the config name for build_sam2, with Hydra pointed at the right place."""
    GlobalHydra.instance().clear()
    ckpt = Path(args.weights)
    if args.config:
        p = Path(args.config)
        if p.suffix == ".yaml" and p.exists():
            initialize_config_dir(config_dir=str(p.resolve().parent), version_base="1.2")
            return p.name
        initialize_config_module("sam2", version_base="1.2")
        return args.config
    side = ckpt.resolve().parent / "config.yaml"
    if side.exists():
        initialize_config_dir(config_dir=str(side.parent), version_base="1.2")
        return side.name
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    initialize_config_module("sam2", version_base="1.2")
    return detect_config(sd)


def main():
    ap = argparse.ArgumentParser(description="Time Meta's SAM 2 image predictor on CPU.")
    ap.add_argument("--weights", required=True, help="checkpoint, {'model': state_dict}")
    ap.add_argument("--image", required=True, help="RGB image (PNG, JPEG)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="timed calls of each (median)")
    ap.add_argument("--config", default=None, help="override the Hydra config (see above)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    config = resolve_config(args)
    model = build_sam2(config, ckpt_path=args.weights, device="cpu", mode="eval")
    s = int(model.image_size)
    predictor = SAM2ImagePredictor(model)
    # hard-coded for 1024 in Meta's predictor
    predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]

    image = np.array(Image.open(args.image).convert("RGB"))
    h, w = image.shape[:2]
    point = np.array([[w / 2.0, h / 2.0]], dtype=np.float32)
    label = np.array([1])

    def run_predict():
        predictor.predict(point_coords=point, point_labels=label, multimask_output=True)

    predictor.set_image(image)  # warm-up
    run_predict()
    set_times, pred_times = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        predictor.set_image(image)
        set_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_predict()
        pred_times.append(time.perf_counter() - t0)

    print(json.dumps({
        "set_image_s": round(statistics.median(set_times), 5),
        "predict_s": round(statistics.median(pred_times), 5),
        "threads": args.threads,
        "repeat": args.repeat,
        "config": config,
        "image_size": s,
        "image_hw": [h, w],
        "torch": torch.__version__.split("+")[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
