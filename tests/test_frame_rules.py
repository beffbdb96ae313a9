"""Frame protocols (``data.sampling``, ``data.resize``): every rule reads exactly the frames its
reference loader reads, checked against the loaders' own libraries (OpenCV seeks as CLIP4Clip's
``RawVideoExtractorCV2`` and HMMC's ``frame2lmdb.py`` do, decord as EMCL-Net's and DRL's
``_get_rawvideo_dec`` does) on videos whose frames carry their number, and on the real clip."""

from fractions import Fraction
from pathlib import Path

import cv2
import decord
import numpy as np
import pytest
import torch
from PIL import Image

import baselines  # noqa: F401  (registers the hmmc frame rule)
from harness.compare import check_one_frame_protocol
from harness.config import ConfigError
from harness.data import ClipSource
from harness.errors import UsageError
from harness.frame_cache import FrameCache, FrameCacheError, build_frame_cache, cache_dir_for
from harness.frame_rules import cv2_grid_indices, decord_indices
from harness.pil_frames import jpeg_round_trip, pil_resize_center_crop
from harness.video import load_clip_uint8, read_frames, resize_center_crop, write_test_video
from tests.conftest import REPO_ROOT

SIDE = 64  # square frames (the centre crop at SIDE keeps every block); decord needs 64 wide
BLOCK = 16
GRID = SIDE // BLOCK  # a 4 x 4 grid of blocks: 16 bits of frame number
MAX_FRAMES = 4
RATES = {"30": 30, "29.97": Fraction(30000, 1001), "25": 25}
SECONDS = 6.5


