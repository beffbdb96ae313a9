"""Model selection (``eval.select_on``): which epoch's weights the final evaluation uses.

``last``: the weights after the last epoch (no evaluation during training). ``val``: every epoch
end scores the split ``eval.val_split`` by the task's main metric (``Task.main_metric``); the
best epoch's checkpoint is kept beside the newest ones, and the test split is evaluated once, at
the end, with it. ``test``: the same on the evaluated split itself, the behaviour of
EMCL-Net's and CLIP4Clip's MSR-VTT scripts (labelled "selected on test" on the leaderboards).

The epoch-end evaluations draw nothing from the training RNG streams (they run under
``torch.random.fork_rng``), so a run trains the same whatever ``select_on`` says, and the
selection so far is saved in every checkpoint (``selection.json``) for ``--resume``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState

from harness.config import Config
from harness.result_spec import metric_value
from harness.task import Task

SELECT_ON = ("last", "val", "test")
SELECTION_FILE = "selection.json"  # in each checkpoint folder


@dataclass
class Selection:
    """The scores so far: ``history`` one ``{"epoch", "step", "value"}`` per epoch end; the
    best (first of equals) by ``epoch``, ``step`` and ``value``."""

    select_on: str
    split: str
    metric: str
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int | None = None
    step: int | None = None
    value: float | None = None
    # evaluated videos of the selection split that are also in the evaluated split (MSR-VTT
    # 1k-A's "val" is its test): a positive count makes "val" a selection on the test
    test_overlap: int | None = None

    def add(self, epoch: int, step: int, value: float) -> None:
        """Record the score of the epoch that ended at optimizer ``step``."""
        self.history.append({"epoch": epoch, "step": step, "value": value})
        if self.value is None or value > self.value:
            self.epoch, self.step, self.value = epoch, step, value


class Selector:
    """Scores each epoch end on the selection split and remembers the best."""

    def __init__(self, config: Config, task: Task) -> None:
        cfg = config["eval"]
        split = cfg["split"] if cfg["select_on"] == "test" else cfg["val_split"]
        self.state = Selection(cfg["select_on"], split, " ".join(task.main_metric))
        self.main_metric = task.main_metric
        scoring = copy.deepcopy(config)
        scoring["eval"]["split"] = split
        if "postprocess" in scoring["eval"]:  # selection reads the raw main metric only
            scoring["eval"]["postprocess"] = []
        self.task = type(task)(scoring)
        self.evaluated = task
        self.ready = False

    def score(self, model: torch.nn.Module, epoch: int, step: int, autocast: Any) -> None:
        """Evaluate the unwrapped ``model`` on the selection split (setting that split up on
        first use) and record its main metric for ``epoch`` (from 1); the model goes back to
        training mode. ``autocast``: the accelerator's autocast context."""
        if not self.ready:
            self.task.setup(train=False)
            scored, tested = self.task.evaluated_videos(), self.evaluated.evaluated_videos()
            if scored and tested:  # None: the task does not say which videos it scores
                self.state.test_overlap = len(set(scored) & set(tested))
            self.ready = True
        if PartialState().is_main_process:
            print(f"select: epoch {epoch} on split {self.state.split}", flush=True)
        with torch.random.fork_rng(), torch.no_grad(), autocast():
            model.eval()
            metrics = self.task.evaluate(model).metrics
        model.train()
        value = metric_value(metrics, self.main_metric)
        self.state.add(epoch, step, float(value))

    def save(self, folder: Path) -> None:
        """Write the selection so far into checkpoint ``folder``."""
        (folder / SELECTION_FILE).write_text(json.dumps(asdict(self.state), indent=2) + "\n")

    def load(self, folder: Path) -> None:
        """Continue from the selection saved in checkpoint ``folder`` (none: from scratch)."""
        path = folder / SELECTION_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if (saved["select_on"], saved["split"]) == (self.state.select_on, self.state.split):
                self.state = Selection(**saved)

    def best_checkpoint(self) -> str | None:
        """The folder name of the best epoch's checkpoint (None before the first score)."""
        return None if self.state.step is None else f"step_{self.state.step}"


def selector_for(config: Config, task: Task) -> Selector | None:
    """The selector of a training run, None for ``eval.select_on=last``."""
    return None if config["eval"]["select_on"] == "last" else Selector(config, task)


def last_epoch_record(epochs: int, steps: int) -> dict[str, Any]:
    """results.json's ``selection`` of a run that evaluates its last epoch."""
    return {"select_on": "last", "split": None, "epoch": epochs, "step": steps}
