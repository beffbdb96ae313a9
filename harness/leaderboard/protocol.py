"""The evaluation protocol of a leaderboard row: what must be equal for two rows to share a group.

A protocol is the evaluated split (with the dataset options that change which videos and
captions it holds, e.g. MSR-VTT's ``test_split=1k-A, train_split=9k``), the training regime when
it is not fine-tuning (``zero-shot``), the backbone, frames and words per item, the input
resolution, the caption language, the global training batch (its in-batch negatives: runs
with different global batches are different experiments), how the evaluated checkpoint was
selected (``selection``: the split its epoch was chosen on, ``None`` for the last epoch) and the
post-processing of the scores (``postprocessing``: a ``metrics_postprocessed`` name, ``None`` for
the raw scores) with its settings (``postprocessing_settings``: temperatures, QB-Norm's bank size
and beta, as results.json's ``protocol.postprocess`` states them). A field nobody stated stays
``None`` (settings: empty), which differs from every value: rows are compared only when their
protocols are identical.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import PurePath
from typing import Any

from harness.errors import UserError
from harness.schema import ZERO_SHOT

# A string option ending like a file name (``MSRVTT_data.json``) names an input file, not a
# choice of split: it does not enter the protocol.
_FILE_NAME = re.compile(r"\.[A-Za-z0-9]{2,5}$")
_VIT = re.compile(r"vit[-_/]?([bl])[-_/]?(\d+)", re.IGNORECASE)
_HF_VIT = re.compile(r"(base|large)[-_]patch(\d+)", re.IGNORECASE)
# Dataset options named train* choose the training data, which a zero-shot run never saw.
_TRAINING_OPTION = "train"


class ProtocolError(UserError, ValueError):
    """A protocol in reported.yaml that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Protocol:
    """The protocol fields; ``dataset_options`` is a sorted tuple of (key, rendered value)."""

    split: str
    dataset_options: tuple[tuple[str, str], ...] = ()
    training: str | None = None
    backbone: str | None = None
    frames: int | None = None
    words: int | None = None
    resolution: int | None = None
    language: str | None = None
    selection: str | None = None
    postprocessing: str | None = None
    postprocessing_settings: tuple[tuple[str, str], ...] = ()
    global_batch: int | None = None

    def label(self, postprocessings: Mapping[str, str] | None = None) -> str:
        """One line naming every stated field, e.g. ``split test (test_split=1k-A,
        train_split=9k) · ViT-B/32 · 12 frames · 32 words · 224 px``; ``postprocessings`` maps
        a post-processing name to its label (the task's result spec)."""
        split = f"split {self.split}" + _listed(self.dataset_options)
        parts = [
            split,
            self.training,
            self.backbone and f"backbone {self.backbone}",
            self.frames is not None and f"{self.frames} frames",
            self.words is not None and f"{self.words} words",
            self.resolution is not None and f"{self.resolution} px",
            self.language and f"captions in {self.language}",
            self.selection and f"selected on {self.selection}",
            self.postprocessing
            and "post-processing: "
            + (postprocessings or {}).get(self.postprocessing, self.postprocessing)
            + _listed(self.postprocessing_settings),
            self.global_batch is not None and f"global batch {self.global_batch}",
        ]
        return " · ".join(part for part in parts if part)

    def sort_key(self) -> tuple:
        """A key that orders protocols deterministically (``None`` fields first)."""
        return tuple((value is not None, value) for value in self._values())

    def _values(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))


def protocol_of_run(record: Mapping[str, Any]) -> Protocol:
    """The protocol of a run record (results.json): its ``protocol`` block, the scalar options
    of the dataset's config section that are not file names, and its ``global_batch`` (records
    written before that field: the config's ``train.batch_size``, which was the global batch).
    A zero-shot record (``training: zero-shot``) states that regime, has no training batch and
    drops the options that choose training data (named ``train*``), as the reported zero-shot
    rows do."""
    described = record["protocol"]
    section = record["config"].get(record["dataset"])
    section = section if isinstance(section, Mapping) else {}
    zero_shot = record.get("training") == ZERO_SHOT
    options = {
        key: value
        for key, value in section.items()
        if isinstance(value, bool | int | float | str)
        and not (isinstance(value, str) and _FILE_NAME.search(value))
        and not (zero_shot and key.startswith(_TRAINING_OPTION))
    }
    return Protocol(
        split=str(described["split"]),
        dataset_options=rendered(options),
        training=ZERO_SHOT if zero_shot else None,
        backbone=backbone_name(described.get("encoder")),
        frames=described.get("max_frames"),
        words=described.get("max_words"),
        resolution=described.get("image_size"),
        selection=selection_of(record),
        global_batch=None
        if zero_shot
        else record.get("global_batch", record["config"].get("train", {}).get("batch_size")),
    )


