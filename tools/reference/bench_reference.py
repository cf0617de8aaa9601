#!/usr/bin/env python3
"""Time Meta's reference SAM 2 on CPU (image predictor, video predictor, automatic mask
generator) for speed ratios against the Rust port.

    python tools/reference/bench_reference.py --weights CKPT --image PNG [--threads 2] [--repeat N]
                                              [--config CONFIG]
    python tools/reference/bench_reference.py --video --weights CKPT [--frames 8]
                                              [--size 640x480] [--objects 1,3,10] [--threads 2]
    python tools/reference/bench_reference.py --everything --weights CKPT --image PNG
                                              [--points-per-side 32] [--points-per-batch 64]
                                              [--threads 2] [--repeat N]

CKPT is an official-layout checkpoint ({"model": state_dict}), e.g. one written by
make_fixtures.py. The Hydra config is, in this order: --config (a .yaml path, or a config name
inside the sam2 package such as configs/sam2.1/sam2.1_hiera_t.yaml); a config.yaml next to CKPT
(the fixture folders have one); else Meta's config that matches the checkpoint's keys (size from
the patch-embed width and block count, 2.0 vs 2.1 from `no_obj_embed_spatial`).

Times `set_image` and `predict` (one positive point at the image centre, multimask output, the
predictor's defaults) after one warm-up call of each, and prints one JSON line:
{"set_image_s": median, "predict_s": median, "threads": n, ...}.

--video times `SAM2VideoPredictor.propagate_in_video` instead: a video of F frames (the PNGs of
--frames-dir, or make_video_fixtures.scaled_video: the fixture scene at --size; Meta's frame
preprocessing),
for each object count N of --objects a fresh inference state with N objects, each a positive
point on frame 0 (points on a grid), then one forward propagation from frame 0. Every yield is
timed (frame 0 is the prompted frame: only its memory encoding runs, in the preflight); prints
one JSON line per N: {"objects": N, "per_frame_s": median over frames 2.. (the first two yielded
frames are warm-up), "total_s": the whole propagation, "frames": F, "threads": n, ...}. Meta's
`init_state` (frame loading, frame-0 features) and the prompts are not timed.

--everything times `SAM2AutomaticMaskGenerator.generate` (Meta's default thresholds and crop
settings, --points-per-side and --points-per-batch) after a warm-up (one set_image, one
predict), --repeat times, and how long the encoder (`set_image`) and the decoder (the prompt
encoder and mask decoder modules, as `decode_points_async` covers them on our side) took within
each call; prints one JSON line: {"everything_s", "set_image_s", "decoder_s": medians,
"masks": records of the last call, ...}.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # Meta's video loop uses tqdm

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


def grid_points(n, w, h):
    """n points on a regular grid over the frame (cells of a ceil(sqrt(n))-wide grid)."""
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    return [[(0.5 + i % cols) * w / cols, (0.5 + i // cols) * h / rows] for i in range(n)]


def bench_video(args):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_video_fixtures as mv
    from sam2.build_sam import build_sam2_video_predictor

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    w, h = (int(v) for v in args.size.lower().split("x"))
    config = resolve_config(args)
    predictor = build_sam2_video_predictor(config, ckpt_path=args.weights, device="cpu")
    mv.upcast_memory_at_attention(predictor)
    with tempfile.TemporaryDirectory() as tmp:
        if args.frames_dir:
            paths = sorted(Path(args.frames_dir).glob("*.png"))[:args.frames]
            if len(paths) != args.frames:
                raise SystemExit(f"--frames-dir {args.frames_dir}: {len(paths)} PNGs, "
                                 f"expected {args.frames}")
            w, h = Image.open(paths[0]).size
        else:
            paths = []
            for t, f in enumerate(mv.scaled_video(w, h, args.frames)):
                p = Path(tmp) / f"{t:05d}.png"
                Image.fromarray(f).save(p, format="PNG")
                paths.append(p)
        mv.video_predictor_module.load_video_frames = mv.frame_loader(paths)
        for n in (int(v) for v in args.objects.split(",")):
            state = predictor.init_state(video_path=tmp)
            for i, pt in enumerate(grid_points(n, w, h)):
                predictor.add_new_points_or_box(state, frame_idx=0, obj_id=i + 1,
                                                points=[pt], labels=[1])
            times = []
            t_start = t0 = time.perf_counter()
            for _ in predictor.propagate_in_video(state):
                t1 = time.perf_counter()
                times.append(t1 - t0)
                t0 = t1
            total = time.perf_counter() - t_start
            timed = times[2:] or times
            print(json.dumps({
                "objects": n,
                "per_frame_s": round(statistics.median(timed), 4),
                "total_s": round(total, 3),
                "frames": args.frames,
                "frame_times_s": [round(x, 4) for x in times],
                "threads": args.threads,
                "config": config,
                "image_size": int(predictor.image_size),
                "video_hw": [h, w],
                "torch": torch.__version__.split("+")[0],
            }), flush=True)
            del state
    return 0


def bench_everything(args):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    config = resolve_config(args)
    model = build_sam2(config, ckpt_path=args.weights, device="cpu", mode="eval")
    s = int(model.image_size)
    generator = SAM2AutomaticMaskGenerator(model, points_per_side=args.points_per_side,
                                           points_per_batch=args.points_per_batch)
    predictor = generator.predictor
    # hard-coded for 1024 in Meta's predictor
    predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    spent = {"set_image": 0.0, "decoder": 0.0}

    def timed(key, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t0
        return wrapper

    predictor.set_image = timed("set_image", predictor.set_image)
    model.sam_prompt_encoder.forward = timed("decoder", model.sam_prompt_encoder.forward)
    model.sam_mask_decoder.forward = timed("decoder", model.sam_mask_decoder.forward)

    image = np.array(Image.open(args.image).convert("RGB"))
    h, w = image.shape[:2]
    predictor.set_image(image)  # warm-up
    predictor.predict(point_coords=np.array([[w / 2.0, h / 2.0]], dtype=np.float32),
                      point_labels=np.array([1]), multimask_output=True)
    totals, encoder, decoder, masks = [], [], [], 0
    for _ in range(args.repeat):
        spent.update(set_image=0.0, decoder=0.0)
        t0 = time.perf_counter()
        masks = len(generator.generate(image))
        totals.append(time.perf_counter() - t0)
        encoder.append(spent["set_image"])
        decoder.append(spent["decoder"])

    print(json.dumps({
        "everything_s": round(statistics.median(totals), 4),
        "set_image_s": round(statistics.median(encoder), 4),
        "decoder_s": round(statistics.median(decoder), 4),
        "masks": masks,
        "points_per_side": args.points_per_side,
        "points_per_batch": args.points_per_batch,
        "threads": args.threads,
        "repeat": args.repeat,
        "config": config,
        "image_size": s,
        "image_hw": [h, w],
        "torch": torch.__version__.split("+")[0],
    }), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description="Time Meta's SAM 2 image or video predictor on CPU.")
    ap.add_argument("--weights", required=True, help="checkpoint, {'model': state_dict}")
    ap.add_argument("--image", default=None, help="RGB image (PNG, JPEG); image mode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="timed calls of each (median)")
    ap.add_argument("--config", default=None, help="override the Hydra config (see above)")
    ap.add_argument("--video", action="store_true", help="time propagate_in_video instead")
    ap.add_argument("--frames", type=int, default=8, help="video mode: number of frames")
    ap.add_argument("--size", default="640x480", help="video mode: frame WxH")
    ap.add_argument("--frames-dir", default=None,
                    help="video mode: take the frames from the PNGs in this folder (sorted by "
                         "name) instead of the synthetic scene")
    ap.add_argument("--objects", default="1,3,10",
                    help="video mode: comma-separated object counts, one run each")
    ap.add_argument("--everything", action="store_true",
                    help="time SAM2AutomaticMaskGenerator.generate on --image instead")
    ap.add_argument("--points-per-side", type=int, default=32, help="everything mode")
    ap.add_argument("--points-per-batch", type=int, default=64, help="everything mode")
    args = ap.parse_args()
    if args.video:
        return bench_video(args)
    if args.image is None:
        ap.error("--image is required (or --video)")
    if args.everything:
        return bench_everything(args)

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
