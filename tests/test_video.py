"""Video decoding, sampling and preprocessing on real files (the MSR-VTT clip and encoded ones)."""

import os
import pickle
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from harness.config import ConfigError
from harness.errors import UserError
from harness.frame_rules import decord_indices as sample_frame_indices
from harness.video import (
    CLIP_MEAN,
    CLIP_STD,
    VideoReadError,
    load_clip_uint8,
    normalize,
    pixels_from_uint8,
    preprocess_frames,
    probe_video,
    read_frames,
    resize_center_crop,
    write_test_video,
)


def _pyav_frames(path: Path) -> np.ndarray:
    """Every frame of ``path`` decoded by PyAV directly: (N, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _gradient_frames(num: int, height: int, width: int) -> np.ndarray:
    """Smooth moving colour gradients (they survive H.264 almost unchanged)."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([(x * 3 + 5 * t) % 256, (y * 4 + 7 * t) % 256, np.full_like(x, 20 * t % 256)], -1)
        for t in range(num)
    ]
    return np.stack(frames).astype(np.uint8)


@pytest.fixture
def real_video(shared_data: Path) -> Path:
    return shared_data / "videos" / "video7500.mp4"


@pytest.fixture
def short_video(tmp_path: Path) -> Path:
    path = tmp_path / "short.mp4"
    write_test_video(path, _gradient_frames(20, 48, 64), fps=10)
    return path


@pytest.fixture
def faststart_copy(real_video: Path, tmp_path: Path) -> Path:
    """The real clip remuxed with its index first, as web videos are: a cut copy still opens."""
    path = tmp_path / "faststart.mp4"
    with (
        av.open(str(real_video)) as src,
        av.open(str(path), "w", options={"movflags": "faststart"}) as dst,
    ):
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    return path


def test_probe_real_video_matches_pyav_header(real_video):
    with av.open(str(real_video)) as container:
        stream = container.streams.video[0]
        expected_frames = sum(1 for p in container.demux(stream) if p.size)
    info = probe_video(real_video)
    assert (info.fps, info.num_frames, info.width, info.height) == (3.0, 50, 298, 224)
    assert info.num_frames == expected_frames == len(_pyav_frames(real_video))
    assert info.duration == pytest.approx(50 / 3)


def test_sampling_follows_decord_reader():
    # MSR-VTT clip: 50 frames at 3 fps, one frame per second -> 17 frames, 12 kept uniformly.
    assert sample_frame_indices(50, 3.0, 1, 100) == list(range(0, 50, 3))
    assert sample_frame_indices(50, 3.0, 1, 12) == [0, 3, 6, 12, 15, 21, 24, 30, 33, 39, 42, 48]
    # 29.97 fps: stride round(29.97) = 30, not the OpenCV reader's int(fps) = 29.
    assert sample_frame_indices(300, 29.97, 1, 12) == list(range(0, 300, 30))
    assert sample_frame_indices(5, 30.0, 1, 12) == [0]
    assert sample_frame_indices(20, 10.0, None, 12) == [0, 1, 3, 5, 6, 8, 10, 12, 13, 15, 17, 19]
    assert sample_frame_indices(20, 10.0, 0, 30) == list(range(20))
    # a segment [1.5 s, 3 s] at 10 fps, 5 frames per second
    assert sample_frame_indices(100, 10.0, 5, 12, start=1.5, end=3.0) == list(range(15, 31, 2))
    assert sample_frame_indices(100, 10.0, 1, 12, start=20, end=30) == []
    with pytest.raises(ConfigError, match="data.max_frames must be at least 1, got 0"):
        sample_frame_indices(50, 3.0, 1, 0)