def selection_of(record: Mapping[str, Any]) -> str | None:
    """What a run's evaluated epoch was selected on: ``"test"`` when on the evaluated split or
    on a val split that shares videos with it (``selection.test_overlap``, e.g. MSR-VTT 1k-A's
    val), else the val split's name; None when it evaluated its last epoch."""
    selection = record.get("selection")
    if not isinstance(selection, Mapping) or selection.get("select_on") in (None, "last"):
        return None
    overlap = selection.get("test_overlap")
    if selection.get("select_on") == "test" or (isinstance(overlap, int) and overlap > 0):
        return "test"
    return _text(selection.get("split"))


def protocol_from_yaml(data: Any, where: str) -> Protocol:
    """A protocol written in reported.yaml (``split`` required; ``dataset_options`` a mapping;
    the other fields of :class:`Protocol` optional); ``where`` names the entry in errors
    (:class:`ProtocolError`)."""
    if not isinstance(data, Mapping) or "split" not in data:
        raise ProtocolError(f"{where}: 'protocol' must be a mapping with at least 'split'")
    known = {f.name for f in fields(Protocol)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProtocolError(
            f"{where}: unknown protocol field {unknown[0]!r} (known: {sorted(known)})"
        )
    options = data.get("dataset_options") or {}
    if not isinstance(options, Mapping):
        raise ProtocolError(f"{where}: 'protocol.dataset_options' must be a mapping")
    settings = data.get("postprocessing_settings") or {}
    if not isinstance(settings, Mapping) or (settings and "postprocessing" not in data):
        raise ProtocolError(
            f"{where}: 'protocol.postprocessing_settings' must be a mapping, given with "
            "'protocol.postprocessing'"
        )
    for key in ("frames", "words", "resolution", "global_batch"):
        if key in data and not (isinstance(data[key], int) and not isinstance(data[key], bool)):
            raise ProtocolError(f"{where}: 'protocol.{key}' must be an integer")
    return Protocol(
        split=str(data["split"]),
        dataset_options=rendered(options),
        training=_text(data.get("training")),
        backbone=_text(data.get("backbone")),
        frames=data.get("frames"),
        words=data.get("words"),
        resolution=data.get("resolution"),
        language=_text(data.get("language")),
        selection=_text(data.get("selection")),
        postprocessing=_text(data.get("postprocessing")),
        postprocessing_settings=rendered(settings),
        global_batch=data.get("global_batch"),
    )


def backbone_name(encoder: str | None) -> str | None:
    """A run's ``protocol.encoder`` as a backbone name: ``ViT-B/32`` for OpenAI files and HF ids
    of CLIP ViT-B/32 (``ViT-B-32.pt``, ``openai/clip-vit-base-patch32``), ``random:tiny`` as
    is, else the last path component (never an absolute path)."""
    if encoder is None:
        return None
    for pattern in (_VIT, _HF_VIT):
        match = pattern.search(encoder)
        if match:
            size = "B" if match.group(1).lower() in ("b", "base") else "L"
            return f"ViT-{size}/{match.group(2)}"
    return encoder if ":" in encoder else PurePath(encoder).name


def rendered(options: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``{"beta": 20.0, "k": 1}`` -> ``(("beta", "20.0"), ("k", "1"))``: sorted by key, values as
    written in YAML; the form options take in a :class:`Protocol`."""
    return tuple(sorted((str(key), _render(value)) for key, value in options.items()))


def _listed(options: tuple[tuple[str, str], ...]) -> str:
    """`` (a=1, b=x)``, or nothing for no options."""
    return " (" + ", ".join(f"{k}={v}" for k, v in options) + ")" if options else ""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _render(value: Any) -> str:
    """An option value as written in YAML (``true``, ``9k``, ``0``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
