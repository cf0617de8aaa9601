#!/usr/bin/env python3
"""Full-size parity check of the `sam2` CLI against Meta's reference (local, not in CI).

Runs `sam2 predict` on every case of the full-size fixtures written by
`make_fixtures.py --full` (random-weight SAM 2.1 tiny and base+ at 1024 px), loading the
checkpoint with no --config (so the preset is detected from the file), and prints the max abs
difference of the low-res logits and scores and the share of mask pixels that differ.

    tools/reference/.venv/bin/python tools/reference/check_full.py [--full-dir DIR]
        [--sam2 PATH_TO_sam2_BINARY] [--devices cpu,gpu] [--models sam2.1_hiera_tiny,...]

Needs only numpy and safetensors (both in the reference venv).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def cli_args(case):
    args = []
    for (x, y), label in zip(case.get("point_coords") or [], case.get("point_labels") or []):
        args += ["--point", f"{x},{y},{label}"]
    for box in case.get("box") or []:
        args += ["--box", ",".join(str(v) for v in box)]
    if case["multimask_output"]:
        args.append("--multimask")
    return args


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full-dir", default=here / "out" / "full", type=Path)
    ap.add_argument("--sam2", default=None, help="the sam2 binary (default: cargo's release build)")
    ap.add_argument("--devices", default="cpu,gpu")
    ap.add_argument("--models", default=None, help="comma-separated model folder names (default: all)")
    args = ap.parse_args()
    sam2 = args.sam2 or str(Path.home() / ".cache/sam2-webgpu/target/release/sam2")

    worst = 0.0
    wanted = args.models.split(",") if args.models else None
    for model_dir in sorted(p for p in args.full_dir.iterdir() if (p / "cases.json").exists()):
        if wanted and model_dir.name not in wanted:
            continue
        spec = json.loads((model_dir / "cases.json").read_text())
        expected = load_file(str(model_dir / "expected.safetensors"))
        for device in args.devices.split(","):
            for case in spec["cases"]:
                image = next(i for i in spec["images"] if i["id"] == case["image"])
                with tempfile.TemporaryDirectory() as out:
                    cmd = [sam2, "predict", "--weights", str(model_dir / "model.pt"),
                           "--image", str(model_dir / image["png"]), "--device", device,
                           "--out", out] + cli_args(case)
                    t0 = time.time()
                    subprocess.run(cmd, check=True, capture_output=True)
                    elapsed = time.time() - t0
                    low = np.load(Path(out) / "low_res_logits.npy")
                    scores = np.load(Path(out) / "scores.npy")
                    masks = np.load(Path(out) / "masks.npy")
                name = case["name"]
                ref_low = expected[f"{name}/low_res_masks"]
                ref_scores = expected[f"{name}/iou_predictions"]
                if ref_low.shape[0] == 1:
                    ref_low, ref_scores = ref_low[0], ref_scores[0]
                d_low = float(np.abs(low - ref_low).max())
                d_scores = float(np.abs(scores - ref_scores).max())
                line = f"{model_dir.name} [{device}] {name}: low-res logits {d_low:.2e}, scores {d_scores:.2e}"
                if f"{name}/masks_logits" in expected:
                    ref_masks = expected[f"{name}/masks_logits"][0] > 0
                    line += f", mask pixels differing {np.mean(masks.astype(bool) != ref_masks):.2e}"
                print(f"{line}  ({elapsed:.1f}s incl. load)", flush=True)
                worst = max(worst, d_low, d_scores)
    print(f"worst max abs diff: {worst:.2e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
