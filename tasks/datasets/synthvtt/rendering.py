"""Rendering a synthvtt scene to frames and to its H.264 video file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.video import write_test_video
from tasks.datasets.synthvtt.scene import FPS, FRAMES, RADIUS, RESIZES, SIDE, Scene


def render(scene: Scene) -> np.ndarray:
    """The frames of a scene: uint8 (FRAMES, SIDE, SIDE, 3) RGB."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    grey, tr, tg, tb, amplitude, fx, fy, phase = scene.background
    wave = amplitude * np.sin(2 * np.pi * (fx * xs + fy * ys) / SIDE + phase)
    background = grey + wave[..., None] + np.array([tr, tg, tb], dtype=np.float32)
    frames = np.repeat(np.clip(background, 0, 255).round().astype(np.uint8)[None], FRAMES, 0)
    for slot, index in enumerate(scene.order):
        o = scene.objects[index]
        start, end = scene.windows[slot]
        for f in range(FRAMES):
            progress = min(1.0, max(0.0, (f - start) / (end - start)))
            if (o.event == "appear" and progress < 0.5) or (
                o.event == "disappear" and progress >= 0.5
            ):
                continue
            x = o.start[0] + progress * (o.end[0] - o.start[0])
            y = o.start[1] + progress * (o.end[1] - o.start[1])
            if o.event in RESIZES:
                r0, r1 = (RADIUS[s] for s in RESIZES[o.event])
                radius = r0 + progress * (r1 - r0)
            else:
                radius = RADIUS[o.size]
            frames[f][shape_mask(o.shape, xs - x, ys - y, radius)] = o.rgb
    return frames


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixels of ``shape`` of radius ``r``; ``dx``, ``dy`` are offsets from its centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        return np.maximum(ax, ay) <= 0.85 * r
    if shape == "diamond":
        return ax + ay <= 1.2 * r
    if shape == "triangle":  # apex up, base at 0.8 r below the centre
        return (dy <= 0.8 * r) & (ax <= (dy + r) / 1.8)
    if shape == "cross":
        return ((ax <= 0.35 * r) & (ay <= r)) | ((ay <= 0.35 * r) & (ax <= r))
    raise ValueError(f"unknown shape {shape!r}")


def write_scene_video(job: tuple[Scene, Path]) -> None:
    """Render ``job = (scene, path)`` and write it to ``path`` as an mp4 (FPS frames/s); one
    argument, so that a process pool can map it."""
    scene, path = job
    write_test_video(path, render(scene), FPS)
