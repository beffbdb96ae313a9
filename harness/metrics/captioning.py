"""Caption metrics by pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr and optionally SPICE.

Every caption (prediction and reference) first goes through pycocoevalcap's PTBTokenizer
(Stanford PTB tokenizer in java: lower-cased, punctuation tokens removed), then through the
pycocoevalcap scorers ``Bleu(4)`` (corpus BLEU, ``closest`` reference length), ``Meteor()``
(meteor-1.5.jar), ``Rouge()``, ``Cider()`` (the CIDEr-D variant; document frequencies come from
the references of the videos passed in, so scores depend on the evaluated set: with a single
video every n-gram has document frequency 1 and CIDEr is 0) and ``Spice()``.

Values are PERCENTAGES: pycocoevalcap's numbers times 100, the unit of captioning leaderboards
(MSR-VTT "BLEU-4 45.3", "CIDEr 52.x"). Java 8+ must be on PATH.

ROUGE-L and CIDEr(-D) corpus scores are the means of per-video scores, which
:func:`caption_scores` also returns (from the same scorer calls), so that intervals can be
bootstrapped over videos. BLEU and METEOR are corpus-level statistics, not per-video means.
"""

from __future__ import annotations

import atexit
import subprocess
import zipfile
from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.spice.spice import Spice
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from harness.metrics.checks import check_same_keys

CAPTION_METRIC_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
# Metrics whose corpus score is the mean of per-video scores.
PER_VIDEO_KEYS = ("ROUGE-L", "CIDEr")
_JAVA_HINT = "check that `java -version` works (java 8+ on PATH)"

# One METEOR java process per python process: its JVM start and paraphrase table load cost ~10 s.
_meteor: Meteor | None = None


class CaptionScores(NamedTuple):
    """``corpus``: the :func:`caption_metrics` dict; ``per_video``: video id ->
    ``{"ROUGE-L", "CIDEr"}`` (percentages) whose means over the videos are the corpus values."""

    corpus: dict[str, float]
    per_video: dict[Hashable, dict[str, float]]


def caption_metrics(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    spice: bool = False,
) -> dict[str, float]:
    """Corpus-level caption metrics: ``caption_scores(predictions, references, spice).corpus``."""
    return caption_scores(predictions, references, spice).corpus


def caption_scores(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    spice: bool = False,
) -> CaptionScores:
    """Corpus-level caption metrics of one predicted caption per video against its references.

    ``predictions`` maps video id -> predicted caption; ``references`` maps the same ids ->
    a non-empty list of reference captions (at least one of them non-blank). Returns
    ``CaptionScores(corpus, per_video)``: ``corpus`` is
    ``{"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}`` (plus ``"SPICE"``
    when ``spice=True``) as percentages (pycocoevalcap's 0..1 values x 100; CIDEr-D x 100, so it
    can exceed 100); ``per_video`` maps every video id (in ``references`` order) to its own
    ``{"ROUGE-L", "CIDEr"}`` percentages, the scores pycocoevalcap averages into the corpus
    values (CIDEr-D's document frequencies still come from all the videos passed in).

    An empty or blank prediction (or one made only of punctuation) is scored as pycocoevalcap
    scores the empty token list: 0 on every metric for that video, and it still adds its
    references' length to BLEU's corpus brevity penalty. Every run of whitespace in a caption
    (newlines, carriage returns, U+2028, ...) is replaced by one space first: the java tokenizer
    reads one caption per line, and a line break inside a caption would shift every later caption
    onto the wrong video. SPICE needs the Stanford CoreNLP jars, which pycocoevalcap downloads on
    first use; offline that fails with a RuntimeError. METEOR runs in one java process shared by
    every call of this python process (started on first use, ~10 s; stopped at exit); calls from
    several threads at once are not supported.
    """
    _check_inputs(predictions, references)
    # Fail before the slow scorers when SPICE cannot run.
    spice_scorer = _spice_scorer() if spice else None
    ids = list(references)
    tokens = _tokenize(
        {("pred", vid): [predictions[vid]] for vid in ids}
        | {("ref", vid): list(references[vid]) for vid in ids}
    )
    res = {vid: tokens[("pred", vid)] for vid in ids}
    gts = {vid: tokens[("ref", vid)] for vid in ids}

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n}": bleu[n - 1] for n in range(1, 5)}
    scores["METEOR"] = _meteor_score(gts, res)
    # Both scorers return (mean, per-video array in the key order of gts).
    scores["ROUGE-L"], rouge_each = Rouge().compute_score(gts, res)
    scores["CIDEr"], cider_each = Cider().compute_score(gts, res)
    each = {"ROUGE-L": rouge_each, "CIDEr": cider_each}
    if spice_scorer is not None:
        scores["SPICE"] = _spice_score(spice_scorer, gts, res)
    return CaptionScores(
        corpus={key: 100.0 * float(value) for key, value in scores.items()},
        per_video={
            vid: {key: 100.0 * float(each[key][i]) for key in PER_VIDEO_KEYS}
            for i, vid in enumerate(gts)
        },
    )