def test_load_clip_real_video(real_video):
    frames, mask = load_clip_uint8(real_video, max_frames=12, size=224, framerate=1)
    pixels = pixels_from_uint8(frames, mask)
    assert pixels.shape == (12, 3, 224, 224) and pixels.dtype == torch.float32
    assert mask.tolist() == [1] * 12 and mask.dtype == torch.int64
    lowest = (0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    highest = (1 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert pixels.min() >= lowest.min() - 1e-5 and pixels.max() <= highest.max() + 1e-5
    assert pixels.std() > 0.3  # real content, not a constant

    # Independent check: PyAV frame, torchvision-style center crop of the 298x224 frame (the
    # short side is already 224, so no resampling), then ToTensor + Normalize in numpy.
    reference = _pyav_frames(real_video)
    indices = [0, 3, 6, 12, 15, 21, 24, 30, 33, 39, 42, 48]
    left = int(round((298 - 224) / 2.0))
    for k in (0, 5, 11):
        crop = reference[indices[k], :, left : left + 224].astype(np.float32) / 255.0
        expected = ((crop - np.array(CLIP_MEAN)) / np.array(CLIP_STD)).transpose(2, 0, 1)
        np.testing.assert_allclose(pixels[k].numpy(), expected, atol=1e-5)


def test_uint8_and_float_paths_agree(real_video):
    frames, mask = load_clip_uint8(real_video, max_frames=12, size=112, framerate=1)
    assert frames.shape == (12, 112, 112, 3) and frames.dtype == torch.uint8
    pixels = pixels_from_uint8(frames, mask)
    assert torch.equal(pixels, normalize(frames))
    raw = read_frames(real_video, sample_frame_indices(50, 3.0, 1, 12))
    assert torch.equal(pixels, preprocess_frames(raw, 112))


def test_read_frames_any_order_and_repeats(real_video):
    reference = _pyav_frames(real_video)
    frames = read_frames(real_video, [7, 2, 7, 49])
    assert frames.shape == (4, 224, 298, 3) and frames.dtype == torch.uint8
    np.testing.assert_array_equal(frames.numpy(), reference[[7, 2, 7, 49]])
    with pytest.raises(VideoReadError, match="frame 50 was requested but only 50 frames decode"):
        read_frames(real_video, [0, 50])


def test_short_video_is_padded(short_video):
    info = probe_video(short_video)
    assert (info.fps, info.num_frames, info.width, info.height) == (10.0, 20, 64, 48)
    assert info.duration == pytest.approx(2.0)
    frames, mask = load_clip_uint8(short_video, max_frames=12, size=32, framerate=1)
    assert mask.tolist() == [1, 1] + [0] * 10
    assert torch.count_nonzero(frames[2:]) == 0
    pixels = pixels_from_uint8(frames, mask)
    assert pixels.shape == (12, 3, 32, 32)
    assert torch.count_nonzero(pixels[2:]) == 0  # padded slots are zeros after normalization


def test_written_video_decodes_to_its_frames(short_video):
    original = _gradient_frames(20, 48, 64)
    decoded = read_frames(short_video, list(range(20))).numpy().astype(int)
    assert np.abs(decoded - original).mean() < 3  # lossy but faithful (crf 18)
    with av.open(str(short_video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        keyframes = [i for i, p in enumerate(container.demux(stream)) if p.size and p.is_keyframe]
    assert keyframes[0] == 0 and max(np.diff(keyframes + [20])) <= 12  # GOP of at most 12
    assert os.listdir(short_video.parent) == [short_video.name]  # no temp file left


def test_write_test_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even height and width, got 47x64"):
        write_test_video(tmp_path / "odd.mp4", np.zeros((3, 47, 64, 3), np.uint8), fps=5)
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        write_test_video(tmp_path / "f.mp4", np.zeros((3, 48, 64, 3), np.float32), fps=5)
    assert list(tmp_path.iterdir()) == []


def test_resize_center_crop_geometry():
    landscape = torch.from_numpy(_gradient_frames(2, 48, 64))
    out = resize_center_crop(landscape, 32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == torch.uint8
    assert resize_center_crop(landscape.transpose(1, 2), 40).shape == (2, 40, 40, 3)
    assert resize_center_crop(landscape, 96).shape == (2, 96, 96, 3)  # upscaling
    # A flat colour stays exactly that colour (rounded, saturated uint8 resampling).
    flat = torch.full((1, 50, 70, 3), 200, dtype=torch.uint8)
    assert torch.equal(
        resize_center_crop(flat, 24), torch.full((1, 24, 24, 3), 200, dtype=torch.uint8)
    )
    # Short side already at size: no resampling, crop offset round(5 / 2) = 2 as torchvision.
    columns = torch.arange(37, dtype=torch.uint8).mul(6).view(1, 1, 37, 1).expand(1, 32, 37, 3)
    assert resize_center_crop(columns, 32)[0, 0, :, 0].tolist() == [6 * j for j in range(2, 34)]


def test_normalize_values():
    white = torch.full((1, 4, 4, 3), 255, dtype=torch.uint8)
    out = normalize(white)
    assert out.shape == (1, 3, 4, 4)
    expected = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(out[0, :, 2, 2], expected)


def _assert_one_line_error(path: Path, match: str) -> None:
    with pytest.raises(UserError) as info:
        load_clip_uint8(path, max_frames=12, size=32, framerate=1)
    assert isinstance(info.value, VideoReadError)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert match in message and "data.on_bad_video=skip" in message


def test_bad_videos_raise_one_line(tmp_path, real_video, faststart_copy):
    _assert_one_line_error(tmp_path / "missing.mp4", "file not found")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    _assert_one_line_error(garbage, "not a readable video file")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    _assert_one_line_error(text, "not a readable video file")
    data = real_video.read_bytes()
    cut_tail = tmp_path / "cut_tail.mp4"  # index at the end: cutting loses it
    cut_tail.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(cut_tail, "not a readable video file")
    cut_data = tmp_path / "cut_data.mp4"  # index first: opens, but frames run out
    cut_data.write_bytes(faststart_copy.read_bytes()[: len(data) // 2])
    assert probe_video(cut_data).num_frames == 50
    _assert_one_line_error(cut_data, "frame 48 was requested but only")


def test_directory_empty_file_and_cut_index_are_one_line(tmp_path, real_video):
    folder = tmp_path / "video1.mp4"
    folder.mkdir()
    _assert_one_line_error(folder, "is a directory")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _assert_one_line_error(empty, "the file is empty")
    # Cut where the index (moov, after the data here) describes the codec (stsd): the file
    # opens, with a video stream of no known codec.
    data = real_video.read_bytes()
    cut = tmp_path / "cut_index.mp4"
    cut.write_bytes(data[: data.index(b"stsd")])
    _assert_one_line_error(cut, "names no known codec")


def test_frame_count_of_a_header_is_checked_against_the_file(tmp_path, real_video):
    data = bytearray(real_video.read_bytes())
    # The time-to-sample table's one entry (after size, type, version and flags, entry count)
    # says how many frames follow: claim 10^9 instead of 50.
    struct.pack_into(">I", data, data.index(b"stts") + 12, 10**9)
    claimed = tmp_path / "claimed.mp4"
    claimed.write_bytes(data)
    with pytest.raises(VideoReadError) as error:
        probe_video(claimed)
    assert "its header claims 1000000000 frames, more than 16.67 s at 3 fps can hold" in str(
        error.value
    )


def test_errors_pickle_and_files_are_closed(tmp_path, faststart_copy):
    error = pickle.loads(pickle.dumps(VideoReadError("/x/v.mp4", "a\nb")))
    assert str(error).startswith("cannot read video /x/v.mp4: a b.")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart_copy.read_bytes()[:100_000])
    open_before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        with pytest.raises(VideoReadError):
            load_clip_uint8(cut, max_frames=12, size=32, framerate=1)
        load_clip_uint8(faststart_copy, max_frames=4, size=32, framerate=1)
    assert len(os.listdir("/proc/self/fd")) <= open_before


def test_a_damaged_video_read_in_a_loader_worker_is_still_one_line(tmp_path):
    from torch.utils.data import DataLoader

    from harness.data import ClipSource, VideoDataset
    from harness.video import VideoReadError

    bad = tmp_path / "video0.mp4"
    bad.write_bytes(b"not a video")
    source = ClipSource(max_frames=4, image_size=32, framerate=None)
    loader = DataLoader(VideoDataset([bad], source), batch_size=1, num_workers=1)
    with pytest.raises(VideoReadError) as error:
        next(iter(loader))
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"cannot read video {bad}: ")
