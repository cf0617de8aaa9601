#!/usr/bin/env python3
"""Full-size video parity check of the `sam2 track` CLI against Meta's reference (local, not CI).

Runs Meta's `SAM2VideoPredictor` (random-weight SAM 2.1 tiny at 1024 px, written by
`make_fixtures.py --full`) on an 8-frame 320x240 synthetic video with two objects (object 1: a
positive point on frame 0, object 2: a box on frame 0), tracking forward from frame 0, and saves
under OUT_DIR/ref/: `{frame:05d}_{obj}.npy` (low-res logits [256, 256], float32),
`{frame:05d}_{obj}.png` (the yielded video-resolution mask thresholded at 0, 255 = object) and
`scores.json` (same layout as the CLI's). With `--ours BIN` it then runs

    BIN track --weights CKPT --frames OUT_DIR/frames --prompt 0:1:point:X,Y,1
        --prompt 0:2:box:X0,Y0,X1,Y1 --no-fill-holes --save-logits --device DEV --out OUT_DIR/ours

and prints per frame the max |logit difference|, the mask pixels that differ at video resolution
and the object-score differences, then one JSON summary line.

    tools/reference/.venv/bin/python tools/reference/check_full_video.py [--ours BIN]
        [--device cpu|gpu] [--full-dir DIR] [--reuse-ref]

The reference runs on CPU with 2 threads (about 1-2 min); --reuse-ref keeps an existing ref/
made with the same settings. Hole filling is off on both sides (the CPU reference cannot do it).

With the random weights the object score barely depends on the input: on this video the tracked
frames (1-7) all get scores of about -0.02..-0.04, so their logits are all -1024 on both sides and
only the scores and frame 0 say much. `--obj-score-bias B` (e.g. 0.06) writes a copy of the
checkpoint with B added to the object-score head's last bias
(`sam_mask_decoder.pred_obj_score_head.layers.2.bias`) to OUT_DIR/ and runs both sides on it,
so that the tracked masks are real.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import make_video_fixtures as mv  # noqa: E402
from hydra import initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from sam2.build_sam import build_sam2_video_predictor  # noqa: E402

WIDTH, HEIGHT, FRAMES = 320, 240, 8
# the fixture scene scaled x2: the disc (centre (20, 38), r 13 on frame 0) and the square
# [72, 96) x [72, 96)
POINT = (40.0, 76.0)
BOX = (140.0, 140.0, 196.0, 196.0)
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def setup(threads):
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_grad_enabled(False)


def write_frames(frames_dir):
    frames_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, f in enumerate(mv.scaled_video(WIDTH, HEIGHT, FRAMES)):
        p = frames_dir / f"{t:05d}.png"
        Image.fromarray(f).save(p, format="PNG")
        paths.append(p)
    return paths


def settings(ckpt):
    st = Path(ckpt).stat()
    return {"checkpoint": str(Path(ckpt).resolve()), "ckpt_size": st.st_size,
            "ckpt_mtime": int(st.st_mtime), "config": CONFIG, "width": WIDTH, "height": HEIGHT,
            "frames": FRAMES, "point": POINT, "box": BOX, "generator": 1}


OBJ_SCORE_BIAS_KEY = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"


def biased_checkpoint(ckpt, bias, out_dir):
    """A copy of CKPT with `bias` added to the object-score head's output bias."""
    path = out_dir / f"{Path(ckpt).stem}_objbias{bias:+g}.pt"
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    sd[OBJ_SCORE_BIAS_KEY] = sd[OBJ_SCORE_BIAS_KEY] + bias
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model": sd}, path)
    return path


def run_reference(ckpt, frame_paths, ref_dir, threads):
    setup(threads)
    GlobalHydra.instance().clear()
    initialize_config_module("sam2", version_base="1.2")
    predictor = build_sam2_video_predictor(CONFIG, ckpt_path=str(ckpt), device="cpu")
    mv.upcast_memory_at_attention(predictor)
    mv.video_predictor_module.load_video_frames = mv.frame_loader(frame_paths)
    t0 = time.perf_counter()
    state = predictor.init_state(video_path=str(frame_paths[0].parent))
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[list(POINT)],
                                    labels=[1])
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=2, box=list(BOX))
    ref_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for frame_idx, obj_ids, video_res in predictor.propagate_in_video(state):
        scores = {}
        for i, obj in enumerate(obj_ids):
            d = state["output_dict_per_obj"][state["obj_id_to_idx"][obj]]
            out = d["cond_frame_outputs"].get(frame_idx) or d["non_cond_frame_outputs"][frame_idx]
            low = out["pred_masks"][0, 0].float().numpy()
            np.save(ref_dir / f"{frame_idx:05d}_{obj}.npy", low.astype(np.float32))
            mask = (video_res[i, 0] > 0).numpy().astype(np.uint8) * 255
            Image.fromarray(mask).save(ref_dir / f"{frame_idx:05d}_{obj}.png", format="PNG")
            scores[str(obj)] = float(out["object_score_logits"].reshape(-1)[0])
        frames.append({"frame": int(frame_idx), "scores": scores})
        print(f"reference frame {frame_idx}: " + ", ".join(
            f"obj {o} score {s:+.3f}" for o, s in scores.items()), flush=True)
    seconds = time.perf_counter() - t0
    (ref_dir / "scores.json").write_text(json.dumps(
        {"objects": list(state["obj_ids"]), "frames": frames}, indent=1) + "\n")
    return seconds