def _check_inputs(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> None:
    """Raise a one-line ValueError unless both dicts cover the same ids with usable captions."""
    if not references:
        raise ValueError("references is empty; pass at least one video id -> list of captions")
    check_same_keys(references, predictions, "references", "predictions", "video id")
    for vid in references:
        caption, refs = predictions[vid], references[vid]
        if not isinstance(caption, str):
            raise ValueError(
                f"predictions[{vid!r}] must be one caption string, got {type(caption).__name__}"
            )
        if isinstance(refs, str) or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"references[{vid!r}] must be a list of caption strings")
        if not any(r.strip() for r in refs):
            raise ValueError(f"references[{vid!r}] has no non-empty caption; give at least one")


def _tokenize(captions: dict[Hashable, list[str]]) -> dict[Hashable, list[str]]:
    """PTB-tokenize every caption of every key in one java run (same keys and list lengths)."""
    feed = {key: [{"caption": " ".join(c.split())} for c in caps] for key, caps in captions.items()}
    try:
        tokens = PTBTokenizer().tokenize(feed)
    except OSError as err:
        # pycocoevalcap writes its input to a temporary file inside its own package folder.
        raise RuntimeError(
            f"PTB tokenizer could not run ({err}); it needs java on PATH and a writable "
            "pycocoevalcap/tokenizer folder"
        ) from err
    if any(len(tokens.get(key, ())) != len(caps) for key, caps in captions.items()):
        raise RuntimeError(f"PTB tokenizer (java) returned fewer captions than given; {_JAVA_HINT}")
    return tokens


def _meteor_score(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]) -> float:
    """Corpus METEOR (0..1) from the shared java process, restarted next time if it failed."""
    global _meteor
    try:
        if _meteor is None:
            _meteor = Meteor()
        return _meteor.compute_score(gts, res)[0]
    except (OSError, ValueError) as err:
        # A failure leaves the process's pipe out of step with its answers: never reuse it.
        _close_meteor()
        message = str(err).replace("\n", " ")
        raise RuntimeError(
            f"METEOR (java, meteor-1.5.jar) failed: {message}; {_JAVA_HINT}"
        ) from err


@atexit.register
def _close_meteor() -> None:
    """Stop the shared METEOR java process, if any (at exit, or after it failed)."""
    global _meteor
    scorer, _meteor = _meteor, None
    if scorer is None:
        return
    # pycocoevalcap holds this lock across compute_score without try/finally, so a failed call
    # leaves it held and Meteor.__del__ (which takes it) would block forever.
    if scorer.lock.locked():
        scorer.lock.release()
    try:
        scorer.meteor_p.stdin.close()
    except OSError:
        pass  # the process already died; closing its pipe can only report that again
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()


def _spice_scorer() -> Spice:
    """pycocoevalcap's SPICE scorer, which downloads Stanford CoreNLP on first use."""
    try:
        return Spice()
    except (OSError, zipfile.BadZipFile) as err:
        raise RuntimeError(
            "SPICE needs its Stanford CoreNLP download (network access, ~400 MB, fetched by "
            f"pycocoevalcap on first use) and it failed ({type(err).__name__}); "
            "run without spice"
        ) from err


def _spice_score(
    scorer: Spice, gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]
) -> float:
    """Corpus SPICE F-score (0..1)."""
    try:
        return scorer.compute_score(gts, res)[0]
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError(f"SPICE (java, spice-1.0.jar, -Xmx8G) failed: {err}") from err
