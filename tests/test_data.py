"""Clip loading with time segments and the bad-video policy on caption-video pairs."""

import numpy as np

from harness.data import ClipSource, drop_bad_videos
from harness.data_types import VideoTextPairs
from harness.video import write_test_video


def write_counter_video(path, seconds: int, fps: int = 8) -> None:
    frames = np.zeros((seconds * fps, 32, 32, 3), np.uint8)
    frames[:] = np.arange(seconds * fps, dtype=np.uint8)[:, None, None, None] * 7
    write_test_video(path, frames, fps)


def test_segments_limit_the_sampled_frames(tmp_path):
    path = tmp_path / "v.mp4"
    write_counter_video(path, seconds=4)
    source = ClipSource(max_frames=6, image_size=32, framerate=1.0, cache_in_memory=True)
    whole, whole_mask = source.frames_uint8(path)
    part, part_mask = source.frames_uint8(path, (0.0, 2.0))
    assert whole_mask.tolist() == [1, 1, 1, 1, 0, 0]  # frames 0, 8, 16, 24
    assert part_mask.tolist() == [1, 1, 1, 0, 0, 0]  # frames 0, 8, 16
    assert np.array_equal(whole[:3].numpy(), part[:3].numpy())
    # an end beyond the file is clamped to its last frame
    assert source.frames_uint8(path, (0.0, 31.0))[1].tolist() == whole_mask.tolist()


def test_bad_videos_are_dropped_with_their_captions_and_segments(tmp_path):
    good = tmp_path / "good.mp4"
    write_counter_video(good, seconds=2)
    missing = tmp_path / "missing.mp4"
    pairs = VideoTextPairs(
        video_ids=["good", "missing"],
        video_paths=[good, missing],
        captions=["a", "b", "c"],
        caption_video=[0, 1, 1],
        segments=[(0.0, 1.0), None],
    )
    kept, skipped = drop_bad_videos(pairs, ClipSource(4, 32, 1.0))
    assert kept.video_ids == ["good"] and kept.captions == ["a"]
    assert kept.segments == [(0.0, 1.0)]
    assert [s["path"] for s in skipped] == [str(missing)]
    assert str(missing) in skipped[0]["error"]
