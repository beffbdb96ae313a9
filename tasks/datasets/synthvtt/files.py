"""Writing a synthvtt generation: the videos and the annotation files in MSR-VTT formats."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
from pathlib import Path

from tasks.datasets.synthvtt.captions import scene_captions
from tasks.datasets.synthvtt.meta import benchmark_meta
from tasks.datasets.synthvtt.questions import scene_questions
from tasks.datasets.synthvtt.rendering import write_scene_video
from tasks.datasets.synthvtt.sampling import GENERATOR_VERSION, SPLITS, sample_scenes, video_number
from tasks.datasets.synthvtt.scene import FPS, FRAMES, Scene

SPLIT_CSV = {"val": "MSRVTT_val.csv", "test": "MSRVTT_JSFUSION_test.csv"}
JSON_SPLIT = {"train": "train", "val": "validate", "test": "test"}  # MSR-VTT's own split names
PARALLEL_MIN_VIDEOS = 200


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
            for _ in pool.imap_unordered(write_scene_video, jobs, chunksize=32):
                pass
    else:
        for job in jobs:
            write_scene_video(job)

    by_split = {split: [s for s in scenes if s.split == split] for split in SPLITS}
    files: dict[str, str] = {}
    files["MSRVTT_data.json"] = json.dumps(_msrvtt_data(scenes))
    files["MSRVTT_train.9k.csv"] = _csv(["video_id"], [[s.video_id] for s in by_split["train"]])
    for split, name in SPLIT_CSV.items():
        files[name] = _csv(
            ["key", "vid_key", "video_id", "sentence"],
            [
                [f"ret{n}", f"msr{video_number(s.video_id)}", s.video_id, _test_caption(s)]
                for n, s in enumerate(by_split[split])
            ],
        )
    qa = {split: [q for s in by_split[split] for q in scene_questions(s)] for split in SPLITS}
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
                if s.twin and video_number(s.video_id) < video_number(s.twin)
            ]
            for split in SPLITS
        }
    )
    files["meta.json"] = (
        json.dumps(benchmark_meta(seed, sizes, by_split, qa, ans2label), indent=2) + "\n"
    )
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
    return scene_captions(scene)[scene.test_pick]


def _msrvtt_data(scenes: list[Scene]) -> dict:
    videos = [
        {
            "category": len(s.objects),
            "url": f"synthvtt://{s.video_id}",
            "video_id": s.video_id,
            "start time": 0.0,
            "end time": FRAMES / FPS,
            "split": JSON_SPLIT[s.split],
            "id": video_number(s.video_id),
        }
        for s in scenes
    ]
    sentences = [
        {"caption": caption, "video_id": s.video_id}
        for s in scenes
        for caption in scene_captions(s)
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
