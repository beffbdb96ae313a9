"""emcl-bench command line: parse, resolve the config, look names up, hand over to the engine.

python run.py --task retrieval                      # train + evaluate on synthvtt
python run.py --task retrieval --eval-only --checkpoint runs/<run>
python run.py --list                                # what is registered
python run.py --task retrieval --show-config        # the resolved config, no run
python run.py --task retrieval --compare emcl,clip4clip,xclip,drl,hmmc
python run.py --leaderboard                         # regenerate leaderboards/ from the runs
python run.py --bench similarity                    # tiled vs naive scoring: speed, peak memory
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
LEADERBOARDS = REPO / "leaderboards"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments."""
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--task", help="task name (see --list)")
    parser.add_argument("--dataset", help="dataset name (default: synthvtt)")
    parser.add_argument("--method", help="method name (default: emcl)")
    parser.add_argument(
        "--compare",
        metavar="M1,M2,...",
        help="run each method under the same config and print a side-by-side table",
    )
    parser.add_argument("--config", type=Path, help="a yaml file of settings")
    parser.add_argument(
        "-o",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. -o train.lr=1e-4 (repeatable)",
    )
    parser.add_argument("--data-root", type=Path, help="dataset folder (sets data.root)")
    parser.add_argument("--output-dir", type=Path, help="run folder (default: runs/<name>-<time>)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate a checkpoint only")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder or run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="compress --video-root into the dataset's videos/ and build its frame cache",
    )
    parser.add_argument(
        "--video-root",
        type=Path,
        help="videos folder (sets data.video_root); --prepare: raw videos",
    )
    parser.add_argument("--no-compress", action="store_true", help="--prepare: cache only")
    parser.add_argument("--no-cache", action="store_true", help="--prepare: compress only")
    parser.add_argument("--workers", type=int, default=2, help="--prepare: parallel workers")
    parser.add_argument("--list", action="store_true", help="list tasks, datasets and methods")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config")
    parser.add_argument(
        "--leaderboard",
        action="store_true",
        help="regenerate the leaderboard tables from recorded runs and leaderboards/reported.yaml",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="--leaderboard: run folders to read (default: leaderboards/runs)",
    )
    parser.add_argument(
        "--leaderboard-dir",
        type=Path,
        default=LEADERBOARDS,
        help="--leaderboard: output folder (default: leaderboards)",
    )
    parser.add_argument(
        "--bench", choices=("similarity",), help="run a benchmark (benchmarks/<name>.py)"
    )
    parser.add_argument("--bench-sizes", metavar="N1,N2", help="--bench: N x N cases (1000,5000)")
    parser.add_argument("--bench-methods", metavar="M1,M2", help="--bench: methods to score")
    parser.add_argument("--bench-width", type=int, help="--bench: feature width (512)")
    parser.add_argument("--bench-out", type=Path, help="--bench: json file of the results")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict:
    """The run's config from the registry entries' yamls and the command line (see
    :func:`harness.config.resolve_config` for the layers)."""
    from harness.config import resolve_config as layered
    from tasks import BASE_CONFIG

    settings = {}
    if args.data_root:
        settings["data.root"] = str(args.data_root)
    if args.video_root and not args.prepare:
        settings["data.video_root"] = str(args.video_root)
    saved = None
    if args.eval_only and args.checkpoint:
        saved = _run_folder(args.checkpoint) / "config.yaml"
    return layered(
        BASE_CONFIG,
        {"task": args.task, "dataset": args.dataset, "method.name": args.method},
        user_path=args.config,
        overrides=args.overrides,
        saved_path=saved,
        settings=settings,
    )


def _run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint path (a run folder or one of its checkpoints)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def prepare_dataset(config: dict, args: argparse.Namespace) -> int:
    """``--prepare``: compress the raw videos and build the frame cache for this config."""
    from harness.prepare import prepare
    from harness.registry import DATASETS

    data = config["data"]
    dataset = DATASETS.get(config["dataset"])(config)
    report = prepare(
        dataset.folder,
        {
            "max_frames": data["max_frames"],
            "image_size": data["image_size"],
            "framerate": data["video_framerate"] or None,
        },
        raw_videos=args.video_root,
        compress=not args.no_compress,
        build_cache=not args.no_cache,
        workers=args.workers,
        on_bad_video=data["on_bad_video"],
    )
    print(json.dumps(report))
    return 0


