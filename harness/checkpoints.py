"""A run's checkpoints: their folder layout, atomic saves, which ones are complete, the checks of
their files before loading, and which config keys a resumed or evaluated run may change.

``<run>/checkpoints/step_N/`` holds Accelerate's ``save_state`` (``model.safetensors``,
``optimizer.bin``, ``scheduler.bin``, ``random_states_<process>.pkl``: python, numpy and torch
RNG states of every process), the resolved ``config.yaml``, what the task needs to evaluate it
(the tokenizer) and, written last, ``trainer_state.json`` (the step and the loader position).
Everything is written into a hidden ``.step_N.partial`` folder renamed when whole, so a killed
save never leaves a folder that :func:`completed_checkpoints` takes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from harness import results
from harness.config import Config, ConfigError
from harness.errors import UserError

if TYPE_CHECKING:  # run.py reads checkpoints before anything imports torch
    from accelerate import Accelerator

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
# the names Accelerate's save_state gives the weights, the optimizer and the RNG states
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.bin"
RNG_FILES = "random_states_*.pkl"
CONFIG_FILE = "config.yaml"
_PREFIX = "step_"
# What --resume may change, and applies: the length of the schedule (the warmup-cosine is
# rebuilt over the new total), how checkpoints are kept, where data is read from, how it is
# loaded (same values, other speed), the gradient cache's chunk (same gradient, other memory:
# a run may continue on a smaller device), and the evaluation after training. Any other change is
# refused: the optimizer state, the RNG streams and the data order belong to the saved run.
RESUME_APPLIES = (
    "train.epochs",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.log_every",
    "train.micro_batch",
    "data.root",
    "data.video_root",
    "data.num_workers",
    "data.cache_in_memory",
    "data.frame_cache",
    "output_root",
    "eval",
)
# Test hook (tests/test_resume.py), never set in real runs: "after_step:N" SIGKILLs the process
# right after optimizer step N, "in_save:N" inside the save of step N (files written, not marked
# complete).
KILL_HOOK = "EMCL_BENCH_TEST_KILL"
_USE_PREVIOUS = "delete its folder to use the run's previous checkpoint"


class RunError(UserError, RuntimeError):
    """A problem with the run's folders or checkpoints; the message is one line."""


@dataclass(frozen=True)
class TrainerState:
    """Where training stood when a checkpoint was taken: ``global_step`` optimizer steps done,
    to be continued in ``epoch`` after its first ``batches_done`` batches (per process), of a
    schedule of ``total_steps``; the process count and precision that wrote the RNG states; the
    ``loss`` of the last step (None before the first)."""

    global_step: int
    epoch: int
    batches_done: int
    total_steps: int
    num_processes: int
    mixed_precision: str
    loss: float | None = None

    def write(self, folder: Path) -> None:
        """Write ``trainer_state.json`` into ``folder`` (atomically: it marks it complete)."""
        results.atomic_write_text(folder / TRAINER_STATE, json.dumps(asdict(self)) + "\n")

    @classmethod
    def read(cls, folder: Path) -> TrainerState:
        """The state in ``folder/trainer_state.json``; a damaged file is a one-line RunError."""
        path = Path(folder) / TRAINER_STATE
        try:
            data = json.loads(path.read_text())
            missing = [f.name for f in fields(cls) if f.name not in data]
            if missing:
                raise ValueError(f"no field {missing[0]!r}")
            state = cls(**{f.name: data[f.name] for f in fields(cls)})
        except (OSError, ValueError, TypeError) as exc:
            raise _damaged(path, exc) from exc
        ints = (state.global_step, state.epoch, state.batches_done, state.total_steps)
        if not all(isinstance(n, int) and n >= 0 for n in ints):
            raise _damaged(path, ValueError("negative or non-integer counts"))
        return state


def _damaged(path: Path, exc: BaseException) -> RunError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return RunError(
        f"checkpoint file {path} is damaged ({first}): delete its folder {path.parent} to use "
        "the run's previous checkpoint"
    )


