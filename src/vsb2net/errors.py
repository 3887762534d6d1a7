"""User-facing errors.

Anything the user can fix (a missing file, a bad value, an unknown class name) is raised as a
``VsbError`` whose message says what was wrong, where, and how to fix it.  The CLI prints that
message alone and exits non-zero; any other exception is a bug and keeps its traceback.
"""


class VsbError(Exception):
    """An error in the user's input or environment, with a message meant for the user."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM; says what the run directory holds to continue from.

    A KeyboardInterrupt, so code that does not know it still treats it as an interruption.
    """

    def __init__(self, run_dir, signum: int, resumable: bool, where: str = ""):
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.signum = signum
        self.resumable = resumable
        self.where = where


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool) of at least ``minimum`` (0 or 1)."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        raise VsbError(f"{name} must be a {kind} integer, got {value!r}.")
    return int(value)

