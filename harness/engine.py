"""The Accelerate train/eval loop: optimizer, schedule, checkpoints, resume, results files."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from safetensors.torch import load_file

from harness import results, schema
from harness.config import Config, to_yaml
from harness.errors import UserError
from harness.optim import build_optimizer
from harness.task import Task

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
MODEL_FILE = "model.safetensors"


class RunError(UserError, RuntimeError):
    """A problem with the run's folders or checkpoints; the message is one line."""


@dataclass
class RunRequest:
    """What the command line asked for."""

    output_dir: Path
    eval_only: bool = False
    checkpoint: Path | None = None
    resume: bool = False
    mixed_precision: str = "no"


def completed_checkpoints(run_folder: Path) -> list[Path]:
    """The run folder's finished ``checkpoints/epoch_N`` folders (those with their trainer state,
    written last), oldest first; empty when there is none."""
    return sorted(
        (
            p
            for p in (Path(run_folder) / CHECKPOINTS).glob("epoch_*")
            if (p / TRAINER_STATE).is_file()
        ),
        key=lambda p: int(p.name.split("_")[1]),
    )


def latest_checkpoint(path: Path) -> Path:
    """The checkpoint folder to load from ``path``: a checkpoint folder itself, or a run folder
    (its newest ``checkpoints/epoch_N``)."""
    path = Path(path)
    if (path / MODEL_FILE).is_file():
        return path
    epochs = completed_checkpoints(path)
    if not epochs:
        raise RunError(
            f"no checkpoint in {path}: expected {path / CHECKPOINTS}/epoch_N/{MODEL_FILE} "
            "(a run folder written by `run.py --output-dir`) or a checkpoint folder"
        )
    return epochs[-1]


def default_output_dir(root: Path, name: str) -> Path:
    """``root/name-YYYYmmdd-HHMMSS``, chosen on the main process and shared with all processes."""
    stamp = [time.strftime("%Y%m%d-%H%M%S")]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        broadcast_object_list(stamp)
    return Path(root) / f"{name}-{stamp[0]}"


def make_accelerator(config: Config, mixed_precision: str) -> Accelerator:
    """An Accelerator with the run's precision and gradient accumulation (CPU unless CUDA)."""
    return Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=config["train"]["grad_accum"],
        cpu=not torch.cuda.is_available(),
    )


def run(config: Config, task: Task, request: RunRequest, accelerator: Accelerator) -> dict:
    """Train (unless eval-only) and evaluate ``task``; writes the run folder, returns the record."""
    started = time.perf_counter()
    set_seed(config["seed"])
    console = Console()
    task.setup(train=not request.eval_only)
    model = task.build_model()
    out = request.output_dir
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        results.atomic_write_text(out / "config.yaml", to_yaml(config))
    timings: dict[str, float] = {}
    if request.eval_only:
        checkpoint = latest_checkpoint(request.checkpoint)
        model.load_state_dict(load_file(checkpoint / MODEL_FILE))
        model = accelerator.prepare(model)
        trained = {"checkpoint": str(checkpoint)}
    else:
        model, trained = _train(config, task, model, request, accelerator, console, timings)
    t0 = time.perf_counter()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    with torch.no_grad(), accelerator.autocast():
        evaluation = task.evaluate(unwrapped)
    timings["eval_s"] = round(time.perf_counter() - t0, 2)
    timings["total_s"] = round(time.perf_counter() - started, 2)
    record = {
        "task": config["task"],
        "dataset": config["dataset"],
        "method": config["method"]["name"],
        "metrics": evaluation.metrics,
        **evaluation.optional_fields(),  # fixed names: never one of the fields around them
        "num_samples": evaluation.num_samples,
        "protocol": task.describe(),
        "seed": config["seed"],
        "config": config,
        "training": trained,
        "num_processes": accelerator.num_processes,
        "mixed_precision": request.mixed_precision,
        "git_commit": results.git_commit(),
        "versions": results.package_versions(),
        "timings": timings,
        "notes": evaluation.notes,
    }
    schema.check_record(record)
    if accelerator.is_main_process:
        results.write_run(out, record, evaluation.samples)
        results.print_metrics_table(record, console)
        console.print(f"results written to {out / 'results.json'}")
    accelerator.wait_for_everyone()
    return record


