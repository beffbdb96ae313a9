"""The result specs of the tasks (``SPEC`` in each module): the leaderboard columns, footnotes,
sample checks and per-query values of a task. Registered in :mod:`tasks` with each task and
loaded on first use; light on purpose (no torch), as the leaderboard reads them without a model.
"""
