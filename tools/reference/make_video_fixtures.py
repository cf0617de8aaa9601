#!/usr/bin/env python3
"""Video parity fixtures for the Rust port, produced by Meta's own `SAM2VideoPredictor`
(PyPI `sam2==1.1.0`) on CPU.

Uses the committed reduced checkpoints written by make_fixtures.py (never rebuilt or changed
here): `tests/fixtures/<model>/model.pt` + `config.yaml`, built with Meta's
`build_sam2_video_predictor(config, ckpt, device="cpu")` (default `apply_postprocessing=True`).
A synthetic 10-frame 160x120 video (PNG) is tracked through a list of scenarios, each a list of
predictor calls on one inference state; every per-frame, per-object result of the reference is
captured and written to `tests/fixtures/<model>/video/` (see README.md, section "Video").

Usage:
    python tools/reference/make_video_fixtures.py               # -> tests/fixtures/<model>/video/
    python tools/reference/make_video_fixtures.py --out DIR     # same layout under DIR
    python tools/reference/make_video_fixtures.py --no-f64      # skip the float64 cross-check

Fixtures are made by this script only, never by hand.
"""

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # Meta's loops use tqdm; keep the log readable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures"
FIXTURES = REPO / "tests" / "fixtures"

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import torch  # noqa: E402

import sam2  # noqa: E402,F401
import sam2.modeling.sam.transformer as sam_transformer  # noqa: E402
import sam2.sam2_video_predictor as video_predictor_module  # noqa: E402
from hydra import initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402
from sam2.utils.misc import _load_img_as_tensor  # noqa: E402

FORMAT_VERSION = 1
THREADS = 2
SAFETENSORS_METADATA = {"generator": f"tools/reference/make_video_fixtures.py format {FORMAT_VERSION}"}

# ---------------------------------------------------------------------------------------------
# What is generated
# ---------------------------------------------------------------------------------------------

# The committed reduced models (tests/fixtures/<name>/model.pt) and the scenarios run on each.
MODELS = [
    # None: all scenarios. `obj_score_head`: see OBJ_SCORE_HEAD below.
    {"name": "sam2.1_hiera_reduced", "scenarios": None,
     "obj_score_head": {"gain": 30.0, "shift": 0.33}},
    {"name": "sam2_hiera_reduced", "scenarios": None},
    {"name": "sam2.1_hiera_reduced_b", "scenarios": ["two_objects"]},
]

# With random weights the object score is dominated by its head's last bias and barely depends on
# the input, so an object is visible on every frame or on none. For a model with
# `obj_score_head`, the last layer of `sam_mask_decoder.pred_obj_score_head` is changed before
# anything runs (weight * gain, bias + shift) so that tracked objects go from visible to occluded
# (score <= 0: -1024 masks, no-object pointer and spatial embedding in memory) and back: with
# (30, 0.33) on sam2.1_hiera_reduced, the occlusion scenario's object is visible on frames 0 and
# 9 and occluded on 1-8. The two changed tensors are written to video/model_overrides.safetensors
# and scenarios.json names them; the model is model.pt with those two tensors replaced.
OBJ_SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"
OVERRIDES_FILE = "model_overrides.safetensors"

# The synthetic video (W x H, frame count). Same frames for every model.
VIDEO_W, VIDEO_H, NUM_FRAMES, VIDEO_SEED = 160, 120, 10, 21

# Moving objects (per frame), in video pixels.
DISC_R = 13.0                                                  # red disc, left -> right


def disc_center(t):
    return 20.0 + 13.0 * t, 38.0


RECT = (72, 72, 96, 96)                                        # green square, static [x0,y0,x1,y1)
# blue occluder bar (x centre per frame, 36 wide, y 62..108): fully covers the square on frames
# 5 and 6, partly on 4 and 7
OCCLUDER_CX = [152, 140, 126, 110, 94, 86, 82, 70, 54, 38]
OCCLUDER_HALF_W, OCCLUDER_Y = 18, (62, 108)
# yellow triangle (left x per frame, 16 wide, y 4..20): leaves through the right edge (fully out
# on frames 3-6) and comes back
TRIANGLE_X = [124, 136, 150, 166, 180, 180, 166, 150, 138, 126]
TRIANGLE_Y = (4, 20)

# Mask prompts (video/masks/<name>.png): name -> (frame, which object)
MASKS = {"disc_f02": (2, "disc")}

