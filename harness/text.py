"""Tokenizers: OpenAI CLIP BPE for real checkpoints, a word-level one for the synthetic benchmark.

Every tokenizer maps text to ids without special tokens; `tokenize` then builds the model input
of METHODS.md §0.2: ``[SOT] + tokens + [EOT]`` cut to ``max_words``, right-padded with id 0.
"""

from __future__ import annotations

import gzip
import html
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import ftfy
import regex
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from harness.config import ConfigError
from harness.errors import DataError

CLIP_SOT = "<|startoftext|>"
CLIP_EOT = "<|endoftext|>"
# OpenAI's file holds a version line, then more merges than CLIP uses: 49152 - 256 - 2 of them.
_CLIP_NUM_MERGES = 49152 - 256 - 2
# The word splitter of OpenAI CLIP (METHODS.md §0.2); the text is already lowercased when it runs,
# IGNORECASE only matters for the contractions.
_CLIP_WORDS = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")

WORD_SPECIALS = ("[PAD]", "[UNK]", "[SOT]", "[EOT]")
_GET_OPENAI_BPE = "replace it with OpenAI's bpe_simple_vocab_16e6.txt.gz"


@runtime_checkable
class TextTokenizer(Protocol):
    """What the harness needs from a tokenizer. ``pad_id`` is 0 for every tokenizer."""

    sot_id: int
    eot_id: int
    pad_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens."""
        ...

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first EOT, SOT skipped (the inverse of ``encode`` up to
        normalisation)."""
        ...

    def save(self, path: str | Path) -> None:
        """Write the tokenizer to the json file ``path``; :func:`load_tokenizer` reads it back
        with the same ids, whatever the data says later."""
        ...


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def clean_clip_text(text: str) -> str:
    """OpenAI CLIP's text cleaning: ftfy fix, html unescape twice, whitespace collapse, lower."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


class ClipBpeTokenizer:
    """OpenAI CLIP byte-level BPE (vocabulary 49408, SOT 49406, EOT 49407).

    Cleaning and word splitting run in Python with the exact OpenAI rules; the byte mapping and
    the merges run in a `tokenizers` BPE model. Build it with `from_bpe_gz` (OpenAI's
    ``bpe_simple_vocab_16e6.txt.gz``) or `from_pretrained` (a Hugging Face CLIP folder or hub id).
    """

    pad_id = 0

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
        # transformers 5 builds a two-token tokenizer without complaint when files are missing.
        needed = [CLIP_SOT, CLIP_EOT, *pre_tokenizers.ByteLevel.alphabet()]
        if not merges or any(symbol not in vocab for symbol in needed):
            raise ValueError(
                f"not a CLIP BPE vocabulary ({len(vocab)} symbols, {len(merges)} merges; "
                "needs the 256 byte symbols, SOT, EOT and merges)"
            )
        backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>"))
        # Words arrive already split; this only maps bytes to the BPE alphabet.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        backend.add_special_tokens([CLIP_SOT, CLIP_EOT])
        # Printable ASCII maps to itself in the byte alphabet, so "</w>" survives as text.
        backend.decoder = decoders.ByteLevel()
        self._backend = backend
        self.sot_id = vocab[CLIP_SOT]
        self.eot_id = vocab[CLIP_EOT]
        self.vocab_size = len(vocab)

    @classmethod
    def from_bpe_gz(cls, path: str | Path) -> ClipBpeTokenizer:
        """Build from OpenAI's merges file: 256 byte symbols, the same with ``</w>``, the merged
        symbols in merge order, then SOT and EOT."""
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise DataError(
                f"cannot read CLIP BPE file {path}: {_first_line(exc)}; {_GET_OPENAI_BPE}"
            ) from exc
        merges = [tuple(line.split()) for line in lines[1 : _CLIP_NUM_MERGES + 1]]
        if not merges or any(len(merge) != 2 for merge in merges):
            raise DataError(
                f"CLIP BPE file {path} is not a merges file (a version line, then two symbols per "
                f"line); {_GET_OPENAI_BPE}"
            )
        # The byte alphabet sorted by code point is OpenAI's byte order (printable bytes map to
        # themselves, the others to 256 + n in byte order).
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        symbols = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
        symbols += [CLIP_SOT, CLIP_EOT]
        return cls({s: i for i, s in enumerate(symbols)}, merges)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path) -> ClipBpeTokenizer:
        """Build from a Hugging Face CLIP tokenizer (a folder with vocab.json and merges.txt, or a
        hub id). Raises a one-line DataError when it cannot be loaded (e.g. offline)."""
        from transformers import CLIPTokenizer

        try:
            hf = CLIPTokenizer.from_pretrained(str(name_or_dir))
            model = json.loads(hf.backend_tokenizer.to_str())["model"]
            # tokenizer.json stores merges as "a b" strings or as pairs, depending on its version
            merges = [tuple(m.split(" ") if isinstance(m, str) else m) for m in model["merges"]]
            return cls(hf.get_vocab(), merges)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot load CLIP tokenizer {name_or_dir}: {_first_line(exc)}. Pass a folder with "
                "vocab.json and merges.txt, OpenAI's bpe_simple_vocab_16e6.txt.gz, or a hub id "
                "already downloaded (or run online with HF_HUB_OFFLINE unset)"
            ) from exc

    def encode(self, text: str) -> list[int]:
        """OpenAI SimpleTokenizer ids of ``text`` (no SOT/EOT added)."""
        words = _CLIP_WORDS.findall(clean_clip_text(text))
        if not words:
            return []
        return self._backend.encode(words, is_pretokenized=True, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Cleaned text of ``ids`` up to the first EOT, SOT skipped: words separated by single
        spaces (OpenAI's decoding; pad id 0 is the real token "!", so cut at EOT before)."""
        ids = _before_eot(ids, self.eot_id, skip=(self.sot_id,))
        text = self._backend.decode(ids, skip_special_tokens=False)
        return " ".join(text.replace("</w>", " ").split())

    def save(self, path: str | Path) -> None:
        """Write the vocabulary and merges as a `tokenizers` json, atomically (read back by
        :func:`load_tokenizer`)."""
        _save_backend(self._backend, Path(path))

    @classmethod
    def from_saved(cls, model: dict) -> ClipBpeTokenizer:
        """Build from the ``model`` section of a json written by :meth:`save`."""
        merges = [tuple(m.split(" ") if isinstance(m, str) else m) for m in model["merges"]]
        return cls(model["vocab"], merges)


