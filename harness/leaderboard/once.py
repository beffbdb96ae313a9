"""Each (run, checkpoint) once. ``run.py --eval-only`` evaluates a checkpoint of a run into
``<run>/eval/`` (``eval-2/``, ...); its record names the checkpoint folder it loaded
(``training.checkpoint``: ``<run>/checkpoints/<name>``) and the step it was saved at
(``training.steps``). Searching the runs folders recursively finds that record beside the run's
own, which evaluated the run's last step when its training ended: for the last checkpoint the two
are one model and would make two rows (a p-value of 1 against itself).

Which record is kept: the run's own record when it is read; otherwise the first eval-only record
of that checkpoint by run id. Records are of the same checkpoint when they are of the same run
and their ``training.steps`` agree, or one does not say. Every other record is left out with one
``skipping <path>: ...`` line; so is a folder read twice through two runs folders. A record is
an eval-only record when its ``training`` names a ``checkpoint``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.schema import RESULTS_FILE

if TYPE_CHECKING:  # records imports this module to apply it
    from harness.leaderboard.records import RunRecord


def _training(record: Mapping[str, Any], key: str) -> Any:
    training = record.get("training")
    return training.get(key) if isinstance(training, Mapping) else None


def evaluated_checkpoint(record: Mapping[str, Any]) -> Path | None:
    """The checkpoint folder an eval-only ``record`` loaded; None for a training run's record."""
    checkpoint = _training(record, "checkpoint")
    return Path(checkpoint) if isinstance(checkpoint, str) else None


def evaluated_step(record: Mapping[str, Any]) -> int | None:
    """The optimizer step whose weights ``record`` evaluated (``training.steps``), if it says."""
    step = _training(record, "steps")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def run_of(run: RunRecord) -> Path:
    """The run folder ``run`` evaluated (resolved): its own folder for a training run's record;
    for an eval-only record, the run of its checkpoint (``<run>/checkpoints/<name>``): the
    folder above the record's when that has the run's name (a ``<run>/eval`` record, wherever
    the folders were moved since), else the checkpoint's run as recorded."""
    checkpoint = evaluated_checkpoint(run.record)
    if checkpoint is None:
        return run.folder.resolve()
    recorded = checkpoint.parent.parent
    above = run.folder.parent
    return (above if above.name == recorded.name else recorded).resolve()


def once_per_checkpoint(runs: Sequence[RunRecord], warn: Callable[[str], None]) -> list[RunRecord]:
    """``runs`` (in their order) with one record per (run, checkpoint), as the module says;
    ``warn`` gets one line per record left out."""
    shown: dict[Path, list[RunRecord]] = {}
    # own records first (a stable sort keeps run-id order within each kind): they win their run
    for run in sorted(runs, key=lambda r: evaluated_checkpoint(r.record) is not None):
        kept = shown.setdefault(run_of(run), [])
        step = evaluated_step(run.record)
        same = [k for k in kept if step is None or evaluated_step(k.record) in (None, step)]
        if not same:
            kept.append(run)
            continue
        warn(
            f"skipping {run.folder / RESULTS_FILE}: same run and checkpoint as run "
            f"{same[0].run_id}, which is shown"
        )
    kept_ids = {id(run) for group in shown.values() for run in group}
    return [run for run in runs if id(run) in kept_ids]
