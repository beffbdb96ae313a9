"""Frame cache reads against decoding: frames/s of each and the ratio, in one run.

    python benchmarks/cache_read.py [--preset synthvtt|msrvtt] [--videos 100] [--workdir DIR]

Writes ``--videos`` small H.264 videos (moving coloured squares, `write_test_video`), builds
their frame cache with `build_frame_cache`, then times passes over all videos each way (best of
``--repeats``, files warm in the page cache): `load_clip_uint8` (decode, sample, resize) against
`FrameCache.get`, and the same through `ClipSource` (which adds the float normalisation every
loader does). Frames/s counts the sampled real (unpadded) frames delivered. Torch runs on
``--threads`` threads (default 1, as in each DataLoader worker; more threads make small ops
stall when the machine is busy).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from harness.data import ClipSource
from harness.frame_cache import FrameCache, build_frame_cache
from harness.video import load_clip_uint8, write_test_video

# Source videos and sampling settings of the two configurations the project runs most.
PRESETS = {
    "synthvtt": {"size": (64, 64), "frames": 16, "fps": 8, "sampling": (8, 64, None)},
    "msrvtt": {"size": (240, 320), "frames": 150, "fps": 30, "sampling": (12, 224, 1.0)},
}


def write_videos(
    folder: Path, count: int, size: tuple[int, int], frames: int, fps: int, gop: int = 12
) -> list[Path]:
    """``count`` videos of ``frames`` frames (H, W = ``size``): a square crossing a gradient,
    with a keyframe at least every ``gop`` frames."""
    rng = np.random.default_rng(0)
    height, width = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    paths = []
    for n in range(count):
        base = (ramp * rng.uniform(0.2, 1.0, 3)).astype(np.uint8)
        clip = np.repeat(np.broadcast_to(base, (height, width, 3))[None], frames, axis=0)
        side, colour = height // 4, rng.integers(0, 256, 3)
        for t in range(frames):
            top = (t * height // frames) % (height - side)
            left = (t * 2 * width // frames) % (width - side)
            clip[t, top : top + side, left : left + side] = colour
        path = folder / f"video{n}.mp4"
        write_test_video(path, clip, fps, gop=gop)
        paths.append(path)
    return paths


def frames_per_second(read: Callable[[Path], tuple], paths: list[Path], repeats: int) -> float:
    """Real frames read per second by ``read`` over all ``paths``: the best of ``repeats``
    passes after one warm-up pass (the best pass is the one least disturbed by other load)."""
    for path in paths:
        read(path)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        frames = sum(int(read(path)[1].sum()) for path in paths)
        best = min(best, time.perf_counter() - start)
    return frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="synthvtt")
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--workdir", type=Path, help="keep the videos and cache here")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    max_frames, image_size, framerate = preset["sampling"]
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        (root / "videos").mkdir(parents=True, exist_ok=True)
        paths = write_videos(
            root / "videos", args.videos, preset["size"], preset["frames"], preset["fps"]
        )
        cache_dir = build_frame_cache(
            paths, root / "cache", max_frames, image_size, framerate, progress=False
        )
        cache = FrameCache.open(cache_dir, max_frames, image_size, framerate)
        decoded = ClipSource(max_frames, image_size, framerate)
        cached = ClipSource(max_frames, image_size, framerate, cache=cache)
        readers = {
            "uint8 clip": (lambda p: load_clip_uint8(p, *preset["sampling"]), cache.get),
            "ClipSource": (decoded, cached),
        }
        rows = {
            name: [frames_per_second(read, paths, args.repeats) for read in pair]
            for name, pair in readers.items()
        }
    height, width = preset["size"]
    print(
        f"{args.videos} videos {width}x{height}, {preset['frames']} frames at {preset['fps']} "
        f"fps; max_frames={max_frames} image_size={image_size} framerate={framerate}; "
        f"{args.threads} torch thread(s)"
    )
    for name, (decode, read) in rows.items():
        print(
            f"{name:11s} decode {decode:9.0f} frames/s   cache {read:9.0f} frames/s   "
            f"ratio {read / decode:6.1f}x"
        )


if __name__ == "__main__":
    main()
