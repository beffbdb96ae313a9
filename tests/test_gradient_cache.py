"""The gradient cache (train.micro_batch) and the process-count conventions (train.gather_grad,
train.reference_world_size) on the five retrieval methods and EMCL-QA at tiny size: parameter
gradients with chunked encoders equal the unchunked ones; 2 real processes (gloo) apply the
1-process gradient under "global"; one process under reference_world_size=2 applies what 2
processes under "local" apply."""

import copy
import os
from contextlib import nullcontext

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import baselines  # noqa: F401  (registers the methods)
import tasks
from harness.config import resolve_config
from harness.distributed import average_gradients
from harness.encoder import VideoTextEncoder, build_clip
from harness.gradient_cache import cached_backward, chunks, rows
from harness.qa import AnswerHead
from harness.registry import METHODS
from tests.spawn import run_workers

BATCH, FRAMES, WORDS, PIXELS, VOCAB = 8, 4, 10, 32, 60
SOT, EOT = VOCAB - 2, VOCAB - 1
MICRO = 3  # chunks of 3, 3, 2: uneven on purpose
WORLD = 2
# (method, overrides): the five methods' defaults, plus the two whose loss-side modules draw
# dropout (tightTransf, DRL xti)
CASES = [
    ("emcl", ()),
    ("clip4clip", ()),
    ("clip4clip", ("method.sim_header=tightTransf",)),
    ("xclip", ()),
    ("drl", ()),
    ("drl", ("method.interaction=xti",)),
    ("hmmc", ()),
]
IDS = [m + "".join(f"-{o.split('=')[1]}" for o in over) for m, over in CASES]


def make_config(method: str, overrides=(), task: str = "retrieval") -> dict:
    names = {"task": task, "dataset": "synthvtt", "method.name": method}
    sizes = (f"data.max_frames={FRAMES}", f"data.max_words={WORDS}", f"data.image_size={PIXELS}")
    return resolve_config(tasks.BASE_CONFIG, names, overrides=[*sizes, *overrides])


def make_model(method: str, overrides=(), reference_world_size=None) -> torch.nn.Module:
    """A tiny random model of ``method``, the same for a given method on every process."""
    torch.manual_seed(0)
    clip = build_clip(None, "tiny", PIXELS, 16, vocab_size=VOCAB, sot_id=SOT, eot_id=EOT, pad_id=0)
    config = make_config(method, overrides)
    model = METHODS.get("retrieval", method)(VideoTextEncoder(clip), config)
    model.reference_world_size = reference_world_size
    return model.train()


