"""The --prepare step: compression like compress_video.py (ffmpeg -r 3, short side 224) and the
Arrow frame cache, checked on the real MSR-VTT clip and on small generated videos."""

import json
import pickle
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from harness.data import ClipSource
from harness.frame_cache import FrameCache, FrameCacheError, build_frame_cache, cache_dir_for
from harness.transcode import (
    CfrResampler,
    compress_videos,
    find_videos,
    partial_path,
    scaled_size,
)
from harness.video import VideoReadError, load_clip_uint8, probe_video, write_test_video

# Frames ffmpeg 5.1 kept, measured with `ffmpeg -i in.mp4 -filter:v <compress_video.py's scale>
# -map 0:v -r 3 -c:v libx264 -qp 0 out.mp4` on inputs whose frames encode their own index.
FFMPEG_PICKS = {
    (Fraction(30), 219): [0, 1, 8, *range(18, 219, 10)],
    (Fraction(30000, 1001), 250): [0, 1, 8, *range(18, 250, 10)],
    (Fraction(2), 15): [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9, 9, 10, 11, 11, 12, 13, 13, 14],
}


def resampled_indices(in_rate: Fraction, count: int) -> list[int]:
    """Input frame index of every output frame of a constant-rate input."""
    resampler = CfrResampler(Fraction(3), in_rate)
    picks: list[int] = []
    for i in range(count):
        repeats, copies = resampler.push(i / in_rate)
        picks += [i - 1] * repeats + [i] * copies
    return picks + [count - 1] * resampler.flush()


@pytest.mark.parametrize(("key", "expected"), list(FFMPEG_PICKS.items()))
def test_frame_rate_conversion_keeps_the_frames_ffmpeg_keeps(key, expected):
    assert resampled_indices(*key) == expected


def test_scaled_size_sets_the_short_side_and_keeps_even_dims():
    assert scaled_size(1280, 720, 224) == (398, 224)
    assert scaled_size(342, 194, 224) == (394, 224)
    assert scaled_size(720, 1280, 224) == (224, 398)
    assert scaled_size(240, 240, 224) == (224, 224)


