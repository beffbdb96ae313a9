"""The PIL steps of the reference pipelines, bit for bit: torchvision's PIL ``Resize`` (bicubic,
short side) + ``CenterCrop`` (``data.resize=pil``), and the JPEG store-and-decode of HMMC's
frame lmdb (``data.sampling=hmmc``).

torchvision is not a dependency: its size and crop arithmetic is :func:`crop_geometry` (which the
torch resize uses too), and the pixels come from the same ``PIL.Image.resize`` call torchvision's
PIL path makes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

# OpenCV's default JPEG quality, which HMMC's frame2lmdb.py uses (cv2.imencode without
# parameters); PIL's encoder at this quality writes the same bytes (same quantisation tables,
# 4:2:0 chroma, integer DCT), checked against OpenCV in tests/test_frame_rules.py.
HMMC_JPEG_QUALITY = 95


def crop_geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """torchvision's ``Resize(size)`` + ``CenterCrop(size)`` arithmetic for a ``height`` x
    ``width`` frame: ``(new_h, new_w, top, left)``. The short side becomes ``size``, the long
    side ``int(size * long / short)``; the crop starts at ``int(round((new - size) / 2))``
    (torchvision >= 0.9; 0.8 used ``int((new - size + 1) * 0.5)``, which differs when
    ``new - size`` is 1 more than a multiple of 4)."""
    short, long = min(height, width), max(height, width)
    new_long = int(size * long / short)
    new_h, new_w = (size, new_long) if height <= width else (new_long, size)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return new_h, new_w, top, left


def pil_resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3) as torchvision's ``Resize(size,
    BICUBIC)`` then ``CenterCrop(size)`` on PIL images (torchvision >= 0.9 crop offsets).

    The short side becomes ``size``, the long side ``int(size * long / short)``; a frame
    already that size is not resampled; the crop starts at ``round((new - size) / 2)``.
    """
    height, width = frames.shape[1:3]
    new_h, new_w, top, left = crop_geometry(height, width, size)
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, frame in enumerate(frames.numpy()):
        image = Image.fromarray(frame)
        if (new_h, new_w) != (height, width):
            image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        out[i] = np.asarray(image.crop((left, top, left + size, top + size)))
    return torch.from_numpy(out)


def jpeg_round_trip(frames: torch.Tensor, quality: int = HMMC_JPEG_QUALITY) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> uint8 (T, H, W, 3): each frame encoded as a JPEG at ``quality``
    and decoded again, as HMMC stores its frames and reads them back."""
    out = np.empty(tuple(frames.shape), np.uint8)
    for i, frame in enumerate(frames.numpy()):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(out)
