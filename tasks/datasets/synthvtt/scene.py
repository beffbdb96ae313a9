"""What one synthvtt video is: its frame format, the looks and events of its objects, and the
records (`Scene`, `SceneObject`, `Phrasing`) that sampling fills and everything else reads."""

from __future__ import annotations

import dataclasses

FRAMES, FPS, SIDE = 16, 8, 64

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
MOVES = {"move left": (-1, 0), "move right": (1, 0), "move up": (0, -1), "move down": (0, 1)}
RESIZES = {"grow": ("small", "big"), "shrink": ("big", "small")}

Point = tuple[float, float]


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
