"""The exceptions that mean bad input (a file, a key, a name) rather than a bug.

The command line prints these as one line, without a traceback; set EMCL_BENCH_TRACEBACK=1 to
see the traceback anyway.
"""

from harness.config import ConfigError
from harness.engine import RunError
from harness.registry import UnknownNameError
from harness.video import VideoReadError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    UnknownNameError,
    VideoReadError,
    RunError,
    FileNotFoundError,
    ValueError,
)