# Scenarios: ops applied in order on one inference state. Coordinates in video pixels
# (normalize_coords=True, the API default). `mask` names a PNG in video/masks/, passed to
# add_new_mask as a bool array (pixel > 127).
SCENARIOS = [
    {"name": "two_objects", "ops": [
        {"op": "add_new_points_or_box", "args": {"frame_idx": 0, "obj_id": 1,
                                                 "points": [[20.0, 38.0]], "labels": [1]}},
        {"op": "add_new_points_or_box", "args": {"frame_idx": 0, "obj_id": 2,
                                                 "box": [70.0, 70.0, 98.0, 98.0]}},
        {"op": "add_new_points_or_box", "args": {"frame_idx": 0, "obj_id": 1,
                                                 "points": [[45.0, 62.0]], "labels": [0],
                                                 "clear_old_points": False}},
        {"op": "propagate_in_video", "args": {}},
    ]},
    {"name": "mask_late_object_correction", "ops": [
        {"op": "add_new_mask", "args": {"frame_idx": 2, "obj_id": 1, "mask": "disc_f02"}},
        # an object first prompted on a later frame (frames 2-3 are tracked from its future
        # conditioning memory, with no object pointer at all)
        {"op": "add_new_points_or_box", "args": {"frame_idx": 4, "obj_id": 3,
                                                 "points": [[94.0, 104.0]], "labels": [1]}},
        {"op": "propagate_in_video", "args": {}},
        # correction click on an already tracked frame: a non-conditioning frame
        {"op": "add_new_points_or_box", "args": {"frame_idx": 6, "obj_id": 1,
                                                 "points": [[98.0, 38.0]], "labels": [1],
                                                 "clear_old_points": False}},
        # frame 7 on attends to the corrected frame-6 memory
        {"op": "propagate_in_video", "args": {"start_frame_idx": 7}},
        # from the default start (frame 2): frame 6 is re-run without its clicks
        {"op": "propagate_in_video", "args": {}},
    ]},
    {"name": "reverse", "ops": [
        {"op": "add_new_points_or_box", "args": {"frame_idx": 9, "obj_id": 1,
                                                 "points": [[137.0, 38.0]], "labels": [1]}},
        {"op": "add_new_points_or_box", "args": {"frame_idx": 7, "obj_id": 2,
                                                 "box": [70.0, 70.0, 98.0, 98.0]}},
        # explicit start: the default would be the earliest conditioning frame (7)
        {"op": "propagate_in_video", "args": {"start_frame_idx": 9, "reverse": True}},
        {"op": "propagate_in_video", "args": {"start_frame_idx": 5, "max_frame_num_to_track": 3}},
    ]},
    {"name": "remove_clear_reset", "ops": [
        {"op": "add_new_points_or_box", "args": {"frame_idx": 0, "obj_id": 1,
                                                 "points": [[20.0, 38.0]], "labels": [1]}},
        {"op": "add_new_points_or_box", "args": {"frame_idx": 0, "obj_id": 2,
                                                 "points": [[84.0, 84.0]], "labels": [1]}},
        {"op": "propagate_in_video", "args": {"max_frame_num_to_track": 4}},
        {"op": "add_new_points_or_box", "args": {"frame_idx": 3, "obj_id": 2,
                                                 "points": [[84.0, 84.0], [112.0, 84.0]],
                                                 "labels": [1, 0]}},
        {"op": "clear_all_prompts_in_frame", "args": {"frame_idx": 3, "obj_id": 2}},
        {"op": "remove_object", "args": {"obj_id": 1}},
        {"op": "propagate_in_video", "args": {}},
        {"op": "reset_state", "args": {}},
        {"op": "add_new_points_or_box", "args": {"frame_idx": 2, "obj_id": 5,
                                                 "box": [31.0, 23.0, 61.0, 53.0]}},
        {"op": "propagate_in_video", "args": {"max_frame_num_to_track": 3}},
    ]},
    {"name": "occlusion", "ops": [
        {"op": "add_new_points_or_box", "args": {"frame_idx": 0, "obj_id": 1,
                                                 "points": [[132.0, 14.0]], "labels": [1]}},
        {"op": "propagate_in_video", "args": {}},
    ]},
]

# Storage policy (keeps the three video folders under 5 MB; see README):
# - per-call `maskmem_features` only for these scenarios (`preflight_maskmem_features` always);
MASKMEM_SCENARIOS = ("two_objects",)
# - video-resolution masks of propagate ops (first and last yielded frame) only for these
#   scenarios (they are exactly the bilinear upsampling of the stored low-res pred_masks);
PROPAGATE_VIDEO_RES_SCENARIOS = ("two_objects",)
# - video-resolution masks of add_new_points_or_box / add_new_mask only for these scenarios
#   (those of clear_all_prompts_in_frame and remove_object always);
ADD_VIDEO_RES_SCENARIOS = ("two_objects", "mask_late_object_correction")
# - a pred_masks / video_res_masks tensor that is entirely NO_OBJ_SCORE (-1024: the object score
#   was <= 0) is not stored; the json says so ("pred_masks_all_no_obj", "all_no_obj").
NO_OBJ_SCORE = -1024.0

# Module-level captures: in this scenario, the first propagated non-conditioning frame of this
# object that attends to at least this many memory frames and object pointers.
MODULE_CAPTURE = {"scenario": "two_objects", "obj": 1, "min_memory_frames": 2, "min_obj_ptrs": 1}


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

def setup_torch():
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_grad_enabled(False)


def use_config_dir(path):
    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(Path(path).resolve()), version_base="1.2")


def hole_filling_available():
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


def build_predictor(model_dir, obj_score_head=None):
    """Meta's video builder on the committed checkpoint, with the object-score head changed as
    `obj_score_head` says (see OBJ_SCORE_HEAD), if given."""
    use_config_dir(model_dir)
    torch.manual_seed(0)
    predictor = build_sam2_video_predictor("config.yaml", ckpt_path=str(model_dir / "model.pt"),
                                           device="cpu")
    if obj_score_head is not None:
        sd = predictor.state_dict()
        sd[OBJ_SCORE_HEAD + ".weight"].mul_(obj_score_head["gain"])
        sd[OBJ_SCORE_HEAD + ".bias"].add_(obj_score_head["shift"])
    return predictor


