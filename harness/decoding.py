"""Caption decoding for any :class:`harness.captioning.CaptioningModel`: greedy and beam search
over its next-token log-probabilities given the video memory."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.captioning import CaptioningModel
from harness.text import TextTokenizer


def next_log_probs(
    model: CaptioningModel,
    prefixes: torch.Tensor,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    banned: Sequence[int],
) -> torch.Tensor:
    """Log-probabilities (N, V) float64 of the token after each prefix (N, t); ``banned`` ids
    (SOT, padding) get -inf."""
    logits = model.logits(prefixes, memory, memory_mask)[:, -1].double()
    logits[:, list(banned)] = -torch.inf
    return logits.log_softmax(dim=-1)


def greedy_decode(
    model: CaptioningModel,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    tokenizer: TextTokenizer,
    max_len: int,
) -> torch.Tensor:
    """memory (B, F, D), memory_mask (B, F) -> token ids (B, max_len): the most likely token at
    each step until EOT (kept), then ``pad_id``."""
    b = memory.shape[0]
    banned = (tokenizer.sot_id, tokenizer.pad_id)
    seq = torch.full((b, 1), tokenizer.sot_id, dtype=torch.long, device=memory.device)
    done = torch.zeros(b, dtype=torch.bool, device=memory.device)
    for _ in range(max_len):
        token = next_log_probs(model, seq, memory, memory_mask, banned).argmax(dim=-1)
        token = token.masked_fill(done, tokenizer.pad_id)
        seq = torch.cat((seq, token[:, None]), dim=1)
        done |= token == tokenizer.eot_id
        if bool(done.all()):
            break
    return _pad_to(seq[:, 1:], max_len, tokenizer.pad_id)


def beam_search(
    model: CaptioningModel,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    tokenizer: TextTokenizer,
    max_len: int,
    beam_size: int,
    length_penalty: float,
) -> torch.Tensor:
    """memory (B, F, D), memory_mask (B, F) -> token ids (B, max_len) of each video's best beam.

    Every hypothesis is scored by ``log p(tokens) / length ** length_penalty`` (length counts
    generated tokens, EOT included). At each step the ``beam_size`` best of all extensions of the
    live hypotheses and of the finished ones (which extend only by padding, keeping their score
    and length) are kept, so with ``beam_size=1`` this is :func:`greedy_decode`. It stops when
    every kept hypothesis has ended or after ``max_len`` tokens.
    """
    b, k = memory.shape[0], beam_size
    device = memory.device
    banned = (tokenizer.sot_id, tokenizer.pad_id)
    memory, memory_mask = memory.repeat_interleave(k, 0), memory_mask.repeat_interleave(k, 0)
    seq = torch.full((b * k, 1), tokenizer.sot_id, dtype=torch.long, device=device)
    score = torch.zeros(b, k, dtype=torch.float64, device=device)
    score[:, 1:] = -torch.inf  # the k start hypotheses are one
    length = torch.zeros(b, k, dtype=torch.float64, device=device)
    done = torch.zeros(b, k, dtype=torch.bool, device=device)
    for step in range(1, max_len + 1):
        logp = next_log_probs(model, seq, memory, memory_mask, banned).view(b, k, -1)
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
