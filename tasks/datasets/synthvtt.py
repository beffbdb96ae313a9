"""synthvtt: the embedded synthetic text-video benchmark, generated on first use.

Each video (64x64, 16 frames at 8 fps, real H.264) shows one to three objects (shape x colour x
size on a plain or lightly textured background); each object undergoes one event (appears,
disappears, moves left/right/up/down across about half the frame, grows, shrinks) in its own
time slot. Captions come from a small grammar with paraphrases and state the events in temporal
order ("a red circle appears then a big blue square moves left", "... after ...", "first ...
then ..."). Order twins, pairs of videos with the same objects and events but two events in
swapped order, make temporal order matter; their captions use the same words in a different
order. Questions (MSRVTT-QA format) ask about colour, shape, motion, count and order.

Layout of ``ensure_synthvtt(root, seed)`` (MSR-VTT file formats, METHODS.md §6.1 and §4.9)::

    synthvtt-v1-seed0/
      videos/videoN.mp4           train video0.., then val, then test ids
      MSRVTT_data.json            every video and all its paraphrased captions
      MSRVTT_train.9k.csv         train video ids
      MSRVTT_val.csv              val pairs, JSFusion format (key,vid_key,video_id,sentence)
      MSRVTT_JSFUSION_test.csv    test pairs, one caption per test video
      qa/{train,val,test}.jsonl   questions; qa/train_ans2label.json
      twins.json                  order-twin pairs per split
      meta.json                   sizes, grammar, chance levels, oracle ceiling, twin statistics
      COMPLETE                    written last: the folder is whole

The default cache root is ``$EMCL_BENCH_DATA`` or ``~/.cache/emcl-bench``. Generation is
deterministic in the seed (annotation files byte-identical, rendered frames identical; the mp4
files are as deterministic as the H.264 encoder of ``harness.video.write_test_video``) and
happens once: a complete folder is never rewritten, and an interrupted one is regenerated from
scratch. GENERATOR_VERSION is part of the folder name, so changing the generator means a new
folder.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from harness.data_types import VideoTextPairs
from harness.video import write_test_video
from tasks.datasets.msrvtt import (
    load_answer_vocabulary,
    load_msrvtt_captions,
    load_msrvtt_pairs,
    load_qa_questions,
    video_file,
)

GENERATOR_VERSION = 1
DEFAULT_SIZES = {"train_videos": 2000, "val_videos": 200, "test_videos": 1000}
SPLITS = ("train", "val", "test")
SPLIT_CSV = {"val": "MSRVTT_val.csv", "test": "MSRVTT_JSFUSION_test.csv"}
JSON_SPLIT = {"train": "train", "val": "validate", "test": "test"}  # MSR-VTT's own split names
FRAMES, FPS, SIDE = 16, 8, 64
CAPTIONS_PER_VIDEO = 5
TWIN_FRACTION = 0.5  # share of each split's videos that belong to an order-twin pair
OBJECT_COUNT_P = {1: 0.3, 2: 0.4, 3: 0.3}  # videos outside twin pairs
TWIN_OBJECT_COUNT_P = {2: 0.6, 3: 0.4}
MOVE_PX = (28.0, 34.0)  # about half the frame: small per-frame steps were not learned
EVENT_FRAMES = {1: 7.0, 2: 5.0, 3: 3.5}  # duration of one event by number of events
PARALLEL_MIN_VIDEOS = 200
PLACEMENT_TRIES = 50

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
COLOURS = {
    "red": (225, 35, 35),
    "orange": (250, 140, 20),
    "yellow": (240, 225, 40),
    "green": (40, 190, 60),
    "cyan": (40, 215, 225),
    "blue": (45, 85, 235),
    "purple": (155, 55, 205),
    "white": (240, 240, 240),
}
RADIUS = {"small": 5.0, "big": 9.0}
SIZE_WORDS = {"small": ("small", "little"), "big": ("big", "large")}
# Event kind (its base form, also the QA answer) -> third-person paraphrases, canonical first.
VERBS = {
    "appear": ("appears", "shows up", "comes into view"),
    "disappear": ("disappears", "vanishes", "goes away"),
    "move left": ("moves left", "moves to the left", "slides left", "goes left"),
    "move right": ("moves right", "moves to the right", "slides right", "goes right"),
    "move up": ("moves up", "moves upward", "slides up", "goes up"),
    "move down": ("moves down", "moves downward", "slides down", "goes down"),
    "grow": ("grows", "gets bigger", "expands"),
    "shrink": ("shrinks", "gets smaller", "contracts"),
}
EVENTS = tuple(VERBS)
MOVES = {"move left": (-1, 0), "move right": (1, 0), "move up": (0, -1), "move down": (0, 1)}
RESIZES = {"grow": ("small", "big"), "shrink": ("big", "small")}
# Caption templates by number of events; {i} is the clause of the i-th event in time.
TEMPLATES = {
    1: ("{0}", "in this video {0}", "here {0}", "{0} in the video"),
    2: (
        "{0} then {1}",
        "first {0} then {1}",
        "{0} and then {1}",
        "{1} after {0}",
        "{0} before {1}",
        "after {0} {1}",
    ),
    3: (
        "{0} then {1} then {2}",
        "first {0} then {1} and finally {2}",
        "{0} and then {1} and then {2}",
        "{1} after {0} and then {2}",
        "{0} before {1} and then {2}",
        "after {0} {1} and then {2}",
    ),
}
NUMBER_WORDS = ("zero", "one", "two", "three")
YES_NO = {"yes", "no"}


Point = tuple[float, float]
Path2 = tuple[Point, Point]  # start and end centre of an object


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One object: its looks, its event and where it is (pixel centres, x right, y down)."""

    shape: str
    colour: str
    size: str  # size at frame 0
    event: str
    rgb: tuple[int, int, int]
    start: Point
    end: Point  # centre after the event (differs from start for moves only)

    @property
    def name(self) -> str:
        """Colour and shape, unique within a video."""
        return f"{self.colour} {self.shape}"


