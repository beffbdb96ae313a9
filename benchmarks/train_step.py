"""Can the training path keep an accelerator busy? GEMM peak, engine step against a bare loop,
data wait, achieved FLOP/s and loader clips/s per worker, in one run.

    python run.py --bench train [--bench-steps 2] [--bench-videos 8] [--bench-out FILE] [-o K=V]
    python -m benchmarks.train_step [--steps 2] [--repeats 8] [--train-videos 64] [--videos 8]

On the default retrieval config (synthvtt, EMCL-Net, ``-o`` overrides applied; synthvtt cut to
``--train-videos`` training videos so that it is generated in seconds):

- GEMM peak: TFLOP/s of large fp32 and bf16 matmuls on the device (`benchmarks.gemm`);
- step: the engine's step ÷ a bare PyTorch loop on the same model, optimizer and batches, the
  batches held in memory (`benchmarks.step_overhead`), fp32; the median of ``--repeats``
  alternating rounds of ``--steps`` steps each;
- achieved FLOP/s of the engine's step (FLOPs of one forward and backward from
  `torch.utils.flop_counter`) ÷ the fp32 GEMM peak;
- data wait: ``data_wait_s / train_s`` of real engine runs with the config's
  ``data.num_workers``, over two epochs and over the second epoch alone
  (`benchmarks.data_wait`);
- loader clips/s per worker from decoding and from the frame cache (`benchmarks.loader_rate`),
  at real shapes (``--videos`` generated 320x240, 30 fps, ``--video-seconds`` videos; 12 frames
  at 1 fps, 224 px, 32 words) and at synthvtt's (64x64, 16 frames at 8 fps; the config's
  sampling), with the workers per accelerator that ``--target-clips-per-s`` needs at that rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.data_wait import data_wait
from benchmarks.fresh_process import positive
from benchmarks.gemm import gemm_peaks
from benchmarks.loader_rate import shape_rates, workers_needed
from benchmarks.similarity import machine
from benchmarks.step_overhead import BareLoop, bare_copy, compare_steps, step_flops
from harness.config import Config, resolve_config
from harness.data import loader_options
from harness.engine import make_accelerator, prepare_training
from harness.registry import TASKS
from harness.results import write_json

DEFAULT_OUT = Path("runs/bench/train.json")
# An H100 step of ViT-B/32 on 128 clips x 12 frames (about 41 TFLOP, 0.35 s in bf16).
TARGET_CLIPS_PER_S = 366
# The real shapes: MSR-VTT's source videos and the base config's sampling (ViT-B/32 input).
REAL_VIDEO = {"video_size": (240, 320), "fps": 30}
REAL_SAMPLING = {"max_frames": 12, "image_size": 224, "video_framerate": 1.0, "max_words": 32}
SYNTHVTT_VIDEO = {"video_size": (64, 64), "fps": 8, "seconds": 2.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="benchmarks.train_step", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=positive, default=2, help="steps per timed block (2)")
    parser.add_argument("--repeats", type=positive, default=8, help="engine/bare rounds (8)")
    parser.add_argument(
        "--train-videos", type=positive, default=64, help="synthvtt training videos (64)"
    )
    parser.add_argument(
        "--videos", type=positive, default=8, help="generated videos per loader shape (8)"
    )
    parser.add_argument(
        "--video-seconds", type=float, default=10.0, help="length of the real-shape videos (10)"
    )
    parser.add_argument(
        "--target-clips-per-s",
        type=float,
        default=TARGET_CLIPS_PER_S,
        help=f"clips/s one accelerator's step needs ({TARGET_CLIPS_PER_S})",
    )
    parser.add_argument(
        "-o",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting of the default config (repeatable)",
    )
    parser.add_argument(
        "--gemm-size", type=positive, help="GEMM matrix side (2048 on CPU, 8192 on CUDA)"
    )
    parser.add_argument(
        "--loader-seconds",
        type=float,
        default=2.0,
        help="timed reading per loader case, after its warm-up pass (2)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the data and runs here (default: temp)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"json file ({DEFAULT_OUT})")
    return parser.parse_args(argv)


def bench_config(args: argparse.Namespace, root: Path) -> Config:
    """The default retrieval config with ``args.overrides``, its synthvtt cut to
    ``args.train_videos`` training videos and generated under ``root``."""
    from tasks import BASE_CONFIG

    sizes = [f"synthvtt.train_videos={args.train_videos}", "synthvtt.val_videos=4"]
    sizes.append("synthvtt.test_videos=8")
    return resolve_config(
        BASE_CONFIG,
        {"task": "retrieval", "dataset": None, "method.name": None},
        overrides=sizes + args.overrides,
        settings={"data.root": str(root / "data")},
    )


def step_figures(
    config: Config, args: argparse.Namespace, folder: Path, peaks: dict[str, Any]
) -> dict[str, Any]:
    """Engine step ÷ bare loop and achieved FLOP/s ÷ fp32 GEMM peak, on the config's model and
    the batches of one epoch of its training loader, read once into memory."""
    accelerator = make_accelerator(config, "no")
    task = TASKS.get(config["task"])(config)
    task.setup()
    model = task.build_model()
    bare_model = bare_copy(model).to(accelerator.device)
    training, steps_per_epoch = prepare_training(config, task, model, accelerator, folder)
    batches = list(training.loader)
    total_steps = steps_per_epoch * config["train"]["epochs"]
    bare = BareLoop(bare_model, config, task, total_steps)
    steps = compare_steps(training, bare, batches, args.steps, args.repeats)
    flops = step_flops(bare, batches[0])
    achieved = flops / steps["engine_step_s"] / 1e12
    accelerator.free_memory()
    return {
        **steps,
        "batches_in_memory": len(batches),
        "batch_size": config["train"]["batch_size"],
        "precision": "fp32",
        "step_tflop": flops / 1e12,
        "achieved_tflops": achieved,
        "achieved_over_peak": achieved / peaks["fp32_tflops"],
    }


def loader_figures(
    config: Config, args: argparse.Namespace, folder: Path
) -> dict[str, dict[str, Any]]:
    """Per-worker clips/s at the real and at synthvtt's shapes, each with the workers that
    ``args.target_clips_per_s`` needs at that rate."""
    shapes = {
        "real": (config["data"] | REAL_SAMPLING, REAL_VIDEO | {"seconds": args.video_seconds}),
        "synthvtt": (config["data"], SYNTHVTT_VIDEO),
    }
    figures = {}
    for name, (data, video) in shapes.items():
        result = shape_rates(
            folder / name, data, videos=args.videos, timed_s=args.loader_seconds, **video
        )
        rates = result["clips_per_s_per_worker"]
        result["workers_for_target"] = {
            source: workers_needed(rate, args.target_clips_per_s) for source, rate in rates.items()
        }
        figures[name] = result
    return figures


def print_summary(result: dict[str, Any]) -> None:
    """The figures as lines a person reads."""
    peaks, step, wait = result["gemm"], result["step"], result["data_wait"]
    bf16 = (
        f"bf16 {peaks['bf16_tflops']:.3f} ({peaks['bf16_on']})"
        if peaks["bf16_tflops"] is not None
        else "bf16 unsupported"
    )
    print(
        f"device {result['device']}, {peaks['threads']} thread(s); GEMM peak TFLOP/s: "
        f"fp32 {peaks['fp32_tflops']:.3f}, {bf16}"
    )
    print(
        f"step: engine {step['engine_step_s']:.3f} s / bare {step['bare_step_s']:.3f} s = "
        f"{step['ratio']:.3f} (median of {len(step['ratios'])} rounds of "
        f"{step['steps_per_round']} steps, batch {step['batch_size']})"
    )
    print(
        f"achieved {step['achieved_tflops']:.4f} TFLOP/s ({step['step_tflop']:.3f} TFLOP/step) "
        f"= {step['achieved_over_peak']:.3f} of the fp32 GEMM peak"
    )
    second = wait["fraction_second_epoch"]
    print(
        f"data wait / train time, data.num_workers {wait['num_workers']} "
        f"({wait['num_workers_resolved']}): {wait['fraction']:.3f} over two epochs, "
        + (f"{second:.3f} in the second" if second is not None else "second epoch not timed")
    )
    target = result["settings"]["target_clips_per_s"]
    for name, shape in result["loader"].items():
        rates, workers = shape["clips_per_s_per_worker"], shape["workers_for_target"]
        print(
            f"loader at {name} shapes ({shape['videos']}): clips/s per worker "
            + ", ".join(
                f"{source} {rate:.1f} -> {workers[source]} workers for {target:g} clips/s"
                for source, rate in rates.items()
            )
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures and write the json; returns the exit status."""
    args = parse_args(argv)
    import baselines  # noqa: F401  (registers methods)
    import tasks  # noqa: F401  (registers tasks and datasets)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-bench-") as scratch:
        root = args.workdir or Path(scratch)
        config = bench_config(args, root)
        peaks = gemm_peaks(device, args.gemm_size)
        step = step_figures(config, args, root / "step", peaks)
        wait = data_wait(config, root / "runs")
        wait["num_workers_resolved"] = loader_options(config["data"]["num_workers"], True)[
            "num_workers"
        ]
        loader = loader_figures(config, args, root / "loader")
    result = {
        "settings": {
            key: getattr(args, key)
            for key in (
                "steps",
                "repeats",
                "train_videos",
                "videos",
                "video_seconds",
                "loader_seconds",
                "overrides",
            )
        }
        | {"target_clips_per_s": args.target_clips_per_s},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "machine": machine(),
        "total_s": time.perf_counter() - start,
        "gemm": peaks,
        "step": step,
        "data_wait": wait,
        "loader": loader,
    }
    write_json(args.out, result)
    print_summary(result)
    print(f"written to {args.out} in {result['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