def list_registered() -> None:
    """Print every registered task with the methods it can run, then the datasets."""
    from harness.registry import DATASETS, METHODS, TASKS

    print("tasks and their methods:")
    for task, text in TASKS.describe():
        print(f"  {task:<14} {text}")
        for name, method_text in METHODS.of(task).describe():
            print(f"    {name:<12} {method_text}")
    print("datasets:")
    for name, text in DATASETS.describe():
        print(f"  {name:<14} {text}")


def run_one(config: dict, args: argparse.Namespace, output_dir: Path, resume: bool) -> dict:
    """Train (unless --eval-only) and evaluate one config into ``output_dir``; the record."""
    from harness.engine import RunRequest, make_accelerator, run
    from harness.registry import TASKS

    accelerator = make_accelerator(config, args.mixed_precision)
    request = RunRequest(
        output_dir=output_dir,
        eval_only=args.eval_only,
        checkpoint=args.checkpoint,
        resume=resume,
        mixed_precision=args.mixed_precision,
    )
    task = TASKS.get(config["task"])(config)
    record = run(config, task, request, accelerator)
    accelerator.free_memory()
    return record


def compare_methods(args: argparse.Namespace) -> int:
    """``--compare``: one run per method in ``<dir>/<method>/``, then the side-by-side table.

    With ``--resume`` a method whose run finished is read back, and an interrupted one resumes
    from its last checkpoint, so an interrupted comparison continues where it stopped.
    """
    from accelerate import PartialState

    from harness.compare import finished_record, parse_methods, print_compare, write_compare
    from harness.engine import completed_checkpoints, default_output_dir
    from harness.errors import UsageError

    if args.method or args.eval_only:
        raise UsageError("--compare runs and trains each listed method: drop --method/--eval-only")
    methods = parse_methods(args.compare)
    configs = {}
    for method in methods:
        args.method = method
        configs[method] = resolve_config(args)
    first = configs[methods[0]]
    folder = args.output_dir or default_output_dir(
        Path(first["output_root"]), f"compare-{first['task']}-{first['dataset']}"
    )
    records = {}
    for method, config in configs.items():
        out = folder / method
        done = finished_record(out) if args.resume else None
        records[method] = done or run_one(
            config, args, out, resume=args.resume and bool(completed_checkpoints(out))
        )
    if PartialState().is_main_process:
        write_compare(folder, records)
        print_compare(records)
        print(f"comparison written to {folder / 'compare.md'}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    """``--bench similarity``: benchmarks/similarity.py with the given ``--bench-*`` flags."""
    from benchmarks.similarity import main as similarity

    flags = {
        "--sizes": args.bench_sizes,
        "--methods": args.bench_methods,
        "--width": args.bench_width,
        "--out": args.bench_out,
    }
    given = [(flag, value) for flag, value in flags.items() if value is not None]
    return similarity([str(x) for pair in given for x in pair])


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    import baselines  # noqa: F401  (registers methods)
    import tasks  # noqa: F401  (registers tasks and datasets)
    from harness.errors import UsageError, UserError

    if args.list:
        list_registered()
        return 0
    if args.bench:
        return run_benchmark(args)
    try:
        if args.leaderboard:
            from harness.leaderboard import regenerate

            # without --runs: the committed record, if there is one yet
            runs = args.runs or [d for d in [LEADERBOARDS / "runs"] if d.is_dir()]
            written = regenerate(args.leaderboard_dir, runs, LEADERBOARDS / "reported.yaml")
            print(f"wrote {len(written)} files to {args.leaderboard_dir}")
            return 0
        from harness.config import to_yaml
        from harness.engine import default_output_dir

        config = resolve_config(args)
        if args.show_config:
            print(to_yaml(config), end="")
            return 0
        if args.prepare:
            return prepare_dataset(config, args)
        if args.eval_only and not args.checkpoint:
            raise UsageError("--eval-only needs --checkpoint PATH (a run folder or checkpoint)")
        if args.resume and not args.output_dir:
            raise UsageError("--resume needs --output-dir DIR (the run folder to continue)")
        if args.compare:
            return compare_methods(args)
        name = f"{config['task']}-{config['dataset']}-{config['method']['name']}"
        output_dir = args.output_dir or (
            _run_folder(args.checkpoint) / "eval"
            if args.eval_only
            else default_output_dir(Path(config["output_root"]), name)
        )
        run_one(config, args, output_dir, resume=args.resume)
    except UserError as exc:
        if os.environ.get("EMCL_BENCH_TRACEBACK"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
