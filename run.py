"""emcl-bench command line: parse, resolve the config, look names up, hand over to the engine.

python run.py --task retrieval                      # train + evaluate on synthvtt
python run.py --task retrieval --eval-only --checkpoint runs/<run>
python run.py --task retrieval --method clip4clip --eval-only -o encoder.pretrained=ViT-B-32.pt
python run.py --task retrieval --method emcl --eval-only --checkpoint pytorch_model.bin
python run.py --list                                # what is registered
python run.py --task retrieval --show-config        # the resolved config, no run
python run.py --task retrieval --compare emcl,clip4clip,xclip,drl,hmmc
python run.py --task retrieval --seeds 0,1,2          # one run per seed, mean ± std table
python run.py --leaderboard                         # regenerate leaderboards/ from the runs
python run.py --bench similarity                    # tiled vs naive scoring: speed, peak memory
python run.py --bench memory                        # training-step peak memory vs micro_batch
python run.py --bench train                         # step overhead, data wait, loader clips/s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
LEADERBOARDS = REPO / "leaderboards"
RANK_0_GRACE_S = 2.0  # how long other processes wait after a user error (see main)


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
    parser.add_argument(
        "--seeds",
        metavar="S1,S2,...",
        help="train one run per seed (alone or with --compare) and add mean ± std rows",
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
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="evaluate only: --checkpoint, or without it zero-shot from encoder.pretrained",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="run folder, checkpoint folder, or a reference repository's pytorch_model.bin",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "bf16", "fp16"),
        default="auto",
        help="auto: bf16 (and TF32 matmuls) on a CUDA device that supports it, else no",
    )
    parser.add_argument(
        "--report-to",
        metavar="TRACKER",
        help="log loss, lr, step time, data wait and metrics to a tracker Accelerate supports "
        "(tensorboard, wandb, mlflow, ..., or all), under <run>/logs/",
    )
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
        "--bench",
        choices=("similarity", "memory", "train"),
        help="run a benchmark (benchmarks/similarity.py, memory.py, train_step.py)",
    )
    parser.add_argument(
        "--bench-sizes",
        metavar="N1,N2",
        help="--bench similarity: N x N cases (1000,5000); memory: global batch",
    )
    parser.add_argument(
        "--bench-methods",
        metavar="M1,M2",
        help="--bench similarity: methods to score; memory: the method",
    )
    parser.add_argument("--bench-width", type=int, help="--bench similarity: feature width (512)")
    parser.add_argument(
        "--bench-steps", type=int, help="--bench train: steps per timed engine/bare block (2)"
    )
    parser.add_argument(
        "--bench-videos", type=int, help="--bench train: generated videos per loader shape (8)"
    )
    parser.add_argument("--bench-out", type=Path, help="--bench: json file of the results")
    parser.add_argument("--bench-encoder", choices=("tiny", "base"), help="--bench memory (tiny)")
    parser.add_argument("--bench-micro", metavar="M1,M2", help="--bench memory: micro-batches")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict:
    """The run's config from the registry entries' yamls and the command line (see
    :func:`harness.config.resolve_config` for the layers).

    With a checkpoint folder to evaluate or resume (:func:`checkpoint_of`) the names and the
    ``config.yaml`` of its run come first: a name given that differs from the run's, a model key
    changed on ``--eval-only`` or a key ``--resume`` does not apply is a one-line ConfigError.
    A reference checkpoint file is read with the flags' names and its method's loader
    (:func:`harness.reference_checkpoint.prepare_reference_config`); ``--eval-only`` without a
    checkpoint is a zero-shot evaluation (:func:`check_zero_shot`).
    """
    from harness.checkpoints import saved_config
    from harness.config import load_yaml
    from harness.config import resolve_config as layered
    from harness.reference_checkpoint import is_reference_file, prepare_reference_config
    from tasks import BASE_CONFIG

    settings = {}
    if args.data_root:
        settings["data.root"] = str(args.data_root)
    if args.video_root and not args.prepare:
        settings["data.video_root"] = str(args.video_root)
    given = {"task": args.task, "dataset": args.dataset, "method.name": args.method}
    checkpoint = checkpoint_of(args)
    reference = is_reference_file(checkpoint)
    saved = saved_config(checkpoint) if checkpoint is not None and not reference else None
    if saved is not None:
        given = _names_of_saved_run(given, load_yaml(saved), saved)
    config = layered(
        BASE_CONFIG,
        given,
        user_path=args.config,
        overrides=args.overrides,
        saved_path=saved,
        settings=settings,
    )
    if reference:
        prepare_reference_config(config, checkpoint)
    elif checkpoint is not None:
        check_against_checkpoint(config, checkpoint, args.eval_only)
    elif args.eval_only:
        check_zero_shot(config)
    return config


def check_zero_shot(config: dict) -> None:
    """Refuse, in one line, a zero-shot evaluation (``--eval-only`` without ``--checkpoint``)
    of a task that has none, or of an encoder that is not pretrained."""
    from harness.errors import UsageError
    from harness.registry import TASKS

    refusal = TASKS.get(config["task"]).no_zero_shot
    if refusal:
        raise UsageError(f"--eval-only without --checkpoint: {refusal}")
    if config["encoder"]["pretrained"] is None:
        raise UsageError(
            "--eval-only without --checkpoint evaluates zero-shot from encoder.pretrained, which "
            "is null: set -o encoder.pretrained=ViT-B-32.pt (an OpenAI .pt, HF folder or hub id) "
            "or pass --checkpoint"
        )


def _names_of_saved_run(given: dict, saved: dict, source: Path) -> dict:
    """The task, dataset and method names of the saved run; a name given on the command line
    must be the same (another method or task would not fit its weights)."""
    from harness.config import ConfigError, get_key

    names = {}
    for key, value in given.items():
        names[key] = get_key(saved, key)
        if value and value != names[key]:
            flag = "--" + key.removesuffix(".name")
            raise ConfigError(
                f"{flag} {value} differs from the run of the checkpoint ({source}: {key} "
                f"{names[key]}): drop {flag}, the checkpoint's run sets it"
            )
    return names


def check_against_checkpoint(config: dict, checkpoint: Path, eval_only: bool) -> None:
    """Refuse, in one line, a change of ``config`` against the run of ``checkpoint`` that the
    evaluation (a model key) or the resume (a key it does not apply) cannot honour."""
    from harness.checkpoints import (
        config_changes,
        refuse_model_changes,
        refuse_resume_changes,
        saved_config,
    )
    from harness.config import load_yaml
    from harness.registry import TASKS

    saved = saved_config(checkpoint)
    changes = config_changes(load_yaml(saved), config)
    if eval_only:
        refuse_model_changes(changes, TASKS.get(config["task"]).model_keys, saved)
    else:
        refuse_resume_changes(changes, saved)


def prepare_dataset(config: dict, args: argparse.Namespace) -> int:
    """``--prepare``: compress the raw videos and build the frame cache for this config."""
    from harness.frame_cache import config_settings
    from harness.prepare import prepare
    from harness.registry import DATASETS

    data = config["data"]
    dataset = DATASETS.get(config["dataset"])(config)
    report = prepare(
        dataset.folder,
        config_settings(data),
        raw_videos=args.video_root,
        compress=not args.no_compress,
        build_cache=not args.no_cache,
        workers=args.workers,
        on_bad_video=data["on_bad_video"],
    )
    print(json.dumps(report))
    return 0


def list_registered() -> None:
    """Print every registered task with the methods it can run, then the datasets and the
    frame rules (``data.sampling``)."""
    from harness.registry import DATASETS, FRAME_RULES, METHODS, TASKS

    print("tasks and their methods:")
    for task, text in TASKS.describe():
        print(f"  {task:<14} {text}")
        for name, method_text in METHODS.of(task).describe():
            print(f"    {name:<12} {method_text}")
    print("datasets:")
    for name, text in DATASETS.describe():
        print(f"  {name:<14} {text}")
    print("frame rules (data.sampling; reference: the method's own):")
    for name, text in FRAME_RULES.describe():
        print(f"  {name:<14} {text}")


def run_one(
    config: dict, args: argparse.Namespace, output_dir: Path, checkpoint: Path | None
) -> dict:
    """Train (unless --eval-only) and evaluate one config into ``output_dir``; ``checkpoint``
    is the one evaluated (--eval-only) or resumed (None: train from step 0). Returns the
    record."""
    from harness.engine import RunRequest, make_accelerator, resolve_precision, run
    from harness.registry import TASKS

    precision = resolve_precision(args.mixed_precision)
    accelerator = make_accelerator(config, precision, args.report_to, output_dir)
    request = RunRequest(
        output_dir=output_dir,
        eval_only=args.eval_only,
        checkpoint=checkpoint,
        mixed_precision=precision,
    )
    task = TASKS.get(config["task"])(config)
    record = run(config, task, request, accelerator)
    accelerator.free_memory()
    return record


def compare_methods(args: argparse.Namespace) -> int:
    """``--compare`` and/or ``--seeds``: one run per method (and seed) in ``<dir>/<method>/``
    (``<dir>/<method>/seed_<n>/``; one method without --compare: ``<dir>/seed_<n>/``), then
    the side-by-side table.

    With ``--resume`` a run that finished is read back, and an interrupted one resumes from its
    last checkpoint, so an interrupted comparison continues where it stopped.
    """
    from accelerate import PartialState

    from harness.checkpoints import resume_checkpoint
    from harness.compare import (
        check_one_frame_protocol,
        finished_record,
        parse_methods,
        parse_seeds,
        print_compare,
        run_label,
        write_compare,
    )
    from harness.engine import default_output_dir
    from harness.errors import UsageError

    if args.eval_only:
        raise UsageError("--compare and --seeds train their runs: drop --eval-only")
    if args.compare and args.method:
        raise UsageError("--compare runs and trains each listed method: drop --method")
    methods = parse_methods(args.compare) if args.compare else [args.method]
    seeds = parse_seeds(args.seeds) if args.seeds else [None]
    overrides = list(args.overrides)
    configs = {}
    for method in methods:
        for seed in seeds:
            args.method = method
            args.overrides = overrides + ([] if seed is None else [f"seed={seed}"])
            config = resolve_config(args)
            if config["data"]["frame_cache"] == "read":
                # one decode per video for the whole comparison: the first run builds the cache
                config["data"]["frame_cache"] = "auto"
            name = config["method"]["name"]
            configs[(name, seed)] = config
    check_one_frame_protocol({name: config for (name, _), config in configs.items()})
    first = next(iter(configs.values()))
    kind = "compare" if args.compare else f"seeds-{first['method']['name']}"
    folder = args.output_dir or default_output_dir(
        Path(first["output_root"]), f"{kind}-{first['task']}-{first['dataset']}"
    )
    records = {}
    for (method, seed), config in configs.items():
        parts = ([method] if args.compare else []) + ([f"seed_{seed}"] if seed is not None else [])
        out = folder.joinpath(*parts)
        done = finished_record(out) if args.resume else None
        checkpoint = resume_checkpoint(out) if args.resume and not done else None
        if checkpoint is not None:
            check_against_checkpoint(config, checkpoint, eval_only=False)
        records[run_label(method, seed)] = done or run_one(config, args, out, checkpoint)
    if PartialState().is_main_process:
        write_compare(folder, records)
        print_compare(records)
        print(f"comparison written to {folder / 'compare.md'}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    """``--bench similarity``, ``--bench memory`` (``--bench-sizes`` is the global batch,
    ``--bench-methods`` the method) or ``--bench train`` (with the ``-o`` overrides):
    benchmarks/<name>.py with the given ``--bench-*`` flags."""
    if args.bench == "similarity":
        from benchmarks.similarity import main

        flags = [
            ("--sizes", args.bench_sizes),
            ("--methods", args.bench_methods),
            ("--width", args.bench_width),
        ]
    elif args.bench == "memory":
        from benchmarks.memory import main

        flags = [
            ("--encoder", args.bench_encoder),
            ("--batch", args.bench_sizes),
            ("--micro", args.bench_micro),
            ("--method", args.bench_methods),
        ]
    else:
        from benchmarks.train_step import main

        flags = [("--steps", args.bench_steps), ("--videos", args.bench_videos)]
        flags += [("-o", override) for override in args.overrides]
    flags.append(("--out", args.bench_out))
    given = [(flag, value) for flag, value in flags if value is not None]
    return main([str(x) for pair in given for x in pair])


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    import baselines  # noqa: F401  (registers methods)
    import tasks  # noqa: F401  (registers tasks and datasets)
    from harness.errors import UserError

    if args.list:
        list_registered()
        return 0
    try:
        if args.bench:
            return run_benchmark(args)
        if args.leaderboard:
            from harness.leaderboard import regenerate

            # without --runs: the committed record, if there is one yet
            runs = args.runs or [d for d in [LEADERBOARDS / "runs"] if d.is_dir()]
            written = regenerate(args.leaderboard_dir, runs, LEADERBOARDS / "reported.yaml")
            print(f"wrote {len(written)} files to {args.leaderboard_dir}")
            return 0
        from harness.checkpoints import check_unused
        from harness.config import to_yaml

        check_flags(args)
        checkpoint = checkpoint_of(args)
        if args.output_dir and not (args.resume or args.show_config or args.prepare):
            check_unused(args.output_dir)
        config = resolve_config(args)
        if args.show_config:
            print(to_yaml(config), end="")
            return 0
        if args.prepare:
            return prepare_dataset(config, args)
        if args.compare or args.seeds:
            return compare_methods(args)
        out = args.output_dir or default_run_folder(config, checkpoint, args.eval_only)
        run_one(config, args, out, checkpoint)
    except UserError as exc:
        if os.environ.get("EMCL_BENCH_TRACEBACK"):
            raise
        # Every process of a multi-process launch meets the same error: rank 0 prints it. The
        # launcher stops all processes once one exits, so the others give rank 0 time to print.
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {exc}", file=sys.stderr)
        else:
            time.sleep(RANK_0_GRACE_S)
        return 2
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Refuse, in one line, flags that do not go together."""
    from harness.errors import UsageError

    if args.checkpoint and not args.eval_only:
        raise UsageError(
            "--checkpoint goes with --eval-only; to continue a run use --resume --output-dir RUN"
        )
    if args.resume and not args.output_dir:
        raise UsageError("--resume needs --output-dir DIR (the run folder to continue)")
    if args.resume and args.eval_only:
        raise UsageError("--resume continues training, --eval-only evaluates: pass one of them")