def completed_checkpoints(run_folder: Path) -> list[Path]:
    """The run folder's complete ``checkpoints/step_N`` folders (those holding their trainer
    state, written last), oldest first; empty when there is none."""
    found = []
    for path in (Path(run_folder) / CHECKPOINTS).glob(f"{_PREFIX}*"):
        step = path.name.removeprefix(_PREFIX)
        if step.isdigit() and (path / TRAINER_STATE).is_file():
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(path: Path) -> Path:
    """The checkpoint to load from ``path``: a checkpoint folder itself, or a run folder (its
    newest complete ``checkpoints/step_N``). A one-line RunError when there is none; nothing is
    created."""
    path = Path(path)
    if not path.exists():
        raise RunError(
            f"checkpoint {path} does not exist: pass a run folder written by run.py, one of "
            f"its {CHECKPOINTS}/{_PREFIX}N folders, or a reference repository's checkpoint file"
        )
    if (path / TRAINER_STATE).is_file():
        return path
    complete = completed_checkpoints(path)
    if not complete:
        raise RunError(
            f"no complete checkpoint in {path}: expected {path / CHECKPOINTS}/{_PREFIX}N/"
            f"{TRAINER_STATE} (a run folder written by `run.py --output-dir`) or a checkpoint "
            "folder"
        )
    return complete[-1]


def resume_checkpoint(run_folder: Path) -> Path | None:
    """The checkpoint ``--resume`` continues from: the newest complete one of ``run_folder``.
    None when there is none yet (no folder, or only the leftovers of a first save that was
    killed): the run starts at step 0. A folder holding other files but no checkpoint (e.g. an
    evaluation's) is a one-line RunError."""
    run_folder = Path(run_folder)
    complete = completed_checkpoints(run_folder)
    if complete:
        return complete[-1]
    others = [p for p in _files(run_folder) if not _is_leftover(p.relative_to(run_folder))]
    if others:
        raise RunError(
            f"--resume: {run_folder} holds no complete checkpoint to resume from (it holds "
            f"{others[0].relative_to(run_folder)}); choose the run's own folder or drop --resume"
        )
    return None


def _files(folder: Path) -> Iterator[Path]:
    """Every file under ``folder`` (none when it does not exist)."""
    return (p for p in folder.rglob("*") if not p.is_dir()) if folder.is_dir() else iter(())


def _is_leftover(relative: Path) -> bool:
    """Whether a run folder's file lies in a hidden ``checkpoints/.name`` folder: a save that
    was killed, or an old checkpoint whose deletion was."""
    parts = relative.parts
    return len(parts) > 2 and parts[0] == CHECKPOINTS and parts[1].startswith(".")


def check_unused(folder: Path) -> None:
    """Refuse, in one line, a run folder that already holds files: a run never overwrites
    another one's records (``--resume`` continues it instead)."""
    folder = Path(folder)
    if next(_files(folder), None) is not None:
        raise RunError(
            f"output folder {folder} is not empty: pass --resume to continue its run, or choose "
            "another --output-dir"
        )


def saved_config(checkpoint: Path) -> Path:
    """The ``config.yaml`` of a checkpoint folder (its run's resolved config); a one-line
    RunError when it has none."""
    path = Path(checkpoint) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"checkpoint file {path} is missing: {_USE_PREVIOUS}")
    return path


def run_folder_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint folder (itself when it is not inside one)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint


def save_checkpoint(
    accelerator: Accelerator,
    run_folder: Path,
    state: TrainerState,
    write_files: Callable[[Path], None],
    keep: int,
    also_keep: str | None = None,
) -> None:
    """Save the prepared objects, the RNG states and ``state`` as ``checkpoints/step_N`` of
    ``run_folder``; ``write_files(folder)`` adds the config and the task's files (main process).
    The folder is complete only once renamed; then all but the newest ``keep`` complete
    checkpoints are deleted, except the one named ``also_keep`` (the selected epoch's, when
    ``eval.select_on`` selects). Every process calls it."""
    root = Path(run_folder) / CHECKPOINTS
    final = root / f"{_PREFIX}{state.global_step}"
    partial = root / f".{final.name}.partial"
    if accelerator.is_main_process:
        _remove_leftovers(root)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    # every process's RNG file is in before the folder is marked complete
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for path in partial.iterdir():
            results.share_as_umask(path)
        write_files(partial)
        kill_point_for_tests("in_save", state.global_step)
        state.write(partial)
        partial.rename(final)
        for old in completed_checkpoints(run_folder)[:-keep]:
            if old.name != also_keep:
                _delete(old)
    accelerator.wait_for_everyone()