def _train(
    config: Config,
    task: Task,
    model: torch.nn.Module,
    request: RunRequest,
    accelerator: Accelerator,
    console: Console,
    timings: dict[str, float],
) -> tuple[torch.nn.Module, dict[str, Any]]:
    train_cfg = config["train"]
    per_process = train_cfg["batch_size"] // accelerator.num_processes
    if per_process < 1 or train_cfg["batch_size"] % accelerator.num_processes:
        raise RunError(
            f"train.batch_size {train_cfg['batch_size']} must be a multiple of the "
            f"{accelerator.num_processes} processes"
        )
    loader, sampler = task.train_loader(per_process)
    # after prepare the loader yields this process's share of the batches
    loader = accelerator.prepare(loader)
    steps_per_epoch = len(loader) // train_cfg["grad_accum"]
    total_steps = steps_per_epoch * train_cfg["epochs"]
    if total_steps < 1:
        raise RunError(
            f"training set gives no full batch of train.batch_size {train_cfg['batch_size']}: "
            "lower the batch size"
        )
    optimizer, scheduler = build_optimizer(
        train_cfg["optimizer"],
        model,
        lr=train_cfg["lr"],
        coef_lr=train_cfg["coef_lr"],
        weight_decay=train_cfg["weight_decay"],
        warmup=train_cfg["warmup_proportion"],
        total_steps=total_steps,
    )
    prepared = accelerator.prepare(model, optimizer, *([scheduler] if scheduler else []))
    model, optimizer = prepared[:2]
    scheduler = prepared[2] if scheduler else None
    start_epoch, global_step = 0, 0
    if request.resume:
        checkpoint = latest_checkpoint(request.output_dir)
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
        start_epoch, global_step = state["epoch"], state["global_step"]
        console.print(f"resumed from {checkpoint} (epoch {start_epoch}, step {global_step})")
    t0 = time.perf_counter()
    losses: list[float] = []
    with _progress(accelerator) as progress:
        bar = progress.add_task("train", total=total_steps, completed=global_step, loss=0.0, lr=0.0)
        for epoch in range(start_epoch, train_cfg["epochs"]):
            model.train()
            if sampler is not None and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            for batch in loader:
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        loss = task.training_loss(model, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), train_cfg["grad_clip"])
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    optimizer.zero_grad()
                if accelerator.sync_gradients:
                    global_step += 1
                    task.after_step(accelerator.unwrap_model(model))
                    losses.append(float(loss.detach()))
                    lr = max(group["lr"] for group in optimizer.param_groups)
                    progress.update(bar, advance=1, loss=losses[-1], lr=lr)
            _save_checkpoint(accelerator, request.output_dir, epoch + 1, global_step)
    timings["train_s"] = round(time.perf_counter() - t0, 2)
    trained = {
        "epochs": train_cfg["epochs"],
        "steps": global_step,
        "steps_per_epoch": steps_per_epoch,
        "final_loss": losses[-1] if losses else None,
        "resumed": request.resume,
    }
    return model, trained


def _save_checkpoint(accelerator: Accelerator, out: Path, epoch: int, step: int) -> None:
    """Save into a hidden partial folder, then rename: a killed run never leaves a half
    checkpoint that ``latest_checkpoint`` would pick."""
    folder = out / CHECKPOINTS / f"epoch_{epoch}"
    partial = out / CHECKPOINTS / f".epoch_{epoch}.partial"
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        state = {"epoch": epoch, "global_step": step}
        results.atomic_write_text(partial / TRAINER_STATE, json.dumps(state) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)
    accelerator.wait_for_everyone()


def _progress(accelerator: Accelerator) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("lr {task.fields[lr]:.2e}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not accelerator.is_main_process,
    )