@dataclasses.dataclass(frozen=True)
class Phrasing:
    """The choices behind one paraphrase: template, and per object a size word and a verb."""

    template: int
    size_word: tuple[int, ...]
    verb: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything that defines one video, its captions and its questions."""

    video_id: str
    split: str
    objects: tuple[SceneObject, ...]
    order: tuple[int, ...]  # object indices in the temporal order of their events
    windows: tuple[tuple[float, float], ...]  # (start, end) frame time of the i-th event
    background: tuple[float, ...]  # grey level, 3 tints, texture amplitude, fx, fy, phase
    phrasings: tuple[Phrasing, ...]
    test_pick: int  # which phrasing is the single caption of a val/test video
    probe: tuple[int, int] | None  # object pair of the yes/no order question
    twin: str | None  # video id of the order twin

    def meaning(self) -> tuple[tuple[str, str, str, str], ...]:
        """What every caption of this video says: (size, colour, shape, event) in time order.

        The size is "" for objects that grow or shrink (their captions name no size).
        """
        return tuple(
            ("" if o.event in RESIZES else o.size, o.colour, o.shape, o.event)
            for o in (self.objects[i] for i in self.order)
        )


# ---- sampling ---------------------------------------------------------------------------------


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
    return sorted(scenes, key=lambda s: _number(s.video_id))


def _number(video_id: str) -> int:
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


# ---- language ---------------------------------------------------------------------------------


def render_caption(objects: tuple[SceneObject, ...], order: tuple[int, ...], p: Phrasing) -> str:
    """The caption of one phrasing: one clause per event, arranged by the template."""
    clauses = []
    for i in order:
        o = objects[i]
        words = [o.colour, o.shape, VERBS[o.event][p.verb[i]]]
        if o.event not in RESIZES:
            words.insert(0, SIZE_WORDS[o.size][p.size_word[i]])
        article = "an" if words[0][0] in "aeiou" else "a"
        clauses.append(" ".join([article, *words]))
    return TEMPLATES[len(order)][p.template].format(*clauses)


def captions(scene: Scene) -> list[str]:
    """The paraphrased captions of a scene (CAPTIONS_PER_VIDEO of them)."""
    return [render_caption(scene.objects, scene.order, p) for p in scene.phrasings]


def questions(scene: Scene) -> list[dict[str, str]]:
    """MSRVTT-QA items of a scene: colour, shape, motion, count and order questions."""
    objects = scene.objects
    shapes = Counter(o.shape for o in objects)
    colours = Counter(o.colour for o in objects)
    items = []

    def ask(question: str, answer: str, kind: str) -> None:
        items.append(
            {
                "answer": answer,
                "question": question + "?",
                "video_id": scene.video_id,
                "answer_type": kind,
            }
        )

    for o in objects:
        if shapes[o.shape] == 1:
            ask(f"what color is the {o.shape}", o.colour, "color")
        if colours[o.colour] == 1:
            ask(f"what shape is the {o.colour} object", o.shape, "shape")
        ask(f"what does the {o.name} do", o.event, "motion")
    ask("how many objects are in the video", NUMBER_WORDS[len(objects)], "count")
    events = [objects[i].event for i in scene.order]
    if len(events) > 1 and events.count(events[0]) == 1:
        ask("what happens first", events[0], "order")
    if scene.probe is not None:
        a, b = (objects[i] for i in scene.probe)
        before = scene.order.index(scene.probe[0]) < scene.order.index(scene.probe[1])
        ask(
            f"does the {a.name} {a.event} before the {b.name} {VERBS[b.event][0]}",
            "yes" if before else "no",
            "order",
        )
    return items


# ---- rendering --------------------------------------------------------------------------------


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


def _write_scene_video(job: tuple[Scene, Path]) -> None:
    scene, path = job
    write_test_video(path, render(scene), FPS)


# ---- files ------------------------------------------------------------------------------------


def default_data_root() -> Path:
    """Where datasets are generated or found: ``$EMCL_BENCH_DATA`` or ``~/.cache/emcl-bench``."""
    env = os.environ.get("EMCL_BENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "emcl-bench"


def synthvtt_folder_name(seed: int, sizes: dict[str, int]) -> str:
    """Folder name of one generation: version and seed, plus the sizes when not the defaults."""
    name = f"synthvtt-v{GENERATOR_VERSION}-seed{seed}"
    if sizes != DEFAULT_SIZES:
        name += "-" + "-".join(f"{sizes[f'{s}_videos']}{s}" for s in SPLITS)
    return name


def ensure_synthvtt(
    root: Path,
    seed: int = 0,
    *,
    train_videos: int = DEFAULT_SIZES["train_videos"],
    val_videos: int = DEFAULT_SIZES["val_videos"],
    test_videos: int = DEFAULT_SIZES["test_videos"],
    workers: int | None = None,
) -> Path:
    """Generate synthvtt under ``root`` unless it is already complete; return its folder.

    The folder is ``root/synthvtt-v{GENERATOR_VERSION}-seed{seed}[-sizes]``. Generation writes a
    temporary sibling folder and renames it when whole, under a lock file, so concurrent callers
    (one per process of a distributed run) generate once, and leftovers of an interrupted run
    are removed. ``workers`` processes render videos (default: up to 2).
    """
    sizes = {"train_videos": train_videos, "val_videos": val_videos, "test_videos": test_videos}
    for key, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"synthvtt size {key} must be a positive integer, got {value!r}")
    root = Path(root)
    target = root / synthvtt_folder_name(seed, sizes)
    if (target / "COMPLETE").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{target.name}.lock"):
        if (target / "COMPLETE").is_file():
            return target
        for stale in root.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale)
        if target.exists():
            shutil.rmtree(target)
        tmp = root / f".{target.name}.tmp-{os.getpid()}"
        try:
            generate(tmp, seed, sizes, workers)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def synthvtt_pairs(
    root: Path, split: str, seed: int = 0, video_root: Path | None = None, **sizes: int
) -> VideoTextPairs:
    """Caption-video pairs of a synthvtt split (train, val or test), generating it if needed.

    Train has every paraphrase of every train video; val and test one caption per video. The
    two videos of an order twin share a group id (``groups``).
    """
    if split not in SPLITS:
        raise ValueError(f"synthvtt split must be one of {', '.join(SPLITS)}, got {split!r}")
    folder = ensure_synthvtt(root, seed, **sizes)
    if split == "train":
        pairs = load_msrvtt_pairs(folder, "train", video_root)
    else:
        pairs = load_msrvtt_pairs(folder, "test", video_root, test_csv=SPLIT_CSV[split])
    partner = {}
    for a, b in json.loads((folder / "twins.json").read_text())[split]:
        partner[a], partner[b] = b, a
    group_of: dict[str, int] = {}
    groups = []
    for video in pairs.video_ids:
        key = min(video, partner.get(video, video))
        groups.append(group_of.setdefault(key, len(group_of)))
    return dataclasses.replace(pairs, groups=groups)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def generate(folder: Path, seed: int, sizes: dict[str, int], workers: int | None = None) -> None:
    """Write the whole benchmark into ``folder`` (created; COMPLETE written last)."""
    scenes = sample_scenes(seed, sizes)
    (folder / "videos").mkdir(parents=True)
    (folder / "qa").mkdir()
    jobs = [(s, folder / "videos" / f"{s.video_id}.mp4") for s in scenes]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    if workers > 1 and len(jobs) >= PARALLEL_MIN_VIDEOS:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with context.Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_scene_video, jobs, chunksize=32):
                pass
    else:
        for job in jobs:
            _write_scene_video(job)

    by_split = {split: [s for s in scenes if s.split == split] for split in SPLITS}
    files: dict[str, str] = {}
    files["MSRVTT_data.json"] = json.dumps(_msrvtt_data(scenes))
    files["MSRVTT_train.9k.csv"] = _csv(["video_id"], [[s.video_id] for s in by_split["train"]])
    for split, name in SPLIT_CSV.items():
        files[name] = _csv(
            ["key", "vid_key", "video_id", "sentence"],
            [
                [f"ret{n}", f"msr{_number(s.video_id)}", s.video_id, _test_caption(s)]
                for n, s in enumerate(by_split[split])
            ],
        )
    qa = {split: [q for s in by_split[split] for q in questions(s)] for split in SPLITS}
    answers = sorted({q["answer"] for q in qa["train"]})
    ans2label = {a: n for n, a in enumerate(answers)}
    for split in SPLITS:
        files[f"qa/{split}.jsonl"] = "".join(json.dumps(q) + "\n" for q in qa[split])
    files["qa/train_ans2label.json"] = json.dumps(ans2label)
    files["twins.json"] = json.dumps(
        {
            split: [
                [s.video_id, s.twin]
                for s in by_split[split]
                if s.twin and _number(s.video_id) < _number(s.twin)
            ]
            for split in SPLITS
        }
    )
    files["meta.json"] = json.dumps(_meta(seed, sizes, by_split, qa, ans2label), indent=2) + "\n"
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "sizes": sizes,
        "sha256": {n: hashlib.sha256(t.encode()).hexdigest() for n, t in sorted(files.items())},
        "videos": len(scenes),
    }
    (folder / "COMPLETE").write_text(json.dumps(manifest, indent=2) + "\n")


def _test_caption(scene: Scene) -> str:
    return captions(scene)[scene.test_pick]


def _msrvtt_data(scenes: list[Scene]) -> dict:
    videos = [
        {
            "category": len(s.objects),
            "url": f"synthvtt://{s.video_id}",
            "video_id": s.video_id,
            "start time": 0.0,
            "end time": FRAMES / FPS,
            "split": JSON_SPLIT[s.split],
            "id": _number(s.video_id),
        }
        for s in scenes
    ]
    sentences = [
        {"caption": caption, "video_id": s.video_id} for s in scenes for caption in captions(s)
    ]
    for sen_id, sentence in enumerate(sentences):
        sentence["sen_id"] = sen_id
    return {"videos": videos, "sentences": sentences}


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# ---- statistics -------------------------------------------------------------------------------


def oracle_ceiling(meanings: list) -> dict[str, float]:
    """Best expected T2V R@1 (%) of a model that knows exactly what each caption says.

    ``meanings[i]`` is the meaning of query i and of video i (one caption per video). A query
    is matched at random among the videos with its meaning: expected R@1 = 1 / their number.
    Returns the ceiling and the share (%) of queries whose meaning is unique.
    """
    counts = Counter(meanings)
    shares = [1.0 / counts[m] for m in meanings]
    return {
        "r1": round(100.0 * float(np.mean(shares)), 2),
        "unique_queries": round(100.0 * float(np.mean([counts[m] == 1 for m in meanings])), 2),
    }


def _meta(
    seed: int,
    sizes: dict[str, int],
    by_split: dict[str, list[Scene]],
    qa: dict[str, list[dict]],
    ans2label: dict[str, int],
) -> dict:
    evaluated = {split: by_split[split] for split in ("val", "test")}
    qa_types = sorted({q["answer_type"] for q in qa["train"]})
    return {
        "name": "synthvtt",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "sizes": sizes,
        "video": {"frames": FRAMES, "fps": FPS, "width": SIDE, "height": SIDE, "codec": "h264"},
        "captions": {
            "per_train_video": CAPTIONS_PER_VIDEO,
            "per_eval_video_in_csv": 1,
            "in_MSRVTT_data_json": sum(len(s.phrasings) for v in by_split.values() for s in v),
        },
        "grammar": {
            "shapes": list(SHAPES),
            "colours": list(COLOURS),
            "sizes": {k: list(v) for k, v in SIZE_WORDS.items()},
            "events": {k: list(v) for k, v in VERBS.items()},
            "templates": {str(k): list(v) for k, v in TEMPLATES.items()},
            "objects_per_video": {str(k): p for k, p in OBJECT_COUNT_P.items()},
            "objects_per_twin_video": {str(k): p for k, p in TWIN_OBJECT_COUNT_P.items()},
            "move_px": list(MOVE_PX),
        },
        "chance": {
            split: {
                "t2v_R@1": round(100.0 / len(v), 3),
                "t2v_R@5": round(100.0 * min(5, len(v)) / len(v), 3),
                "t2v_R@10": round(100.0 * min(10, len(v)) / len(v), 3),
                "qa": _qa_chance(qa["train"], qa[split], qa_types),
            }
            for split, v in evaluated.items()
        },
        "oracle_definition": (
            "r1: best expected T2V R@1 (%) of a model that knows exactly what each caption says "
            "(mean over queries of 1 / number of videos with the same meaning); unique_queries: "
            "% of queries whose meaning no other video shares; order_blind: the same for a model "
            "that ignores the order of events"
        ),
        "oracle": {
            split: {
                "t2v": oracle_ceiling([s.meaning() for s in v]),
                "t2v_order_blind": oracle_ceiling([tuple(sorted(s.meaning())) for s in v]),
            }
            for split, v in evaluated.items()
        },
        "twins": {
            split: {
                "pairs": sum(1 for s in v if s.twin) // 2,
                "videos_in_pairs_percent": round(100.0 * sum(1 for s in v if s.twin) / len(v), 2),
            }
            for split, v in by_split.items()
        },
        "objects_per_video": {
            split: dict(sorted(Counter(str(len(s.objects)) for s in v).items()))
            for split, v in by_split.items()
        },
        "qa": {
            "answers": len(ans2label),
            "questions": {
                split: dict(sorted(Counter(q["answer_type"] for q in items).items()))
                for split, items in qa.items()
            },
            "in_vocabulary_percent": {
                split: round(100.0 * np.mean([q["answer"] in ans2label for q in items]), 2)
                for split, items in qa.items()
                if items
            },
        },
    }


def _qa_chance(train: list[dict], evaluated: list[dict], types: list[str]) -> dict:
    """Per answer type, accuracy (%) on ``evaluated`` of guessing uniformly among the train
    answers of that type (yes or no for yes/no questions), and of always giving the most
    frequent train answer of that type."""
    chance = {}
    for kind in types:
        train_answers = Counter(q["answer"] for q in train if q["answer_type"] == kind)
        items = [q for q in evaluated if q["answer_type"] == kind]
        if not items:
            continue
        open_answers = max(1, len(set(train_answers) - YES_NO))
        top = train_answers.most_common(1)[0][0]
        chance[kind] = {
            "uniform": round(
                100.0
                * np.mean([1 / (2 if q["answer"] in YES_NO else open_answers) for q in items]),
                2,
            ),
            "majority": round(100.0 * np.mean([q["answer"] == top for q in items]), 2),
        }
    return chance


class SynthVTT:
    """The ``synthvtt`` dataset entry: generated on first use under ``data.root`` (default
    :func:`default_data_root`), sizes and seed from the ``synthvtt`` config section."""

    def __init__(self, config: dict) -> None:
        section = config["synthvtt"]
        self.root = Path(config["data"]["root"] or default_data_root())
        self.video_root = (
            Path(config["data"]["video_root"]) if config["data"]["video_root"] else None
        )
        self.seed = section["seed"]
        self.sizes = {key: section[key] for key in DEFAULT_SIZES}
        self.folder = ensure_synthvtt(self.root, self.seed, **self.sizes)
        self.split = config["eval"]["split"]

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train, val or test)."""
        return synthvtt_pairs(self.root, split, self.seed, self.video_root, **self.sizes)

    def notes(self) -> list[str]:
        """Chance level and oracle ceiling of the evaluated split, from meta.json."""
        meta = json.loads((self.folder / "meta.json").read_text())
        chance = meta["chance"][self.split]
        oracle = meta["oracle"][self.split]
        return [
            f"synthvtt {self.split}: chance T2V R@1 {chance['t2v_R@1']:.1f}, "
            f"oracle ceiling R@1 {oracle['t2v']['r1']:.1f} "
            f"(order-blind oracle {oracle['t2v_order_blind']['r1']:.1f})"
        ]

    def qa_questions(self, split: str) -> list[dict[str, str]]:
        """The MSRVTT-QA items (answer, question, video_id, answer_type) of ``qa/{split}.jsonl``."""
        if split not in SPLITS:
            raise ValueError(f"synthvtt split must be one of {', '.join(SPLITS)}, got {split!r}")
        return load_qa_questions(self.folder / "qa" / f"{split}.jsonl")

    def qa_vocabulary(self) -> dict[str, int]:
        """The answer vocabulary answer -> label of ``qa/train_ans2label.json``."""
        return load_answer_vocabulary(self.folder / "qa" / "train_ans2label.json")

    def video_path(self, video_id: str) -> Path:
        """The file of ``video_id`` under ``data.video_root`` (default ``<folder>/videos``)."""
        return video_file(self.video_root or self.folder / "videos", video_id)

    def captioning_pairs(self, split: str) -> VideoTextPairs:
        """Every paraphrase in MSRVTT_data.json of every video of ``split`` (train: the training
        captions; val/test: the full reference sets of captioning)."""
        if split not in SPLITS:
            raise ValueError(f"synthvtt split must be one of {', '.join(SPLITS)}, got {split!r}")
        ids_csv = SPLIT_CSV.get(split, "MSRVTT_train.9k.csv")
        return load_msrvtt_captions(self.folder, ids_csv, self.video_root)