def _numbered_frames(count: int) -> np.ndarray:
    """(count, SIDE, SIDE, 3) uint8: frame i shows i in binary, one black or white block a bit."""
    frames = np.zeros((count, SIDE, SIDE, 3), np.uint8)
    for i in range(count):
        for bit in range(GRID * GRID):
            if i >> bit & 1:
                row, col = divmod(bit, GRID)
                frames[i, row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = 255
    return frames


def _numbers(frames: np.ndarray) -> list[int]:
    """The frame numbers drawn in RGB frames (T, SIDE, SIDE, 3), read from the block centres."""
    centres = frames[:, BLOCK // 2 :: BLOCK, BLOCK // 2 :: BLOCK].astype(int).mean(-1)
    bits = (centres.reshape(len(frames), GRID * GRID) > 128).astype(int)
    return [int((row << np.arange(GRID * GRID)).sum()) for row in bits]


@pytest.fixture(scope="module")
def numbered_videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("numbered")
    videos = {}
    for name, fps in RATES.items():
        path = folder / f"numbered_{name}.mp4"
        frames = _numbered_frames(int(SECONDS * float(fps)))
        write_test_video(path, frames, fps=fps)
        videos[name] = path
    return videos


def _cv2_read(path: Path, indices: list[int]) -> np.ndarray:
    """RGB frames as the OpenCV loaders get them: seek to each index, read one frame."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    for index in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok, f"OpenCV could not read frame {index} of {path}"
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def _cv2_grid_reference(path: Path, rate: int, slice_framepos: int) -> list[int]:
    """CLIP4Clip's OpenCV reader, written out: int(CAP_PROP_FPS), a grid of ``rate`` frames a
    second read until the first failed read, then the head / tail / linspace cut."""
    cap = cv2.VideoCapture(str(path))
    count, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FPS))
    interval = fps // rate or 1
    offsets = list(np.arange(0, fps, interval))[:rate]
    read = []
    for sec in range((count + fps - 1) // fps + 1):
        for offset in offsets:
            cap.set(cv2.CAP_PROP_POS_FRAMES, sec * fps + offset)
            if not cap.read()[0]:
                cap.release()
                return _slice(read, slice_framepos)
            read.append(int(sec * fps + offset))
    cap.release()
    return _slice(read, slice_framepos)


def _slice(read: list[int], slice_framepos: int) -> list[int]:
    if len(read) <= MAX_FRAMES:
        return read
    if slice_framepos == 0:
        return read[:MAX_FRAMES]
    if slice_framepos == 1:
        return read[-MAX_FRAMES:]
    return [read[i] for i in np.linspace(0, len(read) - 1, num=MAX_FRAMES, dtype=int)]


def _decord_reference(path: Path, rate: int) -> tuple[list[int], np.ndarray]:
    """EMCL-Net's decord reader, written out: indices and the frames decord returns."""
    reader = decord.VideoReader(str(path))
    fps = reader.get_avg_fps()
    stride = int(round(float(fps) / rate))
    positions = list(range(0, len(reader), stride))
    if len(positions) > MAX_FRAMES:
        picks = np.linspace(0, len(positions) - 1, num=MAX_FRAMES, dtype=int)
        positions = [positions[i] for i in picks]
    return positions, reader.get_batch(positions).asnumpy()


def _hmmc_reference(path: Path) -> tuple[list[int], np.ndarray]:
    """HMMC's frame2lmdb.py (OpenCV seeks, cv2.imencode at its default quality) and its test
    loader's picks, written out: the frame indices and the decoded RGB frames."""
    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    stored = np.linspace(0, count - 10, num=30, dtype=int)
    picks = [int(stored[i]) for i in np.linspace(0, 30, MAX_FRAMES, endpoint=False, dtype=int)]
    decoded = [
        cv2.cvtColor(cv2.imdecode(cv2.imencode(".jpg", frame)[1], cv2.IMREAD_COLOR), 4)
        for frame in (cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in _cv2_read(path, picks))
    ]
    return picks, np.stack(decoded)


def _clip(path: Path, size: int, **protocol) -> np.ndarray:
    frames, mask = load_clip_uint8(path, MAX_FRAMES, size, protocol.pop("rate", 1), **protocol)
    return frames[mask.bool()].numpy()


@pytest.mark.parametrize("video", list(RATES))
@pytest.mark.parametrize("rate", [1, 2])
@pytest.mark.parametrize("slice_framepos", [0, 1, 2])
def test_cv2_grid_reads_the_frames_opencv_reads(numbered_videos, video, rate, slice_framepos):
    path = numbered_videos[video]
    expected = _cv2_grid_reference(path, rate, slice_framepos)
    clip = _clip(path, SIDE, rate=rate, sampling="cv2_grid", slice_framepos=slice_framepos)
    assert _numbers(clip) == expected
    # OpenCV's seek lands on the frame of that number: the reference reads what we read.
    assert _numbers(_cv2_read(path, expected)) == expected


@pytest.mark.parametrize("video", list(RATES))
@pytest.mark.parametrize("rate", [1, 2])
def test_decord_rule_reads_the_frames_decord_reads(numbered_videos, video, rate):
    path = numbered_videos[video]
    expected, frames = _decord_reference(path, rate)
    assert _numbers(_clip(path, SIDE, rate=rate)) == expected == _numbers(frames)


@pytest.mark.parametrize("video", list(RATES))
def test_hmmc_rule_reads_frame2lmdb_frames_through_jpeg(numbered_videos, video):
    path = numbered_videos[video]
    expected, frames = _hmmc_reference(path)
    clip = _clip(path, SIDE, sampling="hmmc")
    assert _numbers(clip) == expected
    assert np.array_equal(clip, frames)  # the JPEG round trip is OpenCV's, bit for bit


def test_real_clip_every_rule_matches_its_reference_bit_for_bit(shared_data):
    path = shared_data / "videos" / "video7500.mp4"  # 298 x 224: the crop keeps 224 x 224
    crop = slice(37, 37 + 224)
    for rate in (1, 2):
        indices, frames = _decord_reference(path, rate)
        assert np.array_equal(_clip(path, 224, rate=rate), frames[:, :, crop])
        for position in (0, 1, 2):
            indices = _cv2_grid_reference(path, rate, position)
            clip = _clip(path, 224, rate=rate, sampling="cv2_grid", slice_framepos=position)
            assert np.array_equal(clip, _cv2_read(path, indices)[:, :, crop])
    _, frames = _hmmc_reference(path)
    assert np.array_equal(_clip(path, 224, sampling="hmmc"), frames[:, :, crop])


def test_hmmc_picks_the_documented_twelve_of_thirty():
    from baselines.hmmc_frames import hmmc_indices

    stored = np.linspace(0, 309 - 10, num=30, dtype=int)
    picks = hmmc_indices(309, 29.97, 1.0, 12, 2, None, None)
    assert picks == [int(stored[i]) for i in [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]]
    with pytest.raises(ConfigError, match="data.sampling=hmmc .* 9 frames"):
        hmmc_indices(9, 30.0, 1.0, 12, 2, None, None)
    with pytest.raises(ConfigError, match="whole videos"):
        hmmc_indices(300, 30.0, 1.0, 12, 2, 0, 10)


def test_rules_differ_at_ntsc_rates():
    # A 10 s clip at 29.97 fps, 12 frames, 1 frame a second: decord strides 30 frames, the
    # OpenCV grid 29; they agree only on frame 0.
    decord_rule = decord_indices(300, 30000 / 1001, 1.0, 12)
    grid = cv2_grid_indices(300, 30000 / 1001, 1.0, 12, 2)
    assert decord_rule == list(range(0, 300, 30))
    assert grid == list(range(0, 300, 29))
    assert len(set(grid) - set(decord_rule)) == 10
    # At 2 frames a second the grid reads offsets 0 and 14 of each 29-frame second.
    assert cv2_grid_indices(100, 29.97, 2.0, 100, 2)[:4] == [0, 14, 29, 43]
    with pytest.raises(ConfigError, match="above the video's 25 fps"):
        cv2_grid_indices(100, 25.0, 30.0, 12, 2)


def _gradient(count: int, height: int, width: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1)
    noise = rng.integers(0, 40, (count, height, width, 3))
    return torch.from_numpy(np.clip(base + noise, 0, 255).astype(np.uint8))


def _pil_reference(frame: np.ndarray, size: int) -> np.ndarray:
    """torchvision's PIL path, written out: Resize(size, BICUBIC) on the short side (skipped
    when already that size), CenterCrop(size) with round((new - size) / 2) offsets."""
    image = Image.fromarray(frame)
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


RESIZE_CASES = [((48, 64), 32), ((64, 48), 40), ((37, 53), 24), ((30, 30), 96), ((224, 298), 224)]


@pytest.mark.parametrize("shape,size", RESIZE_CASES)
def test_pil_resize_equals_pil_bit_for_bit(shape, size):
    frames = _gradient(2, *shape)
    out = pil_resize_center_crop(frames, size)
    assert out.shape == (2, size, size, 3)
    for got, frame in zip(out.numpy(), frames.numpy(), strict=True):
        assert np.array_equal(got, _pil_reference(frame, size))


def test_pil_resize_through_the_loader(tmp_path):
    path = tmp_path / "gradient.mp4"
    write_test_video(path, _gradient(20, 48, 64).numpy(), fps=10)
    frames, mask = load_clip_uint8(path, 4, 32, 1.0, resize="pil")
    decoded = read_frames(path, decord_indices(20, 10.0, 1.0, 4))
    expected = np.stack([_pil_reference(f, 32) for f in decoded.numpy()])
    assert np.array_equal(frames[mask.bool()].numpy(), expected)
    torch_resized = resize_center_crop(decoded, 32).numpy().astype(int)
    assert 0 < np.abs(torch_resized - expected).max() <= 2  # the torch path is close, not equal


def test_jpeg_round_trip_is_opencvs():
    frames = _gradient(2, 48, 64)
    for got, frame in zip(jpeg_round_trip(frames).numpy(), frames.numpy(), strict=True):
        bgr = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1]
        assert np.array_equal(got, cv2.cvtColor(cv2.imdecode(bgr, cv2.IMREAD_COLOR), 4))


def test_frame_caches_never_serve_another_rule(numbered_videos, tmp_path):
    path = numbered_videos["25"]
    grid = {"sampling": "cv2_grid", "slice_framepos": 0}
    default_dir = cache_dir_for(tmp_path, 4, SIDE, 2.0)
    grid_dir = cache_dir_for(tmp_path, 4, SIDE, 2.0, **grid)
    assert default_dir.name == "frames4_size64_rate2"  # unchanged for the default rule
    assert grid_dir.name == "frames4_size64_rate2_cv2_grid_slice0"
    assert cache_dir_for(tmp_path, 4, SIDE, 2.0, resize="pil").name.endswith("_pil")
    build_frame_cache([path], grid_dir, 4, SIDE, 2.0, 1, progress=False, **grid)
    cache = FrameCache.open(grid_dir, 4, SIDE, 2.0, **grid)
    assert _numbers(cache.get(path)[0].numpy()) == [0, 12, 25, 37]
    with pytest.raises(FrameCacheError, match="sampling=cv2_grid.*sampling=decord"):
        FrameCache.open(grid_dir, 4, SIDE, 2.0)
    with pytest.raises(FrameCacheError, match="slice_framepos=0"):
        ClipSource(4, SIDE, 2.0, cache=cache, sampling="cv2_grid", slice_framepos=1)
    source = ClipSource(4, SIDE, 2.0, cache_in_memory=True, sampling="cv2_grid")
    assert _numbers(source.frames_uint8(path)[0].numpy()) == [0, 50, 100, 150]


def _resolve(method: str, *overrides: str, dataset: str = "synthvtt") -> dict:
    import tasks  # noqa: F401  (registers tasks and datasets)
    from harness.config import resolve_config

    return resolve_config(
        REPO_ROOT / "tasks" / "configs" / "base.yaml",
        {"task": "retrieval", "dataset": dataset, "method.name": method},
        overrides=list(overrides),
    )


def test_reference_sampling_is_each_methods_own_rule():
    rules = {
        method: _resolve(method, "data.sampling=reference")["data"]["sampling"]
        for method in ("emcl", "drl", "clip4clip", "xclip", "hmmc")
    }
    assert rules == {
        "emcl": "decord",
        "drl": "decord",
        "clip4clip": "cv2_grid",
        "xclip": "cv2_grid",
        "hmmc": "hmmc",
    }
    assert _resolve("emcl", "data.sampling=reference", dataset="activitynet")["data"][
        "sampling"
    ] == ("cv2_grid")
    assert _resolve("clip4clip")["data"]["sampling"] == "decord"  # the default is unchanged
    configs = {m: _resolve(m, "data.sampling=reference") for m in ("emcl", "clip4clip")}
    with pytest.raises(UsageError, match="one frame rule.*emcl decord, clip4clip cv2_grid"):
        check_one_frame_protocol(configs)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.sampling=cv2grid"], "data.sampling' must be one of cv2_grid, decord, hmmc"),
        (["data.resize=bilinear"], "data.resize' must be one of torch, pil"),
        (["data.slice_framepos=0"], "only data.sampling=cv2_grid slices"),
        (["data.sampling=cv2_grid", "data.video_framerate=1.5"], "whole number"),
    ],
)
def test_bad_frame_protocol_settings_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _resolve("emcl", *overrides)
    assert "\n" not in str(caught.value)


