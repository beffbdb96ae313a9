"""The gradient cache (``train.micro_batch``), after Gao et al. 2021, "Scaling Deep Contrastive
Learning Batch Size under Memory Limited Setup".

A contrastive loss needs every sample's features at once, so a batch that does not fit cannot be
split into accumulation steps without shrinking the in-batch negatives. The cache splits the
step instead, on a :class:`harness.heads.Head`:

1. ``per_sample_features`` runs over this process's batch in chunks of ``micro_batch`` samples
   without a graph; the random state before each chunk is kept.
2. ``batch_loss`` runs once on the whole batch of features (gathered over processes inside, so
   it sees the global batch) and is backpropagated to the features and to the parameters that act
   only in the loss.
3. Each chunk is encoded again with a graph, from its kept random state (same dropout masks), and
   the feature gradients of step 2 flow back through it.

The parameter gradient equals the unchunked one up to float rounding wherever the per-sample
encoders draw no random numbers (dropout); with dropout, each chunk's masks are replayed exactly,
but they are drawn per chunk, as any other batch layout would draw them. Peak activation memory
is that of one chunk's encoders plus the loss on features.

The backward runs outside DDP's forward, so DDP does not average: :func:`forward_backward`
averages over processes itself, when the accumulation step ends.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from harness.distributed import average_gradients
from harness.heads import Head


@dataclass
class RandomState:
    """torch's CPU generator state and, on CUDA, the state of one device's generator."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None
    device: torch.device

    @classmethod
    def capture(cls, device: torch.device) -> RandomState:
        """The current states (the CUDA one only when ``device`` is a CUDA device)."""
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda, device)

    def restore(self) -> None:
        """Set the generators back to these states."""
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def chunks(size: int, micro_batch: int) -> list[slice]:
    """Consecutive row ranges of at most ``micro_batch`` rows covering ``range(size)``."""
    return [slice(start, min(start + micro_batch, size)) for start in range(0, size, micro_batch)]


def rows(batch: dict[str, torch.Tensor], part: slice) -> dict[str, torch.Tensor]:
    """The rows ``part`` of every batch-first tensor of ``batch`` (other values as they are)."""
    return {k: v[part] if torch.is_tensor(v) else v for k, v in batch.items()}


def cached_backward(
    model: Head,
    batch: dict[str, torch.Tensor],
    micro_batch: int,
    backward_loss: Callable[[torch.Tensor], None],
    autocast: Callable[[], AbstractContextManager],
) -> torch.Tensor:
    """Accumulate into ``.grad`` the gradient of ``model.batch_loss(model.per_sample_features(
    batch))`` with the per-sample part run ``micro_batch`` rows at a time (steps 1-3 above).

    ``model`` is the unwrapped head; ``batch`` this process's batch (batch-first tensors);
    ``backward_loss(loss)`` backpropagates the loss (Accelerate's, which scales for fp16 and
    accumulation: the feature gradients then carry that scale into the encoders);
    ``autocast()`` a mixed-precision context. Returns the loss (detached). Random generators end
    where the unchunked step would leave them after the loss.
    """
    size = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
    device = next(model.parameters()).device
    parts = chunks(size, micro_batch)
    states, encoded = [], []
    with torch.no_grad():
        for part in parts:
            states.append(RandomState.capture(device))
            with autocast():
                encoded.append(model.per_sample_features(rows(batch, part)))
    leaves = {
        name: torch.cat([chunk[name] for chunk in encoded]).requires_grad_(
            encoded[0][name].is_floating_point()
        )
        for name in encoded[0]
    }
    del encoded
    with autocast():
        loss = model.batch_loss(leaves)
    backward_loss(loss)
    after_loss = RandomState.capture(device)
    for part, state in zip(parts, states, strict=True):
        state.restore()
        with autocast():
            features = model.per_sample_features(rows(batch, part))
        pairs = [
            (value, leaves[name].grad[part])
            for name, value in features.items()
            if value.requires_grad and leaves[name].grad is not None
        ]
        if pairs:
            torch.autograd.backward([v for v, _ in pairs], [g for _, g in pairs])
    after_loss.restore()
    return loss.detach()


def forward_backward(
    accelerator: Accelerator, model: torch.nn.Module, batch: dict[str, torch.Tensor], micro: int
) -> torch.Tensor:
    """One training batch of the engine under the gradient cache: :func:`cached_backward` on the
    unwrapped ``model``, then, at the end of an accumulation step, the gradients averaged over
    processes as DDP would. Returns the loss."""
    head = accelerator.unwrap_model(model)
    loss = cached_backward(head, batch, micro, accelerator.backward, accelerator.autocast)
    if accelerator.sync_gradients:
        average_gradients(head.parameters())
    return loss
