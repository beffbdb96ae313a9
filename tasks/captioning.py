"""Video captioning on the EMCL encoder: a causal transformer decoder that cross-attends to the
video's frame tokens, trained with teacher-forced cross-entropy, decoded greedily or by beam
search, scored with pycocoevalcap against every reference caption of each test video, next to a
constant-caption baseline.

The video tokens are the frame features of the shared encoder after the method's temporal module,
refined by one EMCL step (:class:`harness.emcl.EMCL`) run on each video's own real frame tokens:
the EM treats the D channels as data points in frame space and finds ``k`` temporal bases, and each
frame token moves ``beta`` times towards its reconstruction from them, i.e. towards a compact,
low-rank summary of how the video's features evolve. Running it per video (rather than over the
frame tokens of a whole batch, or over [video; text] as in retrieval) keeps a video's caption
independent of which other videos share its batch, needs no text at inference, and costs
stage_num x F x D x k per video. In training every video's call moves the basis initialisation
``mu`` by momentum once. The step has no parameters and passes gradients through the identity
path only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from harness import distributed
from harness.config import Config, ConfigError
from harness.data import PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.emcl import EMCL
from harness.encoder import VideoTextEncoder
from harness.metrics import CaptionScores, caption_metrics, caption_scores
from harness.registry import DATASETS
from harness.task import EvalOutput, Task
from harness.temporal import build_aggregator, init_from_clip_text, init_weights
from harness.text import TextTokenizer
from tasks.common import (
    build_encoder_for,
    build_text_tokenizer,
    check_choice,
    clip_source,
    drop_unreadable,
    train_dataloader,
)
from tasks.retrieval import GroupedRoundSampler, ShardedBatches

CAPTIONING_METHOD = "emcl"
DECODERS = ("greedy", "beam")
# Targets of the cross-entropy that are padding.
IGNORE = -100


@runtime_checkable
class CaptioningDataset(Protocol):
    """What the captioning task needs from a dataset entry."""

    def captioning_pairs(self, split: str) -> VideoTextPairs:
        """Every reference caption of every video of ``split`` (train, val or test)."""
        ...


class VideoCaptioner(nn.Module):
    """Shared encoder -> temporal module -> per-video EMCL -> LayerNorm = video tokens (B, F, D);
    a pre-LN causal ``nn.TransformerDecoder`` of width D over the caption tokens, cross-attending
    to them, with output weights tied to its token embedding.

    ``config["method"]`` gives the temporal module (``agg_module``, ``temporal_layers``, built with
    the CLIP initialisation trick); ``config["captioning"]`` the decoder depth, dropout,
    ``max_len`` (rows of the position table: SOT + ``max_len`` tokens) and the EMCL step.
    """

    def __init__(self, encoder: VideoTextEncoder, vocab_size: int, config: Config) -> None:
        super().__init__()
        method, cap = config["method"], config["captioning"]
        width = encoder.embed_dim
        text_config = encoder.clip.config.text_config
        heads = text_config.num_attention_heads
        self.encoder = encoder
        self.aggregator = build_aggregator(
            method["agg_module"],
            width=width,
            heads=heads,
            num_layers=method["temporal_layers"],
            max_positions=text_config.max_position_embeddings,
        )
        init_from_clip_text(self.aggregator, encoder.clip)
        self.emcl = EMCL(**cap["emcl"])
        self.memory_norm = nn.LayerNorm(width)
        self.embed = nn.Embedding(vocab_size, width)
        self.positions = nn.Embedding(cap["max_len"] + 1, width)
        layer = nn.TransformerDecoderLayer(
            width, heads, 4 * width, cap["dropout"], batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, cap["decoder_layers"], norm=nn.LayerNorm(width))
        for module in (self.memory_norm, self.embed, self.positions, self.decoder):
            module.apply(init_weights)

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> video tokens (B, F, D).

        Padded frames take no part in their video's EM step (their rows are left as they are;
        the decoder never attends to them).
        """
        tokens = self.aggregator(self.encoder.encode_frames(pixels).cls, video_mask)
        real = video_mask.bool()
        refined = torch.cat([self.emcl(t[m]) for t, m in zip(tokens, real, strict=True)])
        tokens = tokens.masked_scatter(real.unsqueeze(-1), refined.to(tokens.dtype))
        return self.memory_norm(tokens)

    def logits(
        self, ids: torch.Tensor, memory: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """ids (B, L) caption prefixes (SOT first), memory (B, F, D), video_mask (B, F) ->
        next-token logits (B, L, V); position i sees tokens 0..i only."""
        length = ids.shape[1]
        x = self.embed(ids) + self.positions.weight[:length]
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).triu(1)
        hidden = self.decoder(
            x,
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=~video_mask.bool(),
        )
        return hidden @ self.embed.weight.t()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher-forced cross-entropy (mean over real target tokens) of a batch with ``ids``,
        ``mask`` (B, L) = [SOT] caption [EOT] padding and ``pixels``, ``video_mask``."""
        memory = self.encode_video(batch["pixels"], batch["video_mask"])
        ids, mask = batch["ids"], batch["mask"]
        logits = self.logits(ids[:, :-1], memory, batch["video_mask"])
        # The mask, not the pad id, marks padding: CLIP's pad id 0 is also the token "!".
        target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE)
        return nn.functional.cross_entropy(
            logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE
        )


def next_log_probs(
    model: VideoCaptioner,
    prefixes: torch.Tensor,
    memory: torch.Tensor,
    video_mask: torch.Tensor,
    banned: Sequence[int],
) -> torch.Tensor:
    """Log-probabilities (N, V) float64 of the token after each prefix (N, t); ``banned`` ids
    (SOT, padding) get -inf."""
    logits = model.logits(prefixes, memory, video_mask)[:, -1].double()
    logits[:, list(banned)] = -torch.inf
    return logits.log_softmax(dim=-1)


def greedy_decode(
    model: VideoCaptioner,
    memory: torch.Tensor,
    video_mask: torch.Tensor,
    tokenizer: TextTokenizer,
    max_len: int,
) -> torch.Tensor:
    """memory (B, F, D), video_mask (B, F) -> token ids (B, max_len): the most likely token at
    each step until EOT (kept), then ``pad_id``."""
    b = memory.shape[0]
    banned = (tokenizer.sot_id, tokenizer.pad_id)
    seq = torch.full((b, 1), tokenizer.sot_id, dtype=torch.long, device=memory.device)
    done = torch.zeros(b, dtype=torch.bool, device=memory.device)
    for _ in range(max_len):
        token = next_log_probs(model, seq, memory, video_mask, banned).argmax(dim=-1)
        token = token.masked_fill(done, tokenizer.pad_id)
        seq = torch.cat((seq, token[:, None]), dim=1)
        done |= token == tokenizer.eot_id
        if bool(done.all()):
            break
    return _pad_to(seq[:, 1:], max_len, tokenizer.pad_id)


def beam_search(
    model: VideoCaptioner,
    memory: torch.Tensor,
    video_mask: torch.Tensor,
    tokenizer: TextTokenizer,
    max_len: int,
    beam_size: int,
    length_penalty: float,
) -> torch.Tensor:
    """memory (B, F, D), video_mask (B, F) -> token ids (B, max_len) of each video's best beam.

    Every hypothesis is scored by ``log p(tokens) / length ** length_penalty`` (length counts
    generated tokens, EOT included). At each step the ``beam_size`` best of all extensions of the
    live hypotheses and of the finished ones (which extend only by padding, keeping their score
    and length) are kept, so with ``beam_size=1`` this is :func:`greedy_decode`. It stops when
    every kept hypothesis has ended or after ``max_len`` tokens.
    """
    b, k = memory.shape[0], beam_size
    device = memory.device
    banned = (tokenizer.sot_id, tokenizer.pad_id)
    memory, video_mask = memory.repeat_interleave(k, 0), video_mask.repeat_interleave(k, 0)
    seq = torch.full((b * k, 1), tokenizer.sot_id, dtype=torch.long, device=device)
    score = torch.zeros(b, k, dtype=torch.float64, device=device)
    score[:, 1:] = -torch.inf  # the k start hypotheses are one
    length = torch.zeros(b, k, dtype=torch.float64, device=device)
    done = torch.zeros(b, k, dtype=torch.bool, device=device)
    for step in range(1, max_len + 1):
        logp = next_log_probs(model, seq, memory, video_mask, banned).view(b, k, -1)
        vocab = logp.shape[-1]
        pad_only = torch.full((vocab,), -torch.inf, dtype=logp.dtype, device=device)
        pad_only[tokenizer.pad_id] = 0.0
        logp = torch.where(done[..., None], pad_only, logp)
        total = score[..., None] + logp  # (b, k, V)
        new_length = torch.where(done, length, float(step))
        ranked = total / new_length[..., None] ** length_penalty
        top = ranked.view(b, -1).topk(k, dim=-1).indices  # (b, k) into k * V
        beam, token = top // vocab, top % vocab
        score = total.view(b, -1).gather(1, top)
        length = new_length.gather(1, beam)
        done = done.gather(1, beam) | (token == tokenizer.eot_id)
        rows = (torch.arange(b, device=device)[:, None] * k + beam).flatten()
        seq = torch.cat((seq[rows], token.reshape(-1, 1)), dim=1)
        if bool(done.all()):
            break
    best = (score / length**length_penalty).argmax(dim=-1)
    chosen = seq.view(b, k, -1)[torch.arange(b, device=device), best]
    return _pad_to(chosen[:, 1:], max_len, tokenizer.pad_id)


def _pad_to(ids: torch.Tensor, length: int, pad_id: int) -> torch.Tensor:
    """ids (B, t) right-padded with ``pad_id`` to (B, length)."""
    return nn.functional.pad(ids, (0, length - ids.shape[1]), value=pad_id)


def references_by_video(pairs: VideoTextPairs) -> dict[str, list[str]]:
    """``{video_id: [its captions]}`` of ``pairs``, videos and captions in their order."""
    refs: dict[str, list[str]] = {v: [] for v in pairs.video_ids}
    for caption, video in zip(pairs.captions, pairs.caption_video, strict=True):
        refs[pairs.video_ids[video]].append(caption)
    return refs


def on_main_process(compute: Callable[[], Any]) -> Any:
    """``compute()`` run on rank 0 only, its result (or the exception it raised, re-raised
    everywhere) sent to every process."""
    if distributed.world_size() == 1:
        return compute()
    payload: list[Any] = [None]
    if distributed.rank() == 0:
        try:
            payload[0] = compute()
        except Exception as exc:  # every process must leave the broadcast, then fail alike
            payload[0] = exc
    torch.distributed.broadcast_object_list(payload, src=0)
    if isinstance(payload[0], Exception):
        raise payload[0]
    return payload[0]


class CaptioningTask(Task):
    """Trains :class:`VideoCaptioner` on a dataset entry that implements
    :class:`CaptioningDataset` and evaluates its captions of the ``eval.split`` videos."""

    name = "captioning"

    def setup(self) -> None:
        cfg = self.config
        cap = cfg["captioning"]
        if cfg["method"]["name"] != CAPTIONING_METHOD:
            raise ConfigError(
                f"task captioning builds on the EMCL encoder only: drop --method "
                f"{cfg['method']['name']} (or use --method {CAPTIONING_METHOD})"
            )
        check_choice("captioning.decode", cap["decode"], DECODERS)
        for key in ("max_len", "beam_size", "decoder_layers"):
            if not isinstance(cap[key], int) or cap[key] < 1:
                raise ConfigError(f"config key 'captioning.{key}' must be a positive integer")
        self.dataset = DATASETS.get(cfg["dataset"])(cfg)
        if not isinstance(self.dataset, CaptioningDataset):
            raise ConfigError(
                f"dataset {cfg['dataset']!r} has no captioning references; use --dataset "
                "synthvtt or msrvtt"
            )
        self.source = clip_source(cfg, self.dataset.folder)
        self.train_pairs = self.dataset.captioning_pairs("train")
        self.test_pairs = self.dataset.captioning_pairs(cfg["eval"]["split"])
        self.skipped: list[dict[str, str]] = []
        self.tokenizer = build_text_tokenizer(cfg, self.train_pairs.captions)
        counts = Counter(self.train_pairs.captions)
        self.constant_caption, count = counts.most_common(1)[0]
        self.constant_share = f"{count} of {self.train_pairs.num_captions}"

    def build_model(self) -> VideoCaptioner:
        encoder = build_encoder_for(self.config, self.tokenizer)
        return VideoCaptioner(encoder, self.tokenizer.vocab_size, self.config)

    def usable(self, pairs: VideoTextPairs) -> VideoTextPairs:
        """``pairs`` without unreadable videos under ``data.on_bad_video=skip`` (else as is)."""
        kept, skipped = drop_unreadable(self.config, pairs, self.source)
        self.skipped += skipped
        return kept

    def train_loader(self, per_process_batch: int) -> tuple[DataLoader, Sampler]:
        self.train_pairs = self.usable(self.train_pairs)
        # SOT + max_len tokens: a target is at most max_len tokens, EOT included.
        length = self.config["captioning"]["max_len"] + 1
        dataset = PairDataset(self.train_pairs, self.tokenizer, length, self.source)
        # Rounds of one caption per video: a batch holds distinct videos.
        sampler = GroupedRoundSampler(self.train_pairs, self.config["seed"])
        return train_dataloader(self.config, dataset, sampler, per_process_batch), sampler

    def generate(
        self, model: VideoCaptioner, pixels: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> caption ids (B, max_len) by the
        configured decoder."""
        cap = self.config["captioning"]
        memory = model.encode_video(pixels, video_mask)
        if cap["decode"] == "greedy":
            return greedy_decode(model, memory, video_mask, self.tokenizer, cap["max_len"])
        return beam_search(
            model,
            memory,
            video_mask,
            self.tokenizer,
            cap["max_len"],
            cap["beam_size"],
            float(cap["length_penalty"]),
        )

    def describe(self) -> dict[str, Any]:
        data, cap = self.config["data"], self.config["captioning"]
        return {
            "split": self.config["eval"]["split"],
            "model": "EMCL encoder + per-video EMCL + causal transformer decoder",
            "decode": cap["decode"],
            "beam_size": cap["beam_size"] if cap["decode"] == "beam" else 1,
            "length_penalty": cap["length_penalty"] if cap["decode"] == "beam" else None,
            "max_len": cap["max_len"],
            "references": "every caption of each evaluated video",
            "metrics": "pycocoevalcap (PTB tokenizer, CIDEr-D), percentages",
            "max_frames": data["max_frames"],
            "video_framerate": data["video_framerate"],
            "image_size": data["image_size"],
            "frame_sampling": "uniform",
            "frame_cache": str(self.source.cache.cache_dir) if self.source.cache else None,
            "encoder": self.config["encoder"]["pretrained"]
            or f"random:{self.config['encoder']['size']}",
        }

    def evaluate(self, model: VideoCaptioner) -> EvalOutput:
        pairs = self.test_pairs = self.usable(self.test_pairs)
        if pairs.num_videos == 0:
            raise ValueError(
                f"split {self.config['eval']['split']!r} of dataset {self.config['dataset']!r} "
                "has no video to caption (all of them skipped as unreadable)"
            )
        ids = self._sharded_captions(model, pairs)
        predictions = {
            video: self.tokenizer.decode(row)
            for video, row in zip(pairs.video_ids, ids, strict=True)
        }
        references = references_by_video(pairs)
        spice = self.config["captioning"]["spice"]

        def score() -> tuple[CaptionScores, dict[str, float]]:
            constant = {video: self.constant_caption for video in references}
            return (
                caption_scores(predictions, references, spice=spice),
                caption_metrics(constant, references, spice=spice),
            )

        scores, constant_metrics = on_main_process(score)
        metrics = scores.corpus
        baselines = {"constant_caption": {"caption": self.constant_caption, **constant_metrics}}
        return EvalOutput(
            metrics=metrics,
            # "scores": the video's own ROUGE-L and CIDEr-D, whose means are the corpus values
            samples=[
                {
                    "video_id": video,
                    "prediction": predictions[video],
                    "references": refs,
                    "scores": scores.per_video[video],
                }
                for video, refs in references.items()
            ],
            num_samples={"videos": pairs.num_videos, "references": pairs.num_captions},
            extra={"baselines": baselines, "skipped_videos": self.skipped},
            notes=self._notes(metrics, constant_metrics),
        )

    def _sharded_captions(self, model: VideoCaptioner, pairs: VideoTextPairs) -> torch.Tensor:
        """Caption ids (num_videos, max_len) of every video of ``pairs``, generated in fixed
        batches shared out over processes and gathered in video order on every process."""
        batches = ShardedBatches(pairs.num_videos, self.config["eval"]["batch_size"])
        loader = DataLoader(
            VideoDataset(pairs.video_paths, self.source, pairs.segments),
            # A process left without a batch repeats the first one (the gather drops
            # duplicates), so that every process takes part in the collective.
            batch_sampler=batches.mine or batches.batches[:1],
            num_workers=self.config["data"]["num_workers"],
        )
        device = next(model.parameters()).device
        index, parts = [], []
        for batch in loader:
            index.append(batch["index"])
            pixels, mask = batch["pixels"].to(device), batch["video_mask"].to(device)
            parts.append(self.generate(model, pixels, mask).cpu())
        local = {"ids": torch.cat(parts)}
        return distributed.gather_by_index(torch.cat(index), local, pairs.num_videos)["ids"]

    def _notes(self, metrics: Mapping[str, float], constant: Mapping[str, float]) -> list[str]:
        cap = self.config["captioning"]
        decode = (
            f"beam search (beam {cap['beam_size']}, length penalty {cap['length_penalty']})"
            if cap["decode"] == "beam"
            else "greedy decoding"
        )
        notes = [
            f"{decode}, at most {cap['max_len']} tokens; scored against every reference caption "
            "of each video",
            f"baseline constant caption {self.constant_caption!r} (most frequent training "
            f"caption, {self.constant_share}): "
            f"CIDEr {constant['CIDEr']:.2f}, BLEU-4 {constant['BLEU-4']:.2f} "
            f"(model: CIDEr {metrics['CIDEr']:.2f}, BLEU-4 {metrics['BLEU-4']:.2f})",
        ]
        if self.skipped:
            notes.append(f"skipped {len(self.skipped)} unreadable videos (listed in results.json)")
        return notes
