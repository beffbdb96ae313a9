"""MSRVTT-QA items of a synthvtt scene: colour, shape, motion, count and order questions."""

from __future__ import annotations

from collections import Counter

from tasks.datasets.synthvtt.captions import VERBS
from tasks.datasets.synthvtt.scene import Scene

NUMBER_WORDS = ("zero", "one", "two", "three")


def scene_questions(scene: Scene) -> list[dict[str, str]]:
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