class WordTokenizer:
    """Word-level tokenizer for the synthetic benchmark: lowercase, split on whitespace and
    punctuation. Ids: [PAD]=0, [UNK]=1, [SOT]=2, [EOT]=3, then words by descending frequency
    (ties alphabetical). EOT is not 2 because HF CLIP text models pool by argmax when
    ``eos_token_id == 2``."""

    pad_id, unk_id, sot_id, eot_id = range(len(WORD_SPECIALS))

    def __init__(self, backend: Tokenizer) -> None:
        vocab = backend.get_vocab()
        if [vocab.get(s) for s in WORD_SPECIALS] != list(range(len(WORD_SPECIALS))):
            raise ValueError(
                f"word tokenizer must start with {', '.join(WORD_SPECIALS)} as ids 0-3"
            )
        self._backend = backend
        self.vocab_size = backend.get_vocab_size()

    @staticmethod
    def _backend_for(vocab: dict[str, int]) -> Tokenizer:
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
        backend.normalizer = normalizers.Lowercase()
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        return backend

    @classmethod
    def train(cls, texts: Iterable[str]) -> WordTokenizer:
        """Vocabulary of every word in ``texts`` (deterministic for the same texts in any order)."""
        splitter = cls._backend_for({s: i for i, s in enumerate(WORD_SPECIALS)})
        counts: Counter[str] = Counter()
        for text in texts:
            normalized = splitter.normalizer.normalize_str(text)
            counts.update(w for w, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized))
        words = sorted((w for w in counts if w not in WORD_SPECIALS), key=lambda w: (-counts[w], w))
        symbols = list(WORD_SPECIALS) + words
        return cls(cls._backend_for({s: i for i, s in enumerate(symbols)}))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Read a tokenizer.json written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"word tokenizer file {path} does not exist; check the path (WordTokenizer.save "
                "writes it)"
            )
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises plain Exception on malformed files
            raise DataError(
                f"cannot load word tokenizer {path}: {_first_line(exc)}. "
                "Delete it so it is rebuilt from the captions"
            ) from exc

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json atomically (temp file in the same folder, then rename)."""
        _save_backend(self._backend, Path(path))

    def encode(self, text: str) -> list[int]:
        """Word ids of ``text``; unknown words map to [UNK] (id 1)."""
        return self._backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Words of ``ids`` joined by spaces, up to the first EOT, SOT and PAD skipped (unknown
        words read ``[UNK]``); ``decode(encode(t))`` is ``t`` lowercased, punctuation spaced."""
        ids = _before_eot(ids, self.eot_id, skip=(self.sot_id, self.pad_id))
        return " ".join(self._backend.id_to_token(i) for i in ids)