def test_a_cache_from_before_frame_rules_still_serves_the_default_rule(numbered_videos, tmp_path):
    import json

    path = numbered_videos["30"]
    cache_dir = build_frame_cache([path], tmp_path / "cache", 4, SIDE, 1.0, 1, progress=False)
    meta = json.loads((cache_dir / "meta.json").read_text())
    for key in ("sampling", "resize", "slice_framepos"):
        del meta[key]
    (cache_dir / "meta.json").write_text(json.dumps(meta))
    frames = FrameCache.open(cache_dir, 4, SIDE, 1.0).get(path)[0].numpy()
    assert _numbers(frames) == [0, 60, 120, 180]
    with pytest.raises(FrameCacheError, match="sampling=decord"):
        FrameCache.open(cache_dir, 4, SIDE, 1.0, resize="pil")


def test_a_loader_with_a_methods_frame_rule_works_in_a_fresh_process(numbered_videos):
    # DataLoader and --prepare workers are spawned: they get the rule itself, not its name.
    import pickle
    import subprocess
    import sys

    source = pickle.dumps(ClipSource(4, SIDE, 1.0, sampling="hmmc"))
    script = (
        "import pickle, sys; from pathlib import Path; "
        "source = pickle.loads(sys.stdin.buffer.read()); "
        f"print(source.frames_uint8(Path({str(numbered_videos['25'])!r}))[1].tolist())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=source, capture_output=True, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[1, 1, 1, 1]"
