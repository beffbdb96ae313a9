"""Tokenizers: CLIP BPE against OpenAI's own ids, the word tokenizer, sequence construction."""

import functools
import gzip
import json
from pathlib import Path

import pytest
import torch

from harness.config import ConfigError
from harness.errors import DataError, UserError
from harness.text import (
    ClipBpeTokenizer,
    TextTokenizer,
    WordTokenizer,
    build_tokenizer,
    tokenize,
    tokenize_batch,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = json.loads((FIXTURES / "text_clip_bpe.json").read_text(encoding="utf-8"))
CAPTIONS = [
    "a red ball moves left",
    "A blue cube appears, then the red ball moves left.",
    "the red ball disappears",
]


@pytest.fixture
def bpe_path(shared_data: Path) -> Path:
    return shared_data / "clip" / "bpe_simple_vocab_16e6.txt.gz"


@functools.cache
def _clip_bpe(path: Path) -> ClipBpeTokenizer:
    return ClipBpeTokenizer.from_bpe_gz(path)


@pytest.fixture
def clip_bpe(bpe_path: Path) -> ClipBpeTokenizer:
    return _clip_bpe(bpe_path)


def test_clip_bpe_matches_openai_ids(clip_bpe):
    assert isinstance(clip_bpe, TextTokenizer)
    assert (
        (clip_bpe.sot_id, clip_bpe.eot_id, clip_bpe.vocab_size, clip_bpe.pad_id)
        == (
            GOLDEN["sot_id"],
            GOLDEN["eot_id"],
            GOLDEN["vocab_size"],
            0,
        )
        == (49406, 49407, 49408, 0)
    )
    mismatched = [c["text"] for c in GOLDEN["cases"] if clip_bpe.encode(c["text"]) != c["ids"]]
    assert mismatched == []
    assert len(GOLDEN["cases"]) >= 35


def test_clip_bpe_from_hugging_face_folder(bpe_path, clip_bpe, tmp_path):
    # The Hugging Face layout of the same vocabulary: vocab.json plus merges.txt.
    lines = gzip.open(bpe_path, "rt", encoding="utf-8").read().split("\n")[: 48894 + 1]
    (tmp_path / "merges.txt").write_text("\n".join(["#version: 0.2", *lines[1:]]) + "\n")
    (tmp_path / "vocab.json").write_text(json.dumps(clip_bpe._backend.get_vocab()))
    hf = build_tokenizer(tmp_path)
    assert (hf.sot_id, hf.eot_id, hf.vocab_size) == (49406, 49407, 49408)
    for case in GOLDEN["cases"][::4]:
        assert hf.encode(case["text"]) == case["ids"]


def test_clip_bpe_bad_sources_fail_in_one_line(tmp_path, bpe_path):
    assert isinstance(build_tokenizer(str(bpe_path)), ClipBpeTokenizer)
    cases = [
        (tmp_path / "missing.txt.gz", "does not exist"),
        (tmp_path / "no_such_folder", "does not exist"),
        (tmp_path, "cannot load CLIP tokenizer"),  # a folder without vocabulary files
        ("openai/clip-vit-base-patch32", "cannot load CLIP tokenizer"),  # offline, not cached
    ]
    for spec, match in cases:
        with pytest.raises(DataError, match=match) as info:
            build_tokenizer(spec)
        assert "\n" not in str(info.value) and str(spec) in str(info.value)
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read CLIP BPE file .*broken.txt.gz"):
        build_tokenizer(broken)


@pytest.mark.parametrize("content", ["", "#version: 0.2\n", "#version: 0.2\ne r\na b c\n"])
def test_clip_bpe_file_without_merge_pairs_is_a_user_error(tmp_path, content):
    path = tmp_path / "merges.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(content)
    with pytest.raises(UserError) as info:
        build_tokenizer(path)
    message = str(info.value)
    assert isinstance(info.value, DataError) and "\n" not in message
    assert f"CLIP BPE file {path} is not a merges file" in message


def test_tokenize_builds_sot_tokens_eot_and_padding(clip_bpe):
    case = GOLDEN["cases"][0]
    ids, mask = tokenize(clip_bpe, case["text"], max_words=32)
    n = len(case["ids"]) + 2
    assert ids.dtype == mask.dtype == torch.int64 and ids.shape == mask.shape == (32,)
    assert ids[:n].tolist() == [49406, *case["ids"], 49407]
    assert ids[n:].tolist() == [0] * (32 - n)
    assert mask.tolist() == [1] * n + [0] * (32 - n)


def test_tokenize_truncates_the_caption_tail(clip_bpe):
    long_case = GOLDEN["cases"][-1]
    assert len(long_case["ids"]) > 64
    ids, mask = tokenize(clip_bpe, long_case["text"], max_words=64)
    assert ids.tolist() == [49406, *long_case["ids"][:62], 49407]
    assert mask.tolist() == [1] * 64
    ids, _ = tokenize(clip_bpe, long_case["text"], max_words=2)
    assert ids.tolist() == [49406, 49407]


def test_empty_caption_is_an_error(clip_bpe):
    for text in ["", "   ", "\t\n", "&nbsp;"]:
        with pytest.raises(DataError, match="empty caption"):
            tokenize(clip_bpe, text, max_words=32)
    with pytest.raises(ConfigError, match="data.max_words must be at least 2"):
        tokenize(clip_bpe, "a dog", max_words=1)


def test_tokenize_batch(clip_bpe):
    ids, mask = tokenize_batch(clip_bpe, ["a dog", "a cat runs"], max_words=8)
    assert ids.shape == mask.shape == (2, 8)
    assert mask.sum(1).tolist() == [4, 5]
    assert torch.equal(ids[1], tokenize(clip_bpe, "a cat runs", 8)[0])
    empty_ids, empty_mask = tokenize_batch(clip_bpe, [], max_words=8)
    assert empty_ids.shape == empty_mask.shape == (0, 8)


def test_word_tokenizer_vocabulary_is_deterministic():
    tok = WordTokenizer.train(CAPTIONS)
    again = WordTokenizer.train(reversed(CAPTIONS))
    assert (tok.pad_id, tok.unk_id, tok.sot_id, tok.eot_id) == (0, 1, 2, 3)
    # by frequency (ball, red: 3; a, left, moves, the: 2; the rest 1), ties alphabetical
    expected = "ball red a left moves the , . appears blue cube disappears then"
    assert tok.encode(expected) == list(range(4, 4 + len(expected.split())))
    expected = expected.split()
    assert tok.vocab_size == 4 + len(expected)
    assert again.encode(CAPTIONS[1]) == tok.encode(CAPTIONS[1])
    assert tok.encode("The RED ball, MOVES.") == [9, 5, 4, 10, 8, 11]
    assert tok.encode("a purple ball zooms") == [6, 1, 4, 1]  # unknown words -> [UNK]


def test_word_tokenizer_save_load_and_cache(tmp_path):
    tok = WordTokenizer.train(CAPTIONS)
    path = tmp_path / "tok" / "tokenizer.json"
    tok.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokenizer.json"]
    loaded = WordTokenizer.load(path)
    for text in [*CAPTIONS, "an unseen caption"]:
        assert loaded.encode(text) == tok.encode(text)
    assert loaded.vocab_size == tok.vocab_size

    cache = tmp_path / "cache" / "words.json"
    built = build_tokenizer("word", corpus=CAPTIONS, cache_path=cache)
    assert cache.is_file() and built.encode(CAPTIONS[0]) == tok.encode(CAPTIONS[0])
    # the cache wins over a different corpus; without cache and corpus it is an error
    assert build_tokenizer("word", corpus=["zebra"], cache_path=cache).vocab_size == tok.vocab_size
    with pytest.raises(ValueError, match="needs captions"):
        build_tokenizer("word")
    ids, mask = tokenize(built, "the red ball", max_words=6)
    assert ids.tolist() == [2, 9, 5, 4, 3, 0] and mask.tolist() == [1, 1, 1, 1, 1, 0]


def test_word_tokenizer_rejects_foreign_files(tmp_path):
    with pytest.raises(DataError, match="none.json does not exist"):
        WordTokenizer.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot load word tokenizer .*bad.json"):
        WordTokenizer.load(bad)


def test_clip_bpe_decode_inverts_encode_up_to_cleaning(clip_bpe):
    text = "A blue cube appears, then the red ball moves left. It's a café"
    ids = clip_bpe.encode(text)
    assert (
        clip_bpe.decode(ids) == "a blue cube appears , then the red ball moves left . it 's a café"
    )
    # SOT skipped; everything from the first EOT on (the padding id 0 is the token "!") cut
    framed = [clip_bpe.sot_id, *ids[:3], clip_bpe.eot_id, 0, 0]
    assert clip_bpe.decode(torch.tensor(framed)) == "a blue cube"
    assert clip_bpe.decode([clip_bpe.sot_id, clip_bpe.eot_id]) == ""


def test_word_tokenizer_decode_inverts_encode():
    tok = WordTokenizer.train(CAPTIONS)
    assert (
        tok.decode(tok.encode(CAPTIONS[1]))
        == "a blue cube appears , then the red ball moves left ."
    )
    ids, _ = tokenize(tok, "the red ball", max_words=8)
    assert tok.decode(ids) == "the red ball"
    assert tok.decode([tok.sot_id, 4, tok.eot_id, 5]) == "ball"
    assert tok.decode(tok.encode("a purple ball")) == "a [UNK] ball"