def index_coded_video(path: Path, count: int, fps: int) -> Path:
    """A video whose frame i shows i in two grey blocks (i % 16 and i // 16)."""
    frames = np.zeros((count, 48, 64, 3), np.uint8)
    for i in range(count):
        frames[i, :, :32] = (i % 16) * 16 + 8
        frames[i, :, 32:] = (i // 16) * 16 + 8
    path.parent.mkdir(parents=True, exist_ok=True)
    write_test_video(path, frames, fps)
    return path


def decoded_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    grey = [
        (img[:, : img.shape[1] // 4].mean(), img[:, -img.shape[1] // 4 :].mean()) for img in images
    ]
    return [round((a - 8) / 16) + 16 * round((b - 8) / 16) for a, b in grey]


def test_compress_30fps_video_to_3fps_with_ffmpeg_frames(tmp_path):
    src = index_coded_video(tmp_path / "in" / "clip.mp4", 40, fps=30)
    report = compress_videos([src], tmp_path / "out", workers=1, progress=False)
    out = tmp_path / "out" / "clip.mp4"
    assert report == {"done": 1, "skipped_existing": 0, "failed": []}
    info = probe_video(out)
    assert (info.fps, info.width, info.height) == (3.0, 298, 224)
    assert decoded_indices(out) == [0, 1, 8, 18, 28, 38]


def test_compress_real_video_is_3fps_224_even_and_resumable(shared_data, tmp_path):
    src = shared_data / "videos" / "video7500.mp4"
    out_root = tmp_path / "compressed"
    out = out_root / "video7500.mp4"

    report = compress_videos([src], out_root, workers=1, progress=False)
    assert report == {"done": 1, "skipped_existing": 0, "failed": []}
    info = probe_video(out)
    assert info.fps == 3.0
    assert min(info.width, info.height) == 224
    assert info.width % 2 == 0 and info.height % 2 == 0
    # The source is already 3 fps: every one of its 50 frames is kept, and all decode.
    assert info.num_frames == 50
    assert load_clip_uint8(out, 64, 224, None)[1].sum() == 50
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video"]
    assert sorted(p.name for p in out_root.iterdir()) == ["video7500.mp4"]

    mtime = out.stat().st_mtime_ns
    report = compress_videos([src], out_root, workers=1, progress=False)
    assert report == {"done": 0, "skipped_existing": 1, "failed": []}
    assert out.stat().st_mtime_ns == mtime

    # An interrupted run leaves at most its temporary file, which never counts as done.
    out.unlink()
    partial_path(out).write_bytes(b"half an mp4")
    assert find_videos(out_root) == []
    report = compress_videos([src], out_root, workers=1, progress=False)
    assert report == {"done": 1, "skipped_existing": 0, "failed": []}
    assert probe_video(out).num_frames == 50
    assert not partial_path(out).exists()


@pytest.fixture
def compressed_real(shared_data, tmp_path) -> Path:
    compress_videos([shared_data / "videos" / "video7500.mp4"], tmp_path, workers=1, progress=False)
    return tmp_path / "video7500.mp4"


@pytest.mark.parametrize(("max_frames", "framerate"), [(12, 1.0), (32, 1.0), (8, None)])
def test_cached_frames_equal_decoding_the_compressed_file(
    compressed_real, tmp_path, max_frames, framerate
):
    cache_dir = cache_dir_for(tmp_path / "data", max_frames, 224, framerate)
    assert (
        build_frame_cache([compressed_real], cache_dir, max_frames, 224, framerate, 1) == cache_dir
    )
    cache = FrameCache.open(cache_dir, max_frames, 224, framerate)
    frames, mask = cache.get(compressed_real)
    expected_frames, expected_mask = load_clip_uint8(compressed_real, max_frames, 224, framerate)
    assert frames.dtype == torch.uint8 and frames.shape == (max_frames, 224, 224, 3)
    assert torch.equal(frames, expected_frames) and torch.equal(mask, expected_mask)
    assert torch.equal(cache.get("video7500")[0], expected_frames)
    assert cache.get("video1") is None and len(cache) == 1


def test_clip_source_with_cache_returns_what_decoding_returns(compressed_real, tmp_path):
    other = index_coded_video(tmp_path / "other.mp4", 20, fps=8)
    cache_dir = build_frame_cache([compressed_real, other], tmp_path / "cache", 12, 64, 1.0, 1)
    cache = FrameCache.open(cache_dir, 12, 64, 1.0)
    decoded, cached = ClipSource(12, 64, 1.0), ClipSource(12, 64, 1.0, cache=cache)
    for path in (compressed_real, other):
        (a, mask_a), (b, mask_b) = decoded(path), cached(path)
        assert torch.equal(a, b) and torch.equal(mask_a, mask_b)
    reopened = pickle.loads(pickle.dumps(cache))
    assert torch.equal(reopened.get(other)[0], cache.get(other)[0])


def test_cache_with_other_settings_is_refused_in_one_line(compressed_real, tmp_path):
    cache_dir = build_frame_cache([compressed_real], tmp_path / "cache", 12, 64, 1.0, 1)
    with pytest.raises(FrameCacheError, match=r"built with .*image_size=64.*--prepare") as err:
        FrameCache.open(cache_dir, 12, 224, 1.0)
    assert "\n" not in str(err.value)
    with pytest.raises(FrameCacheError, match="framerate"):
        ClipSource(12, 64, None, cache=FrameCache.open(cache_dir, 12, 64, 1.0))
    with pytest.raises(FrameCacheError, match="no usable frame cache.*--prepare"):
        FrameCache.open(tmp_path / "missing", 12, 64, 1.0)
    # framerate 0 and None both mean every frame, so they name one cache.
    assert cache_dir_for(tmp_path, 8, 64, 0.0) == cache_dir_for(tmp_path, 8, 64, None)
    assert cache_dir_for(tmp_path, 8, 64, 1.0) != cache_dir_for(tmp_path, 8, 64, 2.0)


def test_changed_video_is_detected_and_rebuilt(tmp_path):
    video = index_coded_video(tmp_path / "v.mp4", 20, fps=8)
    cache_dir = build_frame_cache([video], tmp_path / "cache", 4, 32, None, 1, progress=False)
    arrow = cache_dir / "frames.arrow"
    built = arrow.stat().st_mtime_ns
    build_frame_cache([video], cache_dir, 4, 32, None, 1, progress=False)
    assert arrow.stat().st_mtime_ns == built  # up to date: kept

    index_coded_video(video, 24, fps=8)
    with pytest.raises(FrameCacheError, match="another version of .*v.mp4.*--prepare"):
        FrameCache.open(cache_dir, 4, 32, None).get(video)
    build_frame_cache([video], cache_dir, 4, 32, None, 1, progress=False)
    cached = FrameCache.open(cache_dir, 4, 32, None).get(video)
    assert torch.equal(cached[0], load_clip_uint8(video, 4, 32, None)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "v.mp4"]


def test_corrupt_video_skip_or_error(tmp_path):
    good = index_coded_video(tmp_path / "good.mp4", 10, fps=8)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    cache_dir = tmp_path / "cache"

    with pytest.raises(VideoReadError, match="bad.mp4"):
        build_frame_cache([good, bad], cache_dir, 4, 32, None, 1, on_bad_video="error")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "good.mp4"]

    build_frame_cache([good, bad], cache_dir, 4, 32, None, 1, on_bad_video="skip")
    cache = FrameCache.open(cache_dir, 4, 32, None)
    assert good in cache and cache.get(bad) is None
    skipped = json.loads((cache_dir / "meta.json").read_text())["skipped"]
    assert [s["path"] for s in skipped] == [str(bad)]


def test_prepare_lists_failures_keeps_going_and_builds_in_parallel(tmp_path):
    for i in range(3):
        index_coded_video(tmp_path / "raw" / f"v{i}.mp4", 12, fps=6)
    broken = tmp_path / "raw" / "sub" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"garbage")
    report = compress_videos(find_videos(tmp_path / "raw"), tmp_path / "out", workers=1)
    assert report["done"] == 3 and report["skipped_existing"] == 0
    assert [f["path"] for f in report["failed"]] == [str(broken)]
    assert report["failed"][0]["error"].startswith("not a readable video file")
    compressed = find_videos(tmp_path / "out")
    assert [p.name for p in compressed] == ["v0.mp4", "v1.mp4", "v2.mp4"]

    cache_dir = build_frame_cache(compressed, tmp_path / "cache", 4, 32, None, workers=2)
    cache = FrameCache.open(cache_dir, 4, 32, None)
    for path in compressed:
        assert torch.equal(cache.get(path)[0], load_clip_uint8(path, 4, 32, None)[0])