def upcast_memory_at_attention(predictor):
    """The CPU bf16 fix (reference.md) for scripts that only time or compare outputs: the memory
    bank holds bfloat16 maskmem_features; when no float32 object pointer is concatenated to
    them, `memory` stays bfloat16 and the float32 attention fails on CPU. Upcasting (exact) to
    the dtype of `curr` fixes it. (Capture below does the same and records the call.)"""
    attn = predictor.memory_attention
    orig = attn.forward

    def forward(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        dt = curr[0].dtype if isinstance(curr, list) else curr.dtype
        return orig(curr=curr, memory=memory.to(dt), curr_pos=curr_pos,
                    memory_pos=memory_pos.to(dt), num_obj_ptr_tokens=num_obj_ptr_tokens)

    attn.forward = forward


def model_overrides(predictor):
    """The tensors that differ from model.pt (see OBJ_SCORE_HEAD)."""
    sd = predictor.state_dict()
    return {k: sd[k].detach().clone().contiguous() for k in
            (OBJ_SCORE_HEAD + ".weight", OBJ_SCORE_HEAD + ".bias")}


# ---------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------

def draw_frame(t, bg):
    img = bg.copy()
    yy, xx = np.mgrid[0:VIDEO_H, 0:VIDEO_W].astype(np.float64)
    # green square (drawn first: the occluder passes over it)
    x0, y0, x1, y1 = RECT
    img[y0:y1, x0:x1] = (40, 170, 70)
    # red disc
    cx, cy = disc_center(t)
    img[(xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= DISC_R ** 2] = (210, 40, 40)
    # blue occluder
    ox = OCCLUDER_CX[t]
    img[OCCLUDER_Y[0]:OCCLUDER_Y[1],
        max(ox - OCCLUDER_HALF_W, 0):min(ox + OCCLUDER_HALF_W, VIDEO_W)] = (50, 60, 210)
    # yellow triangle, apex up
    tri = triangle_mask(t, xx, yy)
    img[tri] = (235, 215, 30)
    return img


def triangle_mask(t, xx, yy):
    tx = TRIANGLE_X[t]
    ty0, ty1 = TRIANGLE_Y
    h = ty1 - ty0
    # rows ty0..ty1: half width grows from 0 at the apex to 8 at the base
    half = (yy + 0.5 - ty0) / h * 8.0
    return (yy >= ty0) & (yy < ty1) & (np.abs(xx + 0.5 - (tx + 8.0)) <= half)


def object_mask(t, which):
    yy, xx = np.mgrid[0:VIDEO_H, 0:VIDEO_W].astype(np.float64)
    if which == "disc":
        cx, cy = disc_center(t)
        return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= DISC_R ** 2
    raise ValueError(which)


def make_background():
    """Gradient + diagonal stripes + a smooth noise field: textured, deterministic, and small as
    PNG (no per-pixel noise)."""
    rs = np.random.RandomState(VIDEO_SEED)
    yy, xx = np.mgrid[0:VIDEO_H, 0:VIDEO_W].astype(np.float64)
    u, v = xx / (VIDEO_W - 1), yy / (VIDEO_H - 1)
    img = np.empty((VIDEO_H, VIDEO_W, 3), np.float64)
    img[..., 0] = 70 + 60 * u
    img[..., 1] = 90 + 50 * v
    img[..., 2] = 120 + 40 * np.sin(5.0 * u + 3.0 * v)
    # coarse noise (8x8 cells, upsampled by repetition)
    coarse = rs.normal(0.0, 12.0, (VIDEO_H // 8 + 1, VIDEO_W // 8 + 1, 3))
    img += np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:VIDEO_H, :VIDEO_W]
    # diagonal stripes, period 6, in the lower-left quarter
    st = (((xx + yy).astype(int) % 6) < 2) & (yy > 0.6 * VIDEO_H) & (xx < 0.4 * VIDEO_W)
    img[st] *= 0.6
    return img


def make_video():
    bg = make_background()
    frames = [np.clip(np.rint(draw_frame(t, bg)), 0, 255).astype(np.uint8)
              for t in range(NUM_FRAMES)]
    masks = {name: (object_mask(t, which) * 255).astype(np.uint8)
             for name, (t, which) in MASKS.items()}
    return frames, masks


def scaled_video(width, height, num_frames):
    """The fixture video's scene (same objects and motion, frame t uses the positions of frame
    t % 10) rendered at any size, by sampling the 160x120 scene at each pixel centre. For the
    full-size check and the benchmark (tools/reference/check_full_video.py,
    bench_reference.py --video); the committed fixtures use make_video()."""
    bg = make_background()
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    # pixel centres in the scene's coordinates (continuous), and the nearest scene pixel
    sx, sy = (xx + 0.5) * VIDEO_W / width - 0.5, (yy + 0.5) * VIDEO_H / height - 0.5
    ix = np.clip(np.rint(sx).astype(int), 0, VIDEO_W - 1)
    iy = np.clip(np.rint(sy).astype(int), 0, VIDEO_H - 1)
    base = bg[iy, ix]
    frames = []
    for n in range(num_frames):
        t = n % NUM_FRAMES
        img = base.copy()
        x0, y0, x1, y1 = RECT
        img[(sx + 0.5 >= x0) & (sx + 0.5 < x1) & (sy + 0.5 >= y0) & (sy + 0.5 < y1)] = (40, 170, 70)
        cx, cy = disc_center(t)
        img[(sx + 0.5 - cx) ** 2 + (sy + 0.5 - cy) ** 2 <= DISC_R ** 2] = (210, 40, 40)
        ox = OCCLUDER_CX[t]
        img[(np.abs(sx + 0.5 - ox) < OCCLUDER_HALF_W) & (sy + 0.5 >= OCCLUDER_Y[0])
            & (sy + 0.5 < OCCLUDER_Y[1])] = (50, 60, 210)
        img[triangle_mask(t, sx, sy)] = (235, 215, 30)
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return frames


def write_png(path, array, mode):
    Image.fromarray(array, mode=None).convert(mode).save(path, format="PNG", optimize=False)
    os.chmod(path, 0o644)


def write_video(video_dir, frames, masks):
    (video_dir / "frames").mkdir(parents=True)
    (video_dir / "masks").mkdir(parents=True)
    names = []
    for t, f in enumerate(frames):
        name = f"frames/{t:05d}.png"
        write_png(video_dir / name, f, "RGB")
        names.append(name)
    for name, m in masks.items():
        write_png(video_dir / "masks" / f"{name}.png", m, "L")
    # the PNGs read back exactly
    for t, f in enumerate(frames):
        assert np.array_equal(np.array(Image.open(video_dir / names[t])), f)
    return names


def frame_loader(frame_paths):
    """Stands in for Meta's `load_video_frames` (which only lists .jpg files): the same code as
    its synchronous JPEG-folder path (`load_video_frames_from_jpg_images`), on our PNGs: Meta's
    `_load_img_as_tensor` (PIL RGB, `.resize((S, S))` = Pillow's default bicubic on uint8,
    `/ 255.0` in float64), stored into a float32 tensor, then `-= mean`, `/= std` in float32."""

    def load_video_frames(video_path, image_size, offload_video_to_cpu,
                          img_mean=(0.485, 0.456, 0.406), img_std=(0.229, 0.224, 0.225),
                          async_loading_frames=False, compute_device=torch.device("cpu")):
        assert not async_loading_frames
        img_mean = torch.tensor(img_mean, dtype=torch.float32)[:, None, None]
        img_std = torch.tensor(img_std, dtype=torch.float32)[:, None, None]
        images = torch.zeros(len(frame_paths), 3, image_size, image_size, dtype=torch.float32)
        video_height = video_width = None
        for n, p in enumerate(frame_paths):
            images[n], video_height, video_width = _load_img_as_tensor(str(p), image_size)
        images -= img_mean
        images /= img_std
        return images, video_height, video_width

    return load_video_frames


# ---------------------------------------------------------------------------------------------
# Capturing Meta's calls
# ---------------------------------------------------------------------------------------------

class Capture:
    """Wraps the predictor's per-frame inference and memory-encoder calls and hooks the memory
    attention / memory encoder modules. Tensors are stored under
    `{scenario}/{op:02d}/f{frame:03d}/o{obj}/{name}`."""

    def __init__(self, predictor, keep_dtype=False):
        self.p = predictor
        self.keep_dtype = keep_dtype
        self.tensors = {}
        self.scenario = None
        self.op = None
        self.state = None
        self.calls = None           # list of call records of the current op
        self.current = None         # call record of the running _run_single_frame_inference
        self.module_meta = None
        self.op_name = None
        self.video_hw = None        # (video_height, video_width) the predictor read
        self._wrap()

    def t(self, x):
        x = x.detach()
        if not self.keep_dtype or x.dtype == torch.bfloat16:
            x = x.to(torch.float32)
        return x.contiguous().clone()

    def put(self, key, x):
        assert key not in self.tensors, f"captured twice: {key}"
        self.tensors[key] = self.t(x)

    def prefix(self, frame, obj):
        return f"{self.scenario}/{self.op:02d}/f{frame:03d}/o{obj}"

    def _obj_of_output_dict(self, state, output_dict):
        for obj_idx, d in state["output_dict_per_obj"].items():
            if d is output_dict:
                return state["obj_idx_to_id"][obj_idx]
        raise AssertionError("output_dict of no object")

    def _wrap(self):
        p = self.p
        cap = self
        orig_single = p._run_single_frame_inference
        orig_memenc = p._run_memory_encoder

        def run_single_frame_inference(inference_state, output_dict, frame_idx, batch_size,
                                       is_init_cond_frame, point_inputs, mask_inputs, reverse,
                                       run_mem_encoder, prev_sam_mask_logits=None):
            assert batch_size == 1
            obj = cap._obj_of_output_dict(inference_state, output_dict)
            rec = {"kind": "frame", "frame": frame_idx, "obj": obj,
                   "is_init_cond_frame": bool(is_init_cond_frame), "reverse": bool(reverse),
                   "run_mem_encoder": bool(run_mem_encoder),
                   "point_coords": None, "point_labels": None,
                   "mask_input": mask_inputs is not None,
                   "prev_mask_logits": prev_sam_mask_logits is not None,
                   "multimask": None, "memory_frames": 0, "obj_ptrs": 0,
                   "num_obj_ptr_tokens": 0}
            if point_inputs is not None:
                rec["point_coords"] = [[float(v) for v in xy]
                                       for xy in point_inputs["point_coords"][0].tolist()]
                rec["point_labels"] = [int(v) for v in point_inputs["point_labels"][0].tolist()]
            if mask_inputs is None:
                rec["multimask"] = bool(p._use_multimask(is_init_cond_frame, point_inputs))
            cap.current = rec
            try:
                out, pred_masks_gpu = orig_single(
                    inference_state=inference_state, output_dict=output_dict,
                    frame_idx=frame_idx, batch_size=batch_size,
                    is_init_cond_frame=is_init_cond_frame, point_inputs=point_inputs,
                    mask_inputs=mask_inputs, reverse=reverse, run_mem_encoder=run_mem_encoder,
                    prev_sam_mask_logits=prev_sam_mask_logits)
            finally:
                cap.current = None
            pre = cap.prefix(frame_idx, obj)
            names = ["pred_masks", "object_score_logits", "obj_ptr"]
            cap.put(f"{pre}/pred_masks", out["pred_masks"])
            cap.put(f"{pre}/object_score_logits", out["object_score_logits"])
            cap.put(f"{pre}/obj_ptr", out["obj_ptr"])
            if out["maskmem_features"] is not None:
                cap.put(f"{pre}/maskmem_features", out["maskmem_features"])
                names.append("maskmem_features")
            rec["object_score"] = float(out["object_score_logits"].reshape(-1)[0])
            rec["tensors"] = names
            cap.calls.append(rec)
            return out, pred_masks_gpu

        def run_memory_encoder(inference_state, frame_idx, batch_size, high_res_masks,
                               object_score_logits, is_mask_from_pts):
            assert batch_size == 1
            # the caller (propagate_in_video_preflight) passes out["object_score_logits"] of one
            # object's temporary output: find which by identity
            obj, storage = None, None
            for obj_idx, d in inference_state["temp_output_dict_per_obj"].items():
                for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
                    o = d[key].get(frame_idx)
                    if o is not None and o["object_score_logits"] is object_score_logits:
                        obj, storage = inference_state["obj_idx_to_id"][obj_idx], key
            assert obj is not None
            feats, pos = orig_memenc(inference_state=inference_state, frame_idx=frame_idx,
                                     batch_size=batch_size, high_res_masks=high_res_masks,
                                     object_score_logits=object_score_logits,
                                     is_mask_from_pts=is_mask_from_pts)
            names = ["preflight_maskmem_features"]
            cap.put(f"{cap.prefix(frame_idx, obj)}/preflight_maskmem_features", feats)
            cap.calls.append({"kind": "memory_encoder", "frame": frame_idx, "obj": obj,
                              "storage": storage, "is_mask_from_pts": bool(is_mask_from_pts),
                              "tensors": names})
            return feats, pos

        p._run_single_frame_inference = run_single_frame_inference
        p._run_memory_encoder = run_memory_encoder

        # CPU bf16 fix (reference.md): the memory bank holds bfloat16 maskmem_features; when no
        # float32 object pointer is concatenated to them, `memory` stays bfloat16 and the
        # float32 attention fails on CPU. Upcasting (exact) to the dtype of `curr` fixes it.
        mem_attn = p.memory_attention
        orig_attn = mem_attn.forward

        def memory_attention_forward(curr, memory, curr_pos=None, memory_pos=None,
                                     num_obj_ptr_tokens=0):
            dt = curr[0].dtype if isinstance(curr, list) else curr.dtype
            memory = memory.to(dt)
            memory_pos = memory_pos.to(dt)
            out = orig_attn(curr=curr, memory=memory, curr_pos=curr_pos, memory_pos=memory_pos,
                            num_obj_ptr_tokens=num_obj_ptr_tokens)
            rec = cap.current
            if rec is not None:
                c = curr[0] if isinstance(curr, list) else curr
                hw = c.shape[0]
                per_ptr = max(p.hidden_dim // p.mem_dim, 1)
                n_mem = memory.shape[0] - num_obj_ptr_tokens
                assert n_mem % hw == 0
                rec["memory_frames"] = n_mem // hw
                rec["num_obj_ptr_tokens"] = int(num_obj_ptr_tokens)
                rec["obj_ptrs"] = int(num_obj_ptr_tokens) // per_ptr
                want = MODULE_CAPTURE
                if (cap.module_meta is None and cap.scenario == want["scenario"]
                        and cap.op_name == "propagate_in_video" and rec["obj"] == want["obj"]
                        and not rec["is_init_cond_frame"]
                        and rec["memory_frames"] >= want["min_memory_frames"]
                        and rec["obj_ptrs"] >= want["min_obj_ptrs"]):
                    cap.module_meta = {"scenario": cap.scenario, "op": cap.op,
                                       "frame": rec["frame"], "obj": rec["obj"],
                                       "memory_frames": rec["memory_frames"],
                                       "obj_ptrs": rec["obj_ptrs"],
                                       "num_obj_ptr_tokens": int(num_obj_ptr_tokens),
                                       "memory_encoder_captured": False}
                    rec["module_capture"] = True
                    m = "module/memory_attention"
                    cap.put(f"{m}/curr", c)
                    cap.put(f"{m}/curr_pos", curr_pos[0] if isinstance(curr_pos, list)
                            else curr_pos)
                    cap.put(f"{m}/memory", memory)
                    cap.put(f"{m}/memory_pos", memory_pos)
                    cap.put(f"{m}/output", out)
            return out

        mem_attn.forward = memory_attention_forward

        def memory_encoder_hook(mod, args, kwargs, out):
            rec = cap.current
            if rec is None or not rec.get("module_capture"):
                return
            assert not cap.module_meta["memory_encoder_captured"]
            pix_feat, masks = args[0], args[1]
            assert kwargs.get("skip_mask_sigmoid") is True
            m = "module/memory_encoder"
            cap.put(f"{m}/pix_feat", pix_feat)
            cap.put(f"{m}/masks", masks)
            # the module's own output, before _encode_new_memory adds no_obj_embed_spatial
            # in place (hence the clone here)
            cap.put(f"{m}/vision_features", out["vision_features"])
            cap.put(f"{m}/vision_pos_enc", out["vision_pos_enc"][0])
            cap.module_meta["memory_encoder_captured"] = True

        p.memory_encoder.register_forward_hook(memory_encoder_hook, with_kwargs=True)



def video_res(cap, key, masks, frame_idx):
    cap.put(key, masks)
    return {"frame_idx": int(frame_idx), "shape": list(masks.shape), "key": key}


def run_scenario(predictor, cap, scenario, frames_dir, masks_dir):
    """Apply the scenario's ops on a fresh inference state; return its json record."""
    cap.scenario = scenario["name"]
    state = predictor.init_state(video_path=str(frames_dir))
    cap.state = state
    cap.video_hw = (int(state["video_height"]), int(state["video_width"]))
    ops_meta = []
    for i, op in enumerate(scenario["ops"]):
        cap.op, cap.op_name, cap.calls = i, op["op"], []
        name, args = op["op"], dict(op["args"])
        res = {}
        pre = f"{scenario['name']}/{i:02d}"
        if name == "add_new_points_or_box":
            kw = dict(args)
            frame_idx, obj_ids, masks = predictor.add_new_points_or_box(state, **kw)
            res = {"frame_idx": int(frame_idx), "obj_ids": list(obj_ids),
                   "video_res_masks": video_res(cap, f"{pre}/video_res_masks", masks, frame_idx)}
        elif name == "add_new_mask":
            png = np.array(Image.open(masks_dir / f"{args['mask']}.png"))
            kw = dict(args, mask=png > 127)
            frame_idx, obj_ids, masks = predictor.add_new_mask(state, **kw)
            res = {"frame_idx": int(frame_idx), "obj_ids": list(obj_ids),
                   "video_res_masks": video_res(cap, f"{pre}/video_res_masks", masks, frame_idx)}
        elif name == "propagate_in_video":
            yielded = []
            first = last = None
            for frame_idx, obj_ids, masks in predictor.propagate_in_video(state, **args):
                yielded.append({"frame_idx": int(frame_idx), "obj_ids": list(obj_ids)})
                if first is None:
                    first = (frame_idx, masks.clone())
                last = (frame_idx, masks.clone())
            recs = []
            if scenario["name"] in PROPAGATE_VIDEO_RES_SCENARIOS:
                for fi, m in ([first, last] if first[0] != last[0] else [first]):
                    recs.append(video_res(cap, f"{pre}/f{fi:03d}/video_res_masks", m, fi))
            res = {"frames": yielded, "video_res_masks": recs}
        elif name == "clear_all_prompts_in_frame":
            frame_idx, obj_ids, masks = predictor.clear_all_prompts_in_frame(state, **args)
            res = {"frame_idx": int(frame_idx), "obj_ids": list(obj_ids),
                   "video_res_masks": video_res(cap, f"{pre}/video_res_masks", masks, frame_idx)}
        elif name == "remove_object":
            obj_ids, updated = predictor.remove_object(state, **args)
            res = {"obj_ids": list(obj_ids), "updated_frames": []}
            for fi, m in updated:
                res["updated_frames"].append({
                    "frame_idx": int(fi),
                    "video_res_masks": video_res(cap, f"{pre}/f{fi:03d}/video_res_masks", m, fi)})
        elif name == "reset_state":
            predictor.reset_state(state)
            res = {"obj_ids": list(state["obj_ids"])}
        else:
            raise ValueError(name)
        ops_meta.append({"op": name, "args": op["args"], "result": res, "calls": cap.calls})
    cap.scenario = cap.op = cap.calls = cap.state = None
    return {"name": scenario["name"], "ops": ops_meta}


# ---------------------------------------------------------------------------------------------
# float64 cross-check
# ---------------------------------------------------------------------------------------------

def compute_axial_cis64(dim, end_x, end_y, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4, dtype=torch.float64)[: (dim // 4)] / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float64)
    t_x, t_y = t % end_x, torch.div(t, end_x, rounding_mode="floor")
    fx, fy = torch.outer(t_x, freqs), torch.outer(t_y, freqs)
    return torch.cat([torch.polar(torch.ones_like(fx), fx), torch.polar(torch.ones_like(fy), fy)],
                     dim=-1)


def apply_rotary_enc64(xq, xk, freqs_cis, repeat_freqs_k=False):
    """Meta's apply_rotary_enc without its `.float()` casts (complex128 throughout)."""
    end = int(round(xq.shape[-2] ** 0.5))
    freqs_cis = compute_axial_cis64(xq.shape[-1], end, end)
    xq_ = torch.view_as_complex(xq.double().reshape(*xq.shape[:-1], -1, 2))
    xk_ = (torch.view_as_complex(xk.double().reshape(*xk.shape[:-1], -1, 2))
           if xk.shape[-2] != 0 else None)
    shape = [d if i >= xq_.ndim - 2 else 1 for i, d in enumerate(xq_.shape)]
    freqs_cis = freqs_cis.view(*shape)
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
    if xk_ is None:
        return xq_out.type_as(xq), xk
    if repeat_freqs_k:
        r = xk_.shape[-2] // xq_.shape[-2]
        freqs_cis = freqs_cis.unsqueeze(2).expand(-1, -1, r, -1, -1).flatten(2, 3)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def reference_f32_error(model_dir, obj_score_head, scenario, frames_dir, masks_dir, tensors32):
    """Max |float32 - float64| of Meta's own code on one scenario: the same predictor with its
    weights cast to float64, every module's float32 inputs cast to float64, the prompt encoder's
    coordinate encoding and the memory-attention RoPE in float64. Kept as the reference does:
    the bfloat16 rounding of maskmem_features (stored as bf16, upcast to float64 at the
    attention) and Meta's explicit `.float()` of the low-res logits in `_forward_sam_heads`
    (so pred_masks are float32-rounded in both runs)."""
    predictor = build_predictor(model_dir, obj_score_head).double()

    def cast(x):
        if isinstance(x, torch.Tensor) and x.dtype == torch.float32:
            return x.double()
        if isinstance(x, (list, tuple)):
            return type(x)(cast(y) for y in x)
        if isinstance(x, dict):
            return {k: cast(v) for k, v in x.items()}
        return x

    for mod in predictor.modules():
        mod.register_forward_pre_hook(lambda m, a, k: (cast(a), cast(k)), with_kwargs=True)
    pe = predictor.sam_prompt_encoder.pe_layer
    pe_encoding = pe._pe_encoding  # forward_with_coords casts coords to float32 first
    pe._pe_encoding = lambda coords: pe_encoding(coords.double())
    cap = Capture(predictor, keep_dtype=True)
    orig_rope = sam_transformer.apply_rotary_enc
    sam_transformer.apply_rotary_enc = apply_rotary_enc64
    try:
        run_scenario(predictor, cap, scenario, frames_dir, masks_dir)
    finally:
        sam_transformer.apply_rotary_enc = orig_rope
    errors, bf16_mismatch = {}, {}
    for k, t64 in cap.tensors.items():
        t32 = tensors32[k]
        assert t64.shape == t32.shape, k
        errors[k] = float((t64.double() - t32.double()).abs().max())
        if k.endswith("maskmem_features"):  # stored as bfloat16 by the reference: exact values
            bf16_mismatch[k] = float((t64.double() != t32.double()).double().mean())
    missing = [k for k in tensors32 if k.startswith(scenario["name"] + "/") and k not in errors]
    assert not missing, missing
    return errors, bf16_mismatch


def apply_storage_policy(tensors, scen_meta):
    """Select what is written (see MASKMEM_SCENARIOS etc. above) and note it in the json:
    calls' "tensors" lists only what is stored; video-res records get "all_no_obj" and a null
    "key" when entirely NO_OBJ_SCORE."""

    def all_no_obj(t):
        return bool((t == NO_OBJ_SCORE).all())

    stored = {k: t for k, t in tensors.items() if k.startswith("module/")}
    for sc in scen_meta:
        for i, op in enumerate(sc["ops"]):
            pre = f"{sc['name']}/{i:02d}"
            for c in op["calls"]:
                cp = f"{pre}/f{c['frame']:03d}/o{c['obj']}"
                names = []
                for n in c["tensors"]:
                    k = f"{cp}/{n}"
                    t = tensors[k]
                    if n == "pred_masks":
                        c["pred_masks_all_no_obj"] = all_no_obj(t)
                        if c["pred_masks_all_no_obj"]:
                            continue
                    if n == "maskmem_features" and sc["name"] not in MASKMEM_SCENARIOS:
                        continue
                    stored[k] = t
                    names.append(n)
                c["tensors"] = names
            res = op["result"]
            recs = res.get("video_res_masks")
            recs = [recs] if isinstance(recs, dict) else list(recs or [])
            recs += [u["video_res_masks"] for u in res.get("updated_frames", [])]
            policy_drop = (op["op"] in ("add_new_points_or_box", "add_new_mask")
                           and sc["name"] not in ADD_VIDEO_RES_SCENARIOS)
            for r in recs:
                t = tensors[r["key"]]
                r["all_no_obj"] = all_no_obj(t)
                r["stored"] = not (r["all_no_obj"] or policy_drop)
                if r["stored"]:
                    stored[r["key"]] = t
                else:
                    r["key"] = None
    return stored


# ---------------------------------------------------------------------------------------------
# Summary and checks
# ---------------------------------------------------------------------------------------------

def summarize(model_name, scen_meta, tensors):
    lines, scores, mask_scores = [], [], []
    for sc in scen_meta:
        lines.append(f"  {sc['name']}")
        for i, op in enumerate(sc["ops"]):
            head = f"    {i:02d} {op['op']} {json.dumps(op['args'])}"
            lines.append(head)
            for c in op["calls"]:
                if c["kind"] != "frame":
                    lines.append(f"       f{c['frame']:03d} o{c['obj']}: memory encoder "
                                 f"({c['storage']})")
                    continue
                pm = tensors[f"{sc['name']}/{i:02d}/f{c['frame']:03d}/o{c['obj']}/pred_masks"]
                s = c["object_score"]
                tag = ("init-cond" if c["is_init_cond_frame"] else
                       f"mem {c['memory_frames']}fr+{c['obj_ptrs']}ptr")
                if c["mask_input"]:
                    tag += " mask-as-output"
                    mask_scores.append(s)
                else:
                    scores.append(s)
                lines.append(f"       f{c['frame']:03d} o{c['obj']}: score {s:+8.3f}  logits "
                             f"[{float(pm.min()):+9.2f}, {float(pm.max()):+7.2f}] mean "
                             f"{float(pm.mean()):+8.2f}  ({tag})")
    n_pos = sum(s > 0 for s in scores)
    n_neg = sum(s <= 0 for s in scores)
    lines.append(f"  object scores: SAM-head calls {n_pos} > 0, {n_neg} <= 0 (range "
                 f"{min(scores):+.3f} .. {max(scores):+.3f}, min |score| "
                 f"{min(abs(s) for s in scores):.3g}); mask-as-output calls "
                 f"{sum(s > 0 for s in mask_scores)} > 0, {sum(s <= 0 for s in mask_scores)} <= 0")
    return lines, scores, mask_scores


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def generate_model(spec, out_root, frames, masks, do_f64):
    t0 = time.perf_counter()
    name = spec["name"]
    model_dir = FIXTURES / name
    out_dir = out_root / name / "video"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    frame_names = write_video(out_dir, frames, masks)
    frame_paths = [out_dir / n for n in frame_names]
    video_predictor_module.load_video_frames = frame_loader(frame_paths)

    predictor = build_predictor(model_dir, spec.get("obj_score_head"))
    s = int(predictor.image_size)
    if spec.get("obj_score_head") is not None:
        save_file(model_overrides(predictor), str(out_dir / OVERRIDES_FILE),
                  metadata=SAFETENSORS_METADATA)
        os.chmod(out_dir / OVERRIDES_FILE, 0o644)
    cap = Capture(predictor)
    scenarios = [sc for sc in SCENARIOS
                 if spec["scenarios"] is None or sc["name"] in spec["scenarios"]]
    scen_meta = []
    for sc in scenarios:
        scen_meta.append(run_scenario(predictor, cap, sc, out_dir / "frames", out_dir / "masks"))
    assert cap.module_meta is not None and cap.module_meta["memory_encoder_captured"]
    tensors = cap.tensors

    errors = bf16_mismatch = None
    if do_f64:
        sc = next(x for x in scenarios if x["name"] == MODULE_CAPTURE["scenario"])
        errors, bf16_mismatch = reference_f32_error(model_dir, spec.get("obj_score_head"), sc,
                                                    out_dir / "frames", out_dir / "masks",
                                                    tensors)

    full = tensors
    tensors = apply_storage_policy(full, scen_meta)
    for k, v in tensors.items():
        assert v.dtype == torch.float32, k
        assert torch.isfinite(v).all(), k
    save_file(tensors, str(out_dir / "expected.safetensors"), metadata=SAFETENSORS_METADATA)
    os.chmod(out_dir / "expected.safetensors", 0o644)

    sd_keys = predictor.state_dict().keys()
    meta = {
        "format_version": FORMAT_VERSION,
        "model": name,
        "image_size": s,
        "sam2_version": "2.1" if "no_obj_embed_spatial" in sd_keys else "2.0",
        "checkpoint": "../model.pt",
        "checkpoint_overrides": (
            {"file": OVERRIDES_FILE, "tensors": sorted(model_overrides(predictor)),
             "how": dict(spec["obj_score_head"], rule="weight * gain, bias + shift")}
            if spec.get("obj_score_head") is not None else None),
        "config": "../config.yaml",
        "reference": {"sam2": "1.1.0", "torch": torch.__version__.split("+")[0],
                      "pillow": PIL.__version__, "numpy": np.__version__,
                      "threads": THREADS, "device": "cpu",
                      "builder": "build_sam2_video_predictor(config, ckpt, device='cpu'), "
                                 "apply_postprocessing=True"},
        "predictor": {
            "normalize_coords": True,
            "binarize_mask_from_pts_for_mem_enc": bool(predictor.binarize_mask_from_pts_for_mem_enc),
            "fill_hole_area": int(predictor.fill_hole_area),
            "fill_hole_area_effective": 0,
            "non_overlap_masks": bool(predictor.non_overlap_masks),
            "non_overlap_masks_for_mem_enc": bool(predictor.non_overlap_masks_for_mem_enc),
            "clear_non_cond_mem_around_input": bool(predictor.clear_non_cond_mem_around_input),
            "add_all_frames_to_correct_as_cond": bool(predictor.add_all_frames_to_correct_as_cond),
            "num_maskmem": int(predictor.num_maskmem),
            "max_cond_frames_in_attn": int(predictor.max_cond_frames_in_attn),
            "memory_temporal_stride_for_eval": int(predictor.memory_temporal_stride_for_eval),
            "max_obj_ptrs_in_encoder": int(predictor.max_obj_ptrs_in_encoder),
            "only_obj_ptrs_in_the_past_for_eval": bool(predictor.only_obj_ptrs_in_the_past_for_eval),
            "multimask_output_for_tracking": bool(predictor.multimask_output_for_tracking),
            "soft_no_obj_ptr": bool(predictor.soft_no_obj_ptr),
            "sigmoid_scale_for_mem_enc": float(predictor.sigmoid_scale_for_mem_enc),
            "sigmoid_bias_for_mem_enc": float(predictor.sigmoid_bias_for_mem_enc),
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
            "maskmem_storage_dtype": "bfloat16",
            "no_obj_score": -1024.0,
        },
        "video": {
            "num_frames": NUM_FRAMES, "width": VIDEO_W, "height": VIDEO_H,
            "video_width": cap.video_hw[1],
            "video_height": cap.video_hw[0],
            "frames": frame_names,
            "masks": {n: {"png": f"masks/{n}.png", "frame": t, "object": w}
                      for n, (t, w) in MASKS.items()},
            "preprocessing": "PIL RGB -> .resize((S, S)) (Pillow default bicubic, uint8) -> "
                             "/255.0 (float64) -> float32 -> -= mean -> /= std "
                             "(mean 0.485,0.456,0.406, std 0.229,0.224,0.225, float32)",
        },
        "module_capture": dict(cap.module_meta, tensors=sorted(
            k for k in tensors if k.startswith("module/"))),
        "scenarios": scen_meta,
    }
    if errors is not None:
        # only for stored tensors
        meta["reference_f32_error"] = {k: float(f"{v:.3g}") for k, v in errors.items()
                                       if k in tensors}
        meta["reference_bf16_mismatch_fraction"] = {
            k: float(f"{v:.3g}") for k, v in bf16_mismatch.items() if k in tensors}
    (out_dir / "scenarios.json").write_text(json.dumps(meta, indent=1) + "\n")
    os.chmod(out_dir / "scenarios.json", 0o644)

    lines, scores, mask_scores = summarize(name, scen_meta, full)
    summary = {"lines": lines, "scores": scores, "mask_scores": mask_scores,
               "seconds": round(time.perf_counter() - t0, 1),
               "n_tensors": len(tensors), "bytes": sum(t.nbytes for t in tensors.values())}
    if errors is not None:
        worst = {}
        for k, v in errors.items():
            kind = k.rsplit("/", 1)[1] if not k.startswith("module/") else k
            worst[kind] = max(worst.get(kind, 0.0), v)
        summary["f32_vs_f64"] = {k: float(f"{v:.3g}") for k, v in sorted(worst.items())}
        summary["bf16_mismatch_max"] = float(f"{max(bf16_mismatch.values()):.3g}")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="root of the fixtures (default: tests/fixtures); writes <model>/video/")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 cross-check")
    ap.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    args = ap.parse_args()
    setup_torch()
    warnings.filterwarnings("ignore", message=".*cannot import name '_C'.*")
    if hole_filling_available():
        raise SystemExit("sam2._C is importable: hole filling would run; the fixtures assume "
                         "the CPU reference without it (fill_hole_area_effective 0)")
    t0 = time.perf_counter()
    frames, masks = make_video()
    report = {}
    for spec in MODELS:
        if args.models and spec["name"] not in args.models.split(","):
            continue
        summary = generate_model(spec, args.out.resolve(), frames, masks, not args.no_f64)
        print(f"== {spec['name']} ({summary['seconds']} s, {summary['n_tensors']} tensors, "
              f"{summary['bytes'] / 1e6:.2f} MB)")
        print("\n".join(summary["lines"]))
        if "f32_vs_f64" in summary:
            print(f"  float32 vs float64 (scenario {MODULE_CAPTURE['scenario']}), max per kind: "
                  f"{json.dumps(summary['f32_vs_f64'])}; bf16 maskmem elements differing: "
                  f"at most {summary['bf16_mismatch_max']:.3g} of a tensor")
        report[spec["name"]] = summary
    # With random weights the object score is dominated by its head's bias: it barely depends
    # on the frame or the prompt (see README). Warn per model, fail if no model/scenario at all
    # has both signs (the -1024 masking / no-object pointer paths and the normal paths both
    # need coverage).
    all_scores = []
    for n, s in report.items():
        all_scores += s["scores"] + s["mask_scores"]
        if all(x > 0 for x in s["scores"]) or all(x <= 0 for x in s["scores"]):
            print(f"WARNING: {n}: every SAM-head object score is "
                  f"{'> 0' if s['scores'][0] > 0 else '<= 0'}")
    if all(x > 0 for x in all_scores) or all(x <= 0 for x in all_scores):
        raise SystemExit("object scores all of one sign in every model and scenario: the "
                         "fixtures need both visible and occluded frames")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