def checkpoint_of(args: argparse.Namespace) -> Path | None:
    """The checkpoint of the run: the one --eval-only evaluates (a checkpoint folder, or a
    reference repository's file as given; None: zero-shot), or the one --resume continues (None
    when the run folder has none yet, or for a new run). Checked before anything else, so a
    wrong path costs no data generation and creates nothing."""
    from harness.checkpoints import latest_checkpoint, resume_checkpoint

    if args.eval_only:
        if args.checkpoint is None or args.checkpoint.is_file():
            return args.checkpoint
        return latest_checkpoint(args.checkpoint)
    if args.resume and not (args.compare or args.seeds):
        return resume_checkpoint(args.output_dir)
    return None


def default_run_folder(config: dict, checkpoint: Path | None, eval_only: bool) -> Path:
    """The run folder when --output-dir is not given: ``<output_root>/<task>-<dataset>-<method>-
    <time>`` for training (``...-<method>-zero-shot-<time>`` for a zero-shot evaluation,
    ``...-<method>-reference-<time>`` for a reference checkpoint file); for --eval-only of a
    checkpoint folder ``eval/`` in its run folder, or ``eval-2/``, ``eval-3/``... when that is
    taken (a finished evaluation is never overwritten)."""
    from harness.checkpoints import run_folder_of
    from harness.engine import default_output_dir
    from harness.reference_checkpoint import is_reference_file

    if checkpoint is None or is_reference_file(checkpoint):
        name = f"{config['task']}-{config['dataset']}-{config['method']['name']}"
        if eval_only:
            name += "-reference" if checkpoint is not None else "-zero-shot"
        return default_output_dir(Path(config["output_root"]), name)
    run_folder = run_folder_of(checkpoint)
    names = ("eval", *(f"eval-{n}" for n in range(2, 10_000)))
    return next(f for n in names if _is_empty(f := run_folder / n))


def _is_empty(folder: Path) -> bool:
    """Whether ``folder`` is missing or holds nothing."""
    return not folder.is_dir() or next(folder.iterdir(), None) is None


if __name__ == "__main__":
    sys.exit(main())