def make_batch() -> dict[str, torch.Tensor]:
    """A global batch: captions of 3..WORDS tokens, videos with 2..FRAMES real frames."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, WORDS + 1, (BATCH,), generator=g)
    ids = torch.randint(1, SOT, (BATCH, WORDS), generator=g)
    positions = torch.arange(WORDS)
    ids[:, 0] = SOT
    ids[positions[None] == (lengths - 1)[:, None]] = EOT
    mask = (positions[None] < lengths[:, None]).long()
    ids = ids * mask
    frames = torch.randint(2, FRAMES + 1, (BATCH,), generator=g)
    video_mask = (torch.arange(FRAMES)[None] < frames[:, None]).long()
    pixels = (
        torch.randn(BATCH, FRAMES, 3, PIXELS, PIXELS, generator=g)
        * video_mask[..., None, None, None]
    )
    return {"ids": ids, "mask": mask, "pixels": pixels, "video_mask": video_mask}


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameter gradients by name (of the wrapped module under DDP)."""
    model = getattr(model, "module", model)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def full_step(model: torch.nn.Module, batch: dict) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and parameter gradients of the unchunked step, from seed 5."""
    torch.manual_seed(5)
    loss = model(batch)
    loss.backward()
    return loss.item(), gradients(model)


def cached_step(model: torch.nn.Module, batch: dict) -> tuple[float, dict[str, torch.Tensor]]:
    """The same under the gradient cache with chunks of MICRO rows, from seed 5."""
    torch.manual_seed(5)
    loss = cached_backward(model, batch, MICRO, lambda loss: loss.backward(), nullcontext)
    return loss.item(), gradients(model)


def assert_same_gradients(got: dict, expected: dict, tol: float = 1e-5) -> float:
    """Every gradient within ``tol`` of its magnitude scale; returns the worst difference."""
    assert got.keys() == expected.keys()
    worst = 0.0
    for name, grad in expected.items():
        scale = grad.abs().max().item() + 1e-12
        diff = (got[name] - grad).abs().max().item()
        assert diff <= tol * max(scale, 1.0), (name, diff, scale)
        worst = max(worst, diff)
    return worst


@pytest.mark.parametrize(("method", "overrides"), CASES, ids=IDS)
def test_micro_batch_gives_the_full_batch_gradient(method, overrides):
    model = make_model(method, overrides)
    twin = copy.deepcopy(model)  # the same parameters and buffers (EMCL's bases move)
    batch = make_batch()
    loss, expected = full_step(model, batch)
    cached_loss, got = cached_step(twin, batch)
    assert cached_loss == pytest.approx(loss, abs=1e-6)
    assert len(expected) > 10  # encoder, temporal module and the method's own parameters
    assert_same_gradients(got, expected)


def test_micro_batch_replays_each_chunks_dropout_masks():
    model = make_model("emcl")
    for module in model.modules():
        if type(module).__name__ == "CLIPAttention":
            module.dropout = 0.3
    twin = copy.deepcopy(model)
    batch = make_batch()
    # the reference: each chunk encoded with its graph, in the cache's order, then the loss
    torch.manual_seed(5)
    parts = [model.per_sample_features(rows(batch, part)) for part in chunks(BATCH, MICRO)]
    features = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    loss = model.batch_loss(features)
    loss.backward()
    expected = gradients(model)
    cached_loss, got = cached_step(twin, batch)
    assert cached_loss == pytest.approx(loss.item(), abs=1e-6)
    assert_same_gradients(got, expected)
    # dropout did act: the masks differ from those of another seed
    torch.manual_seed(6)
    assert twin(batch).item() != pytest.approx(loss.item(), abs=1e-4)


def test_micro_batch_gives_the_full_batch_gradient_for_qa():
    config = make_config("emcl", task="qa")
    torch.manual_seed(0)
    clip = build_clip(None, "tiny", PIXELS, 16, vocab_size=VOCAB, sot_id=SOT, eot_id=EOT)
    head = AnswerHead(**config["qa"])
    settings = {k: v for k, v in config["method"].items() if k != "name"}
    model = METHODS.get("qa", "emcl")(VideoTextEncoder(clip), 7, head, "global", **settings)
    model.train()
    twin = copy.deepcopy(model)
    batch = {**make_batch(), "label": torch.arange(BATCH) % 7}
    loss, expected = full_step(model, batch)  # the classifier's dropout draws in the loss
    cached_loss, got = cached_step(twin, batch)
    assert cached_loss == pytest.approx(loss, abs=1e-6)
    assert_same_gradients(got, expected)


def worker(rank: int, port: int, queue) -> None:
    """Each method's averaged gradient on 2 processes: through DDP under "global" and
    "local", and through the gradient cache under "global"."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    try:
        batch = rows(make_batch(), slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD))
        out = {}
        for (method, overrides), name in zip(CASES, IDS, strict=True):
            for mode in ("global", "local"):
                model = make_model(method, (*overrides, f"train.gather_grad={mode}"))
                ddp = DistributedDataParallel(model)  # as Accelerate wraps it
                out[name, mode, "ddp"] = full_step(ddp, batch)
            model = make_model(method, (*overrides, "train.gather_grad=global"))
            loss, _ = cached_step(model, batch)
            average_gradients(model.parameters())
            out[name, "global", "cache"] = (loss, gradients(model))
        queue.put(
            (
                rank,
                {
                    k: (loss, {n: g.tolist() for n, g in grads.items()})
                    for k, (loss, grads) in out.items()
                },
            )
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes() -> dict:
    payloads = run_workers(worker, 29561, WORLD, timeout=300)
    return {
        rank: {
            k: (loss, {n: torch.tensor(g) for n, g in grads.items()})
            for k, (loss, grads) in out.items()
        }
        for rank, out in payloads.items()
    }


@pytest.mark.parametrize(("method", "overrides"), CASES, ids=IDS)
def test_two_processes_under_global_apply_the_one_process_gradient(
    two_processes, method, overrides
):
    name = IDS[CASES.index((method, overrides))]
    loss, expected = full_step(make_model(method, overrides), make_batch())
    for rank in range(WORLD):
        for path in ("ddp", "cache"):
            got_loss, got = two_processes[rank][name, "global", path]
            assert got_loss == pytest.approx(loss, abs=1e-5)
            assert_same_gradients(got, expected)


@pytest.mark.parametrize(
    ("method", "overrides"), CASES[:2] + CASES[3:5] + CASES[6:], ids=IDS[:2] + IDS[3:5] + IDS[6:]
)
def test_reference_world_size_reproduces_two_local_processes(two_processes, method, overrides):
    name = IDS[CASES.index((method, overrides))]
    model = make_model(method, (*overrides, "train.gather_grad=local"), reference_world_size=2)
    _, got = full_step(model, make_batch())
    _, two_local = two_processes[0][name, "local", "ddp"]
    assert_same_gradients(got, two_local)
    # and it is not the single-device gradient: the encoder's share is halved
    _, single = full_step(make_model(method, overrides), make_batch())
    weight = "encoder.clip.text_model.encoder.layers.0.mlp.fc1.weight"
    torch.testing.assert_close(got[weight], single[weight] / 2, rtol=1e-4, atol=1e-7)