def _save_backend(backend: Tokenizer, path: Path) -> None:
    """Write a `tokenizers` json to ``path`` through a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        backend.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_tokenizer(path: Path) -> TextTokenizer:
    """The tokenizer a ``save`` wrote to ``path``: a word tokenizer for a word-level
    vocabulary, else the CLIP BPE. A missing or damaged file is a one-line DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"tokenizer file {path} does not exist: the checkpoint is incomplete; evaluate or "
            "resume another checkpoint of the run"
        )
    # bad json, missing fields and foreign vocabularies raise these
    damaged = (OSError, ValueError, KeyError, TypeError)
    try:
        model = json.loads(path.read_text())["model"]
        if model["type"] != "WordLevel":
            return ClipBpeTokenizer.from_saved(model)
    except damaged as exc:
        raise DataError(
            f"tokenizer file {path} is damaged ({_first_line(exc)}): evaluate or resume another "
            "checkpoint of the run"
        ) from exc
    return WordTokenizer.load(path)


def _before_eot(ids: Iterable[int], eot_id: int, skip: tuple[int, ...]) -> list[int]:
    """``ids`` (ints or a 1-D tensor) up to the first ``eot_id``, without those in ``skip``."""
    kept = []
    for i in (int(i) for i in ids):
        if i == eot_id:
            break
        if i not in skip:
            kept.append(i)
    return kept


def tokenize(
    tokenizer: TextTokenizer, text: str, max_words: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model input for one caption: ids (max_words,) int64 and mask (max_words,) int64.

    ``[SOT] + tokens + [EOT]`` with the caption tail cut so the length is at most ``max_words``,
    right-padded with ``pad_id`` (mask 0). Raises DataError for a caption with no tokens and
    ConfigError for a ``max_words`` below 2.
    """
    if max_words < 2:
        raise ConfigError(f"data.max_words must be at least 2 (SOT and EOT), got {max_words}")
    tokens = tokenizer.encode(text)
    if not tokens:
        raise DataError(
            f"empty caption {text!r}: it has no words; fix or remove it in the dataset's "
            "annotations"
        )
    seq = [tokenizer.sot_id, *tokens[: max_words - 2], tokenizer.eot_id]
    ids = torch.full((max_words,), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(max_words, dtype=torch.long)
    ids[: len(seq)] = torch.tensor(seq, dtype=torch.long)
    mask[: len(seq)] = 1
    return ids, mask


def tokenize_batch(
    tokenizer: TextTokenizer, texts: Iterable[str], max_words: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`tokenize` for several captions: ids (B, max_words) and mask (B, max_words), int64."""
    pairs = [tokenize(tokenizer, text, max_words) for text in texts]
    if not pairs:
        empty = torch.zeros(0, max_words, dtype=torch.long)
        return empty, empty.clone()
    ids, masks = zip(*pairs, strict=True)
    return torch.stack(ids), torch.stack(masks)


def build_tokenizer(
    spec: str | Path | None,
    corpus: Iterable[str] | None = None,
    cache_path: Path | None = None,
) -> TextTokenizer:
    """The tokenizer a config names.

    ``"word"`` (or None): a `WordTokenizer` loaded from ``cache_path`` when that file exists,
    else trained on ``corpus`` and saved there. A path ending in ``.txt.gz``: CLIP BPE from
    OpenAI's merges file. Anything else: CLIP BPE from a Hugging Face folder or hub id.
    """
    if spec is None or str(spec) == "word":
        if cache_path is not None and Path(cache_path).is_file():
            return WordTokenizer.load(cache_path)
        if corpus is None:
            raise ValueError("the word tokenizer needs captions to learn its vocabulary from")
        tokenizer = WordTokenizer.train(corpus)
        if cache_path is not None:
            tokenizer.save(cache_path)
        return tokenizer
    local = Path(spec).expanduser()
    if str(spec).endswith(".txt.gz"):
        if not local.is_file():
            raise DataError(f"CLIP BPE file {spec} does not exist; check data.tokenizer")
        return ClipBpeTokenizer.from_bpe_gz(local)
    if local.is_dir():
        return ClipBpeTokenizer.from_pretrained(local)
    if str(spec).startswith(("/", ".", "~")):
        raise DataError(f"tokenizer folder {spec} does not exist; check data.tokenizer")
    return ClipBpeTokenizer.from_pretrained(str(spec))
