"""Decoding only the sampled frames against decoding every frame up to the last one, in one run.

    python -m benchmarks.decode [--gops 12,250] [--videos 10] [--frames 12] [--framerate R]

Writes ``--videos`` H.264 videos per GOP length (320x240, 30 fps, 10 s: a square crossing a
gradient, `benchmarks.cache_read.write_videos`), then times, per GOP and in this one process,
what a clip load does before the resize: probe the stream, pick ``--frames`` frames with the
decord rule (``--framerate`` frames per second; default: spread over the whole video), decode
them with `read_frames` (seek to each run's keyframe) and with `read_frames_sequential` (every
frame up to the last sampled one). Prints clips/s and CPU ms per clip of each (best of
``--repeats`` passes after a warm-up pass), their ratios, and the frames each decodes per clip.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.cache_read import write_videos
from harness.frame_rules import decord_indices
from harness.video import DecodeStats, probe_video, read_frames, read_frames_sequential

Reader = Callable[[Path, list[int], DecodeStats], torch.Tensor]


def clips_per_second(
    read: Reader, paths: list[Path], frames: int, framerate: float | None, repeats: int
) -> tuple[float, float, float]:
    """``(clips/s, CPU ms per clip, frames decoded per clip)`` of probing, sampling and reading
    each of ``paths`` with ``read``: the best of ``repeats`` timed passes after a warm-up pass
    (CPU time counts every thread of the process, and less of other load than wall time)."""
    best, best_cpu, decoded = float("inf"), float("inf"), 0
    for attempt in range(repeats + 1):
        decoded = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        for path in paths:
            info = probe_video(path)
            stats = DecodeStats()
            read(path, decord_indices(info.num_frames, info.fps, framerate, frames), stats)
            decoded += stats.frames
        if attempt:
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return len(paths) / best, 1000 * best_cpu / len(paths), decoded / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gops", default="12,250", help="GOP lengths, comma-separated")
    parser.add_argument("--videos", type=int, default=10, help="videos per GOP length")
    parser.add_argument("--frames", type=int, default=12, help="sampled frames per clip")
    parser.add_argument("--framerate", type=float, help="sampled frames per second")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{args.videos} videos per GOP, 320x240, 30 fps, 10 s; {args.frames} frames "
        f"(decord rule, framerate {args.framerate}); one process"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for gop in (int(g) for g in args.gops.split(",")):
            folder = Path(scratch) / f"gop{gop}"
            folder.mkdir()
            paths = write_videos(folder, args.videos, (240, 320), 300, 30, gop=gop)
            sequential, seek = (
                clips_per_second(read, paths, args.frames, args.framerate, args.repeats)
                for read in (read_frames_sequential, read_frames)
            )
            print(
                f"GOP {gop:4d}: "
                + "   ".join(
                    f"{name} {rate:6.1f} clips/s {cpu:6.1f} CPU ms/clip {decoded:5.1f} decoded"
                    for name, (rate, cpu, decoded) in (("sequential", sequential), ("seek", seek))
                )
                + f"   ratio {seek[0] / sequential[0]:4.2f}x clips/s, "
                f"{sequential[1] / seek[1]:4.2f}x CPU"
            )


if __name__ == "__main__":
    main()
