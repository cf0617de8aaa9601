#!/usr/bin/env python3
"""Reference fixtures for src/predictor/{transforms,components}.rs and src/npy.rs.

Writes small .npy files to tests/fixtures/transforms/ (run from the repo root):

    python tools/reference/make_transform_fixtures.py [--full DIR]

Test images are not stored: both this script and the Rust tests synthesise them
with `test_image(w, h, c)` (a multiplicative hash of the flat HWC index plus a
smooth ramp), so only sampled outputs are committed. Each `*_samples.npy` holds
an `[N, 2]` float32 array of (flat output index, expected value) pairs.
`--full DIR` also writes the complete outputs (for local max-abs-diff checks).

Needs torch, torchvision, numpy, Pillow. References:
- image predictor: SAM2Transforms (sam2/utils/transforms.py) = ToTensor ->
  Resize((S, S)) [bilinear, antialias=True on tensors] -> Normalize.
- video loader: sam2/utils/misc.py `_load_img_as_tensor` = PIL
  `img.convert("RGB").resize((S, S))` (BICUBIC) -> /255.0 in float64 ->
  copied into a float32 tensor -> `-= mean; /= std` in float32.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import Normalize, Resize, ToTensor

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
OUT = "tests/fixtures/transforms"
N_SAMPLES = 1000

# (width, height, channels, size) for the torch (bilinear antialias) path.
TORCH_CASES = [
    (1920, 1080, 3, 1024),  # typical photo
    (517, 333, 3, 256),  # downscale, odd non-square
    (97, 131, 3, 256),  # upscale
    (97, 131, 4, 1024),  # upscale x8-10, RGBA (alpha ignored)
    (256, 300, 3, 256),  # width unchanged: vertical pass only
    (300, 256, 3, 256),  # height unchanged: horizontal pass only
    (1024, 3, 3, 64),  # extreme aspect: down in x, up in y
    (1, 1, 3, 5),  # single pixel
    (16, 16, 3, 16),  # identity
]
# (width, height, channels, size) for the Pillow (bicubic) path.
PIL_CASES = [
    (1920, 1080, 3, 1024),
    (517, 333, 3, 256),
    (300, 700, 3, 256),  # Pillow >= 13 resamples vertically first here
    (97, 131, 3, 256),
    (97, 131, 4, 64),
    (256, 300, 3, 256),
    (1024, 3, 3, 64),
    (16, 16, 3, 16),
]


def test_image(w, h, c):
    """HWC uint8 test image; mirrored by `test_image` in transforms.rs tests."""
    i = np.arange(w * h * c, dtype=np.uint64)
    noise = ((i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(24)
    x = (i // np.uint64(c)) % np.uint64(w)
    ramp = (x * np.uint64(255)) // np.uint64(max(w - 1, 1))
    v = (noise & np.uint64(0x3F)) + (ramp * np.uint64(3)) // np.uint64(4)
    return v.astype(np.uint8).reshape(h, w, c)


def cuda_connected_components(img):
    """Sequential emulation of sam2/csrc/connected_components.cu on one even-sized [H, W] mask.

    Same block union-find (init_labeling, merge, compression, final_labeling, counting); the
    union order differs from the GPU's, which does not change the partition.
    """
    H, W = img.shape
    assert H % 2 == 0 and W % 2 == 0
    f = img.reshape(-1).astype(bool)
    label = np.arange(H * W)

    def find(n):
        while label[n] != n:
            n = label[n]
        return n

    def union(a, b):
        a, b = find(a), find(b)
        label[max(a, b)] = min(a, b)

    for row in range(0, H, 2):
        for col in range(0, W, 2):
            idx, P = row * W + col, 0
            if f[idx]:
                P |= 0x777
            if row + 1 < H and f[idx + W]:
                P |= 0x777 << 4
            if col + 1 < W and f[idx + 1]:
                P |= 0x777 << 1
            if col == 0:
                P &= 0xEEEE
            if col + 1 >= W:
                P &= 0x3333
            elif col + 2 >= W:
                P &= 0x7777
            if row == 0:
                P &= 0xFFF0
            if row + 1 >= H:
                P &= 0xFF
            bit = lambda pos: (P >> pos) & 1
            if P > 0:
                if bit(0) and f[idx - W - 1]:
                    union(idx, idx - 2 * W - 2)
                if (bit(1) and f[idx - W]) or (bit(2) and f[idx - W + 1]):
                    union(idx, idx - 2 * W)
                if bit(3) and f[idx + 2 - W]:
                    union(idx, idx - 2 * W + 2)
                if (bit(4) and f[idx - 1]) or (bit(8) and f[idx + W - 1]):
                    union(idx, idx - 2)
    labels = np.zeros(H * W, np.int64)
    for row in range(0, H, 2):
        for col in range(0, W, 2):
            idx = row * W + col
            y = find(idx) + 1
            for j in (idx, idx + 1, idx + W, idx + W + 1):
                labels[j] = y if f[j] else 0
    counts = np.bincount(labels, minlength=H * W + 1)
    areas = np.where(labels > 0, counts[labels], 0)
    return labels.reshape(H, W), areas.reshape(H, W)


def sam2_image_transform(size):
    to_tensor = ToTensor()
    tr = torch.jit.script(nn.Sequential(Resize((size, size)), Normalize(MEAN, STD)))
    return lambda img: tr(to_tensor(img))


def samples(flat, seed):
    rng = np.random.default_rng(seed)
    n = flat.size
    idx = np.arange(n) if n <= N_SAMPLES else np.sort(rng.choice(n, N_SAMPLES, replace=False))
    # Always include the first and last value.
    idx = np.unique(np.concatenate([idx, [0, n - 1]]))
    return np.stack([idx.astype(np.float32), flat[idx].astype(np.float32)], axis=1)


def main():
    full_dir = sys.argv[sys.argv.index("--full") + 1] if "--full" in sys.argv else None
    os.makedirs(OUT, exist_ok=True)
    if full_dir:
        os.makedirs(full_dir, exist_ok=True)
    torch.set_num_threads(1)
    for k, (w, h, c, s) in enumerate(TORCH_CASES):
        img = test_image(w, h, c)[..., :3].copy()
        out = sam2_image_transform(s)(img).numpy().astype(np.float32)
        assert out.shape == (3, s, s)
        name = f"torch_{w}x{h}x{c}_{s}"
        np.save(f"{OUT}/{name}_samples.npy", samples(out.reshape(-1), k))
        if full_dir:
            np.save(f"{full_dir}/{name}.npy", out)
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    for k, (w, h, c, s) in enumerate(PIL_CASES):
        img = test_image(w, h, c)[..., :3].copy()
        rgb = np.array(Image.fromarray(img, "RGB").convert("RGB").resize((s, s)))
        name = f"pil_{w}x{h}x{c}_{s}"
        np.save(f"{OUT}/{name}_samples.npy", samples(rgb.reshape(-1), 100 + k))
        # Video-loader normalisation of the resized frame.
        frame = torch.zeros(3, s, s, dtype=torch.float32)
        frame[:] = torch.from_numpy(rgb / 255.0).permute(2, 0, 1)
        frame -= mean
        frame /= std
        np.save(f"{OUT}/{name}_norm_samples.npy", samples(frame.numpy().reshape(-1), 200 + k))
        if full_dir:
            np.save(f"{full_dir}/{name}.npy", rgb)
            np.save(f"{full_dir}/{name}_norm.npy", frame.numpy())
    # Connected components: random even-sized masks through the CUDA kernel's algorithm.
    rng = np.random.default_rng(7)
    masks = np.stack([rng.random((24, 32)) < p for p in (0.2, 0.45, 0.6, 0.8)])
    cc = [cuda_connected_components(m.astype(np.uint8)) for m in masks]
    np.save(f"{OUT}/cc_masks.npy", masks.astype(np.uint8))
    np.save(f"{OUT}/cc_labels.npy", np.stack([l for l, _ in cc]).astype(np.float32))
    np.save(f"{OUT}/cc_areas.npy", np.stack([a for _, a in cc]).astype(np.float32))
    # Small arrays written by numpy itself, for the .npy reader tests.
    np.save(f"{OUT}/npy_f4.npy", np.arange(24, dtype="<f4").reshape(2, 3, 4) / 8 - 1)
    np.save(f"{OUT}/npy_f8.npy", np.array([[0.1, -2.5], [1e30, 3.0]], dtype="<f8"))
    np.save(f"{OUT}/npy_u1.npy", np.array([0, 1, 128, 255], dtype="|u1"))
    np.save(f"{OUT}/npy_b1.npy", np.array([[True, False, True]]))
    np.save(f"{OUT}/npy_scalar_f4.npy", np.float32(7.5))
    np.save(f"{OUT}/npy_fortran_f4.npy", np.asfortranarray(np.ones((2, 3), dtype="<f4")))


if __name__ == "__main__":
    main()
