"""The caption grammar of synthvtt: words, paraphrases and templates that state a scene's
events in temporal order ("a red circle appears then a big blue square moves left")."""

from __future__ import annotations

from tasks.datasets.synthvtt.scene import RESIZES, Phrasing, Scene, SceneObject

CAPTIONS_PER_VIDEO = 5
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


def scene_captions(scene: Scene) -> list[str]:
    """The paraphrased captions of a scene (CAPTIONS_PER_VIDEO of them)."""
    return [render_caption(scene.objects, scene.order, p) for p in scene.phrasings]
