"""What a training run reports while it runs: progress (rich's bar on a terminal, plain lines in
a log), the time spent waiting for data, and the values sent to experiment trackers
(``--report-to``).

The loss is read back from the accelerator only every ``train.log_every`` optimizer steps (and
at the first and last): reading it is a device synchronisation, which stalls a GPU every step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import LoggerType
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.errors import UsageError

PLAIN_PROGRESS_EVERY_S = 30.0
TRACKER_PROJECT = "logs"  # trackers write under <run>/logs/


class TrainMonitor:
    """Progress, timing and tracker logging of one training run on one process.

    ``batches`` wraps the loader to time each wait for a batch; ``step_done`` is called after
    every optimizer step with the loss tensor (not read back unless due); ``timings`` gives the
    record's ``data_wait_s`` and ``step_s``.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        total: int,
        steps_per_epoch: int,
        done: int,
        log_every: int,
    ) -> None:
        self.accelerator = accelerator
        self.total, self.done, self.log_every = total, done, log_every
        self.loss = float("nan")
        self.data_wait_s = 0.0
        self.started = self.window_start = time.perf_counter()
        self.window_wait = 0.0
        main = accelerator.is_main_process
        if Console().is_terminal:
            self.display: _PlainProgress | _RichProgress = _RichProgress(total, done, main)
        else:
            self.display = _PlainProgress(total, steps_per_epoch, done, main)

    def __enter__(self) -> TrainMonitor:
        self.display.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.display.__exit__(*exc)

    def batches(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """The items of ``iterable``, adding the time spent waiting for each to the data wait."""
        iterator = iter(iterable)
        while True:
            t0 = time.perf_counter()
            item = next(iterator, _END)
            waited = time.perf_counter() - t0
            self.data_wait_s += waited
            self.window_wait += waited
            if item is _END:
                return
            yield item

    def step_done(self, step: int, epoch: int, loss: torch.Tensor, lr: float) -> None:
        """Record optimizer step ``step`` (of ``epoch``, 0-based) with its loss (a scalar tensor
        on the device) and learning rate; reads the loss back and logs it when due."""
        if step in (self.done + 1, self.total) or step % self.log_every == 0:
            self.loss = float(loss.detach())
            now = time.perf_counter()
            window = max(now - self.window_start, 1e-9)
            self.accelerator.log(
                {
                    "train/loss": self.loss,
                    "train/lr": lr,
                    "train/step_s": (now - self.started) / (step - self.done),
                    "train/data_wait_fraction": self.window_wait / window,
                },
                step=step,
            )
            self.window_start, self.window_wait = now, 0.0
        self.display.update(step, epoch, self.loss, lr)

    def timings(self, steps: int) -> dict[str, float]:
        """``data_wait_s`` (seconds this process waited for batches) and ``step_s`` (seconds
        per optimizer step, the wait included) over the ``steps`` steps this process ran."""
        elapsed = time.perf_counter() - self.started
        return {
            "data_wait_s": round(self.data_wait_s, 3),
            "step_s": round(elapsed / max(steps, 1), 4),
        }


_END = object()


def check_tracker(name: str | None) -> str | None:
    """``--report-to``'s value when Accelerate knows the tracker (or ``all``); a one-line
    UsageError naming the known ones otherwise."""
    known = [t.value for t in LoggerType]
    if name is not None and name not in known:
        raise UsageError(
            f"--report-to {name!r} is not a tracker Accelerate knows: {', '.join(known)}"
        )
    return name


def start_trackers(accelerator: Accelerator, config: dict[str, Any]) -> None:
    """Start the run's trackers (if any) with the resolved config as hyper-parameters."""
    if accelerator.log_with:
        accelerator.init_trackers(TRACKER_PROJECT, config=_flat(config))


def log_final(accelerator: Accelerator, metrics: dict[str, Any], step: int) -> None:
    """Log the final metrics (numbers only, nested names joined with ``/``) and close the
    trackers."""
    if accelerator.log_with:
        numbers = {k: v for k, v in _flat(metrics, "eval").items() if isinstance(v, int | float)}
        accelerator.log(numbers, step=step)
        accelerator.end_training()


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; values a tracker cannot store become text."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flat(value, name))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


class _PlainProgress:
    """Training progress as plain lines, for logs (stdout not a terminal: nohup, a cluster job),
    where rich would draw its bar only at the end: the first step, then at least every
    ``PLAIN_PROGRESS_EVERY_S`` seconds, and the last step."""

    def __init__(self, total: int, steps_per_epoch: int, done: int, enabled: bool) -> None:
        self.total, self.steps_per_epoch, self.done = total, steps_per_epoch, done
        self.enabled = enabled
        self.start = self.last = time.perf_counter()

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, step: int, epoch: int, loss: float, lr: float) -> None:
        """Print the line of optimizer step ``step`` when one is due."""
        now = time.perf_counter()
        due = step in (self.done + 1, self.total) or now - self.last >= PLAIN_PROGRESS_EVERY_S
        if not (self.enabled and due):
            return
        self.last = now
        rate = (step - self.done) / max(now - self.start, 1e-9)
        epochs = self.total // self.steps_per_epoch
        print(
            f"train step {step}/{self.total} epoch {epoch + 1}/{epochs} loss {loss:.4f} "
            f"lr {lr:.2e} {rate:.2f} steps/s ETA {_duration((self.total - step) / rate)}",
            flush=True,
        )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class _RichProgress:
    """Training progress as rich's bar, on a terminal."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("lr {task.fields[lr]:.2e}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.bar = self.progress.add_task("train", total=total, completed=done, loss=0.0, lr=0.0)

    def __enter__(self) -> _RichProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, epoch: int, loss: float, lr: float) -> None:
        """Move the bar to optimizer step ``step``."""
        self.progress.update(self.bar, completed=step, loss=loss, lr=lr)
