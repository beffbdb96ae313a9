"""Leaderboards: tables of reported and reproduced numbers, with bootstrap intervals and paired
p-values, regenerated from run records and ``leaderboards/reported.yaml``
(``python run.py --leaderboard``)."""

from harness.leaderboard.regenerate import regenerate

__all__ = ["regenerate"]
