"""Phase lines: one timestamped line on stdout when a run enters a phase (generate, data,
train, evaluate), flushed at once so that a piped log (nohup, a cluster job) shows where a run
is."""

from __future__ import annotations

import time


def announce(text: str) -> None:
    """Print ``[HH:MM:SS] text`` on stdout and flush it (call it on one process only)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)