def run_ours(binary, ckpt, frames_dir, out_dir, device):
    cmd = [binary, "track", "--weights", str(ckpt), "--frames", str(frames_dir),
           "--prompt", f"0:1:point:{POINT[0]:g},{POINT[1]:g},1",
           "--prompt", "0:2:box:" + ",".join(f"{v:g}" for v in BOX),
           "--no-fill-holes", "--save-logits", "--device", device, "--out", str(out_dir)]
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def compare(ref_dir, ours_dir):
    ref = json.loads((ref_dir / "scores.json").read_text())
    ours = json.loads((ours_dir / "scores.json").read_text())
    ours_frames = {f["frame"]: f["scores"] for f in ours["frames"]}
    rows, worst_logit, worst_score, total_px, differing_px, sign_flips = [], 0.0, 0.0, 0, 0, 0
    missing = []
    print(f"{'frame':>5} {'obj':>3} {'max|dlogit|':>12} {'mask px diff':>12} "
          f"{'ref score':>10} {'our score':>10} {'|dscore|':>9}")
    for fr in ref["frames"]:
        f = fr["frame"]
        for obj, rs in fr["scores"].items():
            stem = f"{f:05d}_{obj}"
            os_ = ours_frames.get(f, {}).get(obj)
            if os_ is None or not (ours_dir / f"{stem}.npy").exists():
                missing.append(stem)
                continue
            a = np.load(ref_dir / f"{stem}.npy")
            b = np.load(ours_dir / f"{stem}.npy")
            if a.shape != b.shape:
                raise SystemExit(f"{stem}: shape {b.shape} != reference {a.shape}")
            dl = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
            ma = np.array(Image.open(ref_dir / f"{stem}.png")) > 127
            mb = np.array(Image.open(ours_dir / f"{stem}.png").convert("L")) > 127
            px = int((ma != mb).sum())
            os_ = float("nan") if os_ is None else float(os_)
            ds = abs(os_ - rs)
            sign_flips += int((os_ > 0) != (rs > 0))
            worst_logit, worst_score = max(worst_logit, dl), max(worst_score, ds)
            total_px += ma.size
            differing_px += px
            print(f"{f:5d} {obj:>3} {dl:12.3e} {px:12d} {rs:+10.4f} {os_:+10.4f} {ds:9.2e}")
            rows.append(stem)
    return {"compared": len(rows), "missing": missing, "max_logit_diff": worst_logit,
            "max_score_diff": worst_score, "mask_pixels_differing": differing_px,
            "mask_pixel_fraction": differing_px / max(total_px, 1),
            "score_sign_mismatches": sign_flips}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full-dir", type=Path, default=HERE / "out" / "full")
    ap.add_argument("--weights", type=Path, default=None,
                    help="default: FULL_DIR/sam2.1_hiera_tiny.pt")
    ap.add_argument("--out", type=Path, default=None, help="default: FULL_DIR/video")
    ap.add_argument("--ours", default=None, help="our `sam2` binary; without it only the "
                                                 "reference side runs")
    ap.add_argument("--device", default="cpu", help="passed to `sam2 track --device`")
    ap.add_argument("--threads", type=int, default=2, help="reference torch threads")
    ap.add_argument("--reuse-ref", action="store_true",
                    help="keep OUT/ref if it was made with the same settings")
    ap.add_argument("--obj-score-bias", type=float, default=None, metavar="B",
                    help="run both sides on a copy of the checkpoint with B added to the "
                         "object-score head's bias (see above)")
    args = ap.parse_args()
    ckpt = args.weights or args.full_dir / "sam2.1_hiera_tiny.pt"
    if not ckpt.exists():
        raise SystemExit(f"{ckpt} missing: run make_fixtures.py --full first")
    out = args.out or args.full_dir / "video"
    if args.obj_score_bias is not None:
        ckpt = biased_checkpoint(ckpt, args.obj_score_bias, out)
        out = out / f"objbias{args.obj_score_bias:+g}"
    frames_dir, ref_dir = out / "frames", out / "ref"
    frame_paths = write_frames(frames_dir)
    want = settings(ckpt)
    meta_path = ref_dir / "settings.json"
    ref_seconds = None
    if args.reuse_ref and meta_path.exists() and json.loads(meta_path.read_text()) == \
            json.loads(json.dumps(want)):
        print(f"reusing {ref_dir}")
    else:
        ref_seconds = run_reference(ckpt, frame_paths, ref_dir, args.threads)
        meta_path.write_text(json.dumps(want, indent=1) + "\n")
        print(f"reference: {ref_seconds:.1f} s for {FRAMES} frames x 2 objects "
              f"({args.threads} threads)")
    summary = {"frames": FRAMES, "objects": [1, 2], "video_hw": [HEIGHT, WIDTH],
               "reference_s": None if ref_seconds is None else round(ref_seconds, 2)}
    if args.ours:
        ours_dir = out / "ours"
        if ours_dir.exists():
            for p in ours_dir.iterdir():
                p.unlink()
        ours_seconds = run_ours(args.ours, ckpt, frames_dir, ours_dir, args.device)
        summary.update(compare(ref_dir, ours_dir))
        summary.update({"device": args.device, "ours_s": round(ours_seconds, 2)})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