def _remove_leftovers(root: Path) -> None:
    """Remove the hidden folders left by killed saves or deletions."""
    for path in root.glob(f".{_PREFIX}*"):
        if path.is_dir():
            shutil.rmtree(path)


def _delete(folder: Path) -> None:
    """Delete a checkpoint folder: first renamed to a hidden name (atomic), so that a kill
    during the deletion leaves a leftover, never a checkpoint missing files."""
    doomed = folder.with_name(f".{folder.name}.deleting")
    folder.rename(doomed)
    shutil.rmtree(doomed)


def kill_point_for_tests(where: str, step: int) -> None:
    """Test hook: SIGKILL this process when ``EMCL_BENCH_TEST_KILL`` is ``where:step`` (a kill
    that no handler can soften, as ``kill -9``). Does nothing in real runs."""
    if os.environ.get(KILL_HOOK) == f"{where}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def check_files(folder: Path, training: bool, process_index: int = 0) -> TrainerState:
    """Check a checkpoint's files before anything loads them; returns its trainer state. The
    weights always; with ``training`` (a resume) also the optimizer and scheduler states and this
    process's RNG states. A missing, truncated or damaged file is a one-line RunError naming it."""
    state = TrainerState.read(folder)
    _check_safetensors(folder / MODEL_FILE)
    if training:
        needed = [OPTIMIZER_FILE, RNG_FILES.replace("*", str(process_index))]
        for name in needed:
            if not (folder / name).is_file():
                raise RunError(f"checkpoint file {folder / name} is missing: {_USE_PREVIOUS}")
        # torch.save writes zip archives: a cut one has no central directory, a damaged one a
        # bad CRC
        for path in [*folder.glob("*.bin"), *folder.glob(RNG_FILES)]:
            _check_zip(path)
    return state


def _check_safetensors(path: Path) -> None:
    if not path.is_file():
        raise RunError(f"checkpoint file {path} is missing: {_USE_PREVIOUS}")
    try:
        # the header lists every tensor's byte range: a cut file does not cover them
        with safe_open(str(path), "pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise _damaged(path, exc) from exc


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _damaged(path, exc) from exc
    if bad is not None:
        raise _damaged(path, ValueError(f"member {bad} fails its CRC check"))


def config_changes(saved: Config, config: Config) -> dict[str, tuple[Any, Any]]:
    """The keys whose value in ``config`` differs from ``saved`` (a checkpoint's config):
    ``{dotted key: (saved value, new value)}``. Keys the saved config lacks (declared since)
    keep their defaults and are not changes."""
    now = dict(_leaves(config))
    return {
        key: (value, now[key]) for key, value in _leaves(saved) if key in now and now[key] != value
    }


def _leaves(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _covered(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def refuse_model_changes(
    changes: Mapping[str, tuple[Any, Any]], model_keys: tuple[str, ...], source: Path
) -> None:
    """For ``--eval-only``: a one-line ConfigError for the first change of a key in
    ``model_keys`` (it would change what the weights mean, or their shapes) against the config
    file ``source`` of the checkpoint's run."""
    for key, (old, new) in changes.items():
        if _covered(key, model_keys):
            raise ConfigError(
                f"config key {key!r} is {new!r} here but {old!r} in the checkpoint's run "
                f"({source}): it changes the model; drop the change (the evaluation takes it "
                "from the checkpoint)"
            )


def refuse_resume_changes(changes: Mapping[str, tuple[Any, Any]], source: Path) -> None:
    """For ``--resume``: a one-line ConfigError for the first change of a key that a resumed
    run does not apply (see ``RESUME_APPLIES``), against the config file ``source`` of the run's
    last checkpoint."""
    for key, (old, new) in changes.items():
        if not _covered(key, RESUME_APPLIES):
            raise ConfigError(
                f"config key {key!r} is {new!r} here but {old!r} in the run being resumed "
                f"({source}): --resume continues the run as it was started; drop the change, or "
                "start a new run in another --output-dir"
            )
