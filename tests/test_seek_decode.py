"""Decoding only what is sampled (`harness.video.read_frames`): for every frame rule, the frames
equal the sequential reader's on generated videos (30, 29.97 and 25 fps; GOP 12 and 250; mp4,
Matroska and MPEG-TS) and on the real MSR-VTT clip; the frames decoded stay within 1.1x the
keyframe floor; streams whose packets cannot number the frames are read sequentially."""

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import baselines  # noqa: F401  (registers the hmmc frame rule)
from benchmarks.cache_read import write_videos
from harness.decode_plan import PacketTable, decode_runs, presentation_order
from harness.frame_rules import decord_indices
from harness.registry import FRAME_RULES
from harness.video import (
    DecodeStats,
    VideoReadError,
    probe_video,
    read_frames,
    read_frames_sequential,
    write_test_video,
)

SECONDS = 10
# (frame rate, GOP, container suffix) of the generated videos, 64x48 and 10 s each.
GENERATED = {
    "30fps_gop12": (30, 12, ".mp4"),
    "30fps_gop250": (30, 250, ".mp4"),
    "29.97fps_gop12": (Fraction(30000, 1001), 12, ".mp4"),
    "25fps_gop250": (25, 250, ".mp4"),
    "30fps_gop12_mkv": (30, 12, ".mkv"),
    "30fps_gop12_ts": (30, 12, ".ts"),
}


