"""caption_metrics equals pycocoevalcap's own scorers (x100) and fails clearly on bad input."""

from urllib.error import URLError

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from harness.metrics import CAPTION_METRIC_KEYS, caption_metrics, caption_scores, captioning

REFERENCES = {
    "video0": ["A man is cooking pasta in a kitchen.", "Someone cooks food!", "a chef makes pasta"],
    "video1": ["A dog runs across the park.", "the dog is running", "A brown dog plays outside."],
    "video2": ["Two cats play with a ball.", "cats are playing"],
    "video3": ["A woman sings a song on stage.", "a singer performs"],
    "video4": ["A car drives down the road.", "traffic on a highway", "a red car is driving"],
}
PREDICTIONS = {
    "video0": "a man cooks pasta in the kitchen",
    "video1": "THE DOG IS RUNNING.",  # equals a reference up to case and punctuation
    "video2": "",  # empty prediction
    "video3": "A woman, singing; on a stage!!",
    "video4": "a car is driving on the road",
}


@pytest.fixture(scope="module")
def meteor() -> Meteor:
    """The METEOR java process caption_metrics shares, so the module pays one JVM start."""
    if captioning._meteor is None:
        captioning._meteor = Meteor()
    return captioning._meteor


def pycocoevalcap_percent(predictions, references, meteor: Meteor) -> dict[str, float]:
    """The pipeline of pycocoevalcap's COCOEvalCap, called directly, scaled to percentages."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({v: [{"caption": c} for c in refs] for v, refs in references.items()})
    res = tokenizer.tokenize({v: [{"caption": predictions[v]}] for v in references})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n}": bleu[n - 1] for n in range(1, 5)}
    scores["METEOR"] = meteor.compute_score(gts, res)[0]
    scores["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = Cider().compute_score(gts, res)[0]
    return {key: 100.0 * float(value) for key, value in scores.items()}


def test_equals_pycocoevalcap_scorers_in_percent(meteor):
    ours = caption_metrics(PREDICTIONS, REFERENCES)
    expected = pycocoevalcap_percent(PREDICTIONS, REFERENCES, meteor)
    assert tuple(ours) == CAPTION_METRIC_KEYS
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # Percent scale and a non-degenerate case: every metric strictly between 0 and its maximum.
    assert all(0 < ours[k] < 100 for k in CAPTION_METRIC_KEYS if k != "CIDEr")
    assert ours["CIDEr"] > 0


def test_per_video_scores_are_pycocoevalcaps_and_average_to_the_corpus(meteor):
    scores = caption_scores(PREDICTIONS, REFERENCES)
    assert scores.corpus == caption_metrics(PREDICTIONS, REFERENCES)
    assert list(scores.per_video) == list(REFERENCES)
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({v: [{"caption": c} for c in refs] for v, refs in REFERENCES.items()})
    res = tokenizer.tokenize({v: [{"caption": PREDICTIONS[v]}] for v in REFERENCES})
    for key, scorer in (("ROUGE-L", Rouge()), ("CIDEr", Cider())):
        each = [scores.per_video[v][key] for v in REFERENCES]
        assert each == pytest.approx(list(100 * scorer.compute_score(gts, res)[1]), rel=1e-12)
        assert sum(each) / len(each) == pytest.approx(scores.corpus[key], rel=1e-12)
    assert scores.per_video["video2"] == {"ROUGE-L": 0.0, "CIDEr": 0.0}  # empty prediction


def test_exact_match_is_perfect_except_cider_which_follows_its_idf(meteor):
    # Case and punctuation disappear in the PTB tokenizer, so this prediction equals a reference.
    predictions = {"video1": PREDICTIONS["video1"]}
    references = {"video1": REFERENCES["video1"]}
    ours = caption_metrics(predictions, references)
    assert ours["BLEU-4"] == pytest.approx(100.0, abs=1e-6)
    assert ours["ROUGE-L"] == pytest.approx(100.0)
    assert ours["METEOR"] == pytest.approx(100.0)
    # CIDEr-D's document frequencies come from the evaluated references: with one video every
    # n-gram has idf log(1/1) = 0, so even a perfect caption scores 0.
    assert ours["CIDEr"] == 0.0
    assert ours == pytest.approx(pycocoevalcap_percent(predictions, references, meteor))


def test_blank_predictions_score_zero_everywhere():
    predictions = {"video0": "", "video1": "   \n ", "video2": "...!"}
    references = {v: REFERENCES[v] for v in predictions}
    assert caption_metrics(predictions, references) == dict.fromkeys(CAPTION_METRIC_KEYS, 0.0)


def test_line_breaks_inside_captions_stay_with_their_video():
    # Raw pycocoevalcap would split these at \r or U+2028 and shift later captions onto the
    # wrong videos; every whitespace run counts as one space instead.
    broken_predictions = dict(PREDICTIONS, video0="a man cooks\rpasta\u2028in the kitchen")
    broken_references = dict(
        REFERENCES, video3=["A woman sings\r\na song on stage.", "a\x0csinger"]
    )
    spaced_references = dict(REFERENCES, video3=["A woman sings a song on stage.", "a singer"])
    assert caption_metrics(broken_predictions, broken_references) == pytest.approx(
        caption_metrics(PREDICTIONS, spaced_references)
    )


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ({}, {}, "references is empty"),
        ({"a": "x"}, {"a": ["x"], "b": ["y"]}, "predictions has no entry for video id 'b'"),
        ({"a": "x", "c": "z"}, {"a": ["x"]}, "references has no entry for video id 'c'"),
        ({"a": ["x"]}, {"a": ["x"]}, r"predictions\['a'\] must be one caption string, got list"),
        ({"a": "x"}, {"a": "x"}, r"references\['a'\] must be a list of caption strings"),
        ({"a": "x"}, {"a": []}, r"references\['a'\] has no non-empty caption"),
        ({"a": "x"}, {"a": ["", "  "]}, r"references\['a'\] has no non-empty caption"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(predictions, references, message):
    with pytest.raises(ValueError, match=message) as info:
        caption_metrics(predictions, references)
    assert "\n" not in str(info.value)


def test_spice_without_its_download_fails_before_scoring(monkeypatch):
    def offline_spice():
        raise URLError("Name or service not known")

    monkeypatch.setattr(captioning, "Spice", offline_spice)
    with pytest.raises(
        RuntimeError, match="SPICE needs its Stanford CoreNLP download.*run without"
    ):
        caption_metrics(PREDICTIONS, REFERENCES, spice=True)


def test_dead_meteor_process_raises_and_is_not_reused(monkeypatch):
    dead = Meteor()
    dead.meteor_p.kill()
    dead.meteor_p.wait()
    monkeypatch.setattr(captioning, "_meteor", dead)
    with pytest.raises(RuntimeError, match=r"METEOR \(java, meteor-1.5.jar\) failed"):
        caption_metrics(PREDICTIONS, REFERENCES)
    assert captioning._meteor is None
