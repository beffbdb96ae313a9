"""The Accelerate train/eval loop: optimizer, schedule, checkpoints every few steps, exact resume,
results files, progress output."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.data_loader import skip_first_batches
from accelerate.utils import broadcast_object_list, set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from harness import gradient_cache, results, schema
from harness.batching import batch_fields
from harness.checkpoints import (
    CHECKPOINTS,
    CONFIG_FILE,
    MODEL_FILE,
    RunError,
    TrainerState,
    check_files,
    config_changes,
    kill_point_for_tests,
    save_checkpoint,
)
from harness.config import Config, load_yaml, to_yaml
from harness.console import report_console
from harness.data import model_input
from harness.errors import UsageError
from harness.monitor import TrainMonitor, check_tracker, log_final, start_trackers
from harness.optim import build_optimizer
from harness.phases import announce
from harness.reference_checkpoint import is_reference_file, load_reference_checkpoint
from harness.selection import Selector, last_epoch_record, selector_for
from harness.task import Task

# With stdout not a terminal, a progress line at least this often (and at the first and last step)


@dataclass
class RunRequest:
    """What the command line asked for. ``checkpoint``: with ``eval_only`` the checkpoint folder
    or reference checkpoint file to evaluate (None: zero-shot, the model as built); otherwise
    the one training resumes from (None: training starts at step 0)."""

    output_dir: Path
    eval_only: bool = False
    checkpoint: Path | None = None
    mixed_precision: str = "no"


def default_output_dir(root: Path, name: str) -> Path:
    """``root/name-YYYYmmdd-HHMMSS``, chosen on the main process and shared with all processes."""
    stamp = [time.strftime("%Y%m%d-%H%M%S")]
    if PartialState().num_processes > 1:
        broadcast_object_list(stamp)
    return Path(root) / f"{name}-{stamp[0]}"


def resolve_precision(mixed_precision: str) -> str:
    """``--mixed-precision``: ``auto`` is ``bf16`` on a CUDA device that supports it (TF32
    matmuls and convolutions are then allowed for what stays in fp32) and ``no`` elsewhere, so
    CPU runs keep their fp32 numbers; other values are returned as they are."""
    if mixed_precision != "auto":
        return mixed_precision
    if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return "no"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return "bf16"


def make_accelerator(
    config: Config,
    mixed_precision: str,
    report_to: str | None = None,
    output_dir: Path | None = None,
) -> Accelerator:
    """An Accelerator with the run's precision and gradient accumulation (CPU unless CUDA),
    logging to the ``report_to`` tracker under ``output_dir/logs`` when one is named."""
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=config["train"]["grad_accum"],
        cpu=not torch.cuda.is_available(),
        # The loop steps the schedule once per optimizer step. Accelerate's own stepping would
        # step it once per process, as if each process's loader took a whole train.batch_size,
        # while here train.batch_size is the global batch, split over the processes.
        step_scheduler_with_optimizer=False,
        log_with=check_tracker(report_to),
        project_dir=output_dir,
    )
    if report_to is not None and not accelerator.log_with:
        raise UsageError(
            f"--report-to {report_to}: its package is not installed here (pip install {report_to})"
        )
    return accelerator


def run(config: Config, task: Task, request: RunRequest, accelerator: Accelerator) -> dict:
    """Train (unless eval-only; from ``request.checkpoint`` when resuming) and evaluate
    ``task``; writes the run folder (checkpoints, then config.yaml and the records), returns the
    record."""
    started = time.perf_counter()
    set_seed(config["seed"])
    console = report_console()
    saved = None
    if request.checkpoint is not None and not is_reference_file(request.checkpoint):
        saved = check_files(request.checkpoint, not request.eval_only, accelerator.process_index)
        task.use_checkpoint(request.checkpoint)
    # the dataset entry may generate or download its files here (synthvtt: first use)
    _phase(accelerator, f"data: setting up {config['dataset']} for {config['task']}")
    task.setup(train=not request.eval_only)
    _phase(accelerator, f"data: ready after {time.perf_counter() - started:.1f} s")
    start_trackers(accelerator, config)
    model = task.build_model()
    out = request.output_dir
    timings: dict[str, float] = {}
    selection = None
    if request.eval_only:
        trained = _evaluated_weights(config, model, request.checkpoint, saved)
        model = accelerator.prepare(model)
    else:
        model, trained, selection = _train(
            config, task, model, request, saved, accelerator, timings
        )
    _phase(accelerator, f"evaluate: split {config['eval']['split']}")
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
        **({"selection": selection} if selection is not None else {}),
        "num_processes": accelerator.num_processes,
        # the training's layout: an evaluation-only run reports its checkpoint's
        **batch_fields(
            config, unwrapped, saved.num_processes if saved else accelerator.num_processes
        ),
        "mixed_precision": request.mixed_precision,
        "git_commit": results.git_commit(),
        "versions": results.package_versions(),
        "timings": timings,
        "notes": evaluation.notes,
    }
    schema.check_record(record)
    log_final(
        accelerator, record["metrics"], trained.get("steps", 0) if isinstance(trained, dict) else 0
    )
    if accelerator.is_main_process:
        results.atomic_write_text(out / CONFIG_FILE, to_yaml(config))
        results.write_run(out, record, evaluation.samples)
        results.print_metrics_table(record, console)
        console.print(f"results written to {out / 'results.json'}")
    accelerator.wait_for_everyone()
    return record


def _evaluated_weights(
    config: Config, model: torch.nn.Module, checkpoint: Path | None, saved: TrainerState | None
) -> dict[str, Any] | str:
    """Put the weights an evaluation-only run scores into ``model``; returns the record's
    ``training`` field. No checkpoint: the model as built from ``encoder.pretrained``
    (``"zero-shot"``). A file: a reference repository's checkpoint, through the method's loader
    (``{"reference_checkpoint": path}``). A checkpoint folder (files checked before, ``saved``
    its state): ``{"checkpoint": folder, "steps": step}``."""
    if checkpoint is None:
        return schema.ZERO_SHOT
    if is_reference_file(checkpoint):
        load_reference_checkpoint(model, checkpoint, config)
        return {"reference_checkpoint": str(checkpoint)}
    _load_weights(model, checkpoint)
    return {"checkpoint": str(checkpoint), "steps": saved.global_step}


def _load_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    """The weights of checkpoint folder ``checkpoint`` (files checked before) into ``model``."""
    model.load_state_dict(load_file(checkpoint / MODEL_FILE))


@dataclass
class Training:
    """The prepared objects of one training run, and where it writes its checkpoints."""

    config: Config
    task: Task
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    loader: DataLoader
    out: Path
    selector: Selector | None = None


def _train(
    config: Config,
    task: Task,
    model: torch.nn.Module,
    request: RunRequest,
    saved: TrainerState | None,
    accelerator: Accelerator,
    timings: dict[str, float],
) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """Train from step 0, or from checkpoint ``request.checkpoint`` (whose state is ``saved``)
    exactly as the run it resumes would have continued; returns the model (with the selected
    epoch's weights, :mod:`harness.selection`) and the record's ``training`` and ``selection``
    fields."""
    training, steps_per_epoch = prepare_training(
        config, task, model, accelerator, request.output_dir
    )
    training.selector = selector_for(config, task)
    total_steps = steps_per_epoch * config["train"]["epochs"]
    start = TrainerState(0, 0, 0, total_steps, accelerator.num_processes, request.mixed_precision)
    trained: dict[str, Any] = {"resumed": saved is not None}
    if saved is not None:
        # read now: the checkpoint may be deleted once newer ones are complete
        changes = config_changes(load_yaml(request.checkpoint / CONFIG_FILE), config)
        trained["resumed_from"] = {"checkpoint": str(request.checkpoint), "step": saved.global_step}
        trained["applied_on_resume"] = {key: list(pair) for key, pair in changes.items()}
        start = _resume(training, request, saved, total_steps)
        if training.selector is not None:
            training.selector.load(request.checkpoint)
    _phase(accelerator, _train_phase(request, start, steps_per_epoch, config))
    t0 = time.perf_counter()
    monitor = TrainMonitor(
        accelerator, total_steps, steps_per_epoch, start.global_step, config["train"]["log_every"]
    )
    with monitor:
        end = _epochs(training, start, monitor)
    timings["train_s"] = round(time.perf_counter() - t0, 2)
    timings.update(monitor.timings(end.global_step - start.global_step))
    trained = {
        "epochs": config["train"]["epochs"],
        "steps": end.global_step,
        "steps_per_epoch": steps_per_epoch,
        "final_loss": end.loss,
        **trained,
    }
    selector = training.selector
    if selector is None:
        return training.model, trained, last_epoch_record(trained["epochs"], end.global_step)
    best = Path(CHECKPOINTS) / selector.best_checkpoint()  # within the run folder
    _load_weights(accelerator.unwrap_model(training.model), training.out / best)
    _phase(accelerator, f"select: epoch {selector.state.epoch} ({best}) for the evaluation")
    return training.model, trained, {**asdict(selector.state), "checkpoint": best.as_posix()}


def prepare_training(
    config: Config, task: Task, model: torch.nn.Module, accelerator: Accelerator, out: Path
) -> tuple[Training, int]:
    """The task's loader, the optimizer and its schedule, prepared by Accelerate; with the
    optimizer steps of one epoch."""
    train_cfg = config["train"]
    per_process = _per_process_batch(train_cfg["batch_size"], accelerator.num_processes)
    # after prepare the loader yields this process's share of the batches
    loader = accelerator.prepare(task.train_loader(per_process))
    # Accelerate ends every epoch with an optimizer step, a partial accumulation included
    steps_per_epoch = math.ceil(len(loader) / train_cfg["grad_accum"])
    if steps_per_epoch < 1:
        raise RunError(
            f"training set gives no full batch of train.batch_size {train_cfg['batch_size']}: "
            "lower the batch size"
        )
    optimizer, scheduler = build_optimizer(
        train_cfg, model, total_steps=steps_per_epoch * train_cfg["epochs"]
    )
    prepared = accelerator.prepare(model, optimizer, *([scheduler] if scheduler else []))
    scheduler = prepared[2] if scheduler else None
    training = Training(config, task, accelerator, *prepared[:2], scheduler, loader, out)
    return training, steps_per_epoch


def _epochs(training: Training, start: TrainerState, monitor: TrainMonitor) -> TrainerState:
    """Run the epochs from ``start`` on, with a checkpoint every ``train.checkpoint_every``
    optimizer steps and at every epoch end; returns the state after the last step."""
    state = start
    every = training.config["train"]["checkpoint_every"]
    training.model.train()
    for epoch in range(start.epoch, training.config["train"]["epochs"]):
        skip = start.batches_done if epoch == start.epoch else 0
        batches = monitor.batches(_epoch_batches(training.loader, epoch, skip))
        for done, batch in enumerate(batches, start=skip + 1):
            loss = train_step(training, batch)
            if not training.accelerator.sync_gradients:
                continue
            training.task.after_step(training.accelerator.unwrap_model(training.model))
            end_of_epoch = done == len(training.loader)
            state = replace(
                state,
                global_step=state.global_step + 1,
                # where a resume continues: the next epoch after its last batch
                epoch=epoch + 1 if end_of_epoch else epoch,
                batches_done=0 if end_of_epoch else done,
            )
            monitor.step_done(state.global_step, epoch, loss, _lr(training.optimizer))
            kill_point_for_tests("after_step", state.global_step)
            if end_of_epoch and training.selector is not None:
                unwrapped = training.accelerator.unwrap_model(training.model)
                autocast = training.accelerator.autocast
                training.selector.score(unwrapped, epoch + 1, state.global_step, autocast)
            if end_of_epoch or state.global_step % every == 0:
                # read back here, not every step: a checkpoint waits for the device anyway
                state = replace(state, loss=float(loss.detach()))
                _checkpoint(training, state)
    return state


def _per_process_batch(batch_size: int, processes: int) -> int:
    """``train.batch_size`` (global) per process; a one-line RunError unless it divides."""
    if batch_size < processes or batch_size % processes:
        raise RunError(
            f"train.batch_size {batch_size} must be a multiple of the {processes} processes"
        )
    return batch_size // processes


def _resume(
    training: Training, request: RunRequest, saved: TrainerState, total_steps: int
) -> TrainerState:
    """Load checkpoint ``request.checkpoint`` (model, optimizer, scheduler, every RNG state)
    into the prepared objects; returns the state training continues from, with this run's
    schedule length."""
    checkpoint = request.checkpoint
    accelerator = training.accelerator
    ran_as = (saved.num_processes, saved.mixed_precision)
    if ran_as != (accelerator.num_processes, request.mixed_precision):
        raise RunError(
            f"checkpoint {checkpoint} was written by {saved.num_processes} processes with "
            f"--mixed-precision {saved.mixed_precision}; resume it the same way (its RNG states "
            "and batches are per process)"
        )
    if saved.global_step > total_steps:
        raise RunError(
            f"train.epochs gives {total_steps} steps, fewer than the {saved.global_step} the run "
            f"has done ({checkpoint}): raise train.epochs"
        )
    accelerator.load_state(str(checkpoint))
    if saved.total_steps != total_steps:
        _reschedule(training.optimizer, training.scheduler, total_steps)
    return replace(saved, total_steps=total_steps)


def _reschedule(optimizer: torch.optim.Optimizer, scheduler: Any, total_steps: int) -> None:
    """Apply a train.epochs changed on resume: the loaded optimizer and scheduler states carry
    the old schedule length."""
    for group in optimizer.param_groups:
        if "t_total" in group:  # BertAdam schedules itself from its groups
            group["t_total"] = total_steps
    if scheduler is not None:
        # the LambdaLR factor was built over the new total; the loaded lr is the old one's
        inner = scheduler.scheduler
        for group, base, factor in zip(
            optimizer.param_groups, inner.base_lrs, inner.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(inner.last_epoch)


def _epoch_batches(loader: DataLoader, epoch: int, skip: int) -> Iterable[Any]:
    """The batches of ``epoch`` after the first ``skip`` (those a resumed run has consumed)."""
    # Set on the prepared loader: its own pass counter overrides the sampler's epoch at every
    # pass, and restarts at 0 in a new process.
    loader.set_epoch(epoch)
    # A fresh pass draws its workers' base seed from torch's global generator when it starts; a
    # pass of persistent workers draws nothing. So every pass is made to consume exactly one draw
    # (whatever data.num_workers is, every later dropout mask stays the same), and a resumed
    # pass none: the RNG state it restores was saved mid-epoch, after that draw.
    state = torch.get_rng_state()
    # skip_first_batches skips indices in the batch sampler: the skipped batches are not loaded
    batches = iter(skip_first_batches(loader, skip) if skip else loader)
    first = next(batches, None)  # the pass starts (and may draw) at its first batch
    torch.set_rng_state(state)
    if not skip:
        torch.empty((), dtype=torch.int64).random_()
    return batches if first is None else itertools.chain([first], batches)


def train_step(training: Training, batch: Any) -> torch.Tensor:
    """One batch: forward, backward (through the gradient cache under ``train.micro_batch``)
    and, on an accumulation boundary, the clipped optimizer step and one schedule step; returns
    the loss."""
    accelerator, model, optimizer = training.accelerator, training.model, training.optimizer
    micro_batch = training.config["train"]["micro_batch"]
    with accelerator.accumulate(model):
        if micro_batch is not None:
            loss = gradient_cache.forward_backward(
                accelerator, model, model_input(batch), micro_batch
            )
        else:
            with accelerator.autocast():
                loss = training.task.training_loss(model, model_input(batch))
            accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), training.config["train"]["grad_clip"])
        optimizer.step()
        stepped = accelerator.sync_gradients and not optimizer.step_was_skipped
        if training.scheduler is not None and stepped:
            training.scheduler.step()
        optimizer.zero_grad()
    return loss


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return max(group["lr"] for group in optimizer.param_groups)


def _checkpoint(training: Training, state: TrainerState) -> None:
    """Save checkpoint ``state`` with the config and the task's files, then the run folder's
    config.yaml (for people; resume and evaluation read the checkpoint's own)."""
    config = training.config

    selector = training.selector

    def write_files(folder: Path) -> None:
        results.atomic_write_text(folder / CONFIG_FILE, to_yaml(config))
        training.task.save_with_checkpoint(folder)
        if selector is not None:
            selector.save(folder)

    keep = config["train"]["keep_checkpoints"]
    best = selector.best_checkpoint() if selector is not None else None
    save_checkpoint(training.accelerator, training.out, state, write_files, keep, best)
    if training.accelerator.is_main_process:
        results.atomic_write_text(training.out / CONFIG_FILE, to_yaml(config))


def _train_phase(
    request: RunRequest, start: TrainerState, steps_per_epoch: int, config: Config
) -> str:
    """The phase line of training: its length and checkpoints, or where it resumes."""
    train_cfg = config["train"]
    if request.checkpoint is not None:
        return (
            f"train: resuming {request.checkpoint} at step {start.global_step} of "
            f"{start.total_steps} (epoch {start.epoch + 1}, after batch {start.batches_done})"
        )
    return (
        f"train: {start.total_steps} steps ({train_cfg['epochs']} epochs of {steps_per_epoch}), "
        f"a checkpoint every {train_cfg['checkpoint_every']} steps and at epoch ends in "
        f"{request.output_dir / CHECKPOINTS}"
    )


def _phase(accelerator: Accelerator, text: str) -> None:
    """Print one line saying what the run does now (main process), flushed for logs."""
    if accelerator.is_main_process:
        announce(text)
