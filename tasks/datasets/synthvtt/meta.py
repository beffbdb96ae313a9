"""The content of a synthvtt generation's meta.json: sizes, video format, grammar, chance
levels, oracle ceiling, order-twin and question statistics."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tasks.datasets.synthvtt.captions import CAPTIONS_PER_VIDEO, SIZE_WORDS, TEMPLATES, VERBS
from tasks.datasets.synthvtt.oracle import oracle_ceiling, qa_chance
from tasks.datasets.synthvtt.sampling import (
    GENERATOR_VERSION,
    MOVE_PX,
    OBJECT_COUNT_P,
    TWIN_OBJECT_COUNT_P,
)
from tasks.datasets.synthvtt.scene import COLOURS, FPS, FRAMES, SHAPES, SIDE, Scene


def benchmark_meta(
    seed: int,
    sizes: dict[str, int],
    by_split: dict[str, list[Scene]],
    qa: dict[str, list[dict]],
    ans2label: dict[str, int],
) -> dict:
    """meta.json of one generation: ``by_split`` holds each split's scenes, ``qa`` each split's
    questions, ``ans2label`` the train answer vocabulary."""
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
                "qa": qa_chance(qa["train"], qa[split], qa_types),
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
