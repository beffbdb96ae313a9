"""Sampling every scene of a synthvtt generation from its seed: objects placed apart, events
timed in slots, order twins, backgrounds and distinct paraphrases.

Each split draws from its own random stream, seeded by (seed, GENERATOR_VERSION, split), so one
split's scenes do not depend on the other splits' sizes.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.datasets.synthvtt.captions import (
    CAPTIONS_PER_VIDEO,
    EVENTS,
    TEMPLATES,
    VERBS,
    render_caption,
)
from tasks.datasets.synthvtt.scene import (
    COLOURS,
    FRAMES,
    MOVES,
    RADIUS,
    RESIZES,
    SHAPES,
    SIDE,
    Phrasing,
    Point,
    Scene,
    SceneObject,
)

GENERATOR_VERSION = 1
DEFAULT_SIZES = {"train_videos": 2000, "val_videos": 200, "test_videos": 1000}
SPLITS = ("train", "val", "test")
TWIN_FRACTION = 0.5  # share of each split's videos that belong to an order-twin pair
OBJECT_COUNT_P = {1: 0.3, 2: 0.4, 3: 0.3}  # videos outside twin pairs
TWIN_OBJECT_COUNT_P = {2: 0.6, 3: 0.4}
MOVE_PX = (28.0, 34.0)  # about half the frame: small per-frame steps were not learned
EVENT_FRAMES = {1: 7.0, 2: 5.0, 3: 3.5}  # duration of one event by number of events
PLACEMENT_TRIES = 50

Path2 = tuple[Point, Point]  # start and end centre of an object


def sample_scenes(seed: int, sizes: dict[str, int]) -> list[Scene]:
    """All scenes of the benchmark, train then val then test, ids ``video0`` upwards."""
    scenes: list[Scene] = []
    for split_no, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, GENERATOR_VERSION, split_no])
        scenes += _sample_split(rng, split, sizes[f"{split}_videos"], len(scenes))
    return scenes


def _sample_split(rng: np.random.Generator, split: str, count: int, first_id: int) -> list[Scene]:
    pairs = int(count * TWIN_FRACTION) // 2
    contents: list[dict] = []
    for _ in range(pairs):
        content = _sample_content(rng, _draw(rng, TWIN_OBJECT_COUNT_P))
        i, j = sorted(rng.choice(len(content["order"]), 2, replace=False).tolist())
        swapped = list(content["order"])
        swapped[i], swapped[j] = swapped[j], swapped[i]
        pair = (content["order"][i], content["order"][j])
        probe = pair if rng.random() < 0.5 else pair[::-1]
        first = dict(content, probe=probe, partner=len(contents) + 1)
        contents += [first, dict(first, order=tuple(swapped), partner=len(contents))]
    for _ in range(count - 2 * pairs):
        content = _sample_content(rng, _draw(rng, OBJECT_COUNT_P))
        k = len(content["order"])
        probe = tuple(rng.choice(k, 2, replace=False).tolist()) if k > 1 else None
        contents.append(dict(content, probe=probe, partner=None))
    slot = rng.permutation(len(contents))  # twins are not neighbours in id order
    ids = {n: f"video{first_id + int(s)}" for n, s in enumerate(slot)}
    scenes = [
        Scene(
            video_id=ids[n],
            split=split,
            objects=c["objects"],
            order=c["order"],
            windows=c["windows"],
            background=c["background"],
            phrasings=c["phrasings"],
            test_pick=c["test_pick"],
            probe=c["probe"],
            twin=None if c["partner"] is None else ids[c["partner"]],
        )
        for n, c in enumerate(contents)
    ]
    return sorted(scenes, key=lambda s: video_number(s.video_id))


def video_number(video_id: str) -> int:
    """The N of ``videoN``."""
    return int(video_id[len("video") :])


def _draw(rng: np.random.Generator, probabilities: dict[int, float]) -> int:
    return int(rng.choice(list(probabilities), p=list(probabilities.values())))


def _sample_content(rng: np.random.Generator, k: int) -> dict:
    """Objects, event order and timing, background and phrasings of a video with k events."""
    while True:
        objects = _sample_objects(rng, k)
        if objects is not None:
            break
    order = tuple(rng.permutation(k).tolist())
    slot, duration = FRAMES / k, EVENT_FRAMES[k]
    windows = []
    for i in range(k):
        start = i * slot + (slot - duration) * rng.uniform(0.2, 0.8)
        windows.append((round(start, 3), round(start + duration, 3)))
    textured = rng.random() < 0.5
    background = (
        rng.uniform(25, 80),
        *rng.uniform(-8, 8, 3),
        rng.uniform(4, 10) if textured else 0.0,
        *rng.integers(1, 4, 2),
        rng.uniform(0, 2 * np.pi),
    )
    return {
        "objects": objects,
        "order": order,
        "windows": tuple(windows),
        "background": tuple(round(float(b), 3) for b in background),
        "phrasings": _sample_phrasings(rng, objects, order),
        "test_pick": int(rng.integers(CAPTIONS_PER_VIDEO)),
    }


def _sample_objects(rng: np.random.Generator, k: int) -> tuple[SceneObject, ...] | None:
    """k objects with distinct (colour, shape) whose paths keep apart; None if placing failed."""
    looks = set()
    while len(looks) < k:
        looks.add((str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))))
    looks_list = sorted(looks)
    rng.shuffle(looks_list)
    events = [str(e) for e in rng.choice(EVENTS, k)]
    sizes = [RESIZES[e][0] if e in RESIZES else str(rng.choice(list(RADIUS))) for e in events]
    # A growing or shrinking object needs room for its big size all the time.
    reach = [
        RADIUS["big"] if e in RESIZES else RADIUS[s] for e, s in zip(events, sizes, strict=True)
    ]
    paths: list[Path2] = []
    for event, r in zip(events, reach, strict=True):
        # Placed one by one, each object clear of those already placed, whatever the timing.
        for _ in range(PLACEMENT_TRIES):
            path = _sample_path(rng, event, r)
            if all(
                _segment_distance(*path, *other) >= r + r_other + 3
                for other, r_other in zip(paths, reach, strict=False)
            ):
                paths.append(path)
                break
        else:
            return None
    return tuple(
        SceneObject(
            shape=shape,
            colour=colour,
            size=size,
            event=event,
            rgb=tuple(
                int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter, strict=True)
            ),
            start=start,
            end=end,
        )
        for (colour, shape), event, size, (start, end), jitter in zip(
            looks_list, events, sizes, paths, rng.integers(-12, 13, (k, 3)).tolist(), strict=True
        )
    )


def _sample_path(rng: np.random.Generator, event: str, reach: float) -> Path2:
    low, high = reach + 1, SIDE - 2 - reach
    if event not in MOVES:
        x, y = rng.uniform(low, high, 2).tolist()
        return (round(x, 2), round(y, 2)), (round(x, 2), round(y, 2))
    distance = float(rng.uniform(*MOVE_PX))
    step = MOVES[event]
    # Along the move axis the start leaves room for the whole move.
    lo = [low + distance if d < 0 else low for d in step]
    hi = [high - distance if d > 0 else high for d in step]
    start = rng.uniform(lo, hi).tolist()
    end = [v + d * distance for v, d in zip(start, step, strict=True)]
    return (round(start[0], 2), round(start[1], 2)), (round(end[0], 2), round(end[1], 2))


def _segment_distance(p0: Point, p1: Point, q0: Point, q1: Point) -> float:
    """Smallest distance between the segments p0-p1 and q0-q1 (points are segments too)."""
    if _side(p0, p1, q0) * _side(p0, p1, q1) < 0 and _side(q0, q1, p0) * _side(q0, q1, p1) < 0:
        return 0.0
    return min(
        _point_segment_distance(p0, q0, q1),
        _point_segment_distance(p1, q0, q1),
        _point_segment_distance(q0, p0, p1),
        _point_segment_distance(q1, p0, p1),
    )


def _side(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _point_segment_distance(p: Point, a: Point, b: Point) -> float:
    ab = (b[0] - a[0], b[1] - a[1])
    length2 = ab[0] ** 2 + ab[1] ** 2
    t = 0.0
    if length2 > 0:
        t = min(1.0, max(0.0, ((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1]) / length2))
    return math.hypot(p[0] - a[0] - t * ab[0], p[1] - a[1] - t * ab[1])


def _sample_phrasings(
    rng: np.random.Generator, objects: tuple[SceneObject, ...], order: tuple[int, ...]
) -> tuple[Phrasing, ...]:
    """CAPTIONS_PER_VIDEO phrasings giving distinct captions."""
    k = len(objects)
    templates = rng.permutation(len(TEMPLATES[k])).tolist()
    phrasings: list[Phrasing] = []
    seen: set[str] = set()
    while len(phrasings) < CAPTIONS_PER_VIDEO:
        phrasing = Phrasing(
            template=templates[len(phrasings) % len(templates)],
            size_word=tuple(int(rng.integers(2)) for _ in objects),
            verb=tuple(int(rng.integers(len(VERBS[o.event]))) for o in objects),
        )
        caption = render_caption(objects, order, phrasing)
        if caption not in seen:
            seen.add(caption)
            phrasings.append(phrasing)
    return tuple(phrasings)
