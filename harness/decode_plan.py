"""Which packets to decode for a set of frames: the keyframe runs of `harness.video.read_frames`.

A video stream is a list of packets in decode order, each one frame with a presentation time
(pts). Frame ``i`` of a sequential decode is the packet of the ``i``-th smallest pts. To decode a
frame, the decoder needs every packet from a keyframe before it (in decode order, with a pts
not after the frame's: a leading picture of an open GOP needs the GOP before) up to the frame's
own packet. A run is one such stretch; runs that touch or overlap are merged, so the packets
decoded are the union of what each wanted frame needs (the codec's floor), each once. All
arithmetic on the packet table; nothing here decodes.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass
class PacketTable:
    """The packets of one stream in decode order, as demuxed: ``pts``, ``dts`` (None where the
    container gives none) and ``keyframe`` flags, one entry per packet."""

    pts: list[int] = field(default_factory=list)
    dts: list[int | None] = field(default_factory=list)
    keyframe: list[bool] = field(default_factory=list)
    # pts not yet known to be final in presentation order, and how many are (see `settled`).
    _pending: list[int] = field(default_factory=list, repr=False)
    _settled: int = 0
    _monotonic: bool = True

    def add(self, pts: int, dts: int | None, keyframe: bool) -> None:
        """Append the next packet in decode order."""
        previous = self.dts[-1] if self.dts else None
        if dts is None or (previous is not None and dts <= previous) or pts < dts:
            self._monotonic = False
        self.pts.append(pts)
        self.dts.append(dts)
        self.keyframe.append(keyframe)
        heapq.heappush(self._pending, pts)
        if self._monotonic:
            # Every later packet has pts >= its dts > this dts: a pts up to this dts is final.
            while self._pending and self._pending[0] <= dts:
                heapq.heappop(self._pending)
                self._settled += 1

    def settled(self) -> int:
        """How many frames, from the first in presentation order, have a final index: those
        whose pts is at most the last dts, while dts rise strictly and never exceed pts (else
        0: only the complete table numbers the frames)."""
        return self._settled if self._monotonic else 0

    def __len__(self) -> int:
        return len(self.pts)


@dataclass(frozen=True)
class DecodeRun:
    """Packets ``first`` (a keyframe) to ``last``, decode positions, decoded in one go."""

    first: int
    last: int


def presentation_order(table: PacketTable) -> list[int] | None:
    """Decode positions in presentation order: entry ``i`` holds frame ``i``'s packet. None when
    pts repeat or the first packet is not a keyframe holding the first frame (then the frame
    numbering of a sequential decode cannot be told from the table)."""
    order = sorted(range(len(table)), key=table.pts.__getitem__)
    repeated = any(table.pts[a] == table.pts[b] for a, b in zip(order, order[1:], strict=False))
    if repeated or not order or order[0] != 0 or not table.keyframe[0]:
        return None
    return order


def decode_runs(table: PacketTable, positions: list[int]) -> list[DecodeRun]:
    """The runs that decode the packets at decode ``positions`` (any order, repeats allowed):
    for each, from the last keyframe at or before it whose pts is not after its own, merged
    where a run starts at most one packet after the previous one ends. Ascending, disjoint."""
    keyframes = [p for p, key in enumerate(table.keyframe) if key]
    runs: list[DecodeRun] = []
    for position in sorted(set(positions)):
        k = bisect_right(keyframes, position) - 1
        while table.pts[keyframes[k]] > table.pts[position]:
            k -= 1  # a leading picture: its references start at the keyframe before
        start = keyframes[k]
        if runs and start <= runs[-1].last + 1:
            runs[-1] = DecodeRun(runs[-1].first, max(runs[-1].last, position))
        else:
            runs.append(DecodeRun(start, position))
    return runs