def all_frames(path: Path) -> np.ndarray:
    """Every frame of ``path``, decoded by PyAV directly: uint8 (N, H, W, 3)."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode()])


def generated_video(folder: Path, name: str) -> Path:
    """The generated video ``name`` of GENERATED (a square crossing a gradient; other
    containers than mp4 hold the mp4's frames encoded again)."""
    fps, gop, suffix = GENERATED[name]
    mp4 = write_videos(folder, 1, (48, 64), round(SECONDS * fps), fps, gop=gop)[0]
    if suffix == ".mp4":
        return mp4
    path = folder / f"{name}{suffix}"
    write_test_video(path, all_frames(mp4), fps, gop=gop)
    return path


@pytest.fixture(params=[*GENERATED, "msrvtt_real"])
def video(request, tmp_path) -> Path:
    if request.param == "msrvtt_real":
        return request.getfixturevalue("shared_data") / "videos" / "video7500.mp4"
    return generated_video(tmp_path, request.param)


def rule_samples(num_frames: int, fps: float) -> dict[str, list[int]]:
    """Frame indices of every registered rule at 12 frames, 1 fps and every frame, plus a time
    segment and an unordered list with repeats."""
    samples = {}
    for name in FRAME_RULES.names():
        rule = FRAME_RULES.get(name)
        for rate in (1, None):
            samples[f"{name} rate {rate}"] = rule.indices(num_frames, fps, rate, 12, 2, None, None)
    samples["decord segment 2-5 s"] = decord_indices(num_frames, fps, 2, 12, start=2, end=5)
    samples["unordered, repeats"] = [num_frames - 1, 7, 3, 7, num_frames // 2]
    return samples


def test_seeking_reader_returns_the_sequential_frames_for_every_rule(video):
    info = probe_video(video)
    samples = rule_samples(info.num_frames, info.fps)
    assert {"decord rate 1", "cv2_grid rate 1", "hmmc rate 1"} <= set(samples)
    for name, indices in samples.items():
        seek, sequential = DecodeStats(), DecodeStats()
        frames = read_frames(video, indices, seek)
        assert torch.equal(frames, read_frames_sequential(video, indices, sequential)), name
        assert not seek.sequential and sequential.sequential
        assert seek.frames <= sequential.frames, name


def keyframe_floor(path: Path, indices: list[int]) -> tuple[int, int]:
    """``(presentation floor, decode-order floor)`` of decoding frames ``indices`` of ``path``:
    how many frames lie from each sampled frame's keyframe up to it, counted once, in
    presentation order and, as the decoder meets them, in decode order (which adds the
    references a B-frame has after it)."""
    with av.open(str(path)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
    order = sorted(range(len(packets)), key=lambda p: packets[p][0])
    shown_keys = [i for i, p in enumerate(order) if packets[p][1]]
    decode_keys = [p for p, (_, key) in enumerate(packets) if key]
    shown, decoded = set(), set()
    for index in indices:
        shown |= set(range(max(k for k in shown_keys if k <= index), index + 1))
        position = order[index]
        decoded |= set(range(max(k for k in decode_keys if k <= position), position + 1))
    return len(shown), len(decoded)


@pytest.mark.parametrize("gop", [12, 250])
def test_frames_decoded_stay_within_the_keyframe_floor(tmp_path, gop):
    path = write_videos(tmp_path, 1, (48, 64), SECONDS * 30, 30, gop=gop)[0]
    with av.open(str(path)) as container:
        keyframes = sum(p.is_keyframe for p in container.demux(video=0) if p.size)
    assert keyframes >= 25 if gop == 12 else keyframes <= 3  # the GOP the test is about
    for rate in (1, None):
        indices = decord_indices(SECONDS * 30, 30.0, rate, 12)
        shown_floor, decode_floor = keyframe_floor(path, indices)
        seek, sequential = DecodeStats(), DecodeStats()
        read_frames(path, indices, seek)
        read_frames_sequential(path, indices, sequential)
        assert decode_floor <= seek.frames <= 1.1 * shown_floor
        assert seek.frames == decode_floor  # never past a run's last sampled frame
        assert sequential.frames > max(indices)
        if gop == 12:  # the sequential reader decodes several times the floor
            assert sequential.frames > 3 * shown_floor


def test_streams_that_cannot_be_numbered_are_read_sequentially(tmp_path):
    mp4 = write_videos(tmp_path, 1, (48, 64), 60, 30)[0]
    pixels = all_frames(mp4)
    # AVI stores decode-order timestamps for a stream with B-frames; MPEG-4 part 2 is not a
    # codec the packet table numbers.
    for path, codec in ((tmp_path / "b_frames.avi", "libx264"), (tmp_path / "p2.mp4", "mpeg4")):
        write_test_video(path, pixels, 30, codec=codec)
        indices = decord_indices(60, 30.0, None, 12)
        stats = DecodeStats()
        frames = read_frames(path, indices, stats)
        assert stats.sequential and stats.frames >= max(indices) + 1
        assert torch.equal(frames, read_frames_sequential(path, indices))
    with pytest.raises(VideoReadError, match="frame 60 was requested but only 60 frames decode"):
        read_frames(mp4, [0, 60])


@pytest.mark.parametrize("claimed", [45, 55])
def test_a_header_frame_count_that_lies_reads_as_the_sequential_reader_does(
    shared_data, tmp_path, claimed
):
    data = bytearray((shared_data / "videos" / "video7500.mp4").read_bytes())
    # The time-to-sample table's one entry says how many frames follow: 50 in truth.
    struct.pack_into(">I", data, data.index(b"stts") + 12, claimed)
    path = tmp_path / "claimed.mp4"
    path.write_bytes(data)
    info = probe_video(path)
    assert info.num_frames == claimed
    indices = decord_indices(info.num_frames, info.fps, 1, 12)
    if claimed < 50:
        stats = DecodeStats()
        frames = read_frames(path, indices, stats)
        assert not stats.sequential and stats.frames < max(indices)
        assert torch.equal(frames, read_frames_sequential(path, indices))
        return
    # More frames than the file holds: the packets counted fall short, the sequential reader
    # answers with its one-line error.
    with pytest.raises(VideoReadError, match="frame 54 was requested but only 50 frames decode"):
        read_frames(path, indices)


def test_decode_runs_start_at_the_keyframe_and_merge():
    # Decode order I0 P3 B1 B2 | I7 B5 B6 P8, dts two frames behind: the second GOP is open
    # (B5 and B6 show before I7 and refer to P3).
    table = PacketTable()
    for dts, (pts, key) in enumerate(
        [(0, True), (3, False), (1, False), (2, False), (7, True), (5, False), (6, False),
         (8, False)]
    ):  # fmt: skip
        table.add(pts, dts - 2, key)
    order = presentation_order(table)
    assert order == [0, 2, 3, 1, 5, 6, 4, 7]  # pts 4 is absent: frame 4 is pts 5
    # I0 alone, then P8 (frame 7) from its keyframe I7: two runs, a seek apart.
    runs = decode_runs(table, [order[0], order[7]])
    assert [(r.first, r.last) for r in runs] == [(0, 0), (4, 7)]
    # B2 needs I0 P3 B1 B2; P8's run starts right after it, so decoding goes on: one run.
    assert [(r.first, r.last) for r in decode_runs(table, [order[2], order[7]])] == [(0, 7)]
    # The leading B5 (frame 4) needs the GOP before I7: one run from I0, merged with frame 0's.
    assert [(r.first, r.last) for r in decode_runs(table, [order[0], order[4]])] == [(0, 5)]
    # pts up to the last dts (5) can no longer be preceded: frames 0-4 are numbered.
    assert table.settled() == 5
    table.add(9, 5, False)  # a dts that does not rise: only the whole table numbers frames
    assert table.settled() == 0
